"""Fetching media from a URL to hash it, without letting the URL reach inside the network.

A URL given to hash (``amber hash --url``, ``POST /v1/hash``) is attacker text. Fetched
naively it makes amber's host read what only it can reach (its own admin ports, a cloud's
metadata service, the private network: server-side request forgery), or holds the fetch
with an endless or huge body. ``fetch``:

- takes only ``http`` and ``https`` URLs with a host, a valid port and no credentials
  (``check_url``); given ``allowed_hosts``, only those exact host names;
- resolves the host and refuses it when any address it resolves to is not a public one:
  private, loopback, link-local, multicast, reserved, unspecified or shared (carrier NAT);
  an IPv4 address inside an IPv6 one (mapped, 6to4, NAT64, Teredo) is judged as IPv4.
  Once connected, it checks the address it reached too (a DNS answer that changed in
  between). ``allow_private`` turns these checks off (a test server, an intranet);
- follows at most ``MAX_REDIRECTS`` redirects itself, checking each hop as the first;
- reads at most ``max_bytes`` (the media limit, 64 MiB), refusing a larger body as soon as
  its ``Content-Length`` says so or as soon as that much has come (whatever the header
  said); stops the whole fetch, redirects included, after ``timeout`` seconds (30); and
  takes only ``image/*`` and ``video/*`` content.

Each failure is a ``FetchError`` that names the URL, of a class carrying the HTTP status a
face answers with: 400 refused, 413 too large, 502 failed, 504 too slow, 500 a setting of
the service is wrong.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import socket
import threading
import time
from collections.abc import Collection, Iterator
from contextlib import suppress
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urljoin, urlsplit

import requests

from amber import __version__
from amber.errors import AmberError, ExternalError, InternalError, UserError
from amber.media import DEFAULT_LIMITS

log = logging.getLogger(__name__)

#: Redirects followed at most (each hop checked as the first URL).
MAX_REDIRECTS: Final = 5
#: Seconds a whole fetch may take, redirects included.
DEFAULT_TIMEOUT: Final = 30.0
#: Bytes fetched at most: the media size limit (``amber.media.MediaLimits.max_bytes``).
DEFAULT_MAX_BYTES: Final = DEFAULT_LIMITS.max_bytes
#: The content types fetched (their start): images and videos.
MEDIA_TYPES: Final = ("image/", "video/")
#: Bytes read from the connection at a time.
CHUNK: Final = 64 * 1024
USER_AGENT: Final = f"amber/{__version__} (media fetch)"

_SCHEMES: Final = ("http", "https")
_REDIRECT_STATUSES: Final = frozenset({301, 302, 303, 307, 308})
#: NAT64's well-known prefix (RFC 6052): the last 32 bits are an IPv4 address.
_NAT64: Final = ipaddress.IPv6Network("64:ff9b::/96")


class _NoAuth(requests.auth.AuthBase):
    """Send no credentials: not even those ``~/.netrc`` holds for the host."""

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        return request


class FetchError(AmberError):
    """A URL could not be fetched; ``url`` says which. The class carries the HTTP status
    (and the exit code) a face answers with."""

    def __init__(self, message: str, *, url: str) -> None:
        super().__init__(message)
        self.url = url


class FetchRefusedError(FetchError, UserError):
    """The URL, an address it resolves to, a redirect or the content it answered is one
    amber does not fetch (HTTP 400, exit 2)."""


class FetchTooLargeError(FetchError, UserError):
    """The content is over the size limit, declared or as sent (HTTP 413, exit 2)."""

    http_status = 413


class FetchFailedError(FetchError, ExternalError):
    """The server could not be reached, answered an error status, broke off or redirected
    too often (HTTP 502, exit 3)."""


class FetchTimeoutError(FetchFailedError):
    """The fetch took longer than its time limit (HTTP 504, exit 3)."""

    http_status = 504


class FetchMisconfiguredError(FetchError, InternalError):
    """A fetch setting (size or time limit) is not usable: the service is misconfigured
    (HTTP 500, exit 1); the message and the log say which setting."""


@dataclass(frozen=True, slots=True)
class Fetched:
    """What a URL answered: the bytes, their content type (``image/png``, without
    parameters) and the URL they came from (the last after redirects)."""

    data: bytes
    content_type: str
    url: str


def check_url(url: str | None, *, allowed_hosts: Collection[str] | None = None) -> str | None:
    """Why ``url`` is not one to fetch, or ``None`` when it is: ``http`` or ``https``, a
    host, a port (if any) from 1 to 65535, no credentials, no spaces or control
    characters; with a non-empty ``allowed_hosts``, a host name exactly one of them (any
    case). Only the text is checked: ``fetch`` checks the addresses too."""
    if not isinstance(url, str) or not url.strip():
        return "no URL was given"
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        return f"URL {url!r} contains spaces or control characters; encode them (%20)"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return f"URL {url!r} is malformed ({exc})"
    if parts.scheme.lower() not in _SCHEMES:
        return f"URL {url!r} is not an http or https URL"
    host = parts.hostname
    if not host:
        return f"URL {url!r} has no host"
    if "@" in parts.netloc:
        return f"URL {url!r} holds credentials (user@host); amber sends none"
    if parts.netloc.endswith(":"):
        return f"URL {url!r} has an empty port"
    if port == 0:
        return f"URL {url!r} has port 0"
    if allowed_hosts and host not in {h.lower() for h in allowed_hosts}:
        return f"host {host!r} of URL {url!r} is not one of the allowed hosts"
    return None


def address_refusal(address: str) -> str | None:
    """Why an IP address is not one to fetch from (``"is loopback"``, ...), or ``None``
    for a public one. An IPv4 address inside an IPv6 one is judged too."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return "is not an IP address"
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:a.b.c.d is a.b.c.d
    why = _refusal(ip)
    if why is None and isinstance(ip, ipaddress.IPv6Address):
        for inner in _embedded(ip):
            if (inner_why := _refusal(inner)) is not None:
                return f"holds IPv4 address {inner}, which {inner_why}"
    return why


