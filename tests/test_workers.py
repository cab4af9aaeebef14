"""Many processes on one database: ``amber serve --workers N`` and separate ``amber`` runs.

Every test here runs real processes against a real database (both backends, PostgreSQL
being the one platforms share across machines) and checks what must hold however the
work is spread: each post decided once, review locks exclusive, bank changes reaching every
worker's index within seconds.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from amber.engine import open_engine
from amber.store.db import connect
from amber.store.tables import decisions
from amber.synthetic import photo
from amber.tokens import parse_scopes
from conftest import postgresql_only, run_at_once

pytestmark = pytest.mark.slow

WORKERS = 3
POLL = {
    "question": "Kill him or let him go? You have one hour to vote",
    "options": ["Kill", "Let go"],
}


@dataclass
class Server:
    url: str
    token: str
    db: str
    root: Path
    process: subprocess.Popen[bytes]

    def client(self) -> httpx.Client:
        # A new connection per request, so the kernel spreads requests over the workers.
        return httpx.Client(
            base_url=self.url,
            headers={"authorization": f"Bearer {self.token}"},
            limits=httpx.Limits(max_keepalive_connections=0),
            timeout=60,
        )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "amber", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
    )


def _amber(root: Path, db: str, *args: str) -> subprocess.CompletedProcess[str]:
    """An ``amber`` command on the shared database and vault, in its own process."""
    return _run(*args, "--db", db, "--vault", str(root / "vault"), cwd=root)


@pytest.fixture
def server(tmp_path: Path, database: str) -> Iterator[Server]:
    """``amber serve --workers 3`` on a free port, with an admin token and a media folder."""
    media = tmp_path / "media"
    media.mkdir()
    with open_engine(db=database, vault=tmp_path / "vault") as engine:
        _, token = engine.tokens.create("test", parse_scopes("admin"))
    port = _free_port()
    process = subprocess.Popen(
        [
            sys.executable, "-m", "amber", "serve", "--port", str(port),
            "--workers", str(WORKERS), "--db", database, "--vault", str(tmp_path / "vault"),
            "--media-root", str(media),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
    )  # fmt: skip
    running = Server(f"http://127.0.0.1:{port}", token, database, tmp_path, process)
    try:
        _wait_for_workers(running)
        yield running
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _health(server: Server) -> dict[str, object]:
    with server.client() as client:
        answer = client.get("/v1/health")
    assert answer.status_code == 200, answer.text
    body: dict[str, object] = answer.json()
    return body


def _wait_for_workers(server: Server) -> None:
    """Until every worker process has answered once (or fail with the server's stderr)."""
    seen: set[object] = set()
    deadline = time.monotonic() + 60
    while len(seen) < WORKERS:
        if time.monotonic() > deadline or server.process.poll() is not None:
            server.process.kill()
            _, err = server.process.communicate()
            pytest.fail(f"workers answering: {len(seen)} of {WORKERS}; stderr: {err.decode()}")
        try:
            seen.add(_health(server)["worker"])
        except httpx.TransportError:
            time.sleep(0.1)


def _until(check: Callable[[], bool], seconds: float, what: str) -> float:
    """Poll ``check`` until true; returns how long it took. Fails after ``seconds``."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > seconds:
            pytest.fail(f"not within {seconds} s: {what}")
        time.sleep(0.05)
    return time.monotonic() - started


def _post(seed: int, name: str, *, poll: bool = False) -> dict[str, object]:
    post: dict[str, object] = {"id": name, "media": [{"path": f"{seed}.png"}]}
    if poll:  # only then a text: a worker's first text builds the harm-poll index (seconds)
        post["text"] = f"post {name}"
        post["poll"] = POLL
    return post


# --------------------------------------------------------------------------- decisions


def test_every_post_is_decided_once_however_the_workers_share_the_requests(
    server: Server,
) -> None:
    media = server.root / "media"
    for seed in range(40):
        photo(seed, 320, 240).save(media / f"{seed}.png")
    banked = _amber(server.root, server.db, "bank", "create", "known", "--action", "remove")
    assert banked.returncode == 0, banked.stderr
    added = _amber(server.root, server.db, "bank", "add", "known", *(
        str(media / f"{seed}.png") for seed in range(0, 40, 4)
    ))  # fmt: skip
    assert added.returncode == 0, added.stderr
    posts = [_post(seed, f"p{seed}", poll=seed % 10 == 1) for seed in range(40)]
    # Each post sent three times at once, interleaved with the others.
    requests = [post for post in posts for _ in range(3)]

    def send(post: dict[str, object]) -> tuple[str, dict[str, object]]:
        with server.client() as client:
            answer = client.post("/v1/posts", json=post)
        assert answer.status_code == 200, answer.text
        return str(post["id"]), answer.json()

    with ThreadPoolExecutor(max_workers=12) as pool:
        answers = list(pool.map(send, requests))

    by_post: dict[str, list[dict[str, object]]] = {}
    for post_id, answer in answers:
        by_post.setdefault(post_id, []).append(answer)
    for post_id, same in by_post.items():
        assert all(a == same[0] for a in same), f"{post_id} got different answers: {same}"
    verdicts = {post_id: same[0]["verdict"] for post_id, same in by_post.items()}
    assert {p for p, v in verdicts.items() if v == "remove"} == {f"p{s}" for s in range(0, 40, 4)}
    assert {p for p, v in verdicts.items() if v == "restrict"} == {"p1", "p11", "p21", "p31"}

    engine = connect(server.db)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(decisions.c.post_id, decisions.c.scan_count)).all()
    engine.dispose()
    assert sorted(r.post_id for r in rows) == sorted(by_post)  # none lost, none doubled
    assert {r.scan_count for r in rows} == {1}  # the repeats were answered, not rescanned

    with server.client() as client:  # any worker answers for all of them
        metrics = client.get("/v1/metrics").text
    counted = {
        line.split('verdict="')[1].split('"')[0]: float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("amber_decisions_total{")
    }
    assert sum(counted.values()) == 40, metrics
    assert counted["remove"] == 10

    vault = ["--vault", str(server.root / "vault")]
    listed = _run("evidence", "list", "--format", "jsonl", *vault, cwd=server.root)
    assert listed.returncode == 0, listed.stderr
    held = [json.loads(line)["post_id"] for line in listed.stdout.splitlines()]
    assert sorted(held) == sorted(p for p, v in verdicts.items() if v != "allow")  # once each
    verified = _run("evidence", "verify", *vault, cwd=server.root)
    assert verified.returncode == 0, verified.stdout + verified.stderr


# --------------------------------------------------------------------------- review locks


def test_review_locks_are_exclusive_across_processes(tmp_path: Path, database: str) -> None:
    media = tmp_path / "media"
    media.mkdir()
    photo(5, 320, 240).save(media / "5.png")
    from amber.posts import parse_post

    with open_engine(db=database, vault=tmp_path / "vault") as engine:
        for n in range(3):
            engine.decide_post(parse_post(_post(5, f"poll{n}", poll=True), base=media, source="t"))
        assert [i.post_id for i in engine.review.items()] != []
    script = (
        "import sys, time\n"
        "from amber.engine import open_engine\n"
        "from amber.errors import ConflictError\n"
        "db, vault, who, start = sys.argv[1:5]\n"
        "with open_engine(db=db, vault=vault) as engine:\n"
        "    time.sleep(max(0.0, float(start) - time.time()))\n"
        "    got = []\n"
        "    for n in range(3):\n"
        "        try:\n"
        "            engine.review.lock(f'poll{n}', who)\n"
        "            got.append(f'poll{n}')\n"
        "        except ConflictError:\n"
        "            pass\n"
        "    print(','.join(got))\n"
    )
    reviewers = [f"reviewer{n}" for n in range(6)]
    outputs = run_at_once(script, [[database, str(tmp_path / "vault"), who] for who in reviewers])
    taken: dict[str, list[str]] = {}
    for who, out in zip(reviewers, outputs, strict=True):
        for item in filter(None, out.strip().split(",")):
            taken.setdefault(item, []).append(who)
    assert sorted(taken) == ["poll0", "poll1", "poll2"]
    assert all(len(holders) == 1 for holders in taken.values()), taken
    with open_engine(db=database, vault=tmp_path / "vault") as engine:
        for item in engine.review.items():
            assert [item.locked_by] == taken[item.post_id]


# --------------------------------------------------------------------------- bank changes


def test_bank_changes_reach_every_worker_within_seconds(server: Server) -> None:
    media = server.root / "media"
    photo(77, 320, 240).save(media / "77.png")
    with server.client() as client:
        assert client.post("/v1/posts", json=_post(77, "before")).json()["verdict"] == "allow"

    # Another process (the command line) changes the banks, not the server.
    created = _amber(server.root, server.db, "bank", "create", "late", "--action", "remove")
    assert created.returncode == 0, created.stderr
    added = _amber(server.root, server.db, "bank", "add", "late", str(media / "77.png"))
    assert added.returncode == 0, added.stderr
    with open_engine(db=server.db, vault=server.root / "vault") as engine:
        newest = engine.matcher.index.max_id

    current: dict[object, int] = {}

    def every_worker_current() -> bool:
        health = _health(server)
        index = health["index"]
        assert isinstance(index, dict)
        current[health["worker"]] = int(index["max_id"])
        return len(current) == WORKERS and min(current.values()) >= newest

    took = _until(every_worker_current, 15, "every worker's index holds the new entry")
    assert took < 15
    assert _copies_of(server, 77, "after") == ["remove"] * 12

    # A bank deleted through one worker stops matching at once, in every worker.
    with server.client() as client:
        deleted = client.delete("/v1/banks/late")
    assert deleted.status_code == 200, deleted.text
    assert _copies_of(server, 77, "gone") == ["allow"] * 12


def _copies_of(server: Server, seed: int, prefix: str) -> list[object]:
    """Verdicts for 12 new posts of photo ``seed``, sent 6 at a time (so to every worker)."""

    def send(n: int) -> object:
        with server.client() as client:
            return client.post("/v1/posts", json=_post(seed, f"{prefix}{n}")).json()["verdict"]

    with ThreadPoolExecutor(max_workers=6) as pool:
        return list(pool.map(send, range(12)))


# --------------------------------------------------------------------------- many scans


def test_scans_in_parallel_processes_lose_and_double_nothing(tmp_path: Path, database: str) -> None:
    media = tmp_path / "media"
    media.mkdir()
    for seed in range(30):
        photo(seed, 200, 150).save(media / f"{seed}.png")
    # Three files over the same 30 posts in different orders: every post is scanned 3 times.
    for n, order in enumerate((range(30), range(29, -1, -1), [*range(15, 30), *range(15)])):
        lines = [json.dumps(_post(s, f"s{s}", poll=s % 7 == 0)) for s in order]
        (media / f"posts{n}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    with open_engine(db=database, vault=tmp_path / "vault"):
        pass  # migrate once, before the processes race
    scan = ["scan", "--db", database, "--vault", str(tmp_path / "vault"), "--workers", "1"]
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "amber", *scan, str(media / f"posts{n}.jsonl")],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=media,
        )
        for n in range(3)
    ]
    outputs = []
    for process in processes:
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
        outputs.append(sorted(out.splitlines()))
    assert outputs[0] == outputs[1] == outputs[2]  # the same 30 decisions, whatever the order
    engine = connect(database)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(decisions.c.post_id, decisions.c.scan_count)).all()
    engine.dispose()
    assert sorted(r.post_id for r in rows) == sorted(f"s{s}" for s in range(30))
    assert {r.scan_count for r in rows} == {3}


def test_serve_refuses_zero_workers(tmp_path: Path) -> None:
    refused = _run("serve", "--workers", "0", cwd=tmp_path)
    assert refused.returncode == 2
    assert "--workers" in refused.stderr


# --------------------------------------------------------------------------- the vault

VAULT_WRITER = r"""
import hashlib, json, sys, time
from pathlib import Path
from amber.evidence.vault import Vault

vault_path, media, name, start = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], sys.argv[4]
vault = Vault.open(vault_path)
time.sleep(max(0.0, float(start) - time.time()))
for n in range(15):
    post_id = f"{name}-{n}"
    vault.preserve(post_id=post_id, post=json.dumps({"id": post_id}),
                   decision={"post_id": post_id, "verdict": "remove", "reasons": []},
                   media=[(0, media.name, media, hashlib.sha256(media.read_bytes()).hexdigest())],
                   source="test", policy="default@test")
