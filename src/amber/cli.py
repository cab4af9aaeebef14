"""The ``amber`` command line: parse arguments, make one library call, render the result.

Data goes to stdout; messages, errors and progress to stderr. Every error is one line,
``Error: <message>``, with no traceback unless ``--debug`` is given.

Exit codes: 0 done; 1 done, but some posts or files failed (each was reported);
2 bad input or arguments; 3 something outside amber failed.
"""

from __future__ import annotations

import getpass
import json
import os
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import sqlalchemy as sa
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from amber import __version__
from amber.banks import BankAction, read_csv_text
from amber.engine import Engine, ScanResult, default_retention, default_vault, open_engine
from amber.errors import AmberError, ExternalError, PostError, UserError
from amber.evidence.bag import export_bag, verify_bag
from amber.evidence.vault import ACTOR, Vault
from amber.evidence.verify import verify_vault
from amber.posts import count_input, read_input
from amber.store.db import database_failed
from amber.tokens import parse_scopes

app = typer.Typer(
    help="amber: stop interactive-atrocity posts, catch re-uploads by PDQ, keep the evidence.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
bank_app = typer.Typer(
    help="Banks of known content: create, add, import, export, list.", no_args_is_help=True
)
app.add_typer(bank_app, name="bank")

out = Console(highlight=False, soft_wrap=True)
# Messages carry user data (post ids, paths, labels): never read as rich markup, and one
# record per line even when stderr is piped.
err = Console(stderr=True, highlight=False, markup=False, soft_wrap=True)

DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="SQLite file or database URL (env AMBER_DB, default ./amber.db)",
        show_default=False,
    ),
]
VaultOption = Annotated[
    Path | None,
    typer.Option(
        "--vault",
        help="Evidence vault folder (env AMBER_VAULT, default ./amber-vault)",
        show_default=False,
    ),
]
PolicyOption = Annotated[
    Path | None,
    typer.Option(
        "--policy", help="Policy TOML file (default: the built-in policy)", show_default=False
    ),
]
VERDICT_STYLE = {
    "allow": "green",
    "review": "yellow",
    "restrict": "bold dark_orange",
    "remove": "bold red",
}


@contextmanager
def _engine(db: str | None, vault: Path | None, policy: Path | None = None) -> Any:
    engine = open_engine(db=db, vault=vault, policy=policy)
    try:
        yield engine
    finally:
        engine.close()


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
) -> None:
    """amber command line."""


@app.command()
def version() -> None:
    """Print amber's version."""
    out.print(__version__)


# -- banks -------------------------------------------------------------------------------


@bank_app.command("create")
def bank_create(
    name: str,
    action: Annotated[BankAction, typer.Option(help="What a match to this bank means.")] = (
        BankAction.remove
    ),
    label: Annotated[str | None, typer.Option(help="Label for matches (default: the name)")] = None,
    threshold: Annotated[int, typer.Option(help="Largest PDQ distance that matches (0-63).")] = 31,
    db: DbOption = None,
    vault: VaultOption = None,
) -> None:
    """Create a bank."""
    with _engine(db, vault) as engine:
        bank = engine.banks.create(name, action=action, label=label, threshold=threshold)
    err.print(
        f"created bank {bank.name!r}: action {bank.action}, label {bank.label!r}, "
        f"threshold {bank.threshold}"
    )


@bank_app.command("add")
def bank_add(
    name: str,
    paths: Annotated[
        list[Path], typer.Argument(help="Image files or folders; each file one entry.")
    ],
    min_quality: Annotated[
        int | None,
        typer.Option(
            "--min-quality",
            min=0,
            max=100,
            help="Refuse files with a hash of lower quality (PDQ: 0-100).",
        ),
    ] = None,
    db: DbOption = None,
    vault: VaultOption = None,
) -> None:
    """Hash image files into a bank (folders are walked)."""
    with _engine(db, vault) as engine:
        result = engine.banks.add_files(name, paths, min_quality=min_quality)
    for failure in result.failures:
        err.print(f"Error: {failure.path}: {failure.reason}")
    for path in result.duplicates:
        err.print(f"skipped {path}: already in bank {name!r}")
    for weak in result.refused:
        err.print(
            f"refused {weak.path}: {weak.signal_type} quality {weak.quality} is below "
            f"--min-quality {weak.minimum}"
        )
    for weak in result.weak:
        err.print(
            f"warning: {weak.path}: {weak.signal_type} quality {weak.quality} is below the "
            f"policy's minimum {weak.minimum}; this hash will never match"
        )
    err.print(
        f"added {_plural(len(result.added), 'entry', 'entries')} to bank {name!r}"
        + (f"; {len(result.failures)} files failed" if result.failures else "")
        + (f"; {len(result.refused)} refused as too weak" if result.refused else "")
    )
    if result.failures:
        raise typer.Exit(1)