def fetch(
    url: str,
    *,
    allow_private: bool = False,
    allowed_hosts: Collection[str] | None = None,
    max_bytes: int | None = DEFAULT_MAX_BYTES,
    timeout: float | None = DEFAULT_TIMEOUT,
) -> Fetched:
    """GET an image or a video from ``url`` (see the module's rules). ``None`` for
    ``max_bytes`` or ``timeout`` is the default.

    Raises ``FetchRefusedError`` (400) for a URL, address, redirect or content type
    refused, ``FetchTooLargeError`` (413) for content over ``max_bytes``,
    ``FetchFailedError`` (502) when the server cannot be reached, answers an error or
    redirects more than ``MAX_REDIRECTS`` times, ``FetchTimeoutError`` (504) past
    ``timeout`` seconds, ``FetchMisconfiguredError`` (500) for unusable limits.
    """
    limit = _max_bytes(max_bytes, url)
    seconds = _timeout(timeout, url)
    deadline = time.monotonic() + seconds
    current = url
    for _ in range(MAX_REDIRECTS + 1):
        _check(current, allow_private=allow_private, allowed_hosts=allowed_hosts)
        response = _get(current, deadline, seconds)
        try:
            if not allow_private:
                _check_peer(response, current)
            location = (
                response.headers.get("location")
                if response.status_code in _REDIRECT_STATUSES
                else None
            )
            if location:
                current = urljoin(current, str(location))
                continue
            _check_status(response, current)
            return _read(response, current, limit, deadline, seconds)
        finally:
            response.close()
    raise FetchFailedError(f"{url} redirects more than {MAX_REDIRECTS} times", url=url)


