"""What every ``amber`` command shares: where data and messages go, the state options, and
opening the engine.

Only typer and rich are imported here; each command imports the library it calls inside
its own function, so ``amber --help`` starts without loading databases or hashing.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from amber.errors import UserError

if TYPE_CHECKING:
    from amber.engine import Engine

#: Data (tables, JSON) for stdout.
out = Console(highlight=False, soft_wrap=True)
#: Messages carry user data (post ids, paths, labels): never read as rich markup, and one
#: record per line even when stderr is piped.
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
SigningKeyOption = Annotated[
    Path | None,
    typer.Option(
        "--signing-key",
        help="The vault's signing key kept outside it (env AMBER_SIGNING_KEY; default: the "
        "vault's own keys/checkpoint.key)",
        show_default=False,
    ),
]
PolicyOption = Annotated[
    Path | None,
    typer.Option(
        "--policy", help="Policy TOML file (default: the built-in policy)", show_default=False
    ),
]
FormatOption = Annotated[str, typer.Option("--format", help="table or jsonl")]


@contextmanager
def opened_engine(
    db: str | None,
    vault: Path | None,
    policy: Path | None = None,
    signing_key: Path | None = None,
    *,
    create: bool = False,
    preflight: bool = False,
) -> Iterator[Engine]:
    """The engine on the given state, closed on leaving.

    Only commands that ``create`` state make a new SQLite database; for the others a
    missing file is a mistyped path (exit 2). With ``preflight`` (commands that decide
    posts) the policy's ``[checks]`` run first: an error stops the command (exit 2), a
    warning is printed on stderr.
    """
    from amber.engine import open_engine

    engine = open_engine(db=db, vault=vault, policy=policy, create=create, signing_key=signing_key)
    try:
        if preflight:
            from amber.doctor import preflight as run_preflight

            for problem in run_preflight(engine):
                err.print(f"Warning: {problem.message}")
        yield engine
    finally:
        engine.close()


def check_format(format: str, known: tuple[str, ...] = ("table", "jsonl")) -> None:
    """Raises ``UserError`` for a ``--format`` that is not one of ``known``."""
    if format not in known:
        raise UserError(f"--format {format!r} is unknown; use {' or '.join(known)}")


def plural(count: int, word: str, many: str | None = None) -> str:
    """``1 post``, ``2 posts``, ``3 entries``."""
    return f"{count} {word}" if count == 1 else f"{count} {many or word + 's'}"


def print_jsonl(records: Iterable[Mapping[str, Any]]) -> None:
    """One JSON object per line on stdout (``--format jsonl``), each flushed as written."""
    for record in records:
        print(json.dumps(record, ensure_ascii=False), flush=True)
