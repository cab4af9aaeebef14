"""The transport-neutral consume loop: decide, publish, acknowledge, retry, dead-letter, drain.

One loop per process (``consume``) takes a bounded batch of messages from a ``Transport``
(at most ``Settings.max_in_flight``: the back-pressure), and for each message:

* reads it as one post (the post JSON contract); a message that is not one goes to the
  dead-letter subject or topic at once, with the error naming the message and the field;
* decides it with ``Engine.submit``, which answers a repeat of the same post id and
  content with the stored decision: a redelivered post is decided once and its result
  republished byte for byte;
* publishes the decision (``result_line``: the line ``amber scan --format jsonl`` prints)
  under a message id derived from the post and its version (``message_id``), so brokers
  that de-duplicate (JetStream's ``Nats-Msg-Id``) drop a republished result;
* when the decision or its evidence could not be stored (the vault refused, the database
  went away), asks the transport to deliver the message again after a delay; after
  ``max_deliver`` deliveries it is dead-lettered with the error instead.

Results and dead letters of a batch are flushed to the broker before any message of the
batch is acknowledged: at-least-once delivery, and nothing acknowledged that is not
stored. ``stop`` (set by a signal handler) ends the loop after the batch in hand: it is
finished, flushed and acknowledged before ``consume`` returns.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from dataclasses import replace as replace_field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from amber.errors import AmberError, ExternalError, PostError, UserError

if TYPE_CHECKING:
    from amber.decisions import Decision
    from amber.engine import Engine
    from amber.posts import Post
    from amber.stream.metrics import Metrics

log = logging.getLogger("amber.stream")

#: The largest message read as a post, in bytes (as a JSONL line of ``amber scan``).
MAX_MESSAGE_BYTES = 1_000_000
#: Header names on results and dead letters (Kafka headers; NATS headers as well).
ERROR_HEADER = "Amber-Error"
SOURCE_HEADER = "Amber-Source"
DELIVERIES_HEADER = "Amber-Deliveries"
ID_HEADER = "Amber-Msg-Id"
#: The longest retry delay, however many deliveries came before.
MAX_RETRY_DELAY = 300.0


@dataclass(slots=True)
class Delivery:
    """One message as a transport received it: its bytes, where it came from (``where``:
    e.g. ``stream posts sequence 12``), how many times it has been delivered (this time
    included) and the transport's own handle on it."""

    data: bytes
    where: str
    deliveries: int
    handle: Any = None
    #: The message's own id, for a dead letter's de-duplication (``None``: none).
    id: str | None = None


class Transport(Protocol):
    """What the loop needs from a broker. Methods block; errors reaching the broker raise
    ``ExternalError``."""

    #: Where the posts come from, for messages: ``nats://host:4222 stream posts``.
    description: str

    def fetch(self, limit: int, timeout: float) -> list[Delivery]:
        """Up to ``limit`` messages, waiting at most ``timeout`` seconds for the first."""
        ...

    def held(self, delivery: Delivery) -> bool:
        """True when ``delivery`` must be left for a later fetch (an earlier message of
        its Kafka partition is being retried)."""
        ...

    def publish(self, kind: str, data: bytes, *, key: str, headers: dict[str, str]) -> None:
        """Queue ``data`` for the ``results`` or the ``dead`` subject or topic."""
        ...

    def flush(self) -> None:
        """Return once everything published is stored by the broker."""
        ...

    def ack(self, deliveries: list[Delivery]) -> None:
        """Acknowledge (commit) ``deliveries``: they will not be delivered again."""
        ...

    def working(self, deliveries: list[Delivery]) -> None:
        """``deliveries`` are still in hand: keep them from being delivered elsewhere
        (called after each message; cheap when there is nothing to do)."""
        ...

    def retry(self, delivery: Delivery, delay: float) -> None:
        """Deliver ``delivery`` again in about ``delay`` seconds."""
        ...

    def lag(self) -> int | None:
        """Messages of the stream not yet acknowledged by the consumer (group); ``None``
        when the broker cannot say now."""
        ...

    def idle(self) -> bool:
        """True when the consumer (group) has nothing left to take or to retry."""
        ...

    def close(self) -> None:
        """Flush what is published and leave the broker."""
        ...


