"""``amber doctor``: list what is wrong with amber's state, changing nothing."""

from __future__ import annotations

import typer
from rich.table import Table
from rich.text import Text

from amber.cli.options import (
    DbOption,
    FormatOption,
    PolicyOption,
    VaultOption,
    check_format,
    err,
    out,
    plural,
    print_jsonl,
)


def doctor(
    format: FormatOption = "table",
    policy: PolicyOption = None,
    db: DbOption = None,
    vault: VaultOption = None,
) -> None:
    """Check amber's state and list each problem: banks the policy names that do not
    exist, no banks, empty banks the policy relies on, a schema behind this amber's
    migrations, a vault that cannot be opened. Creates and migrates nothing.

    Exit 0 when no problem is found, 1 when some are (each listed: check, severity,
    message; --format jsonl gives one {"check", "severity", "message"} per line), 2 for a
    database that does not exist or a bad policy.
    """
    from amber.doctor import diagnose

    check_format(format)
    problems = diagnose(db=db, vault=vault, policy=policy)
    if format == "jsonl":
        print_jsonl(p.to_json() for p in problems)
    elif problems:
        table = Table("check", "severity", "problem")
        for p in problems:
            table.add_row(p.check, p.severity.value, Text(p.message))
        out.print(table)
    if not problems:
        err.print("no problems found")
        return
    err.print(f"{plural(len(problems), 'problem')} found")
    raise typer.Exit(1)
