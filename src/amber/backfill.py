"""Backfill: scan an archive of posts on a Dask cluster (``amber scan --cluster``).

The JSONL input is cut into partitions: byte ranges that start and end at line ends, of
``PARTITION_POSTS`` lines each (``plan_partitions``). Each partition is read, parsed and
its media hashed on a Dask worker (``hash_partition``: ``read_stream`` from the
partition's first line number, so errors name ``file line N, field F`` exactly as a plain
scan does, and amber's own ``Hasher`` with the engine's media signal types in the query
role); the worker computes each post's own signal values too (the harm-poll detector:
``amber.post_values``), with the engine's post signal types. This process, the driver,
holds the one ``Engine``: it takes the partitions back in input order and decides their
posts (matching, the policy over the database's state, storage, evidence) in batches
(``Engine.decide_hashed``, what ``Engine.scan`` does once it has hashed), taking the
values the workers computed when the same types at the same versions computed them.
After each partition is decided and stored, a checkpoint (``Checkpoint``, a small JSON
file written atomically) records it, so a run that stopped is resumed by running it again.
See docs/backfill.md.

Dask is imported only here, inside functions: ``pip install 'amber[dask]'``. The engine
is imported only on the driver, so a worker loads no more than reading and hashing need.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from amber.atomic_write import write_atomic
from amber.errors import ExternalError, MissingExtraError, PostError, UserError
from amber.hashing import Hasher, MediaFailure, MediaHashes, worker_count
from amber.identity import DEFAULT_CLIENT
from amber.post_values import PostValues, compute_ahead
from amber.posts import MAX_LINE_BYTES, MEDIA_SUFFIXES, Post, read_stream
from amber.signals import Role, SignalType

if TYPE_CHECKING:
    from distributed import Client

    from amber.engine import Ahead, Engine, ScanResult

log = logging.getLogger("amber.backfill")

#: Lines of the input per partition: one task on a worker, one checkpoint step.
PARTITION_POSTS = 10_000
#: A partition ends early once it holds this many bytes (posts with long texts).
PARTITION_BYTES = 64 * 1024 * 1024
#: A JSONL input of at least this many bytes is scanned on a local Dask cluster unless
#: ``--no-cluster`` is given (about 100,000 to 300,000 posts of a few hundred bytes);
#: ``AMBER_CLUSTER_THRESHOLD`` (bytes) sets another.
CLUSTER_THRESHOLD_BYTES = 64 * 1024 * 1024
#: The checkpoint beside the input when none is named: ``<input>.amber-checkpoint.json``.
CHECKPOINT_SUFFIX = ".amber-checkpoint.json"
#: The bytes at each end of the input whose SHA-256 ties a checkpoint to it.
FINGERPRINT_BYTES = 64 * 1024
#: The checkpoint format; another one is refused.
CHECKPOINT_FORMAT = 1
#: The ``--cluster`` value that starts a cluster on this machine.
LOCAL = "local"
#: The top-level modules that the ``dask`` extra installs.
DASK_PACKAGES = frozenset({"dask", "distributed"})


@dataclass(frozen=True, slots=True)
class Partition:
    """Bytes ``start`` to ``end`` of the input: whole lines, the first of them line
    ``first_line``; ``posts`` of them are not blank."""

    index: int
    start: int
    end: int
    first_line: int
    posts: int


@dataclass(frozen=True, slots=True)
class Plan:
    """An input cut into partitions, and what ties a checkpoint to that input."""

    input: Path
    partitions: tuple[Partition, ...]
    size: int
    head_sha256: str
    tail_sha256: str
    partition_posts: int

    @property
    def posts(self) -> int:
        """The non-blank lines of the input: posts, or errors in their place."""
        return sum(p.posts for p in self.partitions)

    @property
    def digest(self) -> str:
        """SHA-256 of the partitions' bounds: the same input and size give the same."""
        bounds = ";".join(f"{p.start},{p.end},{p.first_line}" for p in self.partitions)
        return hashlib.sha256(bounds.encode()).hexdigest()