@dataclass(frozen=True, slots=True)
class Settings:
    """How ``consume`` runs: ``max_in_flight`` messages at most in hand at once,
    ``max_deliver`` deliveries before a message that keeps failing is dead-lettered,
    ``retry_delay`` seconds before the second delivery (doubling after each), media paths
    relative to ``base``, and with ``until_idle`` the loop ends once the stream has
    nothing left for it."""

    max_in_flight: int = 64
    max_deliver: int = 5
    retry_delay: float = 5.0
    base: Path = field(default_factory=Path.cwd)
    until_idle: bool = False
    #: How long one fetch waits for messages: the longest a stop waits for a fetch.
    fetch_timeout: float = 1.0
    #: How often the lag is read from the broker, in seconds.
    lag_every: float = 5.0


@dataclass(slots=True)
class Tally:
    """What a run did: decisions by verdict, retries, redeliveries, dead letters."""

    verdicts: Counter[str] = field(default_factory=Counter)
    retries: int = 0
    redeliveries: int = 0
    dead: int = 0
    errors: Counter[str] = field(default_factory=Counter)

    @property
    def decided(self) -> int:
        return sum(self.verdicts.values())


def read_post(data: bytes, *, where: str, base: Path) -> Post:
    """The post in one message. Raises ``PostError`` naming ``where`` and the field."""
    from amber.posts import parse_post

    if len(data) > MAX_MESSAGE_BYTES:
        raise PostError(f"message is longer than {MAX_MESSAGE_BYTES} bytes", source=where)
    try:
        text = data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        raise PostError(f"not UTF-8 ({exc.reason} at byte {exc.start})", source=where) from None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PostError(
            f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}", source=where
        ) from None
    except RecursionError:
        raise PostError(
            "JSON nested too deeply to read; a post is at most a few levels deep", source=where
        ) from None
    return parse_post(obj, base=base, source=where, raw=text.strip())


def result_line(decision: Decision) -> bytes:
    """The decision as ``amber scan --format jsonl`` prints it (post_id, verdict,
    reasons, actions), UTF-8: the same bytes each time the same decision is answered."""
    contract = replace_field(decision, evidence=None).to_json()
    return json.dumps(contract, ensure_ascii=False).encode("utf-8")


def message_id(decision: Decision) -> str:
    """The result's de-duplication id: one per post (and client) and version, so a
    republished result has the id of the first."""
    key = f"{decision.client}\x00{decision.post_id}\x00{decision.version}"
    return "amber-" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:40]


