"""``amber bank``: banks of known content: create, add, import, export, list; rename,
enable and disable a bank, read its audit; list, read, disable, enable, note and delete
one entry (``amber bank entry ...``)."""

from __future__ import annotations

import getpass
import re
import sys
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from amber.cli.options import (
    DbOption,
    FormatOption,
    VaultOption,
    check_format,
    err,
    opened_engine,
    out,
    plural,
    print_jsonl,
)
from amber.errors import UserError


class ActionChoice(StrEnum):
    """``amber.banks.BankAction`` spelled again, so that building the command tree does not
    import the bank store (and with it SQLAlchemy and the hashing); a test keeps the two
    the same."""

    remove = "remove"
    restrict = "restrict"
    review = "review"
    allow = "allow"


class ImportFormat(StrEnum):
    """The formats ``amber bank import`` reads (``amber.bank_formats``; a test keeps them
    the same as the registry's)."""

    auto = "auto"
    amber_csv = "amber-csv"
    pytx_csv = "pytx-csv"
    lines = "lines"
    hashes = "hashes"
    hma_json = "hma-json"
    vpdq = "vpdq"


class ExportFormat(StrEnum):
    """The formats ``amber bank export`` writes (``csv`` is ``amber-csv``, as before)."""

    amber_csv = "amber-csv"
    csv = "csv"
    pytx_csv = "pytx-csv"
    lines = "lines"
    hashes = "hashes"
    hma_json = "hma-json"
    vpdq = "vpdq"


bank_app = typer.Typer(
    help="Banks of known content: create, add, import, export, list, rename, enable, "
    "disable, audit; one entry at a time with 'bank entry'.",
    no_args_is_help=True,
)
entry_app = typer.Typer(
    help="One bank entry: show, disable (until a time), enable, note, delete.",
    no_args_is_help=True,
)
bank_app.add_typer(entry_app, name="entry")