def plan_partitions(
    input: Path, *, posts: int = PARTITION_POSTS, max_bytes: int = PARTITION_BYTES
) -> Plan:
    """Cut the JSONL file ``input`` into partitions of ``posts`` lines (fewer when one
    reaches ``max_bytes``), each starting and ending at a line end.

    Raises ``UserError`` if ``input`` cannot be read or ``posts`` is below 1.
    """
    if posts < 1:
        raise UserError(f"a partition must hold at least 1 post, not {posts}")
    partitions: list[Partition] = []
    start = offset = 0
    first = line = 1
    lines = nonblank = 0
    try:
        with input.open("rb") as handle:
            while True:
                data = handle.readline(MAX_LINE_BYTES + 1)
                if not data:
                    break
                offset += len(data)
                blank = not data.strip()
                while not data.endswith(b"\n"):  # a line over the bound: read to its end
                    data = handle.readline(MAX_LINE_BYTES + 1)
                    if not data:
                        break
                    offset += len(data)
                    blank = False
                line += 1
                lines += 1
                nonblank += not blank
                if lines >= posts or offset - start >= max_bytes:
                    partitions.append(Partition(len(partitions), start, offset, first, nonblank))
                    start, first, lines, nonblank = offset, line, 0, 0
            if lines:
                partitions.append(Partition(len(partitions), start, offset, first, nonblank))
            head, tail = _ends(handle, offset)
    except OSError as exc:
        raise UserError(f"cannot read input {str(input)!r}: {exc.strerror or exc}") from None
    return Plan(input, tuple(partitions), offset, head, tail, posts)


def _ends(handle: io.BufferedReader, size: int) -> tuple[str, str]:
    """SHA-256 of the first and of the last ``FINGERPRINT_BYTES`` of an open file."""
    handle.seek(0)
    head = hashlib.sha256(handle.read(FINGERPRINT_BYTES)).hexdigest()
    handle.seek(max(0, size - FINGERPRINT_BYTES))
    tail = hashlib.sha256(handle.read(FINGERPRINT_BYTES)).hexdigest()
    return head, tail


# -- on the workers ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BadLine:
    """A ``PostError`` as plain data, to cross from a worker (an exception whose
    constructor takes keywords does not pickle)."""

    reason: str
    source: str
    line: int | None
    field: str | None

    @classmethod
    def of(cls, error: PostError) -> BadLine:
        return cls(error.reason, error.source, error.line, error.field)

    def error(self) -> PostError:
        return PostError(self.reason, source=self.source, line=self.line, field=self.field)


#: What a worker hands back for each non-blank line of a partition, in order: the post
#: (or its error), its media's values and its own signal values.
Hashed = tuple[Post | BadLine, list[MediaHashes | MediaFailure], PostValues | None]


def _read_partition(file: str, source: str, part: Partition) -> Iterator[Post | PostError]:
    """The posts of ``part`` of the input ``file`` (named ``source`` in errors), media
    paths resolved against the file's folder."""
    path = Path(file)
    with path.open("rb") as handle:
        handle.seek(part.start)
        data = handle.read(part.end - part.start)
    yield from read_stream(
        io.BytesIO(data), source=source, base=path.parent, first_line=part.first_line
    )


def hash_partition(
    file: str, source: str, part: Partition, hasher: Hasher, post_types: Sequence[SignalType]
) -> list[Hashed]:
    """Read, parse and hash one partition (a task on a Dask worker): each post with its
    media's values (or why a file could not be hashed) and the values ``post_types`` (the
    engine's signal types that read a post's words) give for it; each bad line as a
    ``BadLine``."""
    out: list[Hashed] = []
    for item in _read_partition(file, source, part):
        if isinstance(item, PostError):
            out.append((BadLine.of(item), [], None))
        else:
            media = hasher([str(m.file) for m in item.media])
            out.append((item, media, compute_ahead(item, post_types)))
    return out


def partition_ids(file: str, source: str, part: Partition) -> list[tuple[str, int]]:
    """The post ids of a partition already done, with their lines (a resumed run still
    finds an id repeated in a later partition)."""
    return [
        (item.id, item.line or 0)
        for item in _read_partition(file, source, part)
        if isinstance(item, Post)
    ]


# -- the checkpoint ---------------------------------------------------------------------


def default_checkpoint(input: Path) -> Path:
    """Where the checkpoint of ``input`` is kept unless named: beside it."""
    return input.with_name(input.name + CHECKPOINT_SUFFIX)


