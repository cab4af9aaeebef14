"""``amber report``: the transparency report (DSA Art. 15/24, TCO Art. 7) of a time
range, as JSON or as one self-contained HTML page with charts."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from amber.cli.options import DbOption, VaultOption, check_format, err, opened_engine


def report(
    start: Annotated[
        str,
        typer.Option(
            "--from", help="From this ISO 8601 date or time (UTC if no zone)", show_default=False
        ),
    ],
    end: Annotated[
        str,
        typer.Option(
            "--to", help="Before this ISO time; a date takes in its whole day", show_default=False
        ),
    ],
    format: Annotated[str, typer.Option("--format", help="json or html")] = "json",
    out_file: Annotated[
        Path | None,
        typer.Option("--out", help="Write to this file (default: stdout)", show_default=False),
    ] = None,
    db: DbOption = None,
    vault: VaultOption = None,
) -> None:
    """The transparency report of a period: orders and time to act, user reports,
    automated and human decisions, restrictions by category and ground, appeals and
    reversals, accuracy of automated decisions."""
    import json

    from amber.statements import parse_range
    from amber.transparency import build_report, render_html

    check_format(format, ("json", "html"))
    begin, finish = parse_range(start, end)
    with opened_engine(db, vault) as engine:
        made = build_report(engine, begin, finish)
    text = (
        json.dumps(made.to_json(), ensure_ascii=False, indent=1) + "\n"
        if format == "json"
        else render_html(made)
    )
    if out_file is None:
        sys.stdout.write(text)
        return
    from amber.atomic_write import write_atomic

    write_atomic(out_file, text.encode("utf-8"))
    err.print(f"report written to {out_file}")
