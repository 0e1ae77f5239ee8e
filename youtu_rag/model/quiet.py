"""Keep transformers' own load bar out of our users' terminals.

transformers draws a "Loading weights" progress bar for every model it loads. In a library call it
is noise in someone else's output, and in the CLI it sits between the command and its own
progress bar. It is switched off only while youtu-rag loads a model, through transformers' tqdm
hook, so download bars of the hub (a first download of a 2B model takes a while) and everything
the caller loads themselves stay as they were.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from transformers.utils import logging as transformers_logging

_TqdmHook = Callable[[Callable[..., Any], tuple[Any, ...], dict[str, Any]], Any]


def _silent(factory: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    return factory(*args, **{**kwargs, "disable": True})


@contextlib.contextmanager
def quiet_model_loading() -> Iterator[None]:
    """Within the block, transformers' progress bars are drawn disabled."""
    set_hook: Callable[[_TqdmHook | None], None] | None = getattr(
        transformers_logging, "set_tqdm_hook", None
    )
    if set_hook is None:  # an older transformers: no hook, leave its bars alone
        yield
        return
    previous: _TqdmHook | None = getattr(transformers_logging, "_tqdm_hook", None)
    set_hook(_silent)
    try:
        yield
    finally:
        set_hook(previous)