@dataclass
class Checkpoint:
    """Which partitions of one input are decided and stored, in one database.

    ``resumed``: the file was there when the run started (a run before this one stopped).
    """

    path: Path
    plan: Plan
    database: str
    done: set[int] = field(default_factory=set)
    resumed: bool = False

    @classmethod
    def open(cls, path: Path, plan: Plan, *, database: str) -> Checkpoint:
        """The checkpoint at ``path`` for ``plan`` in ``database`` (an instance id), new
        if there is none. Raises ``UserError`` when it is unreadable, or was written for
        another input, partition size or database."""
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            checkpoint = cls(path, plan, database)
            checkpoint.save()
            return checkpoint
        except OSError as exc:
            raise UserError(f"cannot read checkpoint {str(path)!r}: {exc.strerror}") from None
        try:
            record = json.loads(text)
            if record.get("format") != CHECKPOINT_FORMAT:
                raise ValueError(f"format {record.get('format')!r}")
            done = {int(i) for i in record["done"]}
            wanted = {k: record[k] for k in ("size", "head_sha256", "tail_sha256", "plan_sha256")}
            size, db = int(record["partition_posts"]), str(record["database"])
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise UserError(
                f"checkpoint {str(path)!r} is not an amber backfill checkpoint ({exc}); "
                "delete it to scan the input from the start"
            ) from None
        start_over = "delete it to scan the input from the start, or give --checkpoint another path"
        if db != database:
            raise UserError(
                f"checkpoint {str(path)!r} was written for another database ({db}); {start_over}"
            )
        if size != plan.partition_posts:
            raise UserError(
                f"checkpoint {str(path)!r} was written with --partition-size {size}, not "
                f"{plan.partition_posts}; give --partition-size {size} to resume, or "
                f"{start_over}"
            )
        found = {
            "size": plan.size,
            "head_sha256": plan.head_sha256,
            "tail_sha256": plan.tail_sha256,
            "plan_sha256": plan.digest,
        }
        changed = [k for k in wanted if wanted[k] != found[k]]
        if changed:
            raise UserError(
                f"input {str(plan.input)!r} has changed since checkpoint {str(path)!r} was "
                f"written (its {', '.join(changed)} differ); {start_over}"
            )
        if any(i >= len(plan.partitions) or i < 0 for i in done):
            raise UserError(f"checkpoint {str(path)!r} names partitions the input does not have")
        return cls(path, plan, database, done, resumed=True)

    def touched(self, index: int) -> bool:
        """Might a run before this one have stored some of partition ``index``'s posts?
        Partitions are stored in order, so only the one after the last done can be."""
        return self.resumed and index not in self.done and index <= max(self.done, default=-1) + 1

    def mark(self, index: int) -> None:
        """Record partition ``index`` as decided and stored, durably."""
        self.done.add(index)
        self.save()

    def save(self) -> None:
        """Write the checkpoint atomically (a crash leaves the old one or this one)."""
        record = {
            "format": CHECKPOINT_FORMAT,
            "input": str(self.plan.input.absolute()),
            "size": self.plan.size,
            "head_sha256": self.plan.head_sha256,
            "tail_sha256": self.plan.tail_sha256,
            "partition_posts": self.plan.partition_posts,
            "partitions": len(self.plan.partitions),
            "plan_sha256": self.plan.digest,
            "database": self.database,
            "done": sorted(self.done),
            "updated_at": datetime.now(UTC).isoformat(),
        }
        try:
            write_atomic(self.path, (json.dumps(record, indent=1) + "\n").encode())
        except OSError as exc:
            raise UserError(
                f"cannot write checkpoint {str(self.path)!r}: {exc.strerror or exc}; give "
                "--checkpoint a path in a writable folder"
            ) from None

    def remove(self) -> None:
        """Forget the checkpoint: every partition is done."""
        self.path.unlink(missing_ok=True)


# -- the cluster ------------------------------------------------------------------------


