"""Incidents: the posts of one harm, linked as they are decided (``amber.incidents.linking``),
read back with why each was linked and a timeline of what happened to them: posted,
decided, reviewed, appealed, ordered removed, escalated (``docs/incidents.md``).

One incident has one evidence bag (``amber.incidents.bag``) and one escalation to the
authorities for a threat to life (EU DSA Art. 18), logged as a custody event of the post
that made it (``Incidents.log_escalations``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from amber.errors import AmberError, NotFoundError, UserError
from amber.identity import item_key
from amber.store.tables import (
    appeals,
    decision_versions,
    decisions,
    incident_members,
    incidents,
    review_outcomes,
)

if TYPE_CHECKING:
    from amber.evidence.vault import Vault

#: The most incidents one listing gives.
MAX_LIMIT = 1000
#: The most escalations ``log_escalations`` logs in one call.
LOG_BATCH = 20


@dataclass(frozen=True, slots=True)
class Member:
    """A post in an incident, as it stands now, and why it was linked."""

    post_id: str
    client: str
    version: int
    author: str | None
    verdict: str
    review_state: str
    threat_to_life: bool
    created_at: datetime | None
    first_scanned_at: datetime
    linked_at: datetime
    why: list[dict[str, Any]]

    @property
    def at(self) -> datetime:
        """When the post was made (as it says), else when amber first saw it."""
        return self.created_at or self.first_scanned_at

    @property
    def key(self) -> str:
        """Its vault item key (``amber.identity.item_key``)."""
        return item_key(self.post_id, self.client, self.version)

    def to_json(self) -> dict[str, Any]:
        return {
            "post_id": self.post_id,
            "client": self.client,
            "version": self.version,
            "author": self.author,
            "verdict": self.verdict,
            "review_state": self.review_state,
            "threat_to_life": self.threat_to_life,
            "created_at": _iso(self.created_at),
            "first_scanned_at": self.first_scanned_at.isoformat(),
            "linked_at": self.linked_at.isoformat(),
            "why": self.why,
        }


@dataclass(frozen=True, slots=True)
class Step:
    """One thing that happened in an incident: ``kind`` is ``posted``, ``decided``,
    ``reviewed``, ``appealed``, ``appeal_decided``, ``removal_order`` or ``escalated``."""

    at: datetime
    kind: str
    post_id: str
    detail: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "kind": self.kind,
            "post_id": self.post_id,
            **self.detail,
        }


@dataclass(frozen=True, slots=True)
class Incident:
    """An incident: its members in the order they were made; ``timeline`` only when read
    one by one (``Incidents.get``)."""

    id: int
    client: str
    opened_at: datetime
    updated_at: datetime
    members: list[Member]
    escalated_at: datetime | None = None
    escalation: dict[str, Any] | None = None
    escalation_logged_at: datetime | None = None
    timeline: list[Step] = field(default_factory=list)

    def to_summary(self) -> dict[str, Any]:
        """As ``GET /v1/incidents`` lists it."""
        first = self.members[0] if self.members else None
        return {
            "id": self.id,
            "client": self.client,
            "opened_at": self.opened_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "members": len(self.members),
            "first_post": first.post_id if first else None,
            "authors": sorted({m.author for m in self.members if m.author}),
            "verdict": _strongest(m.verdict for m in self.members),
            "escalated_at": _iso(self.escalated_at),
        }

    def to_json(self) -> dict[str, Any]:
        """As ``GET /v1/incidents/{id}`` answers: the summary, every member, the
        escalation and the timeline."""
        return {
            **self.to_summary(),
            "members": [m.to_json() for m in self.members],
            "escalation": None
            if self.escalation is None
            else {
                **self.escalation,
                "at": _iso(self.escalated_at),
                "custody_logged_at": _iso(self.escalation_logged_at),
            },
            "timeline": [s.to_json() for s in self.timeline],
        }


class Incidents:
    """Reads incidents and logs their escalations' custody events."""

    def __init__(
        self, db: sa.Engine, *, vault: Callable[[], Vault], clock: Callable[[], datetime]
    ) -> None:
        self.db = db
        self.vault = vault
        self.clock = clock

    def find(
        self,
        *,
        clients: Sequence[str] | None = None,
        escalated: bool | None = None,
        limit: int = 100,
    ) -> list[Incident]:
        """Incidents, the most recently changed first (merged ones are not listed): with
        ``clients``, of those clients' posts only; with ``escalated``, only those (not)
        escalated. Raises ``UserError`` for a ``limit`` out of 1..``MAX_LIMIT``."""
        if not 1 <= limit <= MAX_LIMIT:
            raise UserError(f"limit {limit} is out of range; give 1 to {MAX_LIMIT}")
        query = sa.select(incidents).where(incidents.c.merged_into.is_(None))
        if clients is not None:
            query = query.where(incidents.c.client.in_(list(clients)))
        if escalated is not None:
            column = incidents.c.escalated_at
            query = query.where(column.is_not(None) if escalated else column.is_(None))
        query = query.order_by(incidents.c.updated_at.desc(), incidents.c.id.desc()).limit(limit)
        with self.db.connect() as conn:
            rows = conn.execute(query).all()
            members = _members(conn, [r.id for r in rows])
        return [_incident(r, members.get(r.id, [])) for r in rows]

    def get(self, incident_id: int, *, clients: Sequence[str] | None = None) -> Incident:
        """One incident with its timeline; a merged one's id gives the incident it was
        merged into. Raises ``NotFoundError`` for an unknown id (or one of a client not in
        ``clients``)."""
        with self.db.connect() as conn:
            row = None
            seen = set()
            current: int | None = incident_id
            while current is not None and current not in seen:
                seen.add(current)
                row = conn.execute(sa.select(incidents).where(incidents.c.id == current)).first()
                current = None if row is None else row.merged_into
            if row is None or (clients is not None and row.client not in clients):
                raise NotFoundError(
                    f"no incident {incident_id}; 'amber incident list' (GET /v1/incidents) "
                    "lists them"
                )
            members = _members(conn, [row.id]).get(row.id, [])
            steps = _timeline(conn, row, members)
        found = _incident(row, members)
        return Incident(**{**_fields(found), "timeline": steps})

    def export(
        self,
        incident_id: int,
        out: Path,
        *,
        actor: str,
        clients: Sequence[str] | None = None,
        contact: str | None = None,
        organization: str | None = None,
    ) -> Path:
        """Write the incident's one evidence bag to the new folder ``out``
        (``amber.incidents.bag``); each post's export is logged. Raises as ``get`` does,
        and ``UserError`` if ``out`` exists or no member's evidence is held."""
        from amber.incidents.bag import export_incident_bag

        self.log_escalations(actor=actor)  # the bag holds the escalation's custody event
        found = self.get(incident_id, clients=clients)
        return export_incident_bag(
            self.vault(), found, out, actor=actor, contact=contact, organization=organization
        )

    def of_post(self, post_id: str, *, client: str) -> int | None:
        """The id of the incident ``client``'s post is in, or ``None``."""
        with self.db.connect() as conn:
            found = conn.execute(
                sa.select(incident_members.c.incident_id).where(
                    incident_members.c.client == client, incident_members.c.post_id == post_id
                )
            ).scalar_one_or_none()
        return None if found is None else int(found)

    def log_escalations(self, *, actor: str) -> int:
        """Log the custody event (``escalated``) of each escalation not logged yet, on the
        evidence of the post that made it; returns how many. Each is claimed first, so two
        processes never log one twice; one that cannot be logged is released for the next
        call (``amber incident list`` and every decision call this). Raises what the vault
        raises."""
        from amber.evidence.vault import EvidenceWriteError

        with self.db.connect() as conn:
            rows = conn.execute(
                sa.select(incidents)
                .where(
                    incidents.c.escalated_at.is_not(None),
                    incidents.c.escalation_logged_at.is_(None),
                )
                .order_by(incidents.c.id)
                .limit(LOG_BATCH)
            ).all()
        done = 0
        for row in rows:
            now = self.clock()
            with self.db.begin() as conn:
                claimed = conn.execute(
                    incidents.update()
                    .where(incidents.c.id == row.id, incidents.c.escalation_logged_at.is_(None))
                    .values(escalation_logged_at=now)
                ).rowcount
            if claimed != 1:
                continue
            escalation = dict(row.escalation or {})
            key = item_key(
                str(escalation.get("post_id")),
                str(escalation.get("client")),
                int(escalation.get("version", 1)),
            )
            try:
                vault = self.vault()
                if key not in vault.items():  # its evidence is not kept yet: next time
                    raise _NotHeld
                vault.record(
                    key,
                    "escalated",
                    actor=actor,
                    incident=row.id,
                    basis=escalation.get("basis"),
                    escalated_at=row.escalated_at.isoformat(),
                )
            except (AmberError, OSError, _NotHeld) as exc:
                with self.db.begin() as conn:
                    conn.execute(
                        incidents.update()
                        .where(incidents.c.id == row.id)
                        .values(escalation_logged_at=None)
                    )
                if isinstance(exc, _NotHeld):
                    continue
                if isinstance(exc, AmberError):
                    raise
                raise EvidenceWriteError(f"the escalation of incident {row.id}: {exc}") from exc
            done += 1
        return done


