"""``amber token``: API tokens for ``amber serve``: create, list, revoke."""

from __future__ import annotations

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
    print_jsonl,
)

token_app = typer.Typer(
    help="API tokens for amber serve: create, list, revoke.", no_args_is_help=True
)


@token_app.command("create")
def token_create(
    name: Annotated[str, typer.Option("--name", help="Who or what uses the token")],
    scopes: Annotated[str, typer.Option("--scopes", help="Comma list: ingest,review,admin")],
    db: DbOption = None,
    vault: VaultOption = None,
) -> None:
    """Create a token; the secret is printed once (stdout) and stored only as a hash.
    Creates the database if it does not exist yet."""
    from amber.tokens import parse_scopes

    with opened_engine(db, vault, create=True) as engine:
        token, secret = engine.tokens.create(name, parse_scopes(scopes))
    print(secret)
    err.print(
        f"token {token.name!r} with scopes {', '.join(sorted(token.scopes))}; "
        "keep the secret now: amber cannot show it again"
    )


@token_app.command("list")
def token_list(
    format: FormatOption = "table", db: DbOption = None, vault: VaultOption = None
) -> None:
    """List tokens (names, scopes, state; never secrets)."""
    check_format(format)
    with opened_engine(db, vault) as engine:
        tokens = engine.tokens.all()
    if format == "jsonl":
        print_jsonl(t.to_json() for t in tokens)
        return
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
    with opened_engine(db, vault) as engine:
        engine.tokens.revoke(name)
    err.print(f"token {name!r} revoked")
