"""amber.fetch against a real HTTP server on 127.0.0.1: what a URL may be, which addresses
are refused (and only allowed with allow_private), redirects checked hop by hop, the size
limit kept while streaming, the time limit, only images and videos. DNS is the one thing
faked (socket.getaddrinfo, the process's edge), to give a host name a public address."""

from __future__ import annotations

import io
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from amber.errors import ExternalError, InternalError, UserError
from amber.fetch import (
    DEFAULT_MAX_BYTES,
    FetchError,
    FetchFailedError,
    FetchMisconfiguredError,
    FetchRefusedError,
    FetchTimeoutError,
    FetchTooLargeError,
    address_refusal,
    check_url,
    fetch,
)
from amber.media import DEFAULT_LIMITS
from amber.synthetic import photo
from media_server import MediaServer, media_server

LIMIT = 64 * 1024
#: A public address a faked DNS answer gives (TEST-NET addresses are not public).
PUBLIC = "93.184.215.14"


def _png() -> bytes:
    buffer = io.BytesIO()
    photo(7, 64, 48).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def server() -> Iterator[MediaServer]:
    with media_server(_png(), limit=LIMIT) as running:
        yield running


def _fake_dns(monkeypatch: pytest.MonkeyPatch, answers: dict[str, list[str]]) -> list[str]:
    """Resolve the names in ``answers`` to the addresses listed, one per call (the last
    one for ever after); other names as the system does. Returns the names asked for."""
    real = socket.getaddrinfo
    asked: list[str] = []

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if name not in answers:
            return real(host, port, *args, **kwargs)
        asked.append(name)
        queue = answers[name]
        address = queue.pop(0) if len(queue) > 1 else queue[0]
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, int(port or 80)))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return asked


def _through_proxy(monkeypatch: pytest.MonkeyPatch, server: MediaServer) -> None:
    """Send plain-HTTP fetches through ``server`` as a forward proxy."""
    for name in ("http_proxy", "HTTP_PROXY"):
        monkeypatch.setenv(name, server.url(""))
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)


# What a URL may be: HMA's own cases (OpenMediaMatch/tests/test_hashing.py), and more.


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com",
        "https://example.com/path",
        "https://example.com:8080/path",
        "http://example.com",
        "https://sub.example.com",
        "https://example.com/path?query=value",
        "https://example.com/path#fragment",
        "http://[2606:4700::1]:8080/a.png",
    ],
)
def test_check_url_passes_http_urls_with_a_host(url: str) -> None:
    assert check_url(url) is None


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://example.com", "not an http or https URL"),
        ("file:///etc/passwd", "not an http or https URL"),
        ("javascript:alert(1)", "not an http or https URL"),
        ("data:text/html,<script>alert(1)</script>", "not an http or https URL"),
        ("ws://example.com", "not an http or https URL"),
        ("wss://example.com", "not an http or https URL"),
        ("example.com", "not an http or https URL"),
        ("//example.com", "not an http or https URL"),
        ("http://", "has no host"),
        ("https://", "has no host"),
        ("http:///example.com", "has no host"),
        ("", "no URL was given"),
        (None, "no URL was given"),
        ("not a url", "spaces or control characters"),
        ("http://example.com/a\nb", "spaces or control characters"),
        ("http://example.com:", "has an empty port"),
        ("http://example.com:abc", "malformed"),
        ("http://example.com:70000", "malformed"),
        ("http://example.com:0/", "port 0"),
        ("http://[::1", "malformed"),
        ("http://user:secret@example.com/", "credentials"),
    ],
)
def test_check_url_refuses_and_says_why(url: str | None, why: str) -> None:
    message = check_url(url)
    assert message is not None and why in message