def actor() -> str:
    """Who makes a change from this command line, for the bank's audit."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no user name for this uid (a container, say)
        return "cli"


@bank_app.command("create")
def bank_create(
    name: str,
    action: Annotated[
        ActionChoice,
        typer.Option(
            help="What a match to this bank means; allow: known-benign content whose "
            "matches override the other banks' (news footage of the same event, say)."
        ),
    ] = ActionChoice.remove,
    label: Annotated[str | None, typer.Option(help="Label for matches (default: the name)")] = None,
    threshold: Annotated[int, typer.Option(help="Largest PDQ distance that matches (0-63).")] = 31,
    video_percent: Annotated[
        int,
        typer.Option(
            "--video-percent",
            min=1,
            max=100,
            help="Share of a banked video's frames a posted video must cover to match it "
            "(a segment, 3 frames in order over 2 s or more, matches anyway).",
        ),
    ] = 80,
    min_inliers: Annotated[
        int,
        typer.Option(
            "--min-inliers",
            min=8,
            max=500,
            help="Keypoint pairs that must agree with one homography for a local-feature "
            "(orb) match: crops, collage tiles, photos of a screen. Higher is stricter.",
        ),
    ] = 16,
    db: DbOption = None,
    vault: VaultOption = None,
) -> None:
    """Create a bank (and the database, if it does not exist yet)."""
    from amber.banks import BankAction

    with opened_engine(db, vault, create=True) as engine:
        bank = engine.banks.create(
            name,
            action=BankAction(action),
            label=label,
            threshold=threshold,
            video_percent=video_percent,
            min_inliers=min_inliers,
            actor=actor(),
        )
    err.print(
        f"created bank {bank.name!r}: action {bank.action}, label {bank.label!r}, "
        f"threshold {bank.threshold}, video share {bank.video_percent}%, "
        f"min inliers {bank.min_inliers}"
    )


@bank_app.command("add")
def bank_add(
    name: str,
    paths: Annotated[
        list[Path],
        typer.Argument(help="Image or video files, or folders; each file one entry."),
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
    note: Annotated[
        str | None, typer.Option(help="A note kept with each entry (255 characters).")
    ] = None,
    db: DbOption = None,
    vault: VaultOption = None,
) -> None:
    """Hash image and video files into a bank (folders are walked); the past posts they
    match are decided again (a retro-hunt: 'amber retrohunt')."""
    from amber.cli.retrohunt import tell_hunts

    with opened_engine(db, vault) as engine:
        before = len(engine.hunts)
        result = engine.banks.add_files(
            name, paths, min_quality=min_quality, note=note, actor=actor()
        )
        tell_hunts(engine, before)
    for failure in result.failures:
        err.print(f"Error: {failure.path}: {failure.reason}")
    for path in result.duplicates:
        err.print(f"skipped {path}: already in bank {name!r}")
    for weak in result.refused:
        err.print(
            f"refused {weak.path}: {weak.signal_type} quality {weak.quality} is below "
            f"--min-quality {weak.minimum}"
        )
    for path in result.truncated:
        err.print(f"warning: {path} ends early; banked the frames before the break")
    for weak in result.weak:
        err.print(
            f"warning: {weak.path}: {weak.signal_type} quality {weak.quality} is below the "
            f"policy's minimum {weak.minimum}; this hash will never match"
        )
    err.print(
        f"added {plural(len(result.added), 'entry', 'entries')} to bank {name!r}"
        + (f"; {len(result.failures)} files failed" if result.failures else "")
        + (f"; {len(result.refused)} refused as too weak" if result.refused else "")
    )
    if result.failures:
        raise typer.Exit(1)


@bank_app.command("import")
def bank_import(
    name: str,
    file: Path,
    format: Annotated[
        ImportFormat,
        typer.Option(
            "--format",
            help="The file's format; auto tells it from the first lines "
            "(docs/exchange-formats.md).",
        ),
    ] = ImportFormat.auto,
    signal_type: Annotated[
        str | None,
        typer.Option("--signal-type", help="The type of a list of bare hashes (pdq, md5, sha256)."),
    ] = None,
    sync: Annotated[
        bool,
        typer.Option(
            "--sync",
            help="Make the bank equal to the file: also delete the entries it no longer lists.",
        ),
    ] = False,
    retrohunt: Annotated[
        bool,
        typer.Option(
            "--retrohunt/--no-retrohunt",
            help="Decide again the past posts the new entries match, once imported (at most "
            "200; 'amber retrohunt --bank NAME --since TIME' does the rest, or all of it "
            "after --no-retrohunt).",
        ),
    ] = True,
    db: DbOption = None,
    vault: VaultOption = None,
) -> None:
    """Import a hash list, all or nothing: amber's CSV (signal_type,signal[,label], or
    columns named by a header row), python-threatexchange's dataset CSV or '<type> <hash>'
    lines, bare hashes (--signal-type), HMA's JSON, or one vPDQ hash file as one video.
    Then the past posts the new entries match are decided again (a retro-hunt)."""
    from amber.cli.retrohunt import tell_hunts

    with opened_engine(db, vault) as engine:
        engine.auto_retrohunt = retrohunt
        before = len(engine.hunts)
        result = engine.banks.import_file(
            name, file, format=format.value, signal_type=signal_type, sync=sync, actor=actor()
        )
        tell_hunts(engine, before)
    err.print(
        f"imported {plural(result.added, 'entry', 'entries')} into bank {name!r}"
        + (f"; {result.duplicates} already there" if result.duplicates else "")
        + (f"; {result.skipped} rows skipped (NEGATIVE_CLASS)" if result.skipped else "")
        + (f"; deleted {plural(result.deleted, 'entry', 'entries')}" if sync else "")
    )


@bank_app.command("export")
def bank_export(
    name: str,
    file: Annotated[
        Path | None,
        typer.Argument(help="Output file (default: stdout); with --format vpdq, a folder"),
    ] = None,
    format: Annotated[
        ExportFormat,
        typer.Option(
            "--format",
            help="amber-csv (csv), pytx-csv, lines (what python-threatexchange's local file "
            "exchange loads), hashes (with --signal-type), hma-json, or vpdq: one vPDQ hash "
            "file per video entry in FILE.",
        ),
    ] = ExportFormat.amber_csv,
    signal_type: Annotated[
        str | None,
        typer.Option("--signal-type", help="With --format hashes: the type to write."),
    ] = None,
    db: DbOption = None,
    vault: VaultOption = None,
) -> None:
    """Export a bank in a hash-list format (amber's CSV by default), or its videos as
    vPDQ files."""
    chosen = "amber-csv" if format is ExportFormat.csv else format.value
    if chosen == "vpdq":
        if file is None:
            raise UserError("--format vpdq writes one file per video: give the folder")
        with opened_engine(db, vault) as engine:
            written = engine.banks.export_vpdq(name, file)
        err.print(f"exported {plural(len(written), 'video')} from bank {name!r} to {file}")
        return
    with opened_engine(db, vault) as engine:
        if file is None:
            count = engine.banks.export(name, sys.stdout, format=chosen, signal_type=signal_type)
        else:
            try:
                with file.open("w", encoding="utf-8", newline="") as handle:
                    count = engine.banks.export(
                        name, handle, format=chosen, signal_type=signal_type
                    )
            except OSError as exc:
                raise UserError(f"cannot write {str(file)!r}: {exc.strerror}") from None
    err.print(f"exported {plural(count, 'row')} from bank {name!r}")


@bank_app.command("list")
def bank_list(
    format: FormatOption = "table",
    db: DbOption = None,
    vault: VaultOption = None,
) -> None:
    """List banks with their action, label, threshold and size."""
    check_format(format)
    with opened_engine(db, vault) as engine:
        banks = engine.banks.all()
    if format == "jsonl":
        print_jsonl(b.to_json() for b in banks)
        return
    table = Table("bank", "action", "label", "threshold", "entries", "enabled", "created")
    for b in banks:
        table.add_row(
            Text(b.name),
            b.action.value,
            Text(b.label),
            str(b.threshold),
            str(b.entries),
            ("yes" if b.enabled_ratio == 1 else f"{b.enabled_ratio:.0%}") if b.enabled else "no",
            b.created_at.strftime("%Y-%m-%d %H:%M"),
        )
    out.print(table)


@bank_app.command("rename")
def bank_rename(name: str, new_name: str, db: DbOption = None, vault: VaultOption = None) -> None:
    """Rename a bank (its entries, settings and audit follow)."""
    with opened_engine(db, vault) as engine:
        engine.banks.update(name, new_name=new_name, actor=actor())
    err.print(f"renamed bank {name!r} to {new_name!r}")


@bank_app.command("disable")
def bank_disable(name: str, db: DbOption = None, vault: VaultOption = None) -> None:
    """Disable a bank: none of its entries match until it is enabled again."""
    with opened_engine(db, vault) as engine:
        engine.banks.update(name, enabled=False, actor=actor())
    err.print(f"disabled bank {name!r}: its entries no longer match")


@bank_app.command("enable")
def bank_enable(name: str, db: DbOption = None, vault: VaultOption = None) -> None:
    """Enable a bank again: all its entries match (but entries disabled one by one)."""
    with opened_engine(db, vault) as engine:
        engine.banks.update(name, enabled=True, actor=actor())
    err.print(f"enabled bank {name!r}")


@bank_app.command("audit")
def bank_audit(
    name: str, format: FormatOption = "table", db: DbOption = None, vault: VaultOption = None
) -> None:
    """Every change to a bank and its entries: when, who, what (a deleted bank's too)."""
    check_format(format)
    with opened_engine(db, vault) as engine:
        events = engine.banks.audit(name)
    if format == "jsonl":
        print_jsonl(e.to_json() for e in events)
        return
    table = Table("at", "actor", "action", "entry", "detail")
    for e in events:
        detail = ", ".join(f"{k}={v}" for k, v in e.detail.items())
        table.add_row(
            e.at.strftime("%Y-%m-%d %H:%M:%S"),
            Text(e.actor),
            e.action,
            "" if e.entry is None else str(e.entry),
            Text(detail),
        )
    out.print(table)


@bank_app.command("entries")
def bank_entries(
    name: str,
    after: Annotated[int, typer.Option(help="Only entries with a larger id (to page on).")] = 0,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="At most this many.")] = 100,
    format: FormatOption = "table",
    db: DbOption = None,
    vault: VaultOption = None,
) -> None:
    """List a bank's entries by id: source, note, where the content lives, disabled until."""
    check_format(format)
    with opened_engine(db, vault) as engine:
        entries = engine.banks.entries(name, after=after, limit=limit)
    if format == "jsonl":
        print_jsonl(e.to_json() for e in entries)
        return
    now = datetime.now(UTC)
    table = Table("id", "source", "signals", "note", "content", "disabled until")
    for e in entries:
        table.add_row(
            str(e.id),
            Text(e.source),
            ", ".join(sorted({v.signal_type for v in e.values})),
            Text(e.note or ""),
            Text(e.content_id or e.content_uri or ""),
            "" if e.enabled(now) else e.disabled_until.isoformat(timespec="seconds"),  # type: ignore[union-attr]
        )
    out.print(table)


