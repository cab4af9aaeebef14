"""``amber consume``: decide the posts of a NATS JetStream stream or a Kafka topic."""

from __future__ import annotations

import shutil
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated
from urllib.parse import urlsplit

import typer

from amber.cli.options import (
    DbOption,
    PolicyOption,
    SigningKeyOption,
    VaultOption,
    err,
    opened_engine,
    plural,
)
from amber.errors import UserError

if TYPE_CHECKING:
    from amber.stream.core import Tally, Transport

SCHEMES = ("nats", "kafka")


def _check(url: str, **given: object) -> str:
    """The URL's scheme, once the options it needs (and only those) are given."""
    scheme = urlsplit(url).scheme
    if scheme not in SCHEMES or not urlsplit(url).netloc:
        raise UserError(f"{url!r} is not a broker URL; use nats://HOST:PORT or kafka://HOST:PORT")
    needs = {"nats": ("stream", "subject"), "kafka": ("topic", "group")}
    for option in needs[scheme]:
        if not given[option]:
            raise UserError(f"{scheme}:// needs --{option}")
    for other, options in needs.items():
        for option in options:
            if other != scheme and given[option]:
                raise UserError(f"--{option} is for {other}:// URLs, not {scheme}://")
    return scheme


def _outputs(source: str, results: str | None, dead_letter: str | None) -> tuple[str, str]:
    """Where results and dead letters go: as given, else ``<source>.results`` and
    ``<source>.dead``. Raises ``UserError`` for a wildcard subject without both."""
    if (not results or not dead_letter) and any(c in source for c in "*>"):
        raise UserError(
            f"--subject {source!r} has wildcards: give --results and --dead-letter subjects"
        )
    return results or f"{source}.results", dead_letter or f"{source}.dead"


def _open(
    url: str,
    scheme: str,
    *,
    source: str,
    place: str,
    durable: str,
    results: str | None,
    dead_letter: str | None,
    ack_wait: float,
) -> Transport:
    """The transport for ``url``: posts from ``source`` (a subject of stream ``place``,
    or a topic read by group ``place``); results and dead letters default to
    ``<source>.results`` and ``<source>.dead``."""
    results, dead = _outputs(source, results, dead_letter)
    if scheme == "nats":
        from amber.stream.nats import NatsTransport

        return NatsTransport(
            url,
            stream=place,
            subject=source,
            durable=durable,
            results=results,
            dead=dead,
            ack_wait=ack_wait,
        )
    from amber.stream.kafka import KafkaTransport

    return KafkaTransport(url, topic=source, group=place, results=results, dead=dead)


