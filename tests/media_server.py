"""A real HTTP server on 127.0.0.1 for tests that fetch URLs: it serves a photo and the
ways a server can misbehave (wrong content, error statuses, redirects, lies about the
size, an endless or slow body). It also answers as a forward proxy (a request line with
an absolute URL), routing on the URL's path, so a test can send a fetch of any host name
through it (``HTTP_PROXY``)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


class MediaServer:
    """``url(path)`` on a server answering in threads; ``requests`` lists the paths asked
    for. ``photo`` is served at ``/photo.png``; ``limit`` sizes the oversized bodies."""

    def __init__(self, photo: bytes, *, limit: int) -> None:
        self.photo = photo
        self.limit = limit
        self.requests: list[str] = []
        #: The Authorization header of each request (``None`` when none was sent).
        self.authorizations: list[str | None] = []
        self.stop = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                path = urlsplit(self.path).path
                server.requests.append(path)
                server.authorizations.append(self.headers.get("Authorization"))
                with suppress(BrokenPipeError, ConnectionResetError):
                    server.answer(self, path)

            def log_message(self, format: str, *args: object) -> None:
                pass  # quiet

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = int(self.httpd.server_address[1])
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def close(self) -> None:
        self.stop.set()  # ends slow answers
        self.httpd.shutdown()
        self.httpd.server_close()

    def answer(self, handler: BaseHTTPRequestHandler, path: str) -> None:
        """Each path is one behaviour."""
        if path == "/photo.png":
            self._send(handler, 200, self.photo, "image/png")
        elif path == "/page.html":
            self._send(handler, 200, b"<html>not an image</html>", "text/html; charset=utf-8")
        elif path == "/untyped":
            self._send(handler, 200, self.photo, None)
        elif path == "/missing":
            self._send(handler, 404, b"gone", "text/plain")
        elif path == "/hop":
            self._redirect(handler, "/photo.png")
        elif path == "/to-private":
            self._redirect(handler, self.url("/photo.png"))
        elif path == "/to-localhost":
            self._redirect(handler, self.url("/photo.png", host="localhost"))
        elif path == "/loop":
            self._redirect(handler, "/loop")
        elif path == "/declares-huge":
            # Says it is over the limit, and sends nothing: refused on the header alone.
            handler.send_response(200)
            handler.send_header("Content-Type", "image/png")
            handler.send_header("Content-Length", str(100 * 1024 * 1024))
            handler.send_header("Connection", "close")
            handler.end_headers()
        elif path == "/undeclared-huge":
            # No Content-Length: the body runs until the connection closes.
            handler.send_response(200)
            handler.send_header("Content-Type", "image/png")
            handler.send_header("Connection", "close")
            handler.end_headers()
            self._pour(handler, lambda block: handler.wfile.write(block))
        elif path == "/lying-huge":
            # Declares 10 bytes, then sends chunks past the limit (chunked wins).
            handler.send_response(200)
            handler.send_header("Content-Type", "image/png")
            handler.send_header("Content-Length", "10")
            handler.send_header("Transfer-Encoding", "chunked")
            handler.send_header("Connection", "close")
            handler.end_headers()
            self._pour(
                handler,
                lambda block: handler.wfile.write(b"%x\r\n%s\r\n" % (len(block), block)),
            )
        elif path == "/trickle":
            # A photo's header, then a byte now and then: each read is quick, the whole
            # never ends.
            handler.send_response(200)
            handler.send_header("Content-Type", "image/png")
            handler.send_header("Connection", "close")
            handler.end_headers()
            while not self.stop.is_set():
                handler.wfile.write(b"x")
                handler.wfile.flush()
                self.stop.wait(0.05)
        elif path == "/silent":
            # Accepts the request and never answers.
            self.stop.wait(30)
        else:
            self._send(handler, 404, b"no such path", "text/plain")

    def _pour(self, handler: BaseHTTPRequestHandler, write: Callable[[bytes], object]) -> None:
        """Write 4 KiB blocks until twice the limit is sent or the client goes away."""
        block = b"\0" * 4096
        sent = 0
        while sent <= 2 * self.limit and not self.stop.is_set():
            write(block)
            handler.wfile.flush()
            sent += len(block)

    @staticmethod
    def _send(
        handler: BaseHTTPRequestHandler, status: int, body: bytes, content_type: str | None
    ) -> None:
        handler.send_response(status)
        if content_type is not None:
            handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(body)))
        handler.send_header("Connection", "close")
        handler.end_headers()
        handler.wfile.write(body)

    @staticmethod
    def _redirect(handler: BaseHTTPRequestHandler, location: str) -> None:
        handler.send_response(302)
        handler.send_header("Location", location)
        handler.send_header("Content-Length", "0")
        handler.send_header("Connection", "close")
        handler.end_headers()


@contextmanager
def media_server(photo: bytes, *, limit: int = 64 * 1024) -> Iterator[MediaServer]:
    """A ``MediaServer`` for the block, shut down after."""
    server = MediaServer(photo, limit=limit)
    try:
        yield server
    finally:
        server.close()