@contextmanager
def cluster_client(address: str, *, workers: int | None = None) -> Iterator[Client]:
    """A Dask client of the scheduler at ``address`` (``tcp://HOST:PORT``), or of a
    cluster of ``workers`` processes (default: one per core) started on this machine for
    ``"local"`` and closed on leaving. How long to wait for a scheduler is Dask's
    ``distributed.comm.timeouts.connect`` (env ``DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT``).

    Raises ``MissingExtraError`` without the ``dask`` extra, ``UserError`` for an address
    that is no address, ``ExternalError`` when the scheduler cannot be reached.
    """
    try:
        from distributed import Client, LocalCluster
    except ModuleNotFoundError as exc:
        MissingExtraError.check(exc, DASK_PACKAGES, "dask")
        raise
    if address == LOCAL:
        count = worker_count() if workers is None else workers
        with (
            LocalCluster(  # type: ignore[no-untyped-call]
                n_workers=count,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                scheduler_kwargs={"dashboard_address": ":0"},  # no fixed port: 8787 may be taken
                silence_logs=logging.ERROR,
            ) as cluster,
            Client(cluster) as client,  # type: ignore[no-untyped-call]
        ):
            yield client
        return
    try:
        client = Client(address, set_as_default=False)  # type: ignore[no-untyped-call]
    except ValueError as exc:
        raise UserError(
            f"--cluster {address!r} is not a Dask scheduler address ({exc}); give "
            "tcp://HOST:PORT, or 'local'"
        ) from None
    except OSError as exc:
        raise ExternalError(
            f"cannot reach the Dask scheduler at {address!r} ({exc}); start it (dask "
            "scheduler) and its workers, or scan on this machine with --cluster local"
        ) from None
    with client:
        yield client


def _workers_of(client: Client) -> int:
    return max(1, len(client.scheduler_info().get("workers", {})))


# -- on the driver ----------------------------------------------------------------------


@dataclass
class Progress:
    """What a backfill has done so far, for progress bars and the summary."""

    partitions: int = 0
    posts: int = 0
    skipped: int = 0
    skipped_posts: int = 0
    decided: int = 0
    stopped: bool = False


def backfill(
    engine: Engine,
    input: Path,
    *,
    dask: Client,
    checkpoint: Path | None = None,
    partition_posts: int = PARTITION_POSTS,
    replace: bool = True,
    client: str = DEFAULT_CLIENT,
    on_item: Callable[[], None] = lambda: None,
    on_start: Callable[[Progress], None] = lambda progress: None,
    progress: Progress | None = None,
    stop_after: int | None = None,
) -> Iterator[ScanResult | PostError]:
    """Scan the JSONL file ``input`` on the cluster of ``dask``: results and errors in
    input order, as ``Engine.scan`` yields them.

    Partitions that ``checkpoint`` (default ``<input>.amber-checkpoint.json``) records as
    done are skipped; ``on_start`` is told how many posts there are and how many of them
    are skipped once the plan is made. The partition a stopped run may have been storing
    is decided without ``replace``, so none of its posts is decided twice. Each partition
    is recorded once decided and stored; the checkpoint is removed once every partition
    is. ``stop_after``: stop after storing that many partitions (a staged run; the
    checkpoint is kept).

    Raises ``UserError`` for an unusable input or checkpoint, ``ExternalError`` when the
    cluster fails a partition.
    """
    if input.suffix.lower() in MEDIA_SUFFIXES or not input.is_file():
        raise UserError(
            f"input {str(input)!r} is not a JSONL file; a cluster scan reads a JSONL file "
            "of posts (scan folders and standard input without --cluster)"
        )
    from amber.engine import ScanResult
    from amber.store.db import instance_id

    progress = Progress() if progress is None else progress
    plan = plan_partitions(input, posts=partition_posts)
    state = Checkpoint.open(
        default_checkpoint(input) if checkpoint is None else checkpoint,
        plan,
        database=instance_id(engine.db),
    )
    file, source = str(input.absolute()), str(input)
    todo = [p for p in plan.partitions if p.index not in state.done]
    progress.partitions = len(plan.partitions)
    progress.skipped = len(plan.partitions) - len(todo)
    progress.posts = plan.posts
    progress.skipped_posts = sum(p.posts for p in plan.partitions if p.index in state.done)
    on_start(progress)
    seen: dict[str, int] = {}
    for ids in _gather(
        dask,
        [
            dask.submit(partition_ids, file, source, p, pure=False)
            for p in plan.partitions
            if p.index in state.done
        ],
    ):
        for post_id, line in ids:
            seen.setdefault(post_id, line)
    hasher = Hasher(engine.media_signals, Role.query)
    [shared, post_types] = dask.scatter(  # type: ignore[no-untyped-call]
        [hasher, list(engine.post_signals)], broadcast=True
    )
    ahead = 2 * _workers_of(dask)
    queue = iter(todo)
    flight: deque[tuple[Partition, Any]] = deque()

    def submit() -> None:
        part = next(queue, None)
        if part is not None:
            flight.append(
                (
                    part,
                    dask.submit(hash_partition, file, source, part, shared, post_types, pure=False),
                )
            )

    for _ in range(ahead):
        submit()
    stored = 0
    while flight:
        part, future = flight.popleft()
        items = _result(future, part, input)
        submit()
        keep = replace and not state.touched(part.index)
        checked = (_unique(item, seen) for item in items)
        decided = engine.decide_hashed(checked, replace=keep, client=client, on_item=on_item)
        for result in decided:
            if isinstance(result, ScanResult):
                progress.decided += 1
            yield result
        state.mark(part.index)
        stored += 1
        if stop_after is not None and stored >= stop_after and flight:
            for _, rest in flight:
                rest.cancel()
            progress.stopped = True
            return
    state.remove()