class _NotHeld(Exception):
    """The vault does not hold the escalating post's evidence yet."""


def _fields(found: Incident) -> dict[str, Any]:
    return {name: getattr(found, name) for name in Incident.__dataclass_fields__}


def _incident(row: Any, members: list[Member]) -> Incident:
    return Incident(
        id=int(row.id),
        client=row.client,
        opened_at=row.opened_at,
        updated_at=row.updated_at,
        members=members,
        escalated_at=row.escalated_at,
        escalation=None if row.escalation is None else dict(row.escalation),
        escalation_logged_at=row.escalation_logged_at,
    )


def _members(conn: sa.Connection, ids: list[int]) -> dict[int, list[Member]]:
    """The members of each incident of ``ids``, in the order they were made."""
    if not ids:
        return {}
    rows = conn.execute(
        sa.select(
            incident_members.c.incident_id,
            incident_members.c.why,
            incident_members.c.linked_at,
            decisions,
        )
        .join(
            decisions,
            sa.and_(
                decisions.c.client == incident_members.c.client,
                decisions.c.post_id == incident_members.c.post_id,
            ),
        )
        .where(incident_members.c.incident_id.in_(ids))
    ).all()
    found: dict[int, list[Member]] = {}
    for r in rows:
        found.setdefault(int(r.incident_id), []).append(
            Member(
                post_id=r.post_id,
                client=r.client,
                version=int(r.version),
                author=r.author,
                verdict=r.verdict,
                review_state=r.review_state,
                threat_to_life=bool(r.threat_to_life),
                created_at=r.created_at,
                first_scanned_at=r.first_scanned_at,
                linked_at=r.linked_at,
                why=list(r.why),
            )
        )
    for members in found.values():
        members.sort(key=lambda m: (m.at, m.first_scanned_at, m.post_id))
    return found


