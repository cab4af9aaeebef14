"""``amber scan``: decide about posts and print the decisions as they come."""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from amber.cli.options import (
    DbOption,
    FormatOption,
    PolicyOption,
    SigningKeyOption,
    VaultOption,
    check_format,
    err,
    opened_engine,
    out,
    plural,
)

if TYPE_CHECKING:
    from rich.progress import Progress

    from amber.engine import Engine, ScanResult
    from amber.errors import PostError
    from amber.posts import Post

#: The INPUT that means standard input.
STDIN = "-"


class _LazyProgress:
    """A progress bar on stderr that appears only once a scan has run for a moment."""

    DELAY = 0.5

    def __init__(self, total: int | None) -> None:
        self.total = total
        self.done = 0
        self.started = time.monotonic()
        self.progress: Progress | None = None
        self.task: Any = None

    def advance(self, count: int = 1) -> None:
        self.done += count
        if self.progress is None and time.monotonic() - self.started > self.DELAY:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self.progress = Progress(
                TextColumn("scanning"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=err,
                transient=True,
                redirect_stdout=False,  # stdout carries the JSONL: never capture it
                redirect_stderr=False,
            )
            self.progress.start()
            self.task = self.progress.add_task("scan", total=self.total, completed=self.done)
        elif self.progress is not None:
            self.progress.update(self.task, completed=self.done)

    def start(self, total: int, done: int) -> None:
        """Now that the total is known: ``total`` items, ``done`` of them already."""
        self.total = total
        self.done = done

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()


def _posts(input: Path) -> tuple[Iterator[Post | PostError], int | None]:
    """The posts of ``input`` (``-``: JSONL on standard input) and how many, if known."""
    from amber.posts import count_input, read_input, read_stream

    if str(input) == STDIN:
        return read_stream(sys.stdin.buffer, source="<stdin>", base=Path.cwd()), None
    return read_input(input), count_input(input)


def scan_input(
    engine: Engine,
    input: Path,
    *,
    format: str,
    workers: int | None = None,
) -> tuple[list[ScanResult], int]:
    """Scan ``input``, streaming JSONL or errors as they come; returns results and errors."""
    from amber.errors import PostError

    posts, total = _posts(input)
    progress = _LazyProgress(total)
    results: list[ScanResult] = []
    errors = 0
    try:
        for item in engine.scan(posts, workers=workers, on_item=progress.advance):
            if isinstance(item, PostError):
                errors += 1
                err.print(f"Error: {item.message}")
                continue
            results.append(item)
            if format == "jsonl":
                print(json.dumps(item.to_json(), ensure_ascii=False), flush=True)
    finally:
        progress.stop()
    return results, errors


def backfill_input(
    engine: Engine,
    input: Path,
    *,
    format: str,
    cluster: str,
    workers: int | None = None,
    checkpoint: Path | None = None,
    partition_size: int | None = None,
) -> tuple[list[ScanResult], Counter[str], int]:
    """``scan_input`` on a Dask cluster (``amber.backfill``): JSONL streamed in input
    order; returns the results kept for a table, the verdicts counted and the errors."""
    from amber.backfill import PARTITION_POSTS, Progress, backfill, cluster_client
    from amber.errors import PostError

    progress = _LazyProgress(None)
    done = Progress()
    results: list[ScanResult] = []
    counts: Counter[str] = Counter()
    errors = 0
    try:
        with cluster_client(cluster, workers=workers) as dask:
            found = backfill(
                engine,
                input,
                dask=dask,
                checkpoint=checkpoint,
                partition_posts=partition_size or PARTITION_POSTS,
                replace=True,
                on_item=progress.advance,
                on_start=lambda planned: progress.start(planned.posts, planned.skipped_posts),
                progress=done,
            )
            for item in found:
                if isinstance(item, PostError):
                    errors += 1
                    err.print(f"Error: {item.message}")
                    continue
                counts[item.outcome.verdict.value] += 1
                if format == "jsonl":
                    print(json.dumps(item.to_json(), ensure_ascii=False), flush=True)
                else:
                    results.append(item)
    finally:
        progress.stop()
    if done.skipped:
        err.print(
            f"resumed: {plural(done.skipped, 'partition')} of {done.partitions} already done "
            f"({plural(done.skipped_posts, 'post')}) were skipped"
        )
    return results, counts, errors


ClusterOption = Annotated[
    str | None,
    typer.Option(
        "--cluster",
        help="Scan a JSONL file on a Dask cluster: tcp://SCHEDULER:PORT, or 'local' to "
        "start one here with --workers processes (default for JSONL files of 64 MiB or "
        "more; see docs/backfill.md)",
        show_default=False,
    ),
]


def scan(
    input: Annotated[
        Path,
        typer.Argument(
            help="JSONL file of posts, a folder of media files, or - for JSONL on stdin"
        ),
    ],
    format: FormatOption = "table",
    policy: PolicyOption = None,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Hashing processes (default: one per core); with a local cluster, its "
            "Dask workers",
        ),
    ] = None,
    cluster: ClusterOption = None,
    no_cluster: Annotated[
        bool,
        typer.Option("--no-cluster", help="Scan in this process however big the input (no Dask)"),
    ] = False,
    checkpoint: Annotated[
        Path | None,
        typer.Option(
            help="A cluster scan's checkpoint, to resume it after a stop (default: "
            "<input>.amber-checkpoint.json)",
            show_default=False,
        ),
    ] = None,
    partition_size: Annotated[
        int | None,
        typer.Option(
            min=1, help="Lines of the input per partition of a cluster scan (default 10000)"
        ),
    ] = None,
    db: DbOption = None,
    vault: VaultOption = None,
    signing_key: SigningKeyOption = None,
) -> None:
    """Scan posts: hash media, match banks, apply the policy, store and print decisions.
    Webhook deliveries of the decisions wait in the outbox for amber serve or amber
    webhook deliver. A JSONL file can be scanned on a Dask cluster (--cluster), partition
    by partition, resumable after a stop from its checkpoint: see docs/backfill.md."""
    check_format(format)
    address = _cluster(input, cluster, no_cluster, checkpoint, partition_size, workers)
    with opened_engine(db, vault, policy, signing_key, preflight=True) as engine:
        if address is None:
            results, errors = scan_input(engine, input, format=format, workers=workers)
            counts = Counter(r.outcome.verdict.value for r in results)
        else:
            results, counts, errors = backfill_input(
                engine,
                input,
                format=format,
                cluster=address,
                workers=workers,
                checkpoint=checkpoint,
                partition_size=partition_size,
            )
        waiting = sum(w.pending for w in engine.webhooks.all())
    if format == "table":
        from amber.render import render_results

        out.print(render_results(results))
    summary = ", ".join(f"{n} {v}" for v, n in sorted(counts.items())) or "no posts"
    err.print(
        f"scanned {plural(sum(counts.values()), 'post')} ({summary})"
        + (f"; {plural(errors, 'error')} (see above)" if errors else "")
    )
    if waiting:
        err.print(
            f"{plural(waiting, 'webhook delivery', 'webhook deliveries')} waiting in the "
            "outbox: amber serve sends them, or run 'amber webhook deliver'"
        )
    if errors:
        raise typer.Exit(1)


