"""The Kafka transport: a consumer group member with manual commits (confluent-kafka).

* Posts are consumed from ``topic`` as a member of consumer group ``group``
  (``enable.auto.commit=false``), at most ``max_in_flight`` per batch; processes that
  name the same group share the topic's partitions, on one machine or many.
* Results (key: the post id; header ``Amber-Msg-Id``) and dead letters go through an
  idempotent producer (``acks=all``); offsets are committed, synchronously, only after the
  producer has flushed them.
* Kafka has no per-message nak: a message to retry rewinds its partition to it (seek) and
  pauses the partition for the delay; the messages after it in that partition wait
  (``held``) and its offset is not committed. Deliveries are counted here, per process: a
  message delivered again after a restart starts counting from one.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from typing import Any
from urllib.parse import urlsplit

from amber.errors import ExternalError, MissingExtraError, UserError
from amber.stream.core import Delivery

log = logging.getLogger("amber.stream")

STREAM_PACKAGES = frozenset({"confluent_kafka"})
#: How long a flush, a commit or a metadata request may take.
REQUEST_TIMEOUT = 30.0


def _kafka() -> Any:
    try:
        import confluent_kafka
    except ModuleNotFoundError as exc:
        MissingExtraError.check(exc, STREAM_PACKAGES, "stream")
        raise
    return confluent_kafka


def bootstrap_servers(url: str) -> str:
    """``kafka://host:9092[,host2:9092]`` as librdkafka's ``bootstrap.servers``."""
    parts = urlsplit(url)
    if not parts.netloc:
        raise UserError(f"{url!r} names no broker; use kafka://HOST:PORT")
    return parts.netloc


