"""The fault suite: a real ``amber serve`` and a real ``amber scan`` killed with SIGKILL at
random points, and the vault's and the database's disk full (``RLIMIT_FSIZE`` in the
server's process: a write past the limit fails as on a full disk, unprivileged). After each
fault the server is restarted and every post that was not acknowledged is sent again; then
no acknowledged post may lack its decision or its evidence (a vault item holding its media
bytes), and ``amber evidence verify --db`` must pass.

The randomness is seeded; each test does a few kills over a few dozen posts.
"""

from __future__ import annotations

import io
import json
import random
import resource
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from amber.engine import open_engine
from amber.evidence.vault import Vault
from amber.identity import item_key
from amber.tokens import parse_scopes
from conftest import postgresql_only, sqlite_only
from relay import relay_to
from test_workers import _free_port

pytestmark = pytest.mark.slow


def _media(seed: int) -> bytes:
    """A PNG of noise, about 77 KB: larger than the file size limit of the vault's
    disk-full test, so keeping it as evidence needs a write past the limit."""
    pixels = np.random.default_rng(seed).integers(0, 255, (160, 160, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


class Platform:
    """A platform sending posts to a real ``amber serve``: it restarts the server, kills
    it, and remembers which posts were acknowledged with which answer."""

    def __init__(self, root: Path, db: str, posts: int) -> None:
        self.root, self.db = root, db
        self.media = {f"p{n}": _media(n) for n in range(posts)}
        self.banked = {f"p{n}" for n in range(0, posts, 2)}  # every other one: remove
        with open_engine(db=db, vault=root / "vault") as engine:
            engine.banks.create("known", action="remove")
            files = []
            for post_id in sorted(self.banked):
                file = root / "bank" / f"{post_id}.png"
                file.parent.mkdir(exist_ok=True)
                file.write_bytes(self.media[post_id])
                files.append(file)
            engine.banks.add_files("known", files)
            self.token = engine.tokens.create("platform", parse_scopes("ingest"))[1]
        self.acknowledged: dict[str, dict[str, object]] = {}
        self.refused: list[tuple[str, int, str]] = []
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""

    @contextmanager
    def serving(self, *, file_limit: int | None = None) -> Iterator[None]:
        """``amber serve`` running (stopped with SIGTERM on leaving if still alive); with
        ``file_limit``, no file of its can grow past that many bytes."""

        def limit() -> None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a failed write, not a kill
            if file_limit is not None:
                resource.setrlimit(resource.RLIMIT_FSIZE, (file_limit, file_limit))

        port = _free_port()
        self.url = f"http://127.0.0.1:{port}"
        log = open(self.root / "serve.log", "ab")  # noqa: SIM115 - closed on leaving
        self.process = subprocess.Popen(
            [sys.executable, "-m", "amber", "serve", "--port", str(port), "--db", self.db,
             "--vault", str(self.root / "vault")],
            stdout=subprocess.DEVNULL,
            stderr=log,
            cwd=self.root,
            preexec_fn=limit,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(self.url + "/v1/live", timeout=5)
                break
            except httpx.TransportError:
                assert self.process.poll() is None, "amber serve exited at start-up"
                assert time.monotonic() < deadline, "amber serve did not start"
                time.sleep(0.05)
        try:
            yield
        finally:
            if self.process.poll() is None:
                self.process.terminate()
                self.process.wait(timeout=30)
            log.close()

    def log(self) -> str:
        """The end of what the servers wrote to standard error: a failed assertion's story."""
        path = self.root / "serve.log"
        return path.read_text(errors="replace")[-6000:] if path.exists() else ""

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=30)

    def send(self, post_id: str) -> None:
        """Upload one post; remember the answer if it was acknowledged (200)."""
        try:
            answer = httpx.post(
                self.url + "/v1/posts/upload",
                headers={"authorization": f"Bearer {self.token}"},
                data={"post": json.dumps({"id": post_id})},
                files=[("media", (f"{post_id}.png", self.media[post_id], "image/png"))],
                timeout=60,
            )
        except httpx.TransportError:
            return  # the server died mid-request: not acknowledged
        if answer.status_code == 200:
            self.acknowledged[post_id] = answer.json()
        else:
            self.refused.append((post_id, answer.status_code, answer.text))

    def send_all(self, post_ids: list[str], *, threads: int = 4) -> None:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(self.send, post_ids))

    def unacknowledged(self) -> list[str]:
        return [p for p in sorted(self.media) if p not in self.acknowledged]

    def check(self) -> None:
        """No acknowledged post lacks its decision or its evidence; verify passes."""
        with open_engine(db=self.db, vault=self.root / "vault") as engine:
            items = Vault.open(self.root / "vault").items() if self._has_vault() else {}
            for post_id, answer in self.acknowledged.items():
                decision = engine.decisions.get(post_id)
                assert decision.verdict.value == answer["verdict"], post_id
                assert answer["verdict"] == ("remove" if post_id in self.banked else "allow")
                if post_id not in self.banked:
                    continue
                # amber scan prints the contract's fields: a local post's first version
                key = item_key(post_id, answer.get("client", "_local"), answer.get("version", 1))
                item = items.get(key)
                assert item is not None, f"{post_id}: acknowledged remove without evidence"
                assert answer["evidence"] == "preserved", (post_id, answer)
                [media] = item.objects["media"]
                kept = self.root / "vault" / "objects" / "sha256" / media["sha256"][:2]
                assert (kept / media["sha256"][2:]).read_bytes() == self.media[post_id]
            assert engine.missing_evidence() == []
        verified = _amber(self.root, "evidence", "verify", "--db", self.db)
        assert verified.returncode == 0, verified.stderr

    def _has_vault(self) -> bool:
        return (self.root / "vault" / "vault.json").exists()


def _amber(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "amber", *args, "--vault", str(root / "vault")],
        capture_output=True,
        text=True,
        cwd=root,
        timeout=300,
        check=False,
    )


