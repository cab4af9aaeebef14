"""``amber incident``: incidents, the posts of one harm linked as they are decided: list
them, show one (members, why each was linked, its escalation and timeline), export its one
evidence bag."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from amber.cli.evidence import ActorOption, _actor
from amber.cli.options import (
    DbOption,
    FormatOption,
    SigningKeyOption,
    VaultOption,
    check_format,
    err,
    opened_engine,
    out,
    print_jsonl,
)

incident_app = typer.Typer(
    help="Incidents: the posts of one harm linked as they are decided: list, show (members, "
    "why, escalation, timeline), export one evidence bag.",
    no_args_is_help=True,
)

IdArgument = Annotated[int, typer.Argument(help="The incident's id (amber incident list)")]


@incident_app.command("list")
def incident_list(
    escalated: Annotated[
        bool | None,
        typer.Option(
            "--escalated/--not-escalated",
            help="Only those escalated to the authorities (or only those not)",
            show_default=False,
        ),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", help="At most this many")] = 100,
    format: FormatOption = "table",
    db: DbOption = None,
    vault: VaultOption = None,
) -> None:
    """Incidents, the most recently changed first."""
    check_format(format)
    with opened_engine(db, vault) as engine:
        engine.incidents.log_escalations(actor=_actor(None))
        found = engine.incidents.find(escalated=escalated, limit=limit)
    if format == "jsonl":
        print_jsonl(i.to_summary() for i in found)
        return
    table = Table("id", "posts", "first post", "authors", "verdict", "escalated", "updated")
    for i in found:
        row = i.to_summary()
        table.add_row(
            str(i.id),
            str(row["members"]),
            str(row["first_post"]),
            ", ".join(row["authors"]),
            str(row["verdict"]),
            row["escalated_at"] or "-",
            row["updated_at"],
        )
    out.print(table)
    err.print(f"{len(found)} incident(s)")


@incident_app.command("show")
def incident_show(
    incident_id: IdArgument,
    format: Annotated[str, typer.Option("--format", help="table or json")] = "table",
    db: DbOption = None,
    vault: VaultOption = None,
) -> None:
    """One incident: its posts in the order they were made with why each was linked, its
    escalation to the authorities, and its timeline (posted, decided, reviewed, appealed,
    removal orders, escalated)."""
    check_format(format, ("table", "json"))
    with opened_engine(db, vault) as engine:
        engine.incidents.log_escalations(actor=_actor(None))
        found = engine.incidents.get(incident_id)
    if format == "json":
        print(json.dumps(found.to_json(), ensure_ascii=False, indent=2))
        return
    if found.id != incident_id:
        err.print(f"incident {incident_id} was merged into incident {found.id}")
    posts = Table("post", "author", "made", "verdict", "review", "linked by", title="posts")
    for m in found.members:
        posts.add_row(
            m.post_id,
            m.author or "-",
            m.at.isoformat(),
            m.verdict,
            m.review_state,
            "; ".join(_why(w) for w in m.why),
        )
    out.print(f"incident {found.id} ({found.client}), opened {found.opened_at.isoformat()}")
    out.print(posts)
    if found.escalation is not None and found.escalated_at is not None:
        out.print(
            f"escalated to the authorities at {found.escalated_at.isoformat()} for post "
            f"{found.escalation.get('post_id')!r} ({found.escalation.get('basis')})"
        )
    else:
        out.print("not escalated: no post threatens life")
    steps = Table("at", "post", "what", title="timeline")
    for step in found.timeline:
        detail = {k: v for k, v in step.to_json().items() if k not in ("at", "post_id", "kind")}
        steps.add_row(step.at.isoformat(), step.post_id, _step(step.kind, detail))
    out.print(steps)


@incident_app.command("export")
def incident_export(
    incident_id: IdArgument,
    out_dir: Annotated[Path, typer.Option("--out", help="New folder for the bag")],
    actor: ActorOption = None,
    db: DbOption = None,
    vault: VaultOption = None,
    signing_key: SigningKeyOption = None,
) -> None:
    """Export the incident's evidence as ONE BagIt bag: every post's evidence and custody
    (verify it offline with 'amber evidence verify-bag')."""
    with opened_engine(db, vault, signing_key=signing_key) as engine, engine.write_lock:
        bag = engine.incidents.export(
            incident_id,
            out_dir,
            actor=_actor(actor),
            contact=os.environ.get("AMBER_CONTACT"),
            organization=os.environ.get("AMBER_ORGANIZATION"),
        )
    out.print(f"exported incident {incident_id} to {bag}")


def _why(why: dict[str, object]) -> str:
    by, to = why.get("by"), why.get("to")
    extra = {k: v for k, v in why.items() if k not in ("by", "to")}
    text = str(by) + (f" {to}" if to else "")
    return text + (f" ({', '.join(f'{k} {v}' for k, v in extra.items())})" if extra else "")


def _step(kind: str, detail: dict[str, object]) -> str:
    if kind == "decided":
        reasons = detail.get("reasons")
        rules = ", ".join(
            str(r.get("rule") or r.get("signal"))
            for r in (reasons if isinstance(reasons, list) else [])
            if isinstance(r, dict)
        )
        why = f"; {rules}" if rules else ""
        return f"decided {detail.get('verdict')} (v{detail.get('version')}{why})"
    if not detail:
        return kind
    return f"{kind} ({', '.join(f'{k} {v}' for k, v in detail.items() if v is not None)})"
