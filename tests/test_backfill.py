"""Backfill on Dask distributed (``amber scan --cluster``): the same decisions and errors
as a plain scan, partition by partition, resumable from its checkpoint.

A real Dask cluster serves the tests (a scheduler on a TCP port with two workers, threads
of this process, started once per module); one test starts ``--cluster local`` with
worker processes, as a user's run does.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import dask
import pytest
from distributed import Client, LocalCluster

from amber.backfill import backfill, default_checkpoint, plan_partitions
from amber.engine import Engine, ScanResult, open_engine
from amber.post_values import PostValues, compute_ahead, stamp
from amber.posts import parse_post, read_input
from amber.signals import SignalValue
from conftest import CliResult, Databases, run_cli, sqlite_only

#: Lines per partition in these tests: 12 posts make 3 partitions.
SIZE = 4


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """The address of a running Dask scheduler with two workers."""
    with LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=False,
        protocol="tcp://",
        dashboard_address=None,
        scheduler_kwargs={"dashboard_address": ":0"},
    ) as running:
        yield running.scheduler_address


def folder(path: Path) -> Path:
    path.mkdir()
    return path


def scan(db: str, tmp_path: Path, *args: str | Path) -> CliResult:
    """``amber scan --format jsonl ARGS`` on ``db``, its vault beside it."""
    env = {"AMBER_DB": db, "AMBER_VAULT": str(tmp_path / f"vault-{abs(hash(db))}")}
    return run_cli("scan", "--format", "jsonl", *args, env=env)


def archive(
    write_posts: Callable[..., Path], photo_file: Callable[..., Path], tmp_path: Path
) -> Path:
    """Twelve lines in three partitions: text posts (one a vote on a man's life, which
    the harm-poll detector finds), photos (one of them banked in the tests), a reply, a
    bad line, a missing file and an id repeated across partitions."""
    photos = [photo_file(seed, size=(160, 120)) for seed in (1, 2, 3)]
    lines: list[object] = [
        {"id": "p1", "author": "ann", "text": "hello"},
        {"id": "p2", "author": "bob", "media": [{"path": str(photos[0])}]},
        {"id": "p3", "author": "ann", "reply_to": "p1", "text": "again"},
        {"id": "p4", "media": [{"path": str(photos[1])}, {"path": str(photos[2])}]},
        '{"id": "p5", "text": ',  # line 5: the first line of the second partition
        {"id": "p6", "media": [{"path": str(tmp_path / "gone.png")}]},
        {"id": "p7", "author": "bob", "media": [{"path": str(photos[0])}]},
        {"id": "p8", "text": "👍 = we let the prisoner go, 👎 = he dies. You decide by tonight."},
        {"id": "p9", "text": "nine"},
        {"id": "p2", "text": "p2 again"},  # line 10: already on line 2
        {"id": "p11", "text": "eleven"},
        {"id": "p12", "media": [{"path": str(photos[2])}]},
    ]
    return write_posts(lines)


def lines(text: str) -> list[str]:
    """The lines of ``text`` that are not blank (a progress bar may leave one)."""
    return [line for line in text.splitlines() if line.strip()]


def bank(db: str, tmp_path: Path, photo: Path) -> None:
    with open_engine(db=db, vault=tmp_path / f"vault-{abs(hash(db))}") as engine:
        engine.banks.create("known", action="remove")
        engine.banks.add_files("known", [photo])


def stored(db: str) -> dict[str, tuple[str, int]]:
    """Each stored post's verdict and scan count."""
    with open_engine(db=db, vault=Path("unused")) as engine:
        found = engine.decisions.find(limit=1000)
        return {d.post_id: (d.verdict.value, d.scan_count) for d in found}


def test_a_cluster_scan_decides_and_reports_as_a_plain_scan(
    databases: Databases,
    tmp_path: Path,
    cluster: str,
    write_posts: Callable[..., Path],
    photo_file: Callable[..., Path],
) -> None:
    posts = archive(write_posts, photo_file, tmp_path)
    with (
        databases.new(folder(tmp_path / "plain")) as plain_db,
        databases.new(folder(tmp_path / "dask")) as db,
    ):
        for each in (plain_db, db):
            bank(each, tmp_path, tmp_path / "images" / "photo-1.png")
        plain = scan(plain_db, tmp_path, posts)
        clustered = scan(db, tmp_path, posts, "--cluster", cluster, "--partition-size", SIZE)
        assert clustered.returncode == plain.returncode == 1
        assert clustered.stdout == plain.stdout
        assert lines(clustered.stderr) == lines(plain.stderr)
        assert "Traceback" not in clustered.stderr
        assert f"Error: {posts} line 5: invalid JSON" in clustered.stderr
        assert f"Error: {posts} line 6, field 'media[0].path': media file" in clustered.stderr
        assert (
            f"Error: {posts} line 10, field 'id': post id 'p2' already appeared on line 2"
            in clustered.stderr
        )
        verdicts = [json.loads(line) for line in clustered.stdout.splitlines()]
        assert [v["post_id"] for v in verdicts] == [
            "p1", "p2", "p3", "p4", "p7", "p8", "p9", "p11", "p12",
        ]  # fmt: skip
        assert {v["post_id"] for v in verdicts if v["verdict"] == "remove"} == {"p2", "p7"}
        assert [v["reasons"][0]["label"] for v in verdicts if v["post_id"] == "p8"] == ["vote"]
        assert stored(db) == stored(plain_db)
        assert not default_checkpoint(posts).exists()  # every partition done: forgotten