def consume(
    url: Annotated[str, typer.Argument(help="nats://HOST:PORT or kafka://HOST:PORT")],
    stream: Annotated[
        str | None, typer.Option("--stream", help="JetStream stream of the posts (nats://)")
    ] = None,
    subject: Annotated[
        str | None, typer.Option("--subject", help="Subject of the posts in it (nats://)")
    ] = None,
    durable: Annotated[
        str,
        typer.Option(
            "--durable", help="Durable consumer name; processes with one name share the posts"
        ),
    ] = "amber",
    topic: Annotated[
        str | None, typer.Option("--topic", help="Topic of the posts (kafka://)")
    ] = None,
    group: Annotated[
        str | None,
        typer.Option("--group", help="Consumer group; processes in one group share the posts"),
    ] = None,
    results: Annotated[
        str | None,
        typer.Option(
            "--results",
            help="Subject or topic for the decisions (default: <subject or topic>.results)",
            show_default=False,
        ),
    ] = None,
    dead_letter: Annotated[
        str | None,
        typer.Option(
            "--dead-letter",
            help="Subject or topic for posts that cannot be decided (default: <subject or "
            "topic>.dead)",
            show_default=False,
        ),
    ] = None,
    workers: Annotated[
        int, typer.Option("--workers", min=1, help="Consumer processes on this machine")
    ] = 1,
    max_in_flight: Annotated[
        int,
        typer.Option("--max-in-flight", min=1, help="Messages in hand at once per process"),
    ] = 64,
    max_deliver: Annotated[
        int,
        typer.Option(
            "--max-deliver", min=1, help="Deliveries of a failing post before it is dead-lettered"
        ),
    ] = 5,
    retry_delay: Annotated[
        float,
        typer.Option(
            "--retry-delay", min=0.0, help="Seconds before a failed post is retried (doubling)"
        ),
    ] = 5.0,
    ack_wait: Annotated[
        float,
        typer.Option(
            "--ack-wait",
            min=1.0,
            help="JetStream: seconds before an unacknowledged post is delivered again "
            "(set when the durable is created)",
        ),
    ] = 30.0,
    metrics: Annotated[
        str | None,
        typer.Option("--metrics", help="Serve Prometheus metrics on HOST:PORT", show_default=False),
    ] = None,
    until_idle: Annotated[
        bool,
        typer.Option("--until-idle", help="Stop once the stream has nothing left to decide"),
    ] = False,
    base: Annotated[
        Path | None,
        typer.Option(
            "--base", help="Folder relative media paths are read from (default: the current one)"
        ),
    ] = None,
    policy: PolicyOption = None,
    db: DbOption = None,
    vault: VaultOption = None,
    signing_key: SigningKeyOption = None,
) -> None:
    """Decide posts from a NATS JetStream stream or a Kafka topic and publish each
    decision (the amber scan --format jsonl line) to a results subject or topic.
    Acknowledges a post only once its decision and evidence are stored; SIGTERM drains."""
    given = {"stream": stream, "subject": subject, "topic": topic, "group": group}
    scheme = _check(url, **given)
    _outputs((subject if scheme == "nats" else topic) or "", results, dead_letter)
    if workers > 1:
        _run_workers(
            url,
            workers,
            metrics=metrics,
            options={
                **{f"--{k}": v for k, v in given.items()},
                "--durable": durable if scheme == "nats" else None,
                "--results": results,
                "--dead-letter": dead_letter,
                "--max-in-flight": str(max_in_flight),
                "--max-deliver": str(max_deliver),
                "--retry-delay": str(retry_delay),
                "--ack-wait": str(ack_wait),
                "--base": str(base.resolve()) if base else None,
                "--policy": str(policy) if policy else None,
                "--db": db,
                "--vault": str(vault) if vault else None,
                "--signing-key": str(signing_key) if signing_key else None,
            },
            until_idle=until_idle,
        )
        return

    from amber.stream.core import Settings
    from amber.stream.core import consume as run
    from amber.stream.metrics import build_metrics, serve_metrics, worker_metrics

    recorder = worker_metrics()
    if metrics is not None:
        serve_metrics(metrics)
        recorder = build_metrics()
    settings = Settings(
        max_in_flight=max_in_flight,
        max_deliver=max_deliver,
        retry_delay=retry_delay,
        base=(base or Path.cwd()).resolve(),
        until_idle=until_idle,
    )
    with opened_engine(db, vault, policy, signing_key, preflight=True) as engine:
        transport = _open(
            url,
            scheme,
            source=(subject if scheme == "nats" else topic) or "",
            place=(stream if scheme == "nats" else group) or "",
            durable=durable,
            results=results,
            dead_letter=dead_letter,
            ack_wait=ack_wait,
        )
        stop = threading.Event()
        signalled: list[int] = []

        def drain(signum: int, _frame: FrameType | None) -> None:
            # A second signal may arrive while the first one's handler is inside
            # stop.set(), whose lock is not re-entrant: only the first one touches it.
            if signalled:
                return
            signalled.append(signum)
            err.print(f"{signal.Signals(signum).name}: finishing the posts in hand")
            stop.set()

        previous = {s: signal.signal(s, drain) for s in (signal.SIGTERM, signal.SIGINT)}
        _drain_when_orphaned(stop)
        err.print(f"consuming {transport.description}")
        try:
            tally = run(
                engine,
                transport,
                settings=settings,
                stop=stop,
                metrics=recorder,
                on_message=err.print,
            )
        finally:
            try:
                transport.close()
            finally:
                for signum, handler in previous.items():
                    signal.signal(signum, handler)
    err.print(_summary(tally))


def _drain_when_orphaned(stop: threading.Event) -> None:
    """In a worker of ``--workers N``: drain and stop if the parent process dies (it
    was killed: nothing passes its signals on any more)."""
    import os

    from amber.stream.workers import PARENT_ENV

    parent = os.environ.get(PARENT_ENV)
    if parent is None:
        return

    def watch() -> None:
        while not stop.wait(1.0):
            if str(os.getppid()) != parent:
                err.print("the parent process is gone: finishing the posts in hand")
                stop.set()

    threading.Thread(target=watch, name="amber-orphan-watch", daemon=True).start()


def _summary(tally: Tally) -> str:
    """``decided 12 posts (10 allow, 2 restrict); 1 dead letter; 3 retries``."""
    verdicts = ", ".join(f"{n} {v}" for v, n in sorted(tally.verdicts.items()))
    line = f"decided {plural(tally.decided, 'post')}" + (f" ({verdicts})" if verdicts else "")
    if tally.dead:
        line += f"; {plural(tally.dead, 'dead letter')}"
    if tally.retries:
        line += f"; {plural(tally.retries, 'retry', 'retries')}"
    return line


def _run_workers(
    url: str,
    count: int,
    *,
    metrics: str | None,
    options: dict[str, str | None],
    until_idle: bool,
) -> None:
    """Run ``count`` worker processes of this command; exit with the worst exit code."""
    from amber.stream.metrics import MULTIPROC_ENV, serve_workers_metrics
    from amber.stream.workers import run_workers

    env = {}
    if metrics is not None:
        env[MULTIPROC_ENV] = serve_workers_metrics(metrics)
    args = ["consume", url, "--workers", "1"]
    for option, value in options.items():
        if value is not None:
            args += [option, value]
    if until_idle:
        args.append("--until-idle")
    err.print(f"consuming {url} with {count} worker processes")
    try:
        code = run_workers(args, count, env=env, on_message=err.print)
    finally:
        if MULTIPROC_ENV in env:  # the workers' metric files
            shutil.rmtree(env[MULTIPROC_ENV], ignore_errors=True)
    if code:
        raise typer.Exit(code)