def _kill_while_sending(platform: Platform, post_ids: list[str], after: float) -> None:
    """Send ``post_ids`` at once and SIGKILL the server ``after`` seconds after the first
    answer (or once all are answered)."""
    sender = threading.Thread(target=platform.send_all, args=(post_ids,))
    known = len(platform.acknowledged)
    sender.start()
    while len(platform.acknowledged) == known and sender.is_alive():
        time.sleep(0.01)
    time.sleep(after)
    platform.kill()
    sender.join(timeout=120)


def _retry_until_acknowledged(platform: Platform) -> None:
    for _ in range(3):
        platform.send_all(platform.unacknowledged())
    assert platform.unacknowledged() == [], platform.refused[-3:]


# ------------------------------------------------------------------------- kill -9


def test_kill_9_under_uploads_leaves_no_acknowledged_post_without_evidence(
    tmp_path: Path, database: str
) -> None:
    rng = random.Random(2016)
    platform = Platform(tmp_path, database, posts=12)
    for _ in range(2):
        with platform.serving():
            _kill_while_sending(platform, platform.unacknowledged(), rng.random() * 0.5)
    with platform.serving():  # restarted: the sweep runs; the platform retries the rest
        _retry_until_acknowledged(platform)
    platform.check()
    assert all(status == 503 for _, status, _ in platform.refused), platform.refused


def test_kill_9_of_scan_leaves_every_printed_post_with_its_evidence(
    tmp_path: Path, database: str
) -> None:
    rng = random.Random(784)
    platform = Platform(tmp_path, database, posts=10)
    lines = []
    for post_id, data in platform.media.items():
        (tmp_path / f"{post_id}.png").write_bytes(data)
        lines.append(json.dumps({"id": post_id, "media": [{"path": f"{post_id}.png"}]}))
    (tmp_path / "posts.jsonl").write_text("\n".join(lines) + "\n")
    for _ in range(3):
        scan = subprocess.Popen(
            [sys.executable, "-m", "amber", "scan", "posts.jsonl", "--format", "jsonl",
             "--db", database, "--vault", str(tmp_path / "vault")],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            cwd=tmp_path,
            text=True,
        )  # fmt: skip
        assert scan.stdout is not None
        first = scan.stdout.readline()
        time.sleep(rng.random() * 0.5)
        scan.kill()
        rest, _ = scan.communicate(timeout=60)
        for line in (first + rest).splitlines():
            printed = json.loads(line)
            platform.acknowledged[printed["post_id"]] = {**printed, "evidence": "preserved"}
    swept = _amber(tmp_path, "evidence", "sweep", "--db", database)
    assert swept.returncode == 0, swept.stderr
    assert platform.acknowledged  # the scan printed something before its first kill
    platform.check()