def test_allowed_hosts_are_exact_names_and_empty_allows_any() -> None:
    allowed = {"example.com", "CDN.example.com", "media.example.com"}
    for host in ("example.com", "cdn.example.com", "MEDIA.example.com"):
        assert check_url(f"https://{host}/path", allowed_hosts=allowed) is None
    for url in (
        "https://evil.com",
        "https://malicious-site.com",
        "https://example.com.evil.com",
        "https://evil.com/example.com",
        "https://example.com@evil.com/",
    ):
        assert check_url(url, allowed_hosts=allowed) is not None, url
    for url in ("https://example.com", "https://evil.com", "https://any-domain.com"):
        assert check_url(url, allowed_hosts=set()) is None
        assert check_url(url, allowed_hosts=None) is None


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("10.0.0.1", "private"),
        ("172.16.5.4", "private"),
        ("192.168.1.1", "private"),
        ("fc00::1", "private"),
        ("169.254.169.254", "link-local"),  # the cloud metadata service
        ("fe80::1", "link-local"),
        ("fe80::1%1", "link-local"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("100.100.100.200", "not a public address"),  # carrier NAT (a cloud's metadata)
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:10.1.2.3", "private"),
        ("2002:a00:1::", "10.0.0.1"),  # 6to4 around a private address
        ("not-an-address", "not an IP address"),
    ],
)
def test_addresses_that_are_not_public_are_refused(address: str, why: str) -> None:
    refused = address_refusal(address)
    assert refused is not None and why in refused