@bank_app.command("import")
def bank_import(
    name: str,
    file: Path,
    db: DbOption = None,
    vault: VaultOption = None,
) -> None:
    """Import CSV rows signal_type,signal[,label] (all or nothing)."""
    text = read_csv_text(file)
    with _engine(db, vault) as engine:
        result = engine.banks.import_csv(name, text, source=str(file))
    err.print(
        f"imported {_plural(result.added, 'entry', 'entries')} into bank {name!r}"
        + (f"; {result.duplicates} already there" if result.duplicates else "")
    )


@bank_app.command("export")
def bank_export(
    name: str,
    file: Annotated[Path | None, typer.Argument(help="Output CSV (default: stdout)")] = None,
    db: DbOption = None,
    vault: VaultOption = None,
) -> None:
    """Export a bank as CSV rows signal_type,signal,label."""
    with _engine(db, vault) as engine:
        if file is None:
            count = engine.banks.export_csv(name, sys.stdout)
        else:
            try:
                with file.open("w", encoding="utf-8", newline="") as handle:
                    count = engine.banks.export_csv(name, handle)
            except OSError as exc:
                raise UserError(f"cannot write {str(file)!r}: {exc.strerror}") from None
    err.print(f"exported {count} rows from bank {name!r}")


@bank_app.command("list")
def bank_list(
    format: Annotated[str, typer.Option("--format", help="table or jsonl")] = "table",
    db: DbOption = None,
    vault: VaultOption = None,
) -> None:
    """List banks with their action, label, threshold and size."""
    _check_format(format)
    with _engine(db, vault) as engine:
        banks = engine.banks.all()
    if format == "jsonl":
        for b in banks:
            print(
                json.dumps(
                    {
                        "name": b.name,
                        "label": b.label,
                        "action": b.action.value,
                        "threshold": b.threshold,
                        "entries": b.entries,
                        "created_at": b.created_at.isoformat(),
                    }
                )
            )
        return
    table = Table("bank", "action", "label", "threshold", "entries", "created")
    for b in banks:
        table.add_row(
            Text(b.name),
            b.action.value,
            Text(b.label),
            str(b.threshold),
            str(b.entries),
            b.created_at.strftime("%Y-%m-%d %H:%M"),
        )
    out.print(table)


# -- scan --------------------------------------------------------------------------------


def _plural(count: int, word: str, many: str | None = None) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {many or word + 's'}"


def _check_format(format: str) -> None:
    if format not in ("table", "jsonl"):
        raise UserError(f"--format {format!r} is unknown; use table or jsonl")


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


def scan_input(
    engine: Engine,
    input: Path,
    *,
    format: str,
    workers: int | None = None,
) -> tuple[list[ScanResult], int]:
    """Scan ``input``, streaming JSONL or errors as they come; returns results and errors."""
    progress = _LazyProgress(count_input(input))
    results: list[ScanResult] = []
    errors = 0
    try:
        for item in engine.scan(read_input(input), workers=workers, on_item=progress.advance):
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


def render_results(results: list[ScanResult]) -> Table:
    """A table of scan results for people."""
    table = Table("post", "verdict", "why", "actions", expand=False)
    for result in results:
        verdict = result.outcome.verdict.value
        why = "\n".join(_describe(r.to_json()) for r in result.outcome.reasons) or "-"
        table.add_row(
            Text(result.post.id),
            Text(verdict, style=VERDICT_STYLE[verdict]),
            Text(why),
            Text(", ".join(result.outcome.actions) or "-"),
        )
    return table


