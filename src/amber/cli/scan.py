"""``amber scan``: decide about posts and print the decisions as they come."""

from __future__ import annotations

import json
import sys
import time
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

    def advance(self) -> None:
        self.done += 1
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
        int | None, typer.Option(min=1, help="Hashing processes (default: one per core)")
    ] = None,
    db: DbOption = None,
    vault: VaultOption = None,
    signing_key: SigningKeyOption = None,
) -> None:
    """Scan posts: hash media, match banks, apply the policy, store and print decisions.
    Webhook deliveries of the decisions wait in the outbox for amber serve or amber
    webhook deliver."""
    check_format(format)
    with opened_engine(db, vault, policy, signing_key, preflight=True) as engine:
        results, errors = scan_input(engine, input, format=format, workers=workers)
        waiting = sum(w.pending for w in engine.webhooks.all())
    if format == "table":
        from amber.render import render_results

        out.print(render_results(results))
    counts: dict[str, int] = {}
    for r in results:
        counts[r.outcome.verdict.value] = counts.get(r.outcome.verdict.value, 0) + 1
    summary = ", ".join(f"{n} {v}" for v, n in sorted(counts.items())) or "no posts"
    err.print(
        f"scanned {plural(len(results), 'post')} ({summary})"
        + (f"; {plural(errors, 'error')} (see above)" if errors else "")
    )
    if waiting:
        err.print(
            f"{plural(waiting, 'webhook delivery', 'webhook deliveries')} waiting in the "
            "outbox: amber serve sends them, or run 'amber webhook deliver'"
        )
    if errors:
        raise typer.Exit(1)
