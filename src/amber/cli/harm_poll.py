"""``amber harm-poll``: explain a text, list and check the lexicons."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from amber.cli.options import FormatOption, PolicyOption, check_format, err, out
from amber.errors import UserError

harm_poll_app = typer.Typer(
    help="The harm-poll detector: explain a text, list and check its lexicons.",
    no_args_is_help=True,
)


@harm_poll_app.command("explain")
def harm_poll_explain(
    text: Annotated[str, typer.Argument(help="The post's text ('' for a poll alone)")],
    question: Annotated[str | None, typer.Option("--question", help="Poll question")] = None,
    option: Annotated[
        list[str] | None, typer.Option("--option", help="Poll option (repeat for each)")
    ] = None,
    format: Annotated[str, typer.Option("--format", help="table or json")] = "table",
    policy: PolicyOption = None,
) -> None:
    """Show the language found, every cue and why the score and verdict are what they are."""
    from amber.policy import installed_actions, installed_conditions, load_policy
    from amber.render import VERDICT_STYLE
    from amber.signals.harm_poll import explain_text

    if format not in ("table", "json"):
        raise UserError(f"unknown format {format!r}; use table or json")
    result, outcome = explain_text(
        text,
        question=question,
        options=option or (),
        policy=load_policy(policy, conditions=installed_conditions(), actions=installed_actions()),
    )
    if format == "json":
        data = result.to_json()
        data["verdict"] = outcome.verdict.value
        data["rules"] = outcome.rules
        data["actions"] = outcome.actions
        print(json.dumps(data, ensure_ascii=False))
        return
    guess = result.guess
    out.print(Text(f"language: {guess.describe() if guess else '-'}"))
    if guess is not None and guess.candidates:
        found = ", ".join(f"{c} {p:.2f}" for c, p in guess.candidates)
        out.print(Text(f"fastText:  {found}"))
    table = Table("cue", "phrase", "language", "weight", title=None, show_edge=False)
    for c in (*result.cues, *result.dampeners):
        phrase = " ".join(c.phrase.split()) + (" (quoted or reported)" if c.quoted else "")
        table.add_row(c.name, Text(phrase), c.language, f"{c.weight:+.2f}")
    if result.cues or result.dampeners:
        out.print(table)
    else:
        out.print("no cues")
    for step in result.steps:
        out.print(Text(step))
    kind = result.kind.value if result.kind and result.score > 0 else "none"
    verdict = outcome.verdict.value
    rules = ", ".join(outcome.rules) or "none"
    out.print(
        Text(f"kind {kind}, score {result.score:.2f} -> {verdict} (rules: {rules})"),
        style=VERDICT_STYLE[verdict],
    )


@harm_poll_app.command("languages")
def harm_poll_languages(
    check: Annotated[
        Path | None,
        typer.Option("--check", help="Validate a lexicon file (an edit to review) instead"),
    ] = None,
    format: FormatOption = "table",
) -> None:
    """The lexicons amber has: language, coverage, entries, stemmer, reviewers."""
    from amber.harm_poll.lexicon import check_file, load

    check_format(format)
    lexicons = [check_file(check)] if check is not None else list(load())
    rows: list[dict[str, Any]] = [
        {
            "language": lex.language,
            "name": lex.name,
            "coverage": lex.coverage.value,
            "entries": sum(len(v) for v in lex.entries.values()),
            "stemmer": lex.stemmer,
            "reviewers": [r["name"] for r in lex.provenance.get("reviewers", [])],
            "source": lex.source,
        }
        for lex in lexicons
    ]
    if format == "jsonl":
        for row in rows:
            print(json.dumps(row, ensure_ascii=False))
        return
    table = Table("language", "name", "coverage", "entries", "stemmer", "reviewers")
    for row in rows:
        table.add_row(
            row["language"],
            row["name"],
            row["coverage"],
            str(row["entries"]),
            row["stemmer"] or "-",
            ", ".join(row["reviewers"]) or "not yet reviewed",
        )
    out.print(table)
    if check is not None:
        err.print(f"{check}: valid; every entry compiles")
