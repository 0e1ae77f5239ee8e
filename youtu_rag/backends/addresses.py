"""Strict parsing of the addresses texts and credentials are sent to.

A destination check is only as good as its agreement with the HTTP stack that connects. URL
parsers disagree on the odd cases: ``http://127.0.0.1:8080\\@lkeap.tencentcloudapi.com`` is a
host of ``lkeap.tencentcloudapi.com`` to :func:`urllib.parse.urlsplit` and a connection to
127.0.0.1 to others. So the backends accept only the plain form on which every parser agrees:
``http(s)://host[:port][/path]`` or a bare ``host[:port]``, with no userinfo, ``@``, backslash,
white space or percent-escape anywhere, no query and no fragment. The check and the connection
then read the same host from the same :class:`Address`.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

__all__ = ["Address", "is_loopback_host", "parse_endpoint", "parse_url"]

_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_AUTHORITY = re.compile(
    rf"(?P<host>{_LABEL}(?:\.{_LABEL})*|\[(?P<ipv6>[0-9A-Fa-f:.]+)\])(?::(?P<port>[0-9]{{1,5}}))?"
)
_URL = re.compile(r"(?P<scheme>[A-Za-z]+)://(?P<authority>[^/]*)(?P<path>/[A-Za-z0-9._~/-]*)?")


@dataclass(frozen=True)
class Address:
    """A parsed http(s) destination: lower-case ``host`` (IPv6 without brackets), explicit
    ``port``, ``path`` without a trailing slash (``""`` for the root)."""

    scheme: str
    host: str
    port: int
    path: str = ""

    @property
    def authority(self) -> str:
        """``host:port`` as a URL writes it (IPv6 in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def netloc(self) -> str:
        """``host[:port]``, the port left out where it is the scheme's default."""
        default = 443 if self.scheme == "https" else 80
        return self.authority if self.port != default else self.authority.rsplit(":", 1)[0]

    @property
    def url(self) -> str:
        """``scheme://host:port/path``: one spelling per destination, so two compare equal."""
        return f"{self.scheme}://{self.authority}{self.path}"

    @property
    def is_loopback(self) -> bool:
        return is_loopback_host(self.host)


def is_loopback_host(host: str | None) -> bool:
    """Whether ``host`` is this machine (``localhost`` or a loopback address)."""
    if host is None:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host.lower() == "localhost"


def parse_url(url: str, *, allow_path: bool = True) -> Address:
    """The :class:`Address` of an ``http(s)://host[:port][/path]`` URL.

    Raises:
        ValueError: anything else, naming the URL: another scheme, userinfo or ``@``, a
            backslash, white space, a percent-escape, a query or fragment, a path where none is
            allowed, a malformed host or port.
    """
    match = _URL.fullmatch(url)
    if match is None:
        if _URL.fullmatch(re.split(r"[?#]", url, maxsplit=1)[0]):
            raise ValueError(f"{url!r} has a query or fragment; give http(s)://host[:port] only")
        raise ValueError(_refusal(url))
    scheme = match["scheme"].lower()
    if scheme not in ("http", "https"):
        raise ValueError(_refusal(url))
    path = (match["path"] or "").rstrip("/")
    if path and not allow_path:
        raise ValueError(f"{url!r} has a path; give http(s)://host[:port] only")
    return _address(scheme, match["authority"], path, url)


def parse_endpoint(endpoint: str, protocol: str | None = None) -> Address:
    """The :class:`Address` of a bare ``host[:port]`` (``protocol``, default https) or of an
    ``http(s)://host[:port]`` URL, whose scheme must agree with ``protocol`` if given.

    Raises:
        ValueError: as :func:`parse_url`, or a path, or a scheme that contradicts ``protocol``.
    """
    if "://" in endpoint:
        address = parse_url(endpoint, allow_path=False)
        if protocol is not None and protocol != address.scheme:
            raise ValueError(f"endpoint {endpoint!r} contradicts protocol {protocol!r}")
        return address
    scheme = protocol or "https"
    if scheme not in ("http", "https"):
        raise ValueError(f"protocol must be http or https, got {protocol!r}")
    return _address(scheme, endpoint, "", endpoint)


def _address(scheme: str, authority: str, path: str, given: str) -> Address:
    match = _AUTHORITY.fullmatch(authority)
    if match is None:
        raise ValueError(_refusal(given))
    host = match["host"].lower()
    if match["ipv6"] is not None:
        try:
            host = str(ipaddress.IPv6Address(match["ipv6"]))
        except ValueError:
            raise ValueError(_refusal(given)) from None
    port = int(match["port"]) if match["port"] is not None else (443 if scheme == "https" else 80)
    if not 0 < port < 65536:
        raise ValueError(f"{given!r} has port {port}, outside 1-65535")
    return Address(scheme, host, port, path)


def _refusal(given: str) -> str:
    return (
        f"{given!r} is not a plain http(s)://host[:port] address (no user info, '@', "
        "backslash, white space, percent-escape, query or fragment)"
    )
