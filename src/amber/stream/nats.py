"""The NATS JetStream transport: a durable pull consumer on a stream.

nats-py is asyncio; the consume loop is not. The client runs on an event loop in a
thread of its own (``_Bridge``), so its socket is read and its pings answered while
the loop decides posts; each method here runs one coroutine there and waits for it.

* Posts are fetched from the durable pull consumer ``durable`` (created on first use,
  explicit acks, no server-side delivery limit: amber dead-letters after
  ``--max-deliver``), at most ``max_in_flight`` at a time. Processes that name the
  same durable share its messages, on one machine or many.
* Results and dead letters are published with JetStream publish (a stream must capture
  their subjects): the ``Nats-Msg-Id`` header lets the stream drop a republished result.
* A message to retry is nak'd with a delay; its delivery count is the server's.
* Messages in hand are marked in progress (``+WPI``) every third of the ack wait by a
  task on the client's own event loop, so a batch, or one post, that takes longer than
  the ack wait is not delivered to another consumer meanwhile.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar
from urllib.parse import urlsplit

from amber.errors import ExternalError, MissingExtraError, UserError
from amber.stream.core import ID_HEADER, Delivery

T = TypeVar("T")

STREAM_PACKAGES = frozenset({"nats"})
#: How long a publish or an acknowledgement may take before the broker counts as gone.
REQUEST_TIMEOUT = 10.0


def _nats() -> Any:
    try:
        import nats
        import nats.js.api
        import nats.js.errors
    except ModuleNotFoundError as exc:
        MissingExtraError.check(exc, STREAM_PACKAGES, "stream")
        raise
    return nats


class _Bridge:
    """An asyncio event loop in a daemon thread; ``run`` waits for a coroutine on it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="amber-nats", daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)