# Every process comes to see the others' items without writing anything itself.
deadline = time.time() + 60
while len(vault.items()) < 45 and time.time() < deadline:
    time.sleep(0.05)
print(len(vault.items()))
"""


def test_processes_sharing_a_vault_append_in_turn_and_see_each_other(tmp_path: Path) -> None:
    from amber.evidence.vault import Vault
    from amber.evidence.verify import verify_vault

    media = tmp_path / "photo.png"
    photo(3, 200, 150).save(media)
    Vault.open(tmp_path / "vault")
    outputs = run_at_once(
        VAULT_WRITER, [[str(tmp_path / "vault"), str(media), f"w{n}"] for n in range(3)]
    )
    seen = [int(out) for out in outputs]
    assert seen == [45, 45, 45]
    report = verify_vault(tmp_path / "vault")
    assert report.ok, report.problems
    assert report.records == 46  # the vault's first record and 45 preserved posts
    items = Vault.open(tmp_path / "vault").items()
    assert sorted(items) == sorted(f"w{w}-{n}" for w in range(3) for n in range(15))


# --------------------------------------------------------------------------- the index


def test_an_index_another_process_damaged_is_rebuilt_and_matching_goes_on(
    tmp_path: Path, database: str
) -> None:
    known = tmp_path / "known.png"
    photo(21, 320, 240).save(known)
    with open_engine(db=database, vault=tmp_path / "vault") as engine:
        engine.banks.create("known", action="remove")
        engine.banks.add_files("known", [known])
        folder = engine.matcher.indexes["pdq"].directory
        (folder / "manifest.json").write_text("{not json", encoding="utf-8")
        engine.matcher.sync()  # what the next post does once its view is a second old
        assert len(engine.matcher.index) > 0
        from amber.posts import parse_post

        post = parse_post(
            {"id": "again", "media": [{"path": str(known)}]}, base=tmp_path, source="t"
        )
        assert engine.decide_post(post).outcome.verdict.value == "remove"


# --------------------------------------------------------------------------- the database


class Relay:
    """A TCP relay to PostgreSQL that the test can cut and restore, like a network fault."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.open: list[socket.socket] = []
        self.cut = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.cut:
                client.close()
                continue
            server = socket.create_connection(self.target)
            self.open += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def set_cut(self, cut: bool) -> None:
        self.cut = cut
        if cut:
            for s in self.open:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
            self.open.clear()