def _describe(reason: dict[str, Any]) -> str:
    """One line for a person: 'pdq: bank 'b' (label), distance 8, quality 100 [view]'."""
    parts = [f"{reason['signal']}:"]
    if "bank" in reason:
        parts.append(f"bank {reason['bank']!r} ({reason.get('label')})")
    if reason["signal"] == "pdq" and "distance" in reason:
        parts.append(f"distance {reason['distance']}, quality {reason.get('quality')}")
    if "score" in reason:
        parts.append(f"score {reason['score']:.2f}")
    if reason.get("detail"):
        parts.append(f"- {reason['detail']}")
    return " ".join(parts)


@app.command()
def scan(
    input: Annotated[Path, typer.Argument(help="JSONL file of posts, or a folder of media files")],
    format: Annotated[str, typer.Option("--format", help="table or jsonl")] = "table",
    policy: PolicyOption = None,
    workers: Annotated[
        int | None, typer.Option(min=1, help="Hashing processes (default: one per core)")
    ] = None,
    db: DbOption = None,
    vault: VaultOption = None,
) -> None:
    """Scan posts: hash media, match banks, apply the policy, store and print decisions."""
    _check_format(format)
    with _engine(db, vault, policy) as engine:
        results, errors = scan_input(engine, input, format=format, workers=workers)
    if format == "table":
        out.print(render_results(results))
    counts: dict[str, int] = {}
    for r in results:
        counts[r.outcome.verdict.value] = counts.get(r.outcome.verdict.value, 0) + 1
    summary = ", ".join(f"{n} {v}" for v, n in sorted(counts.items())) or "no posts"
    err.print(
        f"scanned {_plural(len(results), 'post')} ({summary})"
        + (f"; {_plural(errors, 'error')} (see above)" if errors else "")
    )
    if errors:
        raise typer.Exit(1)


# -- tokens ------------------------------------------------------------------------------

harm_poll_app = typer.Typer(
    help="The harm-poll detector: explain a text, list and check its lexicons.",
    no_args_is_help=True,
)
app.add_typer(harm_poll_app, name="harm-poll")


@harm_poll_app.command("explain")
def harm_poll_explain(
    text: Annotated[str, typer.Argument(help="The post's text ('' for a poll alone)")],
    question: Annotated[str | None, typer.Option("--question", help="Poll question")] = None,
    option: Annotated[
        list[str] | None, typer.Option("--option", help="Poll option (repeat for each)")
    ] = None,
    format: Annotated[str, typer.Option("--format", help="table or json")] = "table",
    policy: PolicyOption = None,
) -> None:
    """Show the language found, every cue and why the score and verdict are what they are."""
    from amber.policy import load_policy
    from amber.signals.harm_poll import explain_text

    if format not in ("table", "json"):
        raise UserError(f"unknown format {format!r}; use table or json")
    result, outcome = explain_text(
        text, question=question, options=option or (), policy=load_policy(policy)
    )
    if format == "json":
        data = result.to_json()
        data["verdict"] = outcome.verdict.value
        data["rules"] = outcome.rules
        data["actions"] = outcome.actions
        print(json.dumps(data, ensure_ascii=False))
        return
    guess = result.guess
    out.print(Text(f"language: {guess.describe() if guess else '-'}"))
    if guess is not None and guess.candidates:
        found = ", ".join(f"{c} {p:.2f}" for c, p in guess.candidates)
        out.print(Text(f"fastText:  {found}"))
    table = Table("cue", "phrase", "language", "weight", title=None, show_edge=False)
    for c in (*result.cues, *result.dampeners):
        phrase = " ".join(c.phrase.split()) + (" (quoted or reported)" if c.quoted else "")
        table.add_row(c.name, Text(phrase), c.language, f"{c.weight:+.2f}")
    if result.cues or result.dampeners:
        out.print(table)
    else:
        out.print("no cues")
    for step in result.steps:
        out.print(Text(step))
    kind = result.kind.value if result.kind and result.score > 0 else "none"
    verdict = outcome.verdict.value
    rules = ", ".join(outcome.rules) or "none"
    out.print(
        Text(f"kind {kind}, score {result.score:.2f} -> {verdict} (rules: {rules})"),
        style=VERDICT_STYLE[verdict],
    )