def test_a_stopped_backfill_resumes_and_decides_each_post_once(
    databases: Databases,
    tmp_path: Path,
    cluster: str,
    write_posts: Callable[..., Path],
    photo_file: Callable[..., Path],
) -> None:
    posts = archive(write_posts, photo_file, tmp_path)
    checkpoint = tmp_path / "run.checkpoint.json"
    with databases.new(folder(tmp_path / "db")) as db:
        vault = tmp_path / f"vault-{abs(hash(db))}"
        with open_engine(db=db, vault=vault) as engine, Client(cluster) as dask:
            first = list(
                backfill(
                    engine, posts, dask=dask, checkpoint=checkpoint, partition_posts=SIZE,
                    stop_after=1,
                )
            )  # fmt: skip
            assert [r.post.id for r in first if isinstance(r, ScanResult)] == [
                "p1", "p2", "p3", "p4",
            ]  # fmt: skip
            assert json.loads(checkpoint.read_text())["done"] == [0]
            # As if the run had stopped while storing the second partition (lines 5 to 8),
            # its post p7 stored and the checkpoint not yet written.
            assert plan_partitions(posts, posts=SIZE).partitions[1].first_line == 5
            [line] = [x for x in posts.read_text().splitlines() if '"p7"' in x]
            list(engine.scan(read_input(write_posts([line], "cut.jsonl"))))
            assert engine.decisions.get("p7").scan_count == 1
        again = scan(db, tmp_path, posts, "--cluster", cluster, "--partition-size", SIZE,
                     "--checkpoint", checkpoint)  # fmt: skip
        assert again.returncode == 1, again.stderr
        assert [json.loads(line)["post_id"] for line in again.stdout.splitlines()] == [
            "p7", "p8", "p9", "p11", "p12",
        ]  # fmt: skip
        assert "resumed: 1 partition of 3 already done (4 posts) were skipped" in again.stderr
        # An id of a partition done before is still known to be repeated.
        assert "line 10, field 'id': post id 'p2' already appeared on line 2" in again.stderr
        decided = stored(db)
        assert set(decided) == {"p1", "p2", "p3", "p4", "p7", "p8", "p9", "p11", "p12"}
        assert {count for _, count in decided.values()} == {1}  # each decided once
        assert not checkpoint.exists()


def test_a_checkpoint_of_another_input_is_refused(
    databases: Databases,
    tmp_path: Path,
    cluster: str,
    write_posts: Callable[..., Path],
    photo_file: Callable[..., Path],
) -> None:
    posts = archive(write_posts, photo_file, tmp_path)
    with databases.new(folder(tmp_path / "db")) as db:
        with open_engine(db=db, vault=tmp_path / "v") as engine, Client(cluster) as dask:
            list(backfill(engine, posts, dask=dask, partition_posts=SIZE, stop_after=1))
        checkpoint = default_checkpoint(posts)
        assert checkpoint.exists()
        with posts.open("a", encoding="utf-8") as handle:
            handle.write('{"id": "p13"}\n')
        changed = scan(db, tmp_path, posts, "--cluster", cluster, "--partition-size", SIZE)
        assert changed.returncode == 2 and changed.stdout == "", changed.stderr
        assert changed.stderr.endswith(
            f"Error: input {str(posts)!r} has changed since checkpoint {str(checkpoint)!r} was "
            "written (its size, head_sha256, tail_sha256, plan_sha256 differ); delete it to scan "
            "the input from the start, or give --checkpoint another path\n"
        )
        other_size = scan(db, tmp_path, posts, "--cluster", cluster, "--partition-size", "5")
        assert other_size.returncode == 2
        assert "written with --partition-size 4, not 5" in other_size.stderr
        with databases.new(folder(tmp_path / "other")) as other:
            elsewhere = scan(other, tmp_path, posts, "--cluster", cluster)
        assert elsewhere.returncode == 2 and "for another database" in elsewhere.stderr
        assert "Traceback" not in changed.stderr + other_size.stderr + elsewhere.stderr