def _header(text: str, limit: int = 1000) -> str:
    """``text`` as one header value: one line, bounded."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


class _Loop:
    """One consume run's state; ``consume`` builds and runs it."""

    def __init__(
        self,
        engine: Engine,
        transport: Transport,
        settings: Settings,
        metrics: Metrics | None,
        on_message: Callable[[str], None],
    ) -> None:
        self.engine = engine
        self.transport = transport
        self.settings = settings
        self.metrics = metrics
        self.on_message = on_message
        self.tally = Tally()

    def run(self, stop: threading.Event) -> Tally:
        lag_read = 0.0
        while not stop.is_set():
            batch = self.transport.fetch(self.settings.max_in_flight, self.settings.fetch_timeout)
            if batch:
                self.settle(batch)
            now = time.monotonic()
            if not batch or now - lag_read >= self.settings.lag_every:
                lag_read = now
                lag = self.transport.lag()
                if self.metrics is not None and lag is not None:
                    self.metrics.lag.set(lag)
            if not batch and self.settings.until_idle and self.transport.idle():
                break
        return self.tally

    def settle(self, batch: list[Delivery]) -> None:
        """Decide ``batch``, flush its results and dead letters, then acknowledge."""
        done: list[Delivery] = []
        for n, delivery in enumerate(batch):
            if self.transport.held(delivery):
                continue
            if self.handle(delivery):
                done.append(delivery)
            # The rest wait their turn: the broker must not give them to another
            # consumer meanwhile (a batch of slow posts can outlast JetStream's ack wait).
            self.transport.working([*done, *batch[n + 1 :]])
        self.transport.flush()
        if done:
            self.transport.ack(done)
        if self.metrics is not None:
            self.metrics.acknowledged.inc(len(done))

    def handle(self, delivery: Delivery) -> bool:
        """Decide one message; True when it may be acknowledged (its result or its dead
        letter is published), False when it will be delivered again."""
        settings = self.settings
        if delivery.deliveries > 1:
            self.count_redelivery()
        if delivery.deliveries > settings.max_deliver:
            # Delivered again without an answer: a consumer stopped while deciding it.
            self.dead(
                delivery,
                f"{delivery.where}: delivered {delivery.deliveries} times without being "
                "acknowledged (a consumer stopped while deciding it)",
                "unacknowledged",
            )
            return True
        try:
            post = read_post(delivery.data, where=delivery.where, base=settings.base)
        except PostError as exc:
            self.dead(delivery, exc.message, "malformed")
            return True
        try:
            submission = self.engine.submit(post)
        except (ExternalError, OSError) as exc:  # the vault or the database refused: retry
            message = exc.message if isinstance(exc, AmberError) else f"{exc}"
            return self.failed(delivery, f"{delivery.where}: post {post.id!r}: {message}", exc)
        except UserError as exc:  # the post cannot be decided as it is: retrying won't help
            self.dead(delivery, f"{delivery.where}: post {post.id!r}: {exc.message}", "rejected")
            return True
        except Exception as exc:  # anything else may pass: retry, dead-letter in the end
            log.exception("deciding %s failed", delivery.where)
            return self.failed(delivery, f"{delivery.where}: post {post.id!r}: {exc!r}", exc)
        decision = submission.decision
        self.transport.publish(
            "results",
            result_line(decision),
            key=decision.post_id,
            headers={ID_HEADER: message_id(decision)},
        )
        verdict = decision.verdict.value
        self.tally.verdicts[verdict] += 1
        if self.metrics is not None:
            self.metrics.decisions.labels(verdict=verdict).inc()
        return True

    def failed(self, delivery: Delivery, message: str, exc: BaseException) -> bool:
        """A retryable failure: deliver again, or dead-letter after ``max_deliver``."""
        kind = type(exc).__name__
        self.tally.errors[kind] += 1
        if self.metrics is not None:
            self.metrics.errors.labels(error=kind).inc()
        if delivery.deliveries >= self.settings.max_deliver:
            self.dead(
                delivery,
                f"{message} (after {delivery.deliveries} deliveries)",
                "failed",
            )
            return True
        delay = min(self.settings.retry_delay * 2 ** (delivery.deliveries - 1), MAX_RETRY_DELAY)
        self.on_message(f"Warning: {message}; delivering it again in {delay:g} s")
        self.transport.retry(delivery, delay)
        self.tally.retries += 1
        return False

    def dead(self, delivery: Delivery, message: str, reason: str) -> None:
        """Publish the message as received to the dead-letter subject or topic, with
        why (``Amber-Error``), where it came from and how often it was delivered."""
        self.on_message(f"Error: {message} (sent to the dead letters)")
        headers = {
            ERROR_HEADER: _header(message),
            SOURCE_HEADER: _header(delivery.where),
            DELIVERIES_HEADER: str(delivery.deliveries),
        }
        if delivery.id is not None:
            headers[ID_HEADER] = delivery.id
        self.transport.publish("dead", delivery.data, key=delivery.where, headers=headers)
        self.tally.dead += 1
        if self.metrics is not None:
            self.metrics.dead_letters.labels(reason=reason).inc()

    def count_redelivery(self) -> None:
        self.tally.redeliveries += 1
        if self.metrics is not None:
            self.metrics.redeliveries.inc()


def consume(
    engine: Engine,
    transport: Transport,
    *,
    settings: Settings | None = None,
    stop: threading.Event | None = None,
    metrics: Metrics | None = None,
    on_message: Callable[[str], None] = lambda _: None,
) -> Tally:
    """Decide the posts ``transport`` delivers until ``stop`` is set (or, with
    ``settings.until_idle``, until none are left); returns what was done. The batch in
    hand when ``stop`` is set is finished, published and acknowledged first; the
    transport is left open (its owner closes it). ``on_message`` receives one line per
    message dead-lettered or retried.

    Raises ``ExternalError`` when the broker cannot be reached: messages not yet
    acknowledged are then delivered again later.
    """
    loop = _Loop(engine, transport, settings or Settings(), metrics, on_message)
    return loop.run(stop or threading.Event())