@postgresql_only
def test_a_database_that_stops_answering_gives_503_and_service_resumes(
    tmp_path: Path, database: str
) -> None:
    url = sa.make_url(database)
    relay = Relay((url.host or "127.0.0.1", url.port or 5432))
    through = url.set(port=relay.port).render_as_string(hide_password=False)
    with open_engine(db=through, vault=tmp_path / "vault") as engine:
        _, token = engine.tokens.create("test", parse_scopes("admin"))
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "amber", "serve", "--port", str(port), "--db", through,
         "--vault", str(tmp_path / "vault")],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=tmp_path,
    )  # fmt: skip
    server = Server(f"http://127.0.0.1:{port}", token, through, tmp_path, process)
    try:
        _until(lambda: _answers(server), 60, "the server answers")
        with server.client() as client:
            assert client.get("/v1/banks").status_code == 200
            relay.set_cut(True)
            down = client.get("/v1/banks")
            assert down.status_code == 503, down.text
            error = down.json()["error"]
            assert error["type"] == "ExternalError"
            assert "the database failed" in error["message"]
            relay.set_cut(False)
            assert client.get("/v1/banks").status_code == 200  # a new connection, no restart
    finally:
        process.terminate()
        process.wait(timeout=20)


def _answers(server: Server) -> bool:
    try:
        _health(server)
    except httpx.TransportError:
        return False
    return True