def _cluster(
    input: Path,
    cluster: str | None,
    no_cluster: bool,
    checkpoint: Path | None,
    partition_size: int | None,
    workers: int | None,
) -> str | None:
    """The Dask cluster to scan ``input`` on (``None``: this process). Raises
    ``UserError`` for options that contradict each other."""
    from amber.backfill import LOCAL, dask_installed, wants_cluster
    from amber.errors import UserError

    if cluster is not None and no_cluster:
        raise UserError("--cluster and --no-cluster contradict each other; give one")
    size = None if cluster is not None or no_cluster else wants_cluster(input)
    if size is not None:
        mib = f"{size / 2**20:,.0f} MiB"
        if dask_installed():
            cluster = LOCAL
            err.print(
                f"Note: {str(input)!r} ({mib}) is scanned on a local Dask cluster, resumable "
                "from its checkpoint; --no-cluster scans it in this process"
            )
        else:
            err.print(
                f"Note: {str(input)!r} ({mib}) could be scanned on a local Dask cluster, "
                "which needs the 'dask' extra: pip install 'amber[dask]'; scanning here"
            )
    if cluster is None:
        given = "--checkpoint" if checkpoint is not None else "--partition-size"
        if checkpoint is not None or partition_size is not None:
            raise UserError(
                f"{given} applies to a scan on a cluster; add --cluster local or "
                "--cluster tcp://SCHEDULER:PORT"
            )
        return None
    if cluster != LOCAL and workers is not None:
        raise UserError(
            f"--workers sets the worker processes of a local cluster; the scheduler at "
            f"{cluster!r} has the workers started for it (dask worker {cluster})"
        )
    if str(input) == STDIN or input.is_dir():
        raise UserError(
            f"--cluster scans a JSONL file; {str(input)!r} is "
            + ("standard input" if str(input) == STDIN else "a folder")
            + ": scan it without --cluster"
        )
    return cluster