class NatsTransport:
    """Posts from JetStream ``stream`` (``subject``, durable ``durable``); results to
    ``results`` and dead letters to ``dead``. Raises ``ExternalError`` when the server
    cannot be reached, ``UserError`` when the stream does not exist."""

    def __init__(
        self,
        url: str,
        *,
        stream: str,
        subject: str,
        durable: str,
        results: str,
        dead: str,
        ack_wait: float = 30.0,
    ) -> None:
        self.nats = _nats()
        self.url = url
        self.stream = stream
        self.subject = subject
        self.durable = durable
        self.subjects = {"results": results, "dead": dead}
        self.ack_wait = ack_wait
        self.description = f"{url} stream {stream} subject {subject} durable {durable}"
        self._pending: list[tuple[str, bytes, dict[str, str]]] = []
        #: The messages fetched and not yet acknowledged or sent back: the heartbeat
        #: marks them in progress. Replaced whole (never changed in place), so the
        #: event loop's thread reads it without a lock.
        self._in_hand: tuple[Any, ...] = ()
        self._heartbeat: asyncio.Task[None] | None = None
        self._bridge = _Bridge()
        try:
            self._bridge.run(self._open())
        except BaseException:
            self._bridge.stop()
            raise

    async def _open(self) -> None:
        nats = self.nats
        parts = urlsplit(self.url)
        server = f"nats://{parts.netloc}"
        try:
            self.nc = await nats.connect(
                server, connect_timeout=5, allow_reconnect=True, max_reconnect_attempts=30
            )
        except Exception as exc:  # nats-py raises several kinds: all mean "not reachable"
            raise ExternalError(
                f"cannot reach NATS at {server} ({exc or type(exc).__name__}); is nats-server "
                "running (with -js)?"
            ) from None
        self.js = self.nc.jetstream(timeout=REQUEST_TIMEOUT)
        try:
            await self.js.stream_info(self.stream)
        except nats.js.errors.NotFoundError:
            await self.nc.close()
            raise UserError(
                f"JetStream stream {self.stream!r} does not exist on {server}; create it, "
                f"e.g. nats stream add {self.stream} --subjects '{self.subject}'"
            ) from None
        except nats.js.errors.ServiceUnavailableError:
            await self.nc.close()
            raise ExternalError(
                f"JetStream is not enabled on {server}: start nats-server with -js"
            ) from None
        config = nats.js.api.ConsumerConfig(
            ack_policy=nats.js.api.AckPolicy.EXPLICIT,
            deliver_policy=nats.js.api.DeliverPolicy.ALL,
            ack_wait=self.ack_wait,
            max_deliver=-1,
        )
        try:
            self.sub = await self.js.pull_subscribe(
                self.subject, durable=self.durable, stream=self.stream, config=config
            )
        except nats.js.errors.BadRequestError as exc:
            await self.nc.close()
            raise UserError(
                f"JetStream refused durable consumer {self.durable!r} on stream "
                f"{self.stream!r} for subject {self.subject!r}: {exc.description}"
            ) from None
        self._heartbeat = asyncio.get_running_loop().create_task(self._beat())

    async def _beat(self) -> None:
        """Mark the messages in hand in progress every third of the ack wait, however
        long the post being decided takes (this runs on the client's loop, not the
        consume loop's thread)."""
        while True:
            await asyncio.sleep(self.ack_wait / 3)
            for message in self._in_hand:
                try:
                    await message.in_progress()
                except self.nats.errors.Error:
                    # the connection is down: nats-py reconnects, and a message the
                    # server has given up on is delivered again, decided once
                    break

    def fetch(self, limit: int, timeout: float) -> list[Delivery]:
        """Up to ``limit`` messages from the durable consumer."""
        return self._bridge.run(self._fetch(limit, timeout))

    async def _fetch(self, limit: int, timeout: float) -> list[Delivery]:
        nats = self.nats
        try:
            messages = await self.sub.fetch(batch=limit, timeout=timeout)
        except (nats.errors.TimeoutError, TimeoutError):
            # nothing came in time; under load nats-py's own wait for the pull request
            # can end with asyncio's (the builtin) TimeoutError instead of its own
            return []
        except nats.errors.Error as exc:
            raise ExternalError(f"fetching from {self.description} failed: {exc}") from None
        self._in_hand = tuple(messages)
        found = []
        for message in messages:
            meta = message.metadata
            sequence = meta.sequence.stream
            found.append(
                Delivery(
                    data=message.data,
                    where=f"stream {self.stream} sequence {sequence}",
                    deliveries=meta.num_delivered,
                    handle=message,
                    id=f"{self.stream}:{sequence}",
                )
            )
        return found

    def held(self, delivery: Delivery) -> bool:
        """Never: JetStream redelivers each message on its own."""
        return False

    def publish(self, kind: str, data: bytes, *, key: str, headers: dict[str, str]) -> None:
        """Queue ``data`` for the results or dead-letter subject (sent by ``flush``)."""
        own = dict(headers)
        if ID_HEADER in own:
            prefix = "dead-" if kind == "dead" else ""
            own["Nats-Msg-Id"] = prefix + own[ID_HEADER]
        self._pending.append((self.subjects[kind], data, own))

    def flush(self) -> None:
        """Publish what is queued, at once, and wait until the stream stored each."""
        if self._pending:
            pending, self._pending = self._pending, []
            self._bridge.run(self._flush(pending))

    async def _flush(self, pending: list[tuple[str, bytes, dict[str, str]]]) -> None:
        nats = self.nats
        answers = await asyncio.gather(
            *(self.js.publish(s, d, headers=h) for s, d, h in pending), return_exceptions=True
        )
        for (subject, _, _), answer in zip(pending, answers, strict=True):
            if isinstance(answer, nats.errors.NoRespondersError):
                raise UserError(
                    f"no JetStream stream captures subject {subject!r}: add it to a stream "
                    f"(e.g. nats stream add RESULTS --subjects '{subject}')"
                )
            if isinstance(answer, BaseException):
                raise ExternalError(f"publishing to {subject!r} failed: {answer!r}")

    def ack(self, deliveries: list[Delivery]) -> None:
        """Acknowledge each message and wait until the server has them."""
        self._bridge.run(self._ack(deliveries))

    async def _ack(self, deliveries: list[Delivery]) -> None:
        self._let_go(deliveries)
        for delivery in deliveries:
            await delivery.handle.ack()
        await self.nc.flush(timeout=REQUEST_TIMEOUT)

    def working(self, deliveries: list[Delivery]) -> None:
        """``deliveries`` are the messages in hand: the heartbeat keeps marking them in
        progress (``+WPI``: the ack wait starts again). No round trip here."""
        self._in_hand = tuple(delivery.handle for delivery in deliveries)

    def _let_go(self, deliveries: list[Delivery]) -> None:
        """Stop marking ``deliveries`` in progress (acknowledged or sent back)."""
        gone = {id(delivery.handle) for delivery in deliveries}
        self._in_hand = tuple(m for m in self._in_hand if id(m) not in gone)

    def retry(self, delivery: Delivery, delay: float) -> None:
        """Nak the message: JetStream delivers it again after ``delay`` seconds."""
        self._let_go([delivery])
        self._bridge.run(delivery.handle.nak(delay=delay))

    def lag(self) -> int | None:
        """The durable's messages not yet delivered or not yet acknowledged."""
        info = self._info()
        return None if info is None else (info.num_pending or 0) + (info.num_ack_pending or 0)

    def idle(self) -> bool:
        """Nothing pending, nothing waiting for an acknowledgement or a retry."""
        info = self._info()
        return info is not None and not info.num_pending and not info.num_ack_pending

    def _info(self) -> Any:
        try:
            return self._bridge.run(self.sub.consumer_info())
        except self.nats.errors.Error:
            return None

    async def _return_pending(self) -> None:
        """Nak the messages that reached the subscription after a fetch stopped waiting
        (nats-py keeps them for the next fetch, in a queue it offers no public way to
        read): another consumer takes them now, not after the ack wait."""
        queue = self.sub._sub._pending_queue
        while not queue.empty():
            message = queue.get_nowait()
            if message.reply and not self.js.is_status_msg(message):
                await message.nak()

    def close(self) -> None:
        """Publish what is queued, hand back what was delivered but not taken, and
        leave the server."""
        self._in_hand = ()
        try:
            if self._heartbeat is not None:
                self._bridge.loop.call_soon_threadsafe(self._heartbeat.cancel)
            self.flush()
            self._bridge.run(self._return_pending())
            # Acks were flushed as they were sent: nothing is left to drain (nats-py's
            # drain of a pull subscription waits out its whole timeout).
            self._bridge.run(self.nc.close())
        finally:
            self._bridge.stop()
