"""``amber explain``: why a post got (or would get) its verdict."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from amber.cli.options import (
    DbOption,
    PolicyOption,
    VaultOption,
    check_format,
    err,
    opened_engine,
    out,
)

if TYPE_CHECKING:
    from amber.explain import Explanation


def explain(
    target: Annotated[
        str,
        typer.Argument(
            help="A media file (one post), a JSONL file of posts, or a stored post id",
            metavar="FILE|POST_ID",
        ),
    ],
    format: Annotated[str, typer.Option("--format", help="table or json")] = "table",
    nearest: Annotated[
        int, typer.Option("--nearest", min=1, help="Nearest bank entries per media value")
    ] = 3,
    policy: PolicyOption = None,
    db: DbOption = None,
    vault: VaultOption = None,
) -> None:
    """Explain a verdict: every signal, the nearest bank entries and why they did or did
    not match, and the rules that fired. Files are explained without storing anything.
    With --format json, one JSON object per post, one per line."""
    check_format(format, ("table", "json"))
    from amber.errors import PostError

    errors = 0
    with opened_engine(db, vault, policy) as engine:
        path = Path(target)
        if path.is_file():
            for item in engine.explain_file(path, k=nearest):
                if isinstance(item, PostError):
                    errors += 1
                    err.print(f"Error: {item.message}")
                    continue
                _show(item, format)
        else:
            _show(engine.explain(target, k=nearest), format)
    if errors:
        raise typer.Exit(1)


def _show(explanation: Explanation, format: str) -> None:
    if format == "json":
        print(json.dumps(explanation.to_json(), ensure_ascii=False), flush=True)
        return
    from amber.render import render_explanation

    out.print(render_explanation(explanation))