def _refusal(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    for refused, why in (
        (ip.is_unspecified, "is unspecified"),
        (ip.is_loopback, "is loopback"),
        (ip.is_link_local, "is link-local"),
        (ip.is_multicast, "is multicast"),
        (ip.is_private, "is private"),
        (ip.is_reserved, "is reserved"),
        (not ip.is_global, "is not a public address"),
    ):
        if refused:
            return why
    return None


def _embedded(ip: ipaddress.IPv6Address) -> Iterator[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries: 6to4, NAT64, Teredo's."""
    if ip.sixtofour is not None:
        yield ip.sixtofour
    if ip in _NAT64:
        yield ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.teredo is not None:
        yield from ip.teredo


def _check(url: str, *, allow_private: bool, allowed_hosts: Collection[str] | None) -> None:
    """Refuse ``url`` by its text, then (unless ``allow_private``) by its addresses."""
    why = check_url(url, allowed_hosts=allowed_hosts)
    if why is not None:
        raise FetchRefusedError(f"refused to fetch: {why}", url=url)
    if allow_private:
        return
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    for address in _resolve(host, port, url):
        if (refused := address_refusal(address)) is not None:
            raise FetchRefusedError(
                f"refused to fetch {url}: host {host!r} resolves to {address}, which "
                f"{refused}; only public addresses are fetched",
                url=url,
            )


def _resolve(host: str, port: int, url: str) -> list[str]:
    """The addresses ``host`` resolves to. A name that does not exist is the URL's fault
    (400); a resolver that cannot answer now is not (502)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except UnicodeError:
        raise FetchRefusedError(f"host {host!r} of {url} is not a valid name", url=url) from None
    except socket.gaierror as exc:
        if exc.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)):
            raise FetchRefusedError(
                f"host {host!r} of {url} was not found (DNS); check the URL", url=url
            ) from None
        raise FetchFailedError(
            f"cannot resolve host {host!r} of {url}: {exc.strerror or exc}", url=url
        ) from None
    addresses = sorted({str(info[4][0]) for info in infos})
    if not addresses:
        raise FetchRefusedError(f"host {host!r} of {url} has no address", url=url)
    return addresses


def _get(url: str, deadline: float, seconds: float) -> requests.Response:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise FetchTimeoutError(_too_slow(url, seconds), url=url)
    try:
        return requests.get(
            url,
            stream=True,
            timeout=(remaining, remaining),
            allow_redirects=False,
            auth=_NoAuth(),
            headers={
                "user-agent": USER_AGENT,
                "accept": "image/*, video/*",
                "accept-encoding": "identity",  # the size counted is the size sent
            },
        )
    except requests.Timeout:
        raise FetchTimeoutError(_too_slow(url, seconds), url=url) from None
    except requests.RequestException as exc:
        raise FetchFailedError(f"cannot fetch {url}: {_cause(exc)}", url=url) from None


def _check_peer(response: requests.Response, url: str) -> None:
    """Refuse a response from a non-public address: the name resolved to another address
    when the connection was made than when it was checked (DNS rebinding)."""
    peer = _peer_address(response)
    if peer is not None and (refused := address_refusal(peer)) is not None:
        raise FetchRefusedError(
            f"refused to fetch {url}: the connection reached {peer}, which {refused}", url=url
        )


def _peer_address(response: requests.Response) -> str | None:
    """The address the response came from; ``None`` when it went through a proxy (whose
    address is not the server's) or cannot be told."""
    connection = getattr(response.raw, "connection", None)
    if getattr(connection, "proxy", None) is not None:
        return None
    sock = _socket(response)
    if sock is None:
        return None
    try:
        peer = sock.getpeername()
    except OSError:
        return None
    return peer[0] if isinstance(peer, tuple) and isinstance(peer[0], str) else None


def _socket(response: requests.Response) -> socket.socket | None:
    """The socket a streamed response is read from: urllib3's connection holds it, or,
    when the server said it will close the connection, only the response's file does."""
    connection = getattr(response.raw, "connection", None)
    sock = getattr(connection, "sock", None)
    if isinstance(sock, socket.socket):
        return sock
    file = getattr(getattr(response.raw, "_fp", None), "fp", None)  # http.client's
    sock = getattr(getattr(file, "raw", None), "_sock", None)  # socket.SocketIO's
    return sock if isinstance(sock, socket.socket) else None


def _check_status(response: requests.Response, url: str) -> None:
    try:
        response.raise_for_status()
    except requests.HTTPError:
        raise FetchFailedError(
            f"{url} answered HTTP {response.status_code} {response.reason or ''}".rstrip(),
            url=url,
        ) from None
    status = response.status_code
    if isinstance(status, int) and not 200 <= status < 300:
        raise FetchFailedError(f"{url} answered HTTP {status} without content", url=url)


def _read(
    response: requests.Response, url: str, max_bytes: int, deadline: float, seconds: float
) -> Fetched:
    """The body, refused as soon as it is over ``max_bytes`` (declared or sent) or
    ``deadline`` passes (a watchdog shuts the socket, so a trickling server cannot hold a
    read), or when it is not an image or a video."""
    declared = _content_length(response.headers.get("content-length"))
    if declared is not None and declared > max_bytes:
        raise FetchTooLargeError(
            f"Content too large: {url} declares {declared:,} bytes; at most {max_bytes:,} "
            "are fetched",
            url=url,
        )
    kind = str(response.headers.get("content-type") or "").split(";")[0].strip().lower()
    if not kind.startswith(MEDIA_TYPES):
        raise FetchRefusedError(
            f"{url} answered content of type {kind or '(none given)'}; only images and "
            "videos (image/*, video/*) are fetched",
            url=url,
        )
    aborted = threading.Event()

    def abort() -> None:
        aborted.set()
        _shut(response)

    watchdog = threading.Timer(max(0.0, deadline - time.monotonic()), abort)
    watchdog.daemon = True
    watchdog.start()
    chunks: list[bytes] = []
    size = 0
    try:
        for chunk in response.iter_content(CHUNK):
            size += len(chunk)
            if size > max_bytes:
                raise FetchTooLargeError(
                    f"Content too large: {url} sent more than {max_bytes:,} bytes", url=url
                )
            chunks.append(chunk)
            if aborted.is_set():
                break
    except FetchError:
        raise
    except Exception as exc:
        if aborted.is_set():
            raise FetchTimeoutError(_too_slow(url, seconds), url=url) from None
        if isinstance(exc, requests.RequestException | OSError):
            raise FetchFailedError(f"{url} broke off: {_cause(exc)}", url=url) from None
        raise
    finally:
        watchdog.cancel()
    if aborted.is_set():
        raise FetchTimeoutError(_too_slow(url, seconds), url=url)
    return Fetched(b"".join(chunks), kind, url)


def _shut(response: requests.Response) -> None:
    """Wake a read blocked on the response's socket: shut the socket down (closing it
    from another thread would not wake the read)."""
    sock = _socket(response)
    if sock is not None:
        with suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        return
    with suppress(Exception):  # no socket to reach: close what there is
        response.close()


def _content_length(value: Any) -> int | None:
    """The declared length, ``None`` when absent or not a number (the stream is counted
    anyway)."""
    try:
        length = int(str(value).strip())
    except ValueError:
        return None
    return length if length >= 0 else None


def _cause(exc: BaseException) -> str:
    """The innermost reason in a requests error's chain (``Connection refused``, a TLS
    error), not its many-layered text."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen and len(seen) < 12:
        seen.append(current)
        if isinstance(current, OSError) and current.strerror:
            return current.strerror
        nested = getattr(current, "reason", None)
        if not isinstance(nested, BaseException):
            nested = next((a for a in current.args if isinstance(a, BaseException)), None)
        current = nested or current.__cause__ or current.__context__
    text = str(seen[-1]) or type(seen[-1]).__name__
    return text if len(text) <= 300 else text[:300] + "..."


def _too_slow(url: str, seconds: float) -> str:
    return f"fetching {url} took longer than the limit of {seconds:g} s"


def _max_bytes(value: object, url: str) -> int:
    if value is None:
        return DEFAULT_MAX_BYTES
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _misconfigured(f"max_bytes must be a positive whole number, not {value!r}", url)
    return value


def _timeout(value: object, url: str) -> float:
    if value is None:
        return DEFAULT_TIMEOUT
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise _misconfigured(f"timeout must be a positive number of seconds, not {value!r}", url)
    return float(value)


def _misconfigured(detail: str, url: str) -> FetchMisconfiguredError:
    log.error("URL fetch misconfigured: %s", detail)
    return FetchMisconfiguredError(
        f"Service misconfigured, see logs for details: {detail}", url=url
    )