@sqlite_only
def test_a_scheduler_that_cannot_be_reached_is_named(
    database: str, tmp_path: Path, write_posts: Callable[..., Path]
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{probe.getsockname()[1]}"
    posts = write_posts([{"id": "a", "text": "hi"}])
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        result = scan(database, tmp_path, posts, "--cluster", address)
    assert result.returncode == 3 and result.stdout == ""
    assert result.stderr.split("\n")[-2].startswith(
        f"Error: cannot reach the Dask scheduler at {address!r}"
    )
    assert "Traceback" not in result.stderr
    no_address = scan(database, tmp_path, posts, "--cluster", "nowhere")
    assert no_address.returncode == 2
    assert "--cluster 'nowhere' is not a Dask scheduler address" in no_address.stderr


@sqlite_only
def test_cluster_options_that_do_not_fit_are_refused(
    database: str, tmp_path: Path, write_posts: Callable[..., Path]
) -> None:
    posts = write_posts([{"id": "a", "text": "hi"}])
    both = scan(database, tmp_path, posts, "--cluster", "local", "--no-cluster")
    assert both.returncode == 2 and "contradict" in both.stderr
    stdin = scan(database, tmp_path, "-", "--cluster", "local")
    assert stdin.returncode == 2 and "standard input: scan it without --cluster" in stdin.stderr
    remote = scan(database, tmp_path, posts, "--cluster", "tcp://127.0.0.1:1", "--workers", "2")
    assert (
        remote.returncode == 2 and "--workers sets the worker processes of a local" in remote.stderr
    )
    plain = scan(database, tmp_path, posts, "--checkpoint", tmp_path / "c.json")
    assert plain.returncode == 2
    assert "--checkpoint applies to a scan on a cluster; add --cluster local" in plain.stderr


@sqlite_only
def test_a_big_input_is_scanned_on_a_local_cluster_of_processes(
    database: str,
    tmp_path: Path,
    write_posts: Callable[..., Path],
    photo_file: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    posts = write_posts(
        [{"id": f"t{i}", "text": f"post {i}"} for i in range(6)]
        + [{"id": "photo", "media": [{"path": str(photo_file(4, size=(160, 120)))}]}]
    )
    size = posts.stat().st_size
    monkeypatch.setenv("AMBER_CLUSTER_THRESHOLD", str(size))
    result = scan(database, tmp_path, posts, "--workers", "2", "--partition-size", "3")
    assert result.returncode == 0, result.stderr
    assert result.stderr.startswith(
        f"Note: {str(posts)!r} (0 MiB) is scanned on a local Dask cluster, resumable from its "
        "checkpoint; --no-cluster scans it in this process"
    )
    assert [json.loads(line)["post_id"] for line in result.stdout.splitlines()] == [
        *(f"t{i}" for i in range(6)), "photo",
    ]  # fmt: skip
    assert "scanned 7 posts (7 allow)" in result.stderr
    here = scan(database, tmp_path, posts, "--no-cluster")
    assert here.returncode == 0 and "Note:" not in here.stderr
    assert here.stdout == result.stdout
    monkeypatch.setenv("AMBER_CLUSTER_THRESHOLD", str(size + 1))
    small = scan(database, tmp_path, posts)
    assert small.returncode == 0 and "Note:" not in small.stderr


def test_values_computed_ahead_are_taken_only_from_the_engines_types_and_versions(
    engine: Engine,
) -> None:
    posts = [
        parse_post(
            {"id": f"q{i}", "author": f"a{i}", "text": "hello there"}, base=Path("."), source="t"
        )
        for i in range(3)
    ]
    vote = SignalValue("harm_poll", "vote", score=0.99, detail="computed ahead")
    same = PostValues((vote,), stamp(engine.post_signals))
    older = PostValues((vote,), (("harm_poll", 0),))
    found = list(
        engine.decide_hashed([(posts[0], [], same), (posts[1], [], older), (posts[2], [], None)])
    )
    assert [r.post.id for r in found if isinstance(r, ScanResult)] == ["q0", "q1", "q2"]
    taken, again, here = (r for r in found if isinstance(r, ScanResult))
    assert taken.outcome.verdict == "restrict"  # the values given were used as they are
    assert taken.outcome.reasons[0].detail == "computed ahead"
    assert again.outcome.verdict == here.outcome.verdict == "allow"  # computed again here
    assert again.to_json() == here.to_json() | {"post_id": "q1"}
    assert compute_ahead(posts[0], engine.post_signals).values == tuple(
        engine.post_values(posts[0])
    )