@pytest.mark.parametrize("address", ["8.8.8.8", PUBLIC, "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses_pass(address: str) -> None:
    assert address_refusal(address) is None


def test_errors_carry_the_status_a_face_answers() -> None:
    assert issubclass(FetchRefusedError, UserError) and FetchRefusedError.http_status == 400
    assert issubclass(FetchTooLargeError, UserError) and FetchTooLargeError.http_status == 413
    assert issubclass(FetchFailedError, ExternalError) and FetchFailedError.http_status == 502
    assert FetchTimeoutError.http_status == 504 and FetchTimeoutError.exit_code == 3
    assert issubclass(FetchMisconfiguredError, InternalError)
    assert FetchMisconfiguredError.http_status == 500
    assert DEFAULT_MAX_BYTES == DEFAULT_LIMITS.max_bytes == 64 * 1024 * 1024


# The server on 127.0.0.1: allowed only with allow_private.


def test_a_loopback_server_is_refused_without_allow_private(server: MediaServer) -> None:
    before = len(server.requests)
    with pytest.raises(FetchRefusedError) as refused:
        fetch(server.url("/photo.png"))
    assert "127.0.0.1, which is loopback" in refused.value.message
    assert refused.value.url == server.url("/photo.png")
    with pytest.raises(FetchRefusedError, match="loopback"):
        fetch(server.url("/photo.png", host="localhost"))
    assert len(server.requests) == before  # refused before any connection


def test_a_loopback_server_is_fetched_with_allow_private(server: MediaServer) -> None:
    fetched = fetch(server.url("/photo.png"), allow_private=True)
    assert fetched.data == server.photo
    assert fetched.content_type == "image/png"
    assert fetched.url == server.url("/photo.png")


def test_no_credentials_are_sent_not_even_netrcs(
    server: MediaServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login operator password secret\n", encoding="utf-8")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    requests.get(server.url("/photo.png"), timeout=10).close()
    assert server.authorizations[-1] is not None  # what requests would do by itself
    fetch(server.url("/photo.png"), allow_private=True)
    assert server.authorizations[-1] is None


def test_redirects_are_followed_and_each_hop_checked(server: MediaServer) -> None:
    fetched = fetch(server.url("/hop"), allow_private=True)
    assert fetched.data == server.photo and fetched.url == server.url("/photo.png")
    with pytest.raises(FetchRefusedError, match=r"'localhost' .* not one of the allowed hosts"):
        fetch(server.url("/to-localhost"), allow_private=True, allowed_hosts={"127.0.0.1"})
    with pytest.raises(FetchFailedError, match="redirects more than 5 times") as looped:
        fetch(server.url("/loop"), allow_private=True)
    assert looped.value.http_status == 502


def test_a_redirect_to_a_private_address_is_refused(
    server: MediaServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``media.example`` resolves to a public address and is reached through a proxy (the
    test server): its photo is fetched, but its redirect to 127.0.0.1 is refused."""
    asked = _fake_dns(monkeypatch, {"media.example": [PUBLIC]})
    _through_proxy(monkeypatch, server)
    fetched = fetch("http://media.example/photo.png")
    assert fetched.data == server.photo and asked == ["media.example"]
    before = list(server.requests)
    with pytest.raises(FetchRefusedError) as refused:
        fetch("http://media.example/to-private")
    assert "127.0.0.1, which is loopback" in refused.value.message
    assert refused.value.url == server.url("/photo.png")
    assert server.requests[len(before) :] == ["/to-private"]  # the redirect was not followed


def test_a_name_that_resolves_elsewhere_when_connecting_is_refused(
    server: MediaServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DNS rebinding: the name is public when checked, loopback when connected to."""
    _fake_dns(monkeypatch, {"rebind.example": [PUBLIC, "127.0.0.1"]})
    with pytest.raises(FetchRefusedError, match=r"the connection reached 127\.0\.0\.1"):
        fetch(f"http://rebind.example:{server.port}/photo.png")


def test_a_host_that_does_not_exist_is_the_urls_fault() -> None:
    with pytest.raises(FetchRefusedError, match="was not found"):
        fetch("http://no-such-host.invalid/a.png")


# The size and time limits, and the content type.


def test_a_declared_size_over_the_limit_is_refused_before_the_body(server: MediaServer) -> None:
    with pytest.raises(FetchTooLargeError) as large:
        fetch(server.url("/declares-huge"), allow_private=True)
    assert large.value.http_status == 413
    assert large.value.message.startswith("Content too large")
    with pytest.raises(FetchTooLargeError):
        fetch(server.url("/photo.png"), allow_private=True, max_bytes=len(server.photo) - 1)
    assert fetch(server.url("/photo.png"), allow_private=True, max_bytes=len(server.photo)).data


@pytest.mark.parametrize("path", ["/undeclared-huge", "/lying-huge"])
def test_a_body_over_the_limit_is_refused_while_it_streams(server: MediaServer, path: str) -> None:
    with pytest.raises(FetchTooLargeError, match=f"sent more than {LIMIT:,} bytes"):
        fetch(server.url(path), allow_private=True, max_bytes=LIMIT)


def test_a_slow_body_hits_the_time_limit(server: MediaServer) -> None:
    with pytest.raises(FetchTimeoutError) as slow:
        fetch(server.url("/trickle"), allow_private=True, timeout=0.5)
    assert slow.value.http_status == 504 and "longer than the limit of 0.5 s" in slow.value.message


def test_a_server_that_never_answers_hits_the_time_limit(server: MediaServer) -> None:
    with pytest.raises(FetchTimeoutError):
        fetch(server.url("/silent"), allow_private=True, timeout=0.5)


@pytest.mark.parametrize("path", ["/page.html", "/untyped"])
def test_only_images_and_videos_are_fetched(server: MediaServer, path: str) -> None:
    with pytest.raises(FetchRefusedError, match=r"only images and videos") as refused:
        fetch(server.url(path), allow_private=True)
    assert refused.value.http_status == 400


def test_an_error_status_is_a_failed_fetch(server: MediaServer) -> None:
    with pytest.raises(FetchFailedError, match="answered HTTP 404") as failed:
        fetch(server.url("/missing"), allow_private=True)
    assert failed.value.http_status == 502


def test_a_closed_port_is_a_failed_fetch() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    with pytest.raises(FetchFailedError, match="Connection refused"):
        fetch(f"http://127.0.0.1:{port}/a.png", allow_private=True)


@pytest.mark.parametrize(
    ("setting", "value"),
    [("max_bytes", "not-an-integer"), ("max_bytes", 0), ("max_bytes", 1.5), ("timeout", -1)],
)
def test_unusable_limits_are_a_misconfigured_service(
    server: MediaServer, setting: str, value: object
) -> None:
    before = len(server.requests)
    with pytest.raises(FetchMisconfiguredError) as wrong:
        fetch(server.url("/photo.png"), allow_private=True, **{setting: value})  # type: ignore[arg-type]
    assert wrong.value.http_status == 500
    assert "Service misconfigured, see logs for details" in wrong.value.message
    assert setting in wrong.value.message
    assert len(server.requests) == before  # nothing was fetched


def test_no_limit_given_is_the_default(server: MediaServer) -> None:
    with pytest.raises(FetchTooLargeError, match=f"at most {DEFAULT_MAX_BYTES:,}"):
        fetch(server.url("/declares-huge"), allow_private=True, max_bytes=None, timeout=None)


def test_every_fetch_error_names_its_url(server: MediaServer) -> None:
    for path in ("/missing", "/page.html", "/declares-huge"):
        with pytest.raises(FetchError) as failed:
            fetch(server.url(path), allow_private=True)
        assert server.url(path) in failed.value.message
