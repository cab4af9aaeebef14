"""Shared fixtures: a fresh database and engine per test on each backend, generated photos
on disk, the CLI in process and as a process.

Every test that asks for ``database`` (or ``engine``, ``amber_cli``, ``databases``) runs
twice, ``[sqlite]`` and ``[postgresql]``. PostgreSQL is the server at
``AMBER_TEST_POSTGRES`` (default ``postgresql://postgres@127.0.0.1:5432/test``); each test
gets a schema of its own there, dropped afterwards. ``AMBER_TEST_POSTGRES=off`` tests SQLite
only; otherwise an unreachable server fails the PostgreSQL tests, never skips them.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from PIL import Image

from amber.engine import Engine, open_engine
from amber.store.db import database_url, display_url
from amber.synthetic import photo

POSTGRES = os.environ.get("AMBER_TEST_POSTGRES") or "postgresql://postgres@127.0.0.1:5432/test"
BACKENDS = ["sqlite"] if POSTGRES == "off" else ["sqlite", "postgresql"]
#: Test schemas are named ``t_<unix time>_<random>``; ones left by a killed run are dropped
#: by a later run once they are this old.
STALE_AFTER = 6 * 3600


#: For a test about one backend only: ``@sqlite_only`` (a file that is not SQLite) or
#: ``@postgresql_only`` (a server that is down). Its id still says which: ``[sqlite]``.
sqlite_only = pytest.mark.parametrize("databases", ["sqlite"], indirect=True)
postgresql_only = pytest.mark.parametrize(
    "databases", [b for b in BACKENDS if b == "postgresql"], indirect=True
)


class Databases:
    """Makes fresh, empty databases on one backend: SQLite files, or PostgreSQL schemas.

    ``with databases.new(folder) as db:`` gives a database (a path or URL, as ``--db``,
    ``AMBER_DB`` and ``open_engine(db=...)`` take it) that no other test sees; a
    PostgreSQL schema is dropped on leaving the block. Any number of processes may open it.
    """

    def __init__(self, backend: str, server: sa.Engine | None = None) -> None:
        self.backend = backend
        self.server = server
        self._files: set[Path] = set()

    @contextmanager
    def new(self, folder: Path) -> Iterator[str]:
        """A new database; a SQLite file goes in ``folder`` (``amber.db``, then
        ``amber-2.db``, ...)."""
        if self.server is None:
            file, n = folder / "amber.db", 1
            while file in self._files or file.exists():
                n += 1
                file = folder / f"amber-{n}.db"
            self._files.add(file)
            file.touch()  # an empty SQLite database: commands that only read refuse no file
            yield str(file)
            return
        schema = f"t_{int(time.time())}_{secrets.token_hex(6)}"
        with self.server.connect() as conn:
            conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
        url = self.server.url.set(drivername="postgresql").update_query_dict(
            {"options": f"-csearch_path={schema}"}
        )
        try:
            yield url.render_as_string(hide_password=False)
        finally:
            with self.server.connect() as conn:
                conn.exec_driver_sql("SET lock_timeout = '30s'")
                conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")


def _postgres_server() -> sa.Engine:
    """The test server, checked to answer; ``pytest.fail`` saying how to fix it if not."""
    server = sa.create_engine(
        database_url(POSTGRES),
        isolation_level="AUTOCOMMIT",
        connect_args={"connect_timeout": 5},
        pool_size=1,
    )
    try:
        with server.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except sa.exc.DBAPIError as exc:
        server.dispose()
        reason = " ".join(str(exc.orig).split())
        pytest.fail(
            f"PostgreSQL for the tests is not reachable at {display_url(POSTGRES)!r} ({reason}). "
            "Start it, point AMBER_TEST_POSTGRES at a server (a URL with a database amber may "
            "create schemas in), or set AMBER_TEST_POSTGRES=off to test SQLite only.",
            pytrace=False,
        )
    _drop_stale_schemas(server)
    return server


def _drop_stale_schemas(server: sa.Engine) -> None:
    cutoff = int(time.time()) - STALE_AFTER
    with server.connect() as conn:
        names = conn.exec_driver_sql(
            "SELECT nspname FROM pg_namespace WHERE nspname ~ '^t_[0-9]+_[0-9a-f]+$'"
        ).scalars()
        for name in [n for n in names if int(n.split("_")[1]) < cutoff]:
            with suppress(sa.exc.DBAPIError):  # another worker may be dropping it too
                conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {name} CASCADE")


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto``: one worker more than the cores. A third of the suite's time is spent
    waiting (on ``amber serve`` and ``amber consume`` processes, brokers, PostgreSQL,
    sockets): ``bash .ci/run`` on 2 cores with 2 workers kept them busy 143% of 200% (CPU
    1,366 s over 954 s, ``/usr/bin/time -v``, 2026-12-07). ``-n N`` still wins."""
    return (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1) + 1


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Slow and browser tests first, so that no worker ends the run alone on a long one
    (the longest-first rule of scheduling). pytest-xdist deals each worker a block of the
    list in order, so it runs with ``--dist worksteal`` (pyproject.toml): a worker that
    runs out takes half of what another still has queued; with the default ``load`` the
    worker dealt the slow block ran it alone while the other sat idle for 460 s of a
    643 s run."""
    items.sort(
        key=lambda item: (
            not any(item.iter_markers(name="slow")) and not any(item.iter_markers(name="browser"))
        )
    )


class Clock:
    """A clock a test moves by hand (``engine`` fixtures pass it as the engine's clock);
    ``Clock()`` starts at 2026-03-01 12:00 UTC."""

    def __init__(self, now: datetime | None = None) -> None:
        self.now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC) if now is None else now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture(scope="session", params=BACKENDS)
def databases(request: pytest.FixtureRequest) -> Iterator[Databases]:
    """A maker of fresh databases, once per backend: ``with databases.new(folder) as db``."""
    if request.param == "sqlite":
        yield Databases("sqlite")
        return
    server = _postgres_server()
    yield Databases("postgresql", server)
    server.dispose()


@pytest.fixture
def database(databases: Databases, tmp_path: Path) -> Iterator[str]:
    """A fresh database for this test: a SQLite path in ``tmp_path`` or a PostgreSQL URL."""
    with databases.new(tmp_path) as db:
        yield db


@pytest.fixture(scope="session", autouse=True)
def _user_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The PDQ index of a database server lives in the user cache: keep it out of $HOME."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
        yield


@pytest.fixture
def engine(database: str, tmp_path: Path) -> Iterator[Engine]:
    """An engine on a fresh database and a new vault in ``tmp_path``."""
    with open_engine(db=database, vault=tmp_path / "vault") as eng:
        yield eng


@pytest.fixture
def photo_file(tmp_path: Path) -> Callable[..., Path]:
    """Write a generated photo: ``photo_file(seed, name="x.png", size=(w, h), quality=90)``."""

    def make(
        seed: int,
        name: str | None = None,
        size: tuple[int, int] = (640, 480),
        quality: int = 92,
        image: Image.Image | None = None,
    ) -> Path:
        path = tmp_path / "images" / (name or f"photo-{seed}.png")
        path.parent.mkdir(parents=True, exist_ok=True)
        img = image if image is not None else photo(seed, *size)
        if path.suffix.lower() in (".jpg", ".jpeg"):
            img.save(path, quality=quality)
        else:
            img.save(path)
        return path

    return make


@pytest.fixture
def write_posts(tmp_path: Path) -> Callable[[list[object]], Path]:
    """Write posts (dicts are JSON-encoded, strings written as they are) to a JSONL file."""

    def write(lines: list[object], name: str = "posts.jsonl") -> Path:
        path = tmp_path / name
        text = "".join(
            (line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines
        )
        path.write_text(text, encoding="utf-8")
        return path

    return write


@dataclass(frozen=True)
class CliResult:
    """What a run of the command line gave: exit code and the two output streams."""

    returncode: int
    stdout: str
    stderr: str


def run_cli(
    *args: str | Path, env: dict[str, str] | None = None, input: str | None = None
) -> CliResult:
    """Run the ``amber`` command line in this process (typer's runner), 200 columns wide.

    An exception that escaped amber's error handler is written to ``stderr`` as the
    traceback a real process would print, so tests that look for none see it.
    """
    from typer.testing import CliRunner

    from amber.cli import app, options

    consoles = (options.out, options.err)
    widths = [c.width for c in consoles]  # fixed at import if COLUMNS was set then
    for console in consoles:
        console.width = 200
    try:
        result = CliRunner().invoke(
            app, [str(a) for a in args], input=input, env={"COLUMNS": "200", **(env or {})}
        )
    finally:
        for console, width in zip(consoles, widths, strict=True):
            console.width = width
    stderr = result.stderr
    escaped = result.exception is not None and not isinstance(result.exception, SystemExit)
    if escaped and result.exc_info is not None:
        stderr += "".join(traceback.format_exception(*result.exc_info))
    return CliResult(result.exit_code, result.stdout, stderr)


@pytest.fixture
def amber_cli(
    tmp_path: Path, database: str, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., CliResult]:
    """``run_cli`` on ``database`` with a vault in ``tmp_path``, from ``tmp_path``:
    ``amber_cli("bank", "list")``, with ``input=`` for standard input."""

    def run(*args: str | Path, cwd: Path | None = None, input: str | None = None) -> CliResult:
        monkeypatch.chdir(cwd or tmp_path)
        env = {"AMBER_DB": database, "AMBER_VAULT": str(tmp_path / "vault")}
        return run_cli(*args, env=env, input=input)

    return run


@pytest.fixture
def amber_process(tmp_path: Path, database: str) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run the real ``amber`` command in a process, on ``database`` with a vault in
    ``tmp_path``: for what only a process shows (the entry point, signals, a terminal)."""

    def run(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        env = {
            **os.environ,
            "AMBER_DB": database,
            "AMBER_VAULT": str(tmp_path / "vault"),
            "COLUMNS": "200",
        }
        return subprocess.run(
            [sys.executable, "-m", "amber", *map(str, args)],
            capture_output=True,
            text=True,
            env=env,
            cwd=cwd or tmp_path,
            timeout=300,
        )

    return run


def run_at_once(
    script: str, each: list[list[str]], *, lead: float = 4.0, timeout: float = 120
) -> list[str]:
    """Run ``python -c script ARGS... START`` once per ``ARGS``, all at once.

    START, the last argument, is a Unix time ``lead`` seconds ahead (by then every process
    has imported amber); each script sleeps until then, so they race for real. Returns
    each process's stdout, in order; fails with its stderr if any exits non-zero.
    """
    start = f"{time.time() + lead:.3f}"
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", script, *args, start],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for args in each
    ]
    outputs = []
    for process in processes:
        out, err = process.communicate(timeout=timeout)
        assert process.returncode == 0, err
        outputs.append(out)
    return outputs