@harm_poll_app.command("languages")
def harm_poll_languages(
    check: Annotated[
        Path | None,
        typer.Option("--check", help="Validate a lexicon file (an edit to review) instead"),
    ] = None,
    format: Annotated[str, typer.Option("--format", help="table or jsonl")] = "table",
) -> None:
    """The lexicons amber has: language, coverage, entries, stemmer, reviewers."""
    from amber.harm_poll.lexicon import check_file, load

    _check_format(format)
    lexicons = [check_file(check)] if check is not None else list(load())
    rows: list[dict[str, Any]] = [
        {
            "language": lex.language,
            "name": lex.name,
            "coverage": lex.coverage.value,
            "entries": sum(len(v) for v in lex.entries.values()),
            "stemmer": lex.stemmer,
            "reviewers": [r["name"] for r in lex.provenance.get("reviewers", [])],
            "source": lex.source,
        }
        for lex in lexicons
    ]
    if format == "jsonl":
        for row in rows:
            print(json.dumps(row, ensure_ascii=False))
        return
    table = Table("language", "name", "coverage", "entries", "stemmer", "reviewers")
    for row in rows:
        table.add_row(
            row["language"],
            row["name"],
            row["coverage"],
            str(row["entries"]),
            row["stemmer"] or "-",
            ", ".join(row["reviewers"]) or "not yet reviewed",
        )
    out.print(table)
    if check is not None:
        err.print(f"{check}: valid; every entry compiles")


token_app = typer.Typer(
    help="API tokens for amber serve: create, list, revoke.", no_args_is_help=True
)
app.add_typer(token_app, name="token")


@token_app.command("create")
def token_create(
    name: Annotated[str, typer.Option("--name", help="Who or what uses the token")],
    scopes: Annotated[str, typer.Option("--scopes", help="Comma list: ingest,review,admin")],
    db: DbOption = None,
    vault: VaultOption = None,
) -> None:
    """Create a token; the secret is printed once (stdout) and stored only as a hash."""
    with _engine(db, vault) as engine:
        token, secret = engine.tokens.create(name, parse_scopes(scopes))
    print(secret)
    err.print(
        f"token {token.name!r} with scopes {', '.join(sorted(token.scopes))}; "
        "keep the secret now: amber cannot show it again"
    )


@token_app.command("list")
def token_list(db: DbOption = None, vault: VaultOption = None) -> None:
    """List tokens (names, scopes, state; never secrets)."""
    with _engine(db, vault) as engine:
        tokens = engine.tokens.all()
    table = Table("name", "scopes", "created", "state")
    for t in tokens:
        table.add_row(
            Text(t.name),
            ", ".join(sorted(t.scopes)),
            t.created_at.strftime("%Y-%m-%d %H:%M"),
            "revoked" if t.revoked_at else "live",
        )
    out.print(table)


@token_app.command("revoke")
def token_revoke(name: str, db: DbOption = None, vault: VaultOption = None) -> None:
    """Revoke a token by name."""
    with _engine(db, vault) as engine:
        engine.tokens.revoke(name)
    err.print(f"token {name!r} revoked")


# -- evidence ----------------------------------------------------------------------------

evidence_app = typer.Typer(
    help="The evidence vault: list, verify, export bags, legal holds, retention.",
    no_args_is_help=True,
)
app.add_typer(evidence_app, name="evidence")
ActorOption = Annotated[
    str | None, typer.Option("--actor", help="Who does this, for the custody log (default: you)")
]


def _vault_path(vault: Path | None) -> Path:
    return default_vault() if vault is None else vault


def _open_vault(vault: Path | None) -> Vault:
    path = _vault_path(vault)
    if not (path / "vault.json").exists():
        raise UserError(
            f"no evidence vault at {str(path)!r}; amber creates it when a scan "
            "first keeps evidence (set --vault or AMBER_VAULT)"
        )
    return Vault.open(path, retention=default_retention())


def _actor(actor: str | None) -> str:
    return actor or f"{getpass.getuser()} via {ACTOR}"