class KafkaTransport:
    """Posts from ``topic`` as a member of ``group``; results to ``results`` and dead
    letters to ``dead``. Raises ``ExternalError`` when no broker answers, ``UserError``
    when the topic does not exist."""

    def __init__(
        self,
        url: str,
        *,
        topic: str,
        group: str,
        results: str,
        dead: str,
        session_timeout: float = 10.0,
        options: dict[str, Any] | None = None,
    ) -> None:
        kafka = self.kafka = _kafka()
        self.url = url
        self.topic = topic
        self.group = group
        self.topics = {"results": results, "dead": dead}
        self.description = f"{url} topic {topic} group {group}"
        servers = bootstrap_servers(url)
        self.producer = kafka.Producer(
            {
                "bootstrap.servers": servers,
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 5,
                **(options or {}),
            }
        )
        self.consumer = kafka.Consumer(
            {
                "bootstrap.servers": servers,
                "group.id": group,
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "auto.offset.reset": "earliest",
                "session.timeout.ms": int(session_timeout * 1000),
                "heartbeat.interval.ms": max(int(session_timeout * 1000) // 4, 500),
                # Back-pressure: what librdkafka prefetches is bounded too.
                "queued.max.messages.kbytes": 16384,
                **(options or {}),
            }
        )
        try:
            metadata = self.consumer.list_topics(topic, timeout=REQUEST_TIMEOUT)
        except kafka.KafkaException as exc:
            self.consumer.close()
            raise ExternalError(f"cannot reach Kafka at {servers}: {exc}") from None
        found = metadata.topics.get(topic)
        if found is None or found.error is not None or not found.partitions:
            self.consumer.close()
            raise UserError(
                f"Kafka topic {topic!r} does not exist on {servers}; create it, e.g. "
                f"kafka-topics.sh --create --topic {topic} --partitions 4"
            )
        self.partitions = sorted(found.partitions)
        self.consumer.subscribe([topic])
        self._attempts: Counter[tuple[int, int]] = Counter()
        self._paused: dict[int, float] = {}
        self._held: set[int] = set()
        self._failures: list[str] = []

    def fetch(self, limit: int, timeout: float) -> list[Delivery]:
        """Up to ``limit`` messages of the partitions assigned to this member."""
        kafka = self.kafka
        self._held = set()
        self._resume_due()
        try:
            messages = self.consumer.consume(num_messages=limit, timeout=timeout)
        except kafka.KafkaException as exc:
            raise ExternalError(f"consuming {self.description} failed: {exc}") from None
        found = []
        for message in messages:
            error = message.error()
            if error is not None:
                if error.code() == kafka.KafkaError._PARTITION_EOF:
                    continue
                if error.fatal() or not error.retriable():
                    raise ExternalError(f"consuming {self.description} failed: {error.str()}")
                continue
            partition, offset = message.partition(), message.offset()
            self._attempts[(partition, offset)] += 1
            found.append(
                Delivery(
                    data=message.value() or b"",
                    where=f"topic {self.topic} partition {partition} offset {offset}",
                    deliveries=self._attempts[(partition, offset)],
                    handle=message,
                    id=f"{self.topic}:{partition}:{offset}",
                )
            )
        return found

    def _resume_due(self) -> None:
        """Resume the partitions whose retry delay is over."""
        now = time.monotonic()
        due = [p for p, until in self._paused.items() if until <= now]
        if due:
            self.consumer.resume([self.kafka.TopicPartition(self.topic, p) for p in due])
            for p in due:
                del self._paused[p]

    def held(self, delivery: Delivery) -> bool:
        """True after a message of the same partition was sent back for a retry (then
        this delivery does not count: it is fetched again)."""
        partition = delivery.handle.partition()
        if partition not in self._held:
            return False
        self._attempts[(partition, delivery.handle.offset())] -= 1
        return True

    def publish(self, kind: str, data: bytes, *, key: str, headers: dict[str, str]) -> None:
        """Produce ``data`` to the results or dead-letter topic (sent by ``flush``)."""
        topic = self.topics[kind]

        def delivered(error: Any, _message: Any) -> None:
            if error is not None:
                self._failures.append(f"producing to {topic!r} failed: {error.str()}")

        while True:
            try:
                self.producer.produce(
                    topic,
                    value=data,
                    key=key.encode("utf-8"),
                    headers=list(headers.items()),
                    on_delivery=delivered,
                )
                return
            except BufferError:  # the producer's queue is full: let it drain
                self.producer.poll(0.5)

    def flush(self) -> None:
        """Wait until the brokers stored what was produced."""
        left = self.producer.flush(REQUEST_TIMEOUT)
        failures, self._failures = self._failures, []
        if left:
            failures.append(f"{left} messages not delivered within {REQUEST_TIMEOUT:g} s")
        if failures:
            raise ExternalError(f"{self.url}: {failures[0]}")

    def ack(self, deliveries: list[Delivery]) -> None:
        """Commit, synchronously, past the highest offset done in each partition."""
        kafka = self.kafka
        highest: dict[int, int] = {}
        for delivery in deliveries:
            partition, offset = delivery.handle.partition(), delivery.handle.offset()
            highest[partition] = max(highest.get(partition, -1), offset)
            self._attempts.pop((partition, offset), None)
        offsets = [kafka.TopicPartition(self.topic, p, o + 1) for p, o in highest.items()]
        try:
            self.consumer.commit(offsets=offsets, asynchronous=False)
        except kafka.KafkaException as exc:
            # The partitions went to another member (a rebalance): it starts from the last
            # commit and decides those posts again, to the same results.
            log.warning("committing %s failed (delivered again): %s", self.description, exc)

    def working(self, deliveries: list[Delivery]) -> None:
        """Nothing to do: a member keeps its partitions while it polls within
        ``max.poll.interval.ms`` (5 minutes), far longer than a batch takes."""

    def retry(self, delivery: Delivery, delay: float) -> None:
        """Rewind the message's partition to it and pause the partition for ``delay``."""
        kafka = self.kafka
        partition, offset = delivery.handle.partition(), delivery.handle.offset()
        where = kafka.TopicPartition(self.topic, partition, offset)
        self.consumer.pause([where])
        self.consumer.seek(where)
        self._paused[partition] = time.monotonic() + delay
        self._held.add(partition)

    def lag(self) -> int | None:
        """The group's lag on the topic: high watermark - committed offset, summed over
        its partitions. The high watermark of a partition this member fetches is the last
        fetch's (no request); of the others, the broker's answer to ListOffsets."""
        kafka = self.kafka
        try:
            wanted = [kafka.TopicPartition(self.topic, p) for p in self.partitions]
            committed = self.consumer.committed(wanted, timeout=REQUEST_TIMEOUT)
            total = 0
            for tp in committed:
                where = kafka.TopicPartition(self.topic, tp.partition)
                low, high = self.consumer.get_watermark_offsets(where, cached=True)
                if high < 0:  # not fetched here (yet)
                    low, high = self.consumer.get_watermark_offsets(
                        where, timeout=REQUEST_TIMEOUT, cached=False
                    )
                total += max(0, high - (tp.offset if tp.offset >= 0 else low))
        except kafka.KafkaException:
            return None
        return total

    def idle(self) -> bool:
        """Nothing left for the group and no retry waiting here."""
        self._resume_due()
        return not self._paused and self.lag() == 0

    def close(self) -> None:
        """Flush the producer and leave the group."""
        try:
            self.producer.flush(REQUEST_TIMEOUT)
        finally:
            self.consumer.close()
