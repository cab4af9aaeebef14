"""``amber statements``: the statements of reasons (DSA Art. 17) decided in a time range,
in batches ready for the DSA Transparency Database's batch endpoint."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from amber.cli.options import DbOption, PolicyOption, VaultOption, err, opened_engine, plural


def statements(
    start: Annotated[
        str,
        typer.Option(
            "--from",
            help="Decided at or after this ISO 8601 date or time (UTC if no zone)",
            show_default=False,
        ),
    ],
    end: Annotated[
        str,
        typer.Option(
            "--to",
            help="Decided before this ISO time; a date takes in its whole day",
            show_default=False,
        ),
    ],
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Write each batch to a file in this folder (default: one batch a line on stdout)",
            show_default=False,
        ),
    ] = None,
    policy: PolicyOption = None,
    db: DbOption = None,
    vault: VaultOption = None,
) -> None:
    """Statements of reasons decided from --from to --to, in batches of at most 100: each
    the body of POST https://transparency.dsa.ec.europa.eu/api/v1/statements.

    The platform's side of the statements (territorial scope, terms of service ground,
    categories) comes from the policy's [statements] table (docs/statements.md)."""
    from amber.statements import Statements, parse_range, write_batches

    begin, finish = parse_range(start, end, names=("--from", "--to"))
    with opened_engine(db, vault, policy) as engine:
        bodies = Statements.of(engine).batches(begin, finish)
    count = sum(len(body["statements"]) for body in bodies)
    if out_dir is None:
        for body in bodies:
            print(json.dumps(body, ensure_ascii=False), flush=True)
    else:
        for path in write_batches(bodies, out_dir, begin, finish):
            err.print(f"wrote {path}")
    err.print(
        f"{plural(count, 'statement')} in {plural(len(bodies), 'batch', 'batches')}, decided "
        f"from {begin.isoformat()} to {finish.isoformat()}"
    )


__all__ = ["statements"]