@evidence_app.command("list")
def evidence_list(
    format: Annotated[str, typer.Option("--format", help="table or jsonl")] = "table",
    vault: VaultOption = None,
) -> None:
    """What the vault holds: verdict, hashes, retention date, hold."""
    _check_format(format)
    items = sorted(_open_vault(vault).items().values(), key=lambda i: i.preserved_at)
    if format == "jsonl":
        for item in items:
            print(
                json.dumps(
                    {
                        "post_id": item.post_id,
                        "verdict": item.verdict,
                        "preserved_at": item.preserved_at.isoformat(),
                        "retain_until": item.retain_until.isoformat(),
                        "hold": item.hold,
                        "deleted": item.deleted,
                        "objects": item.objects,
                    },
                    ensure_ascii=False,
                )
            )
        return
    table = Table("post", "verdict", "preserved", "retain until", "hold", "media sha256")
    for item in items:
        media = "\n".join(m["sha256"][:16] + "…" for m in item.objects.get("media", []))
        table.add_row(
            Text(item.post_id),
            item.verdict,
            item.preserved_at.strftime("%Y-%m-%d %H:%M"),
            "deleted" if item.deleted else item.retain_until.strftime("%Y-%m-%d"),
            Text(item.hold or "-"),
            media or "-",
        )
    out.print(table)


@evidence_app.command("verify")
def evidence_verify(vault: VaultOption = None) -> None:
    """Recompute every hash, the tree, every signature; exit 0 only if all hold."""
    path = _vault_path(vault)
    if not (path / "vault.json").exists() and not (path / "log").exists():
        raise UserError(f"no evidence vault at {str(path)!r} (set --vault or AMBER_VAULT)")
    report = verify_vault(path)
    for note in report.notes:
        err.print(f"note: {note}")
    for problem in report.problems:
        err.print(f"BROKEN: {problem}")
    summary = (
        f"{report.records} records, {report.checkpoints} checkpoints, "
        f"{report.objects} objects, {report.items} items held"
    )
    if report.ok:
        out.print(f"vault {path} verified: {summary}")
        return
    err.print(f"vault {path} FAILED verification ({len(report.problems)} problems): {summary}")
    raise typer.Exit(1)


@evidence_app.command("export")
def evidence_export(
    post_id: str,
    out_dir: Annotated[Path, typer.Option("--out", help="New folder for the bag")],
    actor: ActorOption = None,
    vault: VaultOption = None,
) -> None:
    """Export one post's evidence as a BagIt bag (verify it with verify-bag)."""
    bag = export_bag(
        _open_vault(vault),
        post_id,
        out_dir,
        actor=_actor(actor),
        contact=os.environ.get("AMBER_CONTACT"),
        organization=os.environ.get("AMBER_ORGANIZATION"),
    )
    out.print(f"exported {post_id!r} to {bag}")


@evidence_app.command("verify-bag")
def evidence_verify_bag(
    bag: Path,
    key: Annotated[
        str | None,
        typer.Option("--key", help="The verifier key the platform published; must match"),
    ] = None,
) -> None:
    """Verify a bag offline: fixity, inclusion proofs, checkpoint signature."""
    report = verify_bag(bag, expected_key=key)
    for problem in report.problems:
        err.print(f"BROKEN: {problem}")
    if not report.ok:
        err.print(f"bag {bag} FAILED verification")
        raise typer.Exit(1)
    out.print(
        f"bag {bag} verified: post {report.post_id!r}, {report.records} custody "
        f"records proven in a tree of {report.tree_size} signed by key {report.key}"
    )


@evidence_app.command("hold")
def evidence_hold(
    post_id: str,
    reason: Annotated[str, typer.Option("--reason", help="Why, e.g. the order's reference")],
    actor: ActorOption = None,
    vault: VaultOption = None,
) -> None:
    """Place a legal hold: the item is kept past its retention date."""
    _open_vault(vault).hold(post_id, reason=reason, actor=_actor(actor))
    err.print(f"hold placed on {post_id!r}")


@evidence_app.command("release")
def evidence_release(
    post_id: str,
    reason: Annotated[str, typer.Option("--reason", help="Why the hold ends")] = "released",
    actor: ActorOption = None,
    vault: VaultOption = None,
) -> None:
    """Lift a legal hold."""
    _open_vault(vault).release(post_id, reason=reason, actor=_actor(actor))
    err.print(f"hold lifted on {post_id!r}")