@entry_app.command("show")
def entry_show(
    bank: str,
    entry: int,
    format: FormatOption = "table",
    db: DbOption = None,
    vault: VaultOption = None,
) -> None:
    """One entry: its signals, source, note, content id and URI, metadata, state."""
    check_format(format)
    with opened_engine(db, vault) as engine:
        found = engine.banks.entry(bank, entry)
    if format == "jsonl":
        print_jsonl([found.to_json()])
        return
    table = Table("field", "value", show_header=False)
    for key, value in found.to_json().items():
        if key == "signals":
            for type_name, values in value.items():
                shown = values[0] if len(values) == 1 else f"{len(values)} values"
                table.add_row(f"signal {type_name}", Text(shown))
        elif value is not None:
            table.add_row(key, Text(str(value)))
    out.print(table)


@entry_app.command("disable")
def entry_disable(
    bank: str,
    entry: int,
    until: Annotated[
        str | None,
        typer.Option(help="Until this time (ISO 8601, e.g. 2027-03-01T00:00Z)."),
    ] = None,
    for_: Annotated[
        str | None,
        typer.Option("--for", help="For this long: 30d, 12h, 90m."),
    ] = None,
    note: Annotated[str | None, typer.Option(help="Why (kept as the entry's note).")] = None,
    db: DbOption = None,
    vault: VaultOption = None,
) -> None:
    """Stop an entry matching until a time (a suspected false positive, say)."""
    from amber.banks import KEEP

    when = _until(until, for_)
    with opened_engine(db, vault) as engine:
        changed = engine.banks.update_entry(
            bank,
            entry,
            disabled_until=when,
            note=KEEP if note is None else note,
            actor=actor(),
        )
    err.print(
        f"disabled entry {entry} of bank {bank!r} until "
        f"{changed.disabled_until.isoformat(timespec='seconds')}"  # type: ignore[union-attr]
    )