def test_a_database_created_again_under_the_same_name_gets_a_fresh_index(
    tmp_path: Path, database: str
) -> None:
    from PIL import ImageOps

    from amber.posts import parse_post

    first, second = tmp_path / "first.png", tmp_path / "second.png"
    photo(31, 320, 240).save(first)
    photo(32, 320, 240).save(second)
    ImageOps.mirror(photo(32, 320, 240)).save(tmp_path / "second-mirrored.png")
    with open_engine(db=database, vault=tmp_path / "vault") as engine:
        engine.banks.create("known", action="remove")
        engine.banks.add_files("known", [first])
        index = engine.matcher.indexes["pdq"].directory
    _recreate(database)
    # The same path or URL, so the same index folder; the row ids start again from 1.
    with open_engine(db=database, vault=tmp_path / "vault") as engine:
        assert engine.matcher.indexes["pdq"].directory == index
        engine.banks.create("known", action="remove")
        engine.banks.add_files("known", [second])
        post = parse_post(
            {"id": "copy", "media": [{"path": "second-mirrored.png"}]}, base=tmp_path, source="t"
        )
        assert engine.decide_post(post).outcome.verdict.value == "remove"


def _recreate(database: str) -> None:
    """Drop the database and create it empty under the same name."""
    if "://" not in database:
        for suffix in ("", "-wal", "-shm"):
            Path(database + suffix).unlink(missing_ok=True)
        return
    url = sa.make_url(database)
    schema = url.query["options"].split("=", 1)[1]  # -csearch_path=<schema>
    server = connect_server(url)
    with server.connect() as conn:
        conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    server.dispose()


def connect_server(url: sa.URL) -> sa.Engine:
    """The PostgreSQL server behind ``url``, in autocommit, without amber's migrations."""
    return sa.create_engine(
        url.set(drivername="postgresql+psycopg").difference_update_query(["options"]),
        isolation_level="AUTOCOMMIT",
    )


def test_processes_creating_one_vault_at_once_get_the_same_vault(tmp_path: Path) -> None:
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from amber.evidence.vault import Vault\n"
        "time.sleep(max(0.0, float(sys.argv[2]) - time.time()))\n"
        "print(Vault.open(Path(sys.argv[1])).origin)\n"
    )
    origins = {out.strip() for out in run_at_once(script, [[str(tmp_path / "vault")]] * 6)}
    assert len(origins) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vault"]  # nothing half-built left
    from amber.evidence.verify import verify_vault

    assert verify_vault(tmp_path / "vault").ok