# ------------------------------------------------------------------------- disk full


def test_a_full_vault_disk_refuses_with_503_and_loses_nothing(
    tmp_path: Path, database: str
) -> None:
    platform = Platform(tmp_path, database, posts=6)
    with open_engine(db=database, vault=tmp_path / "vault") as engine:
        engine.open_vault()
    with platform.serving(file_limit=48 * 1024):  # smaller than any photo
        platform.send_all(platform.unacknowledged())
    # Every removal is refused: its evidence cannot be kept (on SQLite, the database's
    # own files share the limit, so allowed posts may be refused too).
    assert platform.banked <= {p for p, _, _ in platform.refused}
    assert all(
        status == 503 and "nothing was stored" in json.loads(text)["error"]["message"]
        for _, status, text in platform.refused
    ), platform.refused
    assert not platform.banked & set(platform.acknowledged)
    with platform.serving():  # the disk has room again: the platform retries
        _retry_until_acknowledged(platform)
    platform.check()


@sqlite_only
def test_a_full_database_disk_refuses_with_503_and_loses_nothing(
    tmp_path: Path, database: str
) -> None:
    platform = Platform(tmp_path, database, posts=6)
    with open_engine(db=database, vault=tmp_path / "vault") as engine:
        engine.open_vault()
    size = Path(database).stat().st_size
    wal = Path(database + "-wal")
    with platform.serving(file_limit=max(size, wal.stat().st_size if wal.exists() else 0)):
        platform.send_all(platform.unacknowledged())
    assert all(status == 503 for _, status, _ in platform.refused), platform.refused
    with platform.serving():
        _retry_until_acknowledged(platform)
    platform.check()


# ------------------------------------------------------------------------- database hung or cut


@postgresql_only
@pytest.mark.parametrize("fault", ["freeze", "cut"])
def test_a_database_relay_that_hangs_or_cuts_gives_503_then_resumes_and_loses_nothing(
    tmp_path: Path, database: str, fault: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A relay between amber and PostgreSQL stops forwarding with every connection left
    open (the kernel still acknowledges and answers keepalives: no server-side or TCP
    limit ever fires), or resets every connection. The post sent meanwhile gets 503 within
    amber's database limit, not a request hung for ever holding the writer lock; once the
    relay forwards again the same server answers 200, and no acknowledged post lacks its
    decision or its evidence."""
    monkeypatch.setenv("AMBER_DB_TIMEOUT", "2")  # the server inherits it
    with relay_to(database) as relay:
        platform = Platform(tmp_path, relay.url(database), posts=6)
        first, during, *rest = sorted(platform.media)
        with platform.serving():
            platform.send(first)
            assert first in platform.acknowledged, platform.refused
            getattr(relay, fault)()
            try:  # a hung request fails the test at the client's limit instead of hanging
                down = _upload(platform, during, timeout=45)
            finally:
                relay.thaw()
            assert down.status_code == 503, (down.text, platform.log())
            error = down.json()["error"]
            assert error["type"] == "ExternalError"
            assert error["message"].startswith("the database failed")
            if fault == "freeze":  # the pool's ping got no answer; connecting again neither
                assert "timeout expired after 2 s" in error["message"], error
            platform.send(rest[0])  # the same server, no restart
            assert rest[0] in platform.acknowledged, platform.refused
            _retry_until_acknowledged(platform)
        platform.check()


def _upload(platform: Platform, post_id: str, *, timeout: float) -> httpx.Response:
    return httpx.post(
        platform.url + "/v1/posts/upload",
        headers={"authorization": f"Bearer {platform.token}"},
        data={"post": json.dumps({"id": post_id})},
        files=[("media", (f"{post_id}.png", platform.media[post_id], "image/png"))],
        timeout=timeout,
    )
