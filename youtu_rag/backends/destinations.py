"""Where a stored embedding-function config would send texts and credentials, and whether the
caller agreed to it.

A collection's embedding-function config is plain data that whoever can write to the database
or the server can rewrite. A ``base_url`` or a Tencent Cloud ``endpoint``/``protocol``/``region``
in it would make every process that reopens the collection send its texts, and the API key or
SecretId from its own environment, to that place. So a stored destination is used only when the
caller names it: :data:`ALLOWED_DESTINATIONS_ENV` or an ``allowed_destinations`` argument (the
same opt-in pattern as remote code). Credentials travel only over https, or to a loopback address
the caller named. A destination is read with the backends' own strict parser
(:mod:`youtu_rag.backends.addresses`), so the host checked here is the host they connect to; one
it cannot read is refused outright.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from youtu_rag.backends.addresses import parse_endpoint, parse_url
from youtu_rag.backends.http import API_KEY_ENV
from youtu_rag.backends.protocol import is_remote, is_server_url
from youtu_rag.backends.tencent_cloud import DEFAULT_ENDPOINT, DEFAULT_REGION, REGION_ENV

#: Comma-separated URLs (``https://embed.example.com``, ``http://127.0.0.1:8000``) that a stored
#: embedding-function config may send texts to.
ALLOWED_DESTINATIONS_ENV = "YOUTU_RAG_ALLOWED_URLS"

_TENCENT_CLOUD_URL = f"https://{DEFAULT_ENDPOINT}"


class DestinationRefusedError(PermissionError):
    """A stored config names a place to send texts or credentials that the caller did not
    allow."""


@dataclass(frozen=True)
class Destination:
    """A place a config sends texts to: ``url`` (normalised) and, for Tencent Cloud, a region."""

    url: str
    region: str | None = None
    sends_credentials: bool = True

    def __str__(self) -> str:
        return self.url if self.region is None else f"{self.url} (region {self.region})"


def normalise_url(url: str) -> str:
    """``scheme://host:port/path`` with the default port made explicit and no trailing slash, so
    two spellings of one address compare equal.

    Raises:
        ValueError: not a plain http(s) URL (see :func:`~youtu_rag.backends.addresses.parse_url`).
    """
    return parse_url(url.strip()).url


def is_loopback(url: str) -> bool:
    """Whether the URL's host is this machine (``localhost`` or a loopback address)."""
    try:
        return parse_url(url).is_loopback
    except ValueError:
        return False


def stored_destination(config: Mapping[str, Any]) -> Destination | None:
    """Where rebuilding ``config`` would send texts when it names a place, else None.

    A config with neither a ``base_url`` nor a Tencent Cloud model embeds in this process. A
    Tencent Cloud config at the public https endpoint in this process's own region (from
    ``TENCENTCLOUD_REGION`` or the default) sends nowhere the caller did not already choose.
    """
    model = str(config.get("model_name_or_path", ""))
    base_url = config.get("base_url", model if is_server_url(model) else None)
    if base_url is not None:
        has_key = bool(os.environ.get(API_KEY_ENV, "").strip())
        return Destination(_normalised_or_raw(str(base_url)), None, has_key)
    if not is_remote(model):
        return None
    endpoint = str(config.get("endpoint") or DEFAULT_ENDPOINT)
    protocol = config.get("protocol")
    try:
        url = parse_endpoint(endpoint, None if protocol is None else str(protocol)).url
    except ValueError:
        url = endpoint.strip()  # not a plain address: check_destination refuses it
    region = config.get("region")
    own_region = os.environ.get(REGION_ENV) or DEFAULT_REGION
    if url == normalise_url(_TENCENT_CLOUD_URL) and region in (None, own_region):
        return None
    return Destination(url, None if region is None else str(region))


# Per collection name, the servers this process's own code opened it with (ChromaStore with an
# HttpEmbedder): Chroma rebuilding that collection's stored function in this process sends
# texts where the caller already sends them.
_opened_with: dict[str, set[str]] = {}
_opened_lock = threading.Lock()


def remember_destination(collection: str, url: str) -> None:
    """Note that the caller's own code embeds for ``collection`` through ``url``."""
    with _opened_lock:
        _opened_with.setdefault(collection, set()).add(_normalised_or_raw(url))


def allowed_destinations(extra: Iterable[str] = (), collection: str | None = None) -> set[str]:
    """The normalised URLs the caller allows: ``extra``, :data:`ALLOWED_DESTINATIONS_ENV`, and
    the servers this process opened ``collection`` with."""
    named = [*extra, *os.environ.get(ALLOWED_DESTINATIONS_ENV, "").split(",")]
    allowed = {_normalised_or_raw(url) for url in named if url.strip()}
    if collection is not None:
        with _opened_lock:
            allowed |= _opened_with.get(collection, set())
    return allowed


def check_destination(
    config: Mapping[str, Any],
    *,
    collection: str | None = None,
    allowed: Iterable[str] = (),
) -> None:
    """Refuse a stored config that sends texts to a place the caller did not name, or
    credentials over plain http to anything but an allowed loopback address.

    Args:
        config: a stored embedding-function config.
        collection: its collection, for the message.
        allowed: URLs the caller allows besides :data:`ALLOWED_DESTINATIONS_ENV`.

    Raises:
        DestinationRefusedError: in one line naming the collection, the destination and the
            opt-in.
    """
    destination = stored_destination(config)
    if destination is None:
        return
    where = f"collection {collection!r}" if collection is not None else "a collection"
    try:
        normalise_url(destination.url)
    except ValueError as error:
        raise DestinationRefusedError(
            f"{where} stores an embedding destination that is refused: {error}"
        ) from None
    if destination.url not in allowed_destinations(allowed, collection):
        raise DestinationRefusedError(
            f"{where} stores an embedding destination, {destination}, that this process did not "
            f"name; refused (texts and credentials go only where the caller says): to allow it, "
            f"set {ALLOWED_DESTINATIONS_ENV}={destination.url} or pass "
            f"allowed_destinations=[{destination.url!r}]"
        )
    plain = destination.url.startswith("http://")
    if plain and destination.sends_credentials and not is_loopback(destination.url):
        raise DestinationRefusedError(
            f"{where} stores an embedding destination, {destination}, reached over plain http; "
            "refused: credentials go only over https, or to a loopback address you allow"
        )


def _normalised_or_raw(url: str) -> str:
    try:
        return normalise_url(url)
    except ValueError:
        return url.strip()