@evidence_app.command("expire")
def evidence_expire(actor: ActorOption = None, vault: VaultOption = None) -> None:
    """Delete items past their retention date (never those under hold); log each deletion."""
    deleted = _open_vault(vault).expire(actor=_actor(actor))
    for post_id in deleted:
        err.print(f"deleted expired evidence of {post_id!r}")
    err.print(f"{_plural(len(deleted), 'item')} expired")


@evidence_app.command("recover")
def evidence_recover(vault: VaultOption = None) -> None:
    """Repair what a crash left (a partial record, an unsigned tail, unfinished deletions)."""
    vault_ = _open_vault(vault)
    for step in vault_.recovered:
        err.print(step)
    err.print("nothing to repair" if not vault_.recovered else "recovered")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on", min=1, max=65535)] = 8080,
    media_root: Annotated[
        Path | None,
        typer.Option("--media-root", help="Folder JSON posts may name media under"),
    ] = None,
    max_body: Annotated[
        int, typer.Option("--max-body", help="Largest request body in bytes", min=1024)
    ] = 64 * 1024 * 1024,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            help="Worker processes sharing the port, the database, the vault and the index",
            min=1,
        ),
    ] = 1,
    policy: PolicyOption = None,
    db: DbOption = None,
    vault: VaultOption = None,
) -> None:
    """Run the HTTP API (OpenAPI docs at /docs) on the embedded default state."""
    import uvicorn

    from amber.api.app import SETTINGS_ENV, create_app

    with _engine(db, vault, policy) as engine:  # migrate and check the settings once, here
        err.print(
            f"amber {__version__} serving on http://{host}:{port} (docs at /docs)"
            + (f" with {workers} worker processes" if workers > 1 else "")
        )
        if workers == 1:
            api = create_app(engine, media_root=media_root, max_body=max_body)
            uvicorn.run(api, host=host, port=port, log_level="warning")
            return
        settings = {
            "db": str(engine.db.url.render_as_string(hide_password=False)),
            "vault": str(engine.vault_path.resolve()),
            "policy": None if policy is None else str(policy.resolve()),
            "media_root": None if media_root is None else str(media_root.resolve()),
            "max_body": max_body,
        }
    os.environ[SETTINGS_ENV] = json.dumps(settings)
    metrics = None
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):  # where workers count for /v1/metrics
        metrics = tempfile.mkdtemp(prefix="amber-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics
    try:
        uvicorn.run(
            "amber.api.app:app_from_env",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level="warning",
        )
    finally:
        if metrics is not None:
            shutil.rmtree(metrics, ignore_errors=True)


@app.command()
def demo(
    dir: Annotated[Path, typer.Option("--dir", help="Folder for the demo's files")] = Path(
        "amber-demo"
    ),
) -> None:
    """Walk through the case: a bank of known images, a result post and its re-uploads."""
    from amber.demo import run_demo

    run_demo(dir, out=out, err=err)


def main() -> None:
    """Entry point: run the app with one error handler for every command.

    Usage errors are typer's own (exit 2, with the usage line); amber's errors print one
    ``Error:`` line and exit with the code their class carries.
    """
    debug = "--debug" in sys.argv
    try:
        app()
    except AmberError as exc:
        if debug:
            raise
        err.print(f"Error: {exc.message}")
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except sa.exc.OperationalError as exc:  # the database went away after it was opened
        if debug:
            raise
        err.print(f"Error: {database_failed(exc)}")
        sys.exit(ExternalError.exit_code)
    except OSError as exc:  # the system refused: disk full, permissions, a closed pipe
        if debug:
            raise
        where = f" ({exc.filename})" if exc.filename else ""
        err.print(f"Error: {exc.strerror or exc}{where}")
        sys.exit(ExternalError.exit_code)
    except Exception as exc:
        if debug:
            raise
        err.print(
            f"Error: internal error ({type(exc).__name__}: {exc}); rerun with --debug "
            "for a traceback and report it"
        )
        sys.exit(1)
