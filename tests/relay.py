"""A TCP relay for tests: put between amber and a database server, it can stop forwarding
while keeping every connection open (a relay or load balancer that lost its backend, a
stopped server process behind a live kernel), or cut every connection with a reset."""

from __future__ import annotations

import select
import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress

import sqlalchemy as sa


class Relay:
    """Forwards connections made to ``127.0.0.1:port`` to ``upstream`` in threads.

    ``freeze()`` stops forwarding in both directions; the sockets stay open, so the kernel
    acknowledges what amber sends and answers keepalives, but nothing reaches the server
    and no answer comes back. ``cut()`` resets every connection (and every new one until
    ``thaw()``), as a server or relay that went away. ``thaw()`` forwards again.
    """

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.frozen = threading.Event()
        self.refusing = threading.Event()
        self.stopped = threading.Event()
        self.lock = threading.Lock()
        self.open: list[socket.socket] = []
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    def url(self, url: str) -> str:
        """``url`` (a database URL) with its host and port replaced by the relay's."""
        return sa.make_url(url).set(host="127.0.0.1", port=self.port).render_as_string(False)

    def freeze(self) -> None:
        self.frozen.set()

    def thaw(self) -> None:
        self.refusing.clear()
        self.frozen.clear()

    def cut(self) -> None:
        self.refusing.set()
        with self.lock:
            sockets, self.open = self.open, []
        for sock in sockets:
            _reset(sock)

    def close(self) -> None:
        self.stopped.set()
        self.listener.close()
        self.cut()

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.refusing.is_set():
                _reset(client)
                continue
            try:
                server = socket.create_connection(self.upstream, timeout=10)
            except OSError:
                _reset(client)
                continue
            server.settimeout(None)
            with self.lock:
                self.open += [client, server]
            for source, target in ((client, server), (server, client)):
                thread = threading.Thread(target=self._pump, args=(source, target), daemon=True)
                thread.start()

    def _pump(self, source: socket.socket, target: socket.socket) -> None:
        while not self.stopped.is_set():
            if self.frozen.is_set():
                self.stopped.wait(0.02)
                continue
            try:
                ready, _, _ = select.select([source], [], [], 0.05)
                if not ready or self.frozen.is_set():
                    continue
                data = source.recv(65536)
                if not data:
                    break
                target.sendall(data)
            except (OSError, ValueError):  # reset, or closed by cut()
                break
        for sock in (source, target):
            _reset(sock)


def _reset(sock: socket.socket) -> None:
    """Close ``sock`` with a TCP reset (SO_LINGER 0), not an orderly FIN."""
    with suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


@contextmanager
def relay_to(url: str) -> Iterator[Relay]:
    """A relay to the server of database URL ``url``; closed on leaving the block."""
    parsed = sa.make_url(url)
    relay = Relay((parsed.host or "127.0.0.1", parsed.port or 5432))
    try:
        yield relay
    finally:
        relay.close()
