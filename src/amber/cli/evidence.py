"""``amber evidence``: the vault: list, verify, export bags, legal holds, retention."""

from __future__ import annotations

import getpass
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table
from rich.text import Text

from amber.cli.options import (
    DbOption,
    FormatOption,
    SigningKeyOption,
    VaultOption,
    check_format,
    err,
    opened_engine,
    out,
    plural,
    print_jsonl,
)
from amber.errors import UserError

if TYPE_CHECKING:
    import sqlalchemy as sa

    from amber.evidence.vault import Vault
    from amber.evidence.verify import Report

evidence_app = typer.Typer(
    help="The evidence vault: list, verify, export bags, legal holds, retention.",
    no_args_is_help=True,
)
ActorOption = Annotated[
    str | None, typer.Option("--actor", help="Who does this, for the custody log (default: you)")
]


def _vault_path(vault: Path | None) -> Path:
    from amber.engine import default_vault

    return default_vault() if vault is None else vault


def _open_vault(vault: Path | None, signing_key: Path | None, db: str | None = None) -> Vault:
    from amber.engine import default_retention, default_signing_key
    from amber.evidence.vault import Vault

    path = _vault_path(vault)
    if not (path / "vault.json").exists():
        raise UserError(
            f"no evidence vault at {str(path)!r}; amber creates it when a scan "
            "first keeps evidence (set --vault or AMBER_VAULT)"
        )
    return Vault.open(
        path,
        retention=default_retention(),
        signing_key=default_signing_key() if signing_key is None else signing_key,
        db=_vault_db(path, db),
    )


def _vault_db(path: Path, db: str | None) -> sa.Engine | None:
    """The database of a vault whose custody log is kept there (``--db``, ``AMBER_DB``
    or ./amber.db), else ``None``."""
    from amber.engine import default_db
    from amber.evidence.vault import read_store
    from amber.store.db import connect

    if read_store(path).get("log") != "database" and db is None:
        return None
    return connect(default_db() if db is None else db, create=False)


def _actor(actor: str | None) -> str:
    from amber.evidence.vault import ACTOR

    return actor or f"{getpass.getuser()} via {ACTOR}"