def _timeline(conn: sa.Connection, row: Any, members: list[Member]) -> list[Step]:
    """What happened to the members, in time order (ties in the members' order)."""
    if not members:
        return []
    order = {m.post_id: n for n, m in enumerate(members)}
    ids = list(order)
    steps: list[Step] = []
    for m in members:
        if m.created_at is not None:
            steps.append(Step(m.created_at, "posted", m.post_id, {"author": m.author}))
    decided = conn.execute(
        sa.select(decisions).where(decisions.c.client == row.client, decisions.c.post_id.in_(ids))
    ).all()
    earlier = conn.execute(
        sa.select(decision_versions).where(
            decision_versions.c.client == row.client, decision_versions.c.post_id.in_(ids)
        )
    ).all()
    for d in [*earlier, *decided]:
        steps.append(
            Step(
                d.first_scanned_at,
                "decided",
                d.post_id,
                {
                    "version": int(d.version),
                    "verdict": d.verdict,
                    "actions": list(d.actions),
                    "reasons": [
                        {k: r[k] for k in ("signal", "rule", "bank", "label") if k in r}
                        for r in d.reasons
                    ],
                },
            )
        )
        if d.removal_ordered_at is not None:
            steps.append(
                Step(d.removal_ordered_at, "removal_order", d.post_id, {"version": int(d.version)})
            )
    for r in conn.execute(
        sa.select(review_outcomes).where(
            review_outcomes.c.client == row.client, review_outcomes.c.post_id.in_(ids)
        )
    ):
        steps.append(
            Step(
                r.decided_at,
                "reviewed",
                r.post_id,
                {"reviewer": r.reviewer, "outcome": r.outcome, "action": r.action},
            )
        )
    for a in conn.execute(
        sa.select(appeals).where(appeals.c.client == row.client, appeals.c.post_id.in_(ids))
    ):
        steps.append(Step(a.filed_at, "appealed", a.post_id, {"appeal": int(a.id)}))
        if a.decided_at is not None:
            steps.append(
                Step(
                    a.decided_at,
                    "appeal_decided",
                    a.post_id,
                    {"appeal": int(a.id), "status": a.status, "reviewer": a.reviewer},
                )
            )
    if row.escalated_at is not None and row.escalation:
        steps.append(
            Step(
                row.escalated_at,
                "escalated",
                str(row.escalation.get("post_id")),
                {"basis": row.escalation.get("basis")},
            )
        )
    kinds = ("posted", "decided", "escalated", "removal_order", "reviewed", "appealed")
    return sorted(
        steps,
        key=lambda s: (
            s.at,
            order.get(s.post_id, len(order)),
            kinds.index(s.kind) if s.kind in kinds else len(kinds),
        ),
    )


def _strongest(verdicts: Any) -> str | None:
    ranks = ("allow", "review", "restrict", "remove")
    found = [v for v in verdicts if v in ranks]
    return max(found, key=ranks.index) if found else None


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()
