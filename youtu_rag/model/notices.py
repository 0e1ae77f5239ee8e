"""Warnings said once per embedder, counted every time.

A LlamaIndex ``from_documents`` or an ingest run calls an embedder many times; a warning about
the data (texts cut at the model's limit) repeated for every call buries the output it is meant
to inform. The first occurrence of each kind is logged as a warning, the rest at debug level,
and the counts stay available (``YoutuEmbedder.warning_counts()``) for whoever wants the total.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter


class OnceWarnings:
    """Each kind of warning logged once, its occurrences counted; safe from any thread."""

    def __init__(self, logger: logging.Logger) -> None:
        """Log through ``logger``.

        Args:
            logger: the logger of the module that warns.
        """
        self._logger = logger
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def warn(self, kind: str, count: int, message: str, *args: object) -> None:
        """Count ``count`` occurrences of ``kind``; log ``message % args`` as a warning the first
        time, at debug level after that.

        Args:
            kind: what the warning is about, e.g. ``"truncated"``.
            count: how many occurrences this call adds (e.g. texts truncated).
            message: a %-style message.
            *args: its arguments.
        """
        with self._lock:
            first = kind not in self._counts
            self._counts[kind] += count
        if first:
            self._logger.warning(message, *args)
        else:
            self._logger.debug(message, *args)

    def counts(self) -> dict[str, int]:
        """Occurrences of each kind so far, e.g. ``{"truncated": 42}``."""
        with self._lock:
            return dict(self._counts)
