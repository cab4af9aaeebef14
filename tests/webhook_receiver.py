"""A webhook receiver for tests, on a real socket at 127.0.0.1, as a platform would write
one: it checks ``X-Amber-Signature`` against the exact body bytes with its own HMAC (not
amber's code), and applies each delivery once by ``X-Amber-Delivery``, answering a repeat
with 200 and no new effect.

It can be told to fail the next requests: answer 500 before applying (a receiver that
broke), apply and then answer 500 (one that broke after its commit), or apply and then
hold the answer until released (one slower than amber's timeout). ``stop()`` and
``start()`` take it off and back onto its port (a receiver that is down).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Request:
    """One request as it arrived."""

    delivery: str
    event: str
    attempt: str | None
    signed: bool
    body: dict[str, Any]
    answered: int


class Receiver:
    """``Receiver(secret)``; ``url`` is where to send. ``requests`` is every request,
    ``applied`` each delivery's body applied once, by delivery id, in the order applied."""

    def __init__(self, secret: str, port: int = 0) -> None:
        self.secret = secret.encode()
        self.lock = threading.Lock()
        self.requests: list[Request] = []
        self.applied: dict[str, dict[str, Any]] = {}
        self.plan: deque[str] = deque()  # "fail", "fail_after", "hang"
        self.release = threading.Event()
        self.arrived = threading.Condition(self.lock)
        self.server: ThreadingHTTPServer | None = None
        self.port = port
        self.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/amber"

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                receiver._handle(self)

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        """Close the port: connections are refused until ``start``."""
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def fail_next(self, *how: str) -> None:
        """The next requests, one each: ``fail`` (500, nothing applied), ``fail_after``
        (applied, then 500) or ``hang`` (applied, then no answer until ``release``)."""
        with self.lock:
            self.plan.extend(how)

    def wait_for(self, count: int, timeout: float = 30.0) -> bool:
        """Wait until ``count`` deliveries are applied (False if the time ran out)."""
        with self.arrived:
            return self.arrived.wait_for(lambda: len(self.applied) >= count, timeout)

    def __enter__(self) -> Receiver:
        return self

    def __exit__(self, *_: object) -> None:
        self.release.set()
        self.stop()

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        raw = handler.rfile.read(int(handler.headers.get("Content-Length", "0")))
        expected = "sha256=" + hmac.new(self.secret, raw, hashlib.sha256).hexdigest()
        signed = hmac.compare_digest(expected, handler.headers.get("X-Amber-Signature", ""))
        delivery = handler.headers.get("X-Amber-Delivery", "")
        with self.lock:
            how = self.plan.popleft() if self.plan else "ok"
        status = 200
        if not signed:
            status = 401
        elif how == "fail":
            status = 500
        else:
            with self.arrived:
                if delivery not in self.applied:  # the effect happens once per delivery id
                    self.applied[delivery] = json.loads(raw)
                    self.arrived.notify_all()
            if how == "fail_after":
                status = 500
        with self.lock:
            self.requests.append(
                Request(
                    delivery,
                    handler.headers.get("X-Amber-Event", ""),
                    handler.headers.get("X-Amber-Attempt"),
                    signed,
                    json.loads(raw),
                    status,
                )
            )
        if how == "hang":
            self.release.wait(30)
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", "text/plain")
            text = b"ok" if status == 200 else b"receiver broke"
            handler.send_header("Content-Length", str(len(text)))
            handler.end_headers()
            handler.wfile.write(text)
        except OSError:  # amber gave up waiting and closed the connection
            pass