@entry_app.command("enable")
def entry_enable(bank: str, entry: int, db: DbOption = None, vault: VaultOption = None) -> None:
    """Let a disabled entry match again."""
    with opened_engine(db, vault) as engine:
        engine.banks.update_entry(bank, entry, disabled_until=None, actor=actor())
    err.print(f"enabled entry {entry} of bank {bank!r}")


@entry_app.command("note")
def entry_note(
    bank: str,
    entry: int,
    text: Annotated[str, typer.Argument(help="The note (255 characters); '' clears it.")],
    content_id: Annotated[
        str | None, typer.Option("--content-id", help="Where the content lives: its id.")
    ] = None,
    content_uri: Annotated[
        str | None, typer.Option("--content-uri", help="Where the content lives: its URI.")
    ] = None,
    db: DbOption = None,
    vault: VaultOption = None,
) -> None:
    """Set an entry's note (and where its content lives)."""
    from amber.banks import KEEP

    with opened_engine(db, vault) as engine:
        engine.banks.update_entry(
            bank,
            entry,
            note=text,
            content_id=KEEP if content_id is None else content_id,
            content_uri=KEEP if content_uri is None else content_uri,
            actor=actor(),
        )
    err.print(f"noted entry {entry} of bank {bank!r}")


@entry_app.command("delete")
def entry_delete(bank: str, entry: int, db: DbOption = None, vault: VaultOption = None) -> None:
    """Delete one entry; it stops matching at once (the audit keeps its signals)."""
    with opened_engine(db, vault) as engine:
        gone = engine.banks.delete_entry(bank, entry, actor=actor())
    err.print(f"deleted entry {gone.id} ({gone.source}) of bank {bank!r}")


_DURATION = re.compile(r"(\d+)\s*([dhm])")


def _until(until: str | None, for_: str | None) -> datetime:
    """The time ``--until`` or ``--for`` names. Raises ``UserError``."""
    if (until is None) == (for_ is None):
        raise UserError("give --until TIME or --for DURATION (e.g. --for 30d)")
    if for_ is not None:
        found = _DURATION.fullmatch(for_.strip())
        if found is None:
            raise UserError(f"--for {for_!r} is not a duration; give e.g. 30d, 12h or 90m")
        unit = {"d": "days", "h": "hours", "m": "minutes"}[found.group(2)]
        return datetime.now(UTC) + timedelta(**{unit: int(found.group(1))})
    assert until is not None
    try:
        when = datetime.fromisoformat(until.replace("Z", "+00:00"))
    except ValueError:
        raise UserError(
            f"--until {until!r} is not an ISO 8601 time; give e.g. 2027-03-01T00:00Z"
        ) from None
    if when.tzinfo is None:
        raise UserError(f"--until {until!r} has no time zone; add Z for UTC")
    return when
