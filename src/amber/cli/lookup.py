"""``amber hash``, ``amber lookup``, ``amber compare``: hashes and bank lookups without a
decision (nothing is stored, kept as evidence or queued)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table
from rich.text import Text

from amber.cli.options import (
    DbOption,
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
    from amber.lookup import Comparison, Hashes, Lookup
    from amber.signals import SignalValue

#: ``--format`` of these commands.
FORMATS = ("text", "jsonl")
TextFormat = Annotated[str, typer.Option("--format", help="text or jsonl")]
SignalTypeOption = Annotated[
    str | None,
    typer.Option(
        "--signal-type",
        help="The hashes' signal type (pdq, md5, sha256, vpdq, ...); default pdq",
        show_default=False,
    ),
]
#: What a hash given without --signal-type is taken as.
DEFAULT_SIGNAL_TYPE = "pdq"


def hash_files(
    files: Annotated[
        list[Path] | None,
        typer.Argument(help="Image or video files", metavar="FILE", show_default=False),
    ] = None,
    url: Annotated[
        list[str] | None,
        typer.Option(
            "--url",
            help="Fetch an image or video from this http(s) URL and hash it (repeatable); "
            "private, loopback and link-local addresses are refused",
            show_default=False,
        ),
    ] = None,
    allow_private: Annotated[
        bool,
        typer.Option("--allow-private", help="Let --url reach private and loopback addresses"),
    ] = False,
    format: TextFormat = "text",
) -> None:
    """Print the hashes of media files (sha256, md5, pdq with its quality, a video's vpdq
    frames): nothing is stored, and no database is needed."""
    check_format(format, FORMATS)
    if not files and not url:
        raise UserError("give a file to hash, or --url URL")
    from amber.fetch import FetchError, fetch
    from amber.lookup import hash_media
    from amber.media import read_media
    from amber.signals import load_signal_types

    signals = load_signal_types()
    failed = 0
    sources: list[Path | str] = [*(files or []), *(url or [])]
    for source in sources:
        try:
            if isinstance(source, Path):
                hashes = hash_media(signals, read_media(source), str(source))
            else:
                fetched = fetch(source, allow_private=allow_private)
                hashes = hash_media(signals, fetched.data, source)
        except (UserError, FetchError) as exc:  # this one failed; the others go on
            failed += 1
            err.print(f"Error: {exc.message}")
            continue
        _show_hashes(hashes, format)
    if failed:
        err.print(f"{failed} of {len(sources)} could not be hashed (see above)")
        raise typer.Exit(1)


def lookup_targets(
    targets: Annotated[
        list[str],
        typer.Argument(
            help="Hashes or media files; a file that exists is hashed as a post's media "
            "would be, anything else is a hash (of --signal-type)",
            metavar="HASH|FILE",
        ),
    ],
    signal_type: SignalTypeOption = None,
    bank: Annotated[
        list[str] | None,
        typer.Option("--bank", help="Look up in this bank only (repeatable; default: all)"),
    ] = None,
    quality: Annotated[
        int | None,
        typer.Option(
            "--quality",
            min=0,
            max=100,
            help="The quality of a pdq hash given (default 100); under the policy's minimum "
            "it cannot match, as a post's could not",
            show_default=False,
        ),
    ] = None,
    format: TextFormat = "text",
    db: DbOption = None,
    vault: VaultOption = None,
) -> None:
    """Look hashes or files up in the banks, with the thresholds a post gets: print the
    entries each matches. Nothing is stored, kept as evidence or queued."""
    check_format(format, FORMATS)
    from amber.errors import MediaError, SignalValueError
    from amber.lookup import lookup_hash, lookup_media
    from amber.media import read_media

    failed = 0
    with opened_engine(db, vault) as engine:
        for target in targets:
            path = Path(target)
            try:
                if path.is_file():
                    found = lookup_media(engine, read_media(path), target, banks=bank)
                else:
                    found = lookup_hash(
                        engine,
                        signal_type or DEFAULT_SIGNAL_TYPE,
                        target,
                        quality=quality,
                        banks=bank,
                    )
            except MediaError as exc:
                failed += 1
                err.print(f"Error: {exc.message}")
                continue
            except SignalValueError as exc:
                failed += 1
                hint = "" if signal_type else "; give the type of another hash with --signal-type"
                err.print(
                    f"Error: {target!r} is not a file, nor a {exc.signal_type} hash "
                    f"({exc.reason}){hint}"
                )
                continue
            _show_lookup(found, format)
    if failed:
        err.print(f"{plural(failed, 'lookup')} of {len(targets)} failed (see above)")
        raise typer.Exit(1)


def compare_hashes(
    first: Annotated[str, typer.Argument(help="A hash", metavar="HASH")],
    second: Annotated[str, typer.Argument(help="Another hash of the same type", metavar="HASH")],
    signal_type: SignalTypeOption = None,
    format: TextFormat = "text",
) -> None:
    """Print the distance between two hashes and whether they match under the type's
    default threshold (pdq: 31 bits; a bank may set its own)."""
    check_format(format, FORMATS)
    from amber.lookup import compare as compare_values
    from amber.signals import load_signal_types

    result = compare_values(load_signal_types(), signal_type or DEFAULT_SIGNAL_TYPE, first, second)
    if format == "jsonl":
        print_jsonl([result.to_json()])
        return
    out.print(Text(_comparison_line(result)))


def _comparison_line(result: Comparison) -> str:
    verdict = "match" if result.matches else "no match"
    return (
        f"{result.signal_type} distance {result.distance} (threshold {result.threshold}): {verdict}"
    )


def _show_hashes(hashes: Hashes, format: str) -> None:
    if format == "jsonl":
        print_jsonl([hashes.to_json()])
        return
    out.print(Text(_heading(hashes)))
    for value in hashes.values:
        out.print(Text(f"  {_value_line(value)}"))
    if hashes.undecoded:
        out.print(Text(f"  (pixels not read: {hashes.undecoded})"))


def _show_lookup(found: Lookup, format: str) -> None:
    if format == "jsonl":
        print_jsonl([found.to_json()])
        return
    hashes = found.hashes
    if hashes.name is None:
        first = hashes.values[0]
        what = f"{first.signal_type} {first.value}" + (
            f" and {plural(len(hashes.values) - 1, 'frame')} more" if len(hashes.values) > 1 else ""
        )
    else:
        what = hashes.name
    where = "" if found.banks is None else f" in {', '.join(found.banks)}"
    count = plural(len(found.matches), "match", "matches") if found.matches else "no match"
    out.print(Text(f"{what}: {count}{where}"))
    if not found.matches:
        return
    table = Table("bank", "label", "action", "entry", "source", "signal", "distance", "variant")
    for m in found.matches:
        table.add_row(
            Text(m.bank),
            Text(m.label),
            m.action,
            str(m.entry_id),
            Text(m.entry_source),
            m.signal_type,
            str(m.distance),
            Text(m.query_variant),
        )
    out.print(table)


def _heading(hashes: Hashes) -> str:
    facts = []
    if hashes.width is not None and hashes.height is not None:
        facts.append(f"{hashes.width}x{hashes.height}")
    if hashes.size is not None:
        facts.append(f"{hashes.size:,} bytes")
    if hashes.truncated:
        facts.append("truncated")
    return f"{hashes.name}" + (f" ({', '.join(facts)})" if facts else "")


def _value_line(value: SignalValue) -> str:
    from amber.signals.base import frame_of

    line = f"{value.signal_type:<7} {value.value}"
    if value.quality is not None:
        line += f"  quality {value.quality}"
    frame = frame_of(value.variant)
    if frame is not None:
        line += f"  at {frame.timestamp:.3f} s (frame {frame.number})"
    return line