def _unique(item: Hashed, seen: dict[str, int]) -> Ahead:
    """A worker's item as ``Engine.decide_hashed`` takes it; a post id seen on an earlier
    line of the input is an error there, as ``read_stream`` finds it in one pass."""
    post, hashed, values = item
    if isinstance(post, BadLine):
        return post.error(), hashed, None
    if post.id in seen:
        return (
            PostError(
                f"post id {post.id!r} already appeared on line {seen[post.id]}",
                source=post.source,
                line=post.line,
                field="id",
            ),
            [],
            None,
        )
    seen[post.id] = post.line or 0
    return post, hashed, values


def _result(future: Any, part: Partition, input: Path) -> list[Hashed]:
    """A partition's items from its worker. Raises ``ExternalError`` if the cluster lost
    or failed it."""
    try:
        return list(future.result())
    except OSError as exc:  # the input cannot be read where the worker runs
        raise ExternalError(
            f"a Dask worker could not read partition {part.index} of {str(input)!r} (lines "
            f"from {part.first_line}): {exc}; the input and its media must be readable at "
            "the same paths on every worker (a shared filesystem)"
        ) from exc
    except Exception as exc:  # KilledWorker, a lost scheduler: nothing of it is stored
        raise ExternalError(
            f"the Dask cluster failed partition {part.index} of {str(input)!r} (lines from "
            f"{part.first_line}): {type(exc).__name__}: {exc}; run the same command again to "
            "resume from the checkpoint"
        ) from exc


def _gather(dask: Client, futures: list[Any]) -> list[Any]:
    """Results of ``futures`` in order. Raises ``ExternalError`` if the cluster fails."""
    if not futures:
        return []
    try:
        return list(dask.gather(futures))  # type: ignore[no-untyped-call]
    except Exception as exc:
        raise ExternalError(
            f"the Dask cluster failed reading the partitions already done: "
            f"{type(exc).__name__}: {exc}"
        ) from exc


def cluster_threshold() -> int:
    """Bytes from which a JSONL input is scanned on a local cluster by default:
    ``AMBER_CLUSTER_THRESHOLD``, or ``CLUSTER_THRESHOLD_BYTES``. Raises ``UserError`` for
    a value that is not a whole number of bytes."""
    text = os.environ.get("AMBER_CLUSTER_THRESHOLD")
    if not text:
        return CLUSTER_THRESHOLD_BYTES
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise UserError(
            f"AMBER_CLUSTER_THRESHOLD={text!r} is not a number of bytes; give one such as "
            f"{CLUSTER_THRESHOLD_BYTES}"
        )
    return value


def wants_cluster(input: Path) -> int | None:
    """The size of ``input`` when it is a JSONL file big enough (``cluster_threshold``)
    to scan on a local cluster if no ``--cluster`` is given, else ``None``."""
    if str(input) == "-" or input.suffix.lower() in MEDIA_SUFFIXES:
        return None
    try:
        size = input.stat().st_size if input.is_file() else -1
    except OSError:
        return None
    return size if size >= cluster_threshold() and size > 0 else None


def dask_installed() -> bool:
    """Is the ``dask`` extra installed (without importing it)?"""
    from importlib.util import find_spec

    return all(find_spec(name) is not None for name in DASK_PACKAGES)