@evidence_app.command("list")
def evidence_list(
    format: FormatOption = "table", vault: VaultOption = None, signing_key: SigningKeyOption = None
) -> None:
    """What the vault holds: verdict, hashes, retention date, hold."""
    check_format(format)
    items = sorted(_open_vault(vault, signing_key).items().values(), key=lambda i: i.preserved_at)
    if format == "jsonl":
        print_jsonl(item.to_json() for item in items)
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
def evidence_verify(
    vault: VaultOption = None,
    db: DbOption = None,
    key: Annotated[
        str | None,
        typer.Option(
            "--key",
            help="The vault's public key as published: verifier key, PEM file, or raw "
            "base64/hex; the vault must be signed by it",
            show_default=False,
        ),
    ] = None,
    checkpoints: Annotated[
        list[str] | None,
        typer.Option(
            "--checkpoint",
            help="A checkpoint published or witnessed outside the vault (file or URL); the "
            "vault's log must extend it. Repeatable",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Recompute every hash, the tree, every signature; with the database (--db, AMBER_DB
    or ./amber.db if it exists), check that every decision of review or stronger has its
    evidence. Exit 0 only if all hold."""
    from amber.evidence.published import read_checkpoint, read_key
    from amber.evidence.verify import verify_vault

    path = _vault_path(vault)
    if not (path / "vault.json").exists() and not (path / "log").exists():
        raise UserError(f"no evidence vault at {str(path)!r} (set --vault or AMBER_VAULT)")
    published_key = None if key is None else read_key(key)
    published = [(source, read_checkpoint(source)) for source in checkpoints or []]
    report = verify_vault(
        path, key=published_key, published=published, db=_vault_db(path, None if db is None else db)
    )
    _check_decisions(db, path, report)
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
        if published_key is not None:
            out.print(f"signed by the key given: {published_key}")
        for source, size in report.extends:
            out.print(f"consistent with the published checkpoint of size {size} ({source})")
        return
    err.print(f"vault {path} FAILED verification ({len(report.problems)} problems): {summary}")
    raise typer.Exit(1)


def _check_decisions(db: str | None, vault: Path, report: Report) -> None:
    """Add to ``report`` each decision of review or stronger without evidence."""
    from amber.engine import default_db
    from amber.store.db import database_url, sqlite_path

    chosen = default_db() if db is None else db
    file = sqlite_path(database_url(chosen))
    if db is None and "AMBER_DB" not in os.environ and file is not None and not file.exists():
        report.notes.append(f"no database at {chosen!r}: decisions not checked (give --db)")
        return
    if file is not None and not file.exists():
        raise UserError(f"no database at {str(file)!r} (give --db or AMBER_DB)")
    with opened_engine(chosen, vault) as engine:
        missing = engine.missing_evidence()
    for found in missing:
        if found.state == "pending":
            report.problems.append(
                f"post {found.key!r} ({found.verdict}): no evidence yet, its preservation "
                "is pending; run 'amber evidence sweep'"
            )
        else:
            report.problems.append(
                f"post {found.key!r} ({found.verdict}): no evidence in the vault and "
                "nothing staged; scan the post again with its media to preserve it"
            )


@evidence_app.command("sweep")
def evidence_sweep(
    db: DbOption = None, vault: VaultOption = None, signing_key: SigningKeyOption = None
) -> None:
    """Finish preservations left pending by a crash or a full disk (amber serve does this
    at start-up and every minute). Exit 3 if some still cannot be written."""
    with opened_engine(db, vault, signing_key=signing_key) as engine:
        report = engine.sweep_evidence()
    for post_id in report.preserved:
        err.print(f"preserved evidence of {post_id!r}")
    for post_id in report.discarded:
        err.print(f"dropped staged evidence of {post_id!r}: its decision was never stored")
    for post_id, reason in report.failed:
        err.print(f"still pending: {post_id!r}: {reason}")
    err.print(
        f"{len(report.preserved)} preserved, {len(report.failed)} still pending, "
        f"{len(report.discarded)} dropped"
    )
    if report.failed:
        raise typer.Exit(3)


@evidence_app.command("export")
def evidence_export(
    post_id: str,
    out_dir: Annotated[Path, typer.Option("--out", help="New folder for the bag")],
    actor: ActorOption = None,
    vault: VaultOption = None,
    signing_key: SigningKeyOption = None,
) -> None:
    """Export one post's evidence as a BagIt bag (verify it with verify-bag)."""
    from amber.evidence.bag import export_bag

    bag = export_bag(
        _open_vault(vault, signing_key),
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
        typer.Option(
            "--key",
            help="The key the platform published (verifier key, PEM file, or raw base64/hex); "
            "must match",
        ),
    ] = None,
) -> None:
    """Verify a bag offline: fixity, inclusion proofs, checkpoint and bag signatures."""
    from amber.evidence.bag import verify_bag

    report = verify_bag(bag, expected_key=key)
    for note in report.notes:
        err.print(f"note: {note}")
    for problem in report.problems:
        err.print(f"BROKEN: {problem}")
    if not report.ok:
        err.print(f"bag {bag} FAILED verification")
        raise typer.Exit(1)
    held = (
        f"post {report.post_id!r}"
        if report.incident is None
        else f"incident {report.incident} ({plural(len(report.posts), 'post')})"
    )
    out.print(
        f"bag {bag} verified: {held}, {report.records} custody "
        f"records proven in a tree of {report.tree_size} signed by key {report.key}"
    )


@evidence_app.command("hold")
def evidence_hold(
    post_id: str,
    reason: Annotated[str, typer.Option("--reason", help="Why, e.g. the order's reference")],
    actor: ActorOption = None,
    vault: VaultOption = None,
    signing_key: SigningKeyOption = None,
) -> None:
    """Place a legal hold: the item is kept past its retention date."""
    _open_vault(vault, signing_key).hold(post_id, reason=reason, actor=_actor(actor))
    err.print(f"hold placed on {post_id!r}")


@evidence_app.command("release")
def evidence_release(
    post_id: str,
    reason: Annotated[str, typer.Option("--reason", help="Why the hold ends")] = "released",
    actor: ActorOption = None,
    vault: VaultOption = None,
    signing_key: SigningKeyOption = None,
) -> None:
    """Lift a legal hold."""
    _open_vault(vault, signing_key).release(post_id, reason=reason, actor=_actor(actor))
    err.print(f"hold lifted on {post_id!r}")


@evidence_app.command("expire")
def evidence_expire(
    actor: ActorOption = None, vault: VaultOption = None, signing_key: SigningKeyOption = None
) -> None:
    """Delete items past their retention date (never those under hold); log each deletion."""
    deleted = _open_vault(vault, signing_key).expire(actor=_actor(actor))
    for post_id in deleted:
        err.print(f"deleted expired evidence of {post_id!r}")
    err.print(f"{plural(len(deleted), 'item')} expired")


@evidence_app.command("recover")
def evidence_recover(vault: VaultOption = None, signing_key: SigningKeyOption = None) -> None:
    """Repair what a crash left (a partial record, an unsigned tail, unfinished deletions)."""
    vault_ = _open_vault(vault, signing_key)
    for step in vault_.recovered:
        err.print(step)
    err.print("nothing to repair" if not vault_.recovered else "recovered")


@evidence_app.command("sign")
def evidence_sign(
    db: DbOption = None, vault: VaultOption = None, signing_key: SigningKeyOption = None
) -> None:
    """Sign a checkpoint for every custody record appended so far (a log kept in the
    database is signed in batches: by amber serve's signer, at the end of a scan, or by
    this)."""
    checkpoint = _open_vault(vault, signing_key, db).sign()
    if checkpoint is None:
        err.print("another amber holds the log's signer lock; it signs the new records")
        return
    out.print(f"signed: {plural(checkpoint.size, 'record')} (checkpoint of size {checkpoint.size})")


@evidence_app.command("migrate")
def evidence_migrate(
    log: Annotated[
        str, typer.Option("--log", help="Where the custody log goes: database")
    ] = "database",
    objects: Annotated[
        str | None,
        typer.Option(
            "--objects",
            help="Copy the objects to this store too: a folder or s3://BUCKET/PREFIX "
            "(endpoint from AWS_ENDPOINT_URL)",
            show_default=False,
        ),
    ] = None,
    db: DbOption = None,
    vault: VaultOption = None,
    signing_key: SigningKeyOption = None,
) -> None:
    """Move the vault's custody log into the database (and its objects to another
    store): every record byte for byte and every checkpoint, the roots checked, then the
    switch. Safe to run again after a crash. Stop every amber writing to the vault first."""
    from amber.engine import default_db, default_signing_key
    from amber.evidence.migrate import migrate_vault
    from amber.store.db import connect

    if log != "database":
        raise UserError(f"--log {log!r}: a vault's log can move to the database only")
    path = _vault_path(vault)
    done = migrate_vault(
        path,
        connect(default_db() if db is None else db),
        objects=objects,
        signing_key=default_signing_key() if signing_key is None else signing_key,
    )
    out.print(
        f"vault {path}: custody log in the database ({plural(done.records, 'record')}, "
        f"{done.imported} copied now, {plural(done.checkpoints, 'checkpoint')}; root "
        f"{done.root or '-'}){f', {done.objects} objects copied' if objects else ''}"
    )


@evidence_app.command("export-log")
def evidence_export_log(
    to: Annotated[Path, typer.Option("--out", help="A new folder for the copy")],
    db: DbOption = None,
    vault: VaultOption = None,
    signing_key: SigningKeyOption = None,
) -> None:
    """Copy the vault in its file form (records.jsonl, checkpoints, objects, verifier key;
    no private key) for offline verification: 'amber evidence verify --vault DIR'."""
    from amber.evidence.migrate import export_vault

    written = export_vault(_open_vault(vault, signing_key, db), to)
    out.print(f"copied {plural(written, 'record')} to {to}")
