"""``amber bank``: banks of known content: create, add, import, export, list."""

from __future__ import annotations

import sys
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


bank_app = typer.Typer(
    help="Banks of known content: create, add, import, export, list.", no_args_is_help=True
)


@bank_app.command("create")
def bank_create(
    name: str,
    action: Annotated[ActionChoice, typer.Option(help="What a match to this bank means.")] = (
        ActionChoice.remove
    ),
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
        )
    err.print(
        f"created bank {bank.name!r}: action {bank.action}, label {bank.label!r}, "
        f"threshold {bank.threshold}, video share {bank.video_percent}%"
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
    db: DbOption = None,
    vault: VaultOption = None,
) -> None:
    """Hash image and video files into a bank (folders are walked)."""
    with opened_engine(db, vault) as engine:
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
    db: DbOption = None,
    vault: VaultOption = None,
) -> None:
    """Import CSV rows signal_type,signal[,label] (all or nothing), or one vPDQ hash file
    (frame_number,quality,pdq_hex,timestamp lines) as one video entry."""
    from amber.banks import read_csv_text
    from amber.signals.vpdq import looks_like_vpdq

    text = read_csv_text(file)
    with opened_engine(db, vault) as engine:
        if looks_like_vpdq(text.getvalue()):
            result = engine.banks.import_vpdq(name, file)
        else:
            result = engine.banks.import_csv(name, text, source=str(file))
    err.print(
        f"imported {plural(result.added, 'entry', 'entries')} into bank {name!r}"
        + (f"; {result.duplicates} already there" if result.duplicates else "")
    )


@bank_app.command("export")
def bank_export(
    name: str,
    file: Annotated[
        Path | None,
        typer.Argument(help="Output CSV (default: stdout); with --format vpdq, a folder"),
    ] = None,
    format: Annotated[
        str,
        typer.Option("--format", help="csv, or vpdq: one vPDQ hash file per video entry in FILE"),
    ] = "csv",
    db: DbOption = None,
    vault: VaultOption = None,
) -> None:
    """Export a bank as CSV rows signal_type,signal,label, or its videos as vPDQ files."""
    check_format(format, ("csv", "vpdq"))
    if format == "vpdq":
        if file is None:
            raise UserError("--format vpdq writes one file per video: give the folder")
        with opened_engine(db, vault) as engine:
            written = engine.banks.export_vpdq(name, file)
        err.print(f"exported {plural(len(written), 'video')} from bank {name!r} to {file}")
        return
    with opened_engine(db, vault) as engine:
        if file is None:
            count = engine.banks.export_csv(name, sys.stdout)
        else:
            try:
                with file.open("w", encoding="utf-8", newline="") as handle:
                    count = engine.banks.export_csv(name, handle)
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
