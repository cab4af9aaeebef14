"""Linking posts into incidents as they are decided, in the decision's own transaction.

A post decided ``review`` or stronger (*flagged*) is linked to the other flagged posts of
its client that are, by one of these, the same harm (``docs/incidents.md``):

- ``reply``: the post it replies to (``reply_to``);
- ``author``: the same author's posts created within ``AUTHOR_WINDOW`` of it;
- ``entry``: a post that matched the same bank entry, seen within ``MEDIA_WINDOW``;
- ``sha256``: a post with a media file of the same bytes, seen within ``MEDIA_WINDOW``;
- ``pdq`` (any near-match type): an incident member's photo within the type's
  ``default_threshold``, linked within ``MEDIA_WINDOW``.

The work per post is bounded: a handful of indexed queries, at most ``LINK_LIMIT`` posts
of each kind and ``NEAR_CANDIDATES`` media values compared. Linked posts join the oldest
incident among theirs (any others are merged into it); a flagged post that threatens life
opens an incident of its own when nothing links it. The first member that threatens life
makes the incident's one escalation to the authorities (EU DSA Art. 18); later members
never make another.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from amber.signals import Registry, SignalType
from amber.store.tables import (
    decisions,
    incident_keys,
    incident_members,
    incidents,
    media_signals,
)

#: Verdicts that make a post a possible incident member.
FLAGGED = ("review", "restrict", "remove")
#: How far apart (by the time each post says it was made) one author's posts may be.
AUTHOR_WINDOW = timedelta(hours=168)
#: How long a bank entry, a file's bytes or a photo links posts seen later.
MEDIA_WINDOW = timedelta(days=30)
#: At most this many posts linked by each kind at once.
LINK_LIMIT = 20
#: At most this many incident members' media values compared with a post's, per type.
NEAR_CANDIDATES = 2000
#: The quality below which a near-match value links nothing (as for bank matches).
MIN_QUALITY = 50
#: What the other post of a link records: a reply is ``replied_by`` from the other side.
REVERSE = {"reply": "replied_by"}
#: The escalation's legal basis, as recorded.
ARTICLE = "EU DSA Art. 18 (threat to life or safety)"


def link(conn: sa.Connection, row_id: int, *, now: datetime, signals: Registry[SignalType]) -> None:
    """Link the decided post of ``decisions`` row ``row_id`` into its incident, if it is
    flagged; called by ``DecisionStore.save`` in the decision's transaction."""
    me = conn.execute(sa.select(decisions).where(decisions.c.id == row_id)).one()
    if me.verdict not in FLAGGED:
        return
    keys = _keys(conn, me)
    _remember(conn, me, keys, now)
    links = _links(conn, me, keys, now, signals)
    member = _member(conn, me.client, me.post_id)
    if not links and member is None and not me.threat_to_life:
        return
    ids = {m.incident_id for m in _members(conn, me.client, list(links))}
    if member is not None:
        ids.add(member.incident_id)
    if ids:
        target = min(ids)
        for other in sorted(ids - {target}):
            _merge(conn, other, into=target, now=now)
    else:
        target = _open(conn, me.client, now)
    for post_id, why in links.items():
        back = [{**w, "to": me.post_id, "by": REVERSE.get(w["by"], w["by"])} for w in why]
        _add(conn, target, me.client, post_id, back, now)
    mine = [{**w, "to": post_id} for post_id, why in links.items() for w in why]
    _add(conn, target, me.client, me.post_id, mine or [{"by": "threat_to_life"}], now)
    conn.execute(incidents.update().where(incidents.c.id == target).values(updated_at=now))
    escalate(conn, target, now=now)


def escalate(conn: sa.Connection, incident_id: int, *, now: datetime) -> bool:
    """Make the incident's escalation to the authorities if it has none and a member
    threatens life (the first such member, by when it was made); returns whether it was
    made now. The update is conditional, so two processes never both make it."""
    row = conn.execute(
        sa.select(incidents.c.escalated_at).where(incidents.c.id == incident_id)
    ).one()
    if row.escalated_at is not None:
        return False
    when = sa.func.coalesce(decisions.c.created_at, decisions.c.first_scanned_at)
    first = conn.execute(
        sa.select(decisions)
        .join(
            incident_members,
            sa.and_(
                incident_members.c.client == decisions.c.client,
                incident_members.c.post_id == decisions.c.post_id,
            ),
        )
        .where(incident_members.c.incident_id == incident_id, decisions.c.threat_to_life)
        .order_by(when, decisions.c.id)
        .limit(1)
    ).first()
    if first is None:
        return False
    escalation = {
        "post_id": first.post_id,
        "client": first.client,
        "version": int(first.version),
        "author": first.author,
        "verdict": first.verdict,
        "reasons": [
            {k: r[k] for k in ("signal", "rule", "bank", "label", "detail") if k in r}
            for r in first.reasons
        ],
        "basis": ARTICLE,
    }
    done = conn.execute(
        incidents.update()
        .where(incidents.c.id == incident_id, incidents.c.escalated_at.is_(None))
        .values(escalated_at=now, escalation=escalation)
    )
    return done.rowcount == 1


def _keys(conn: sa.Connection, me: Any) -> list[str]:
    """What ``me`` can be linked by: the bank entries it matched, its files' SHA-256."""
    keys = {f"entry:{r['entry']}" for r in me.reasons if r.get("entry") is not None}
    sha256 = conn.execute(
        sa.select(media_signals.c.value).where(
            media_signals.c.decision == me.id,
            media_signals.c.signal_type == "sha256",
            media_signals.c.variant == "original",
        )
    ).scalars()
    keys.update(f"sha256:{v}" for v in sha256)
    return sorted(keys)


def _remember(conn: sa.Connection, me: Any, keys: list[str], now: datetime) -> None:
    if not keys:
        return
    rows = [{"client": me.client, "key": k, "post_id": me.post_id, "seen_at": now} for k in keys]
    insert = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(
        incident_keys
    )
    conn.execute(
        insert.on_conflict_do_update(
            index_elements=["client", "post_id", "key"], set_={"seen_at": now}
        ),
        rows,
    )


def _links(
    conn: sa.Connection, me: Any, keys: list[str], now: datetime, signals: Registry[SignalType]
) -> dict[str, list[dict[str, Any]]]:
    """The flagged posts linked to ``me``, each with why (from ``me``'s side)."""
    found: dict[str, list[dict[str, Any]]] = {}

    def add(post_id: str, why: dict[str, Any]) -> None:
        if post_id != me.post_id and why not in found.setdefault(post_id, []):
            found[post_id].append(why)

    flagged = sa.and_(
        decisions.c.client == me.client,
        decisions.c.id != me.id,
        decisions.c.verdict.in_(FLAGGED),
    )
    if me.reply_to is not None:
        parent = conn.execute(
            sa.select(decisions.c.post_id).where(flagged, decisions.c.post_id == me.reply_to)
        ).scalar_one_or_none()
        if parent is not None:
            add(parent, {"by": "reply"})
    if me.author is not None:
        made = me.created_at or me.first_scanned_at
        when = sa.func.coalesce(decisions.c.created_at, decisions.c.first_scanned_at)
        same = conn.execute(
            sa.select(decisions.c.post_id)
            .where(
                flagged,
                decisions.c.author == me.author,
                when >= made - AUTHOR_WINDOW,
                when <= made + AUTHOR_WINDOW,
            )
            .order_by(decisions.c.id.desc())
            .limit(LINK_LIMIT)
        ).scalars()
        for post_id in same:
            add(post_id, {"by": "author"})
    if keys:
        rows = conn.execute(
            sa.select(incident_keys.c.post_id, incident_keys.c.key)
            .join(
                decisions,
                sa.and_(
                    decisions.c.client == incident_keys.c.client,
                    decisions.c.post_id == incident_keys.c.post_id,
                ),
            )
            .where(
                flagged,
                incident_keys.c.key.in_(keys),
                incident_keys.c.seen_at >= now - MEDIA_WINDOW,
            )
            .order_by(incident_keys.c.id.desc())
            .limit(LINK_LIMIT * len(keys))
        ).all()
        for row in rows:
            kind, _, value = str(row.key).partition(":")
            add(row.post_id, {"by": kind, kind: int(value) if kind == "entry" else value})
    for post_id, why in _near(conn, me, now, signals):
        add(post_id, why)
    return found


def _near(
    conn: sa.Connection, me: Any, now: datetime, signals: Registry[SignalType]
) -> list[tuple[str, dict[str, Any]]]:
    """Incident members (linked within ``MEDIA_WINDOW``) with a photo near one of
    ``me``'s, by each near-match signal type's ``default_threshold``."""
    mine: dict[str, list[str]] = {}
    for row in conn.execute(
        sa.select(
            media_signals.c.signal_type, media_signals.c.value, media_signals.c.quality
        ).where(media_signals.c.decision == me.id, media_signals.c.variant == "original")
    ):
        if row.signal_type not in signals or signals.get(row.signal_type).exact:
            continue
        if row.quality is not None and row.quality < MIN_QUALITY:
            continue
        mine.setdefault(row.signal_type, []).append(row.value)
    found = []
    for signal_type, values in mine.items():
        kind = signals.get(signal_type)
        near = conn.execute(
            sa.select(decisions.c.post_id, media_signals.c.value)
            .join(media_signals, media_signals.c.decision == decisions.c.id)
            .join(
                incident_members,
                sa.and_(
                    incident_members.c.client == decisions.c.client,
                    incident_members.c.post_id == decisions.c.post_id,
                ),
            )
            .where(
                decisions.c.client == me.client,
                decisions.c.id != me.id,
                incident_members.c.linked_at >= now - MEDIA_WINDOW,
                media_signals.c.signal_type == signal_type,
                media_signals.c.variant == "original",
            )
            .order_by(incident_members.c.id.desc())
            .limit(NEAR_CANDIDATES)
        ).all()
        close: list[tuple[int, int, str]] = []
        for order, hit in enumerate(near):  # the newest members first
            distance = min(kind.distance(hit.value, v) for v in values)
            if distance <= kind.default_threshold:
                close.append((distance, order, hit.post_id))
        # at most LINK_LIMIT posts of each kind, as for the others: the nearest, then the
        # newest. Every copy of one photo is near every other; linking each new copy to
        # all of them made a post's work grow with the copies before it (a 201st copy
        # updated 200 members' reasons in its transaction)
        linked: set[str] = set()
        for distance, _, post_id in sorted(close):
            if post_id not in linked and len(linked) < LINK_LIMIT:
                linked.add(post_id)
                found.append((post_id, {"by": signal_type, "distance": distance}))
    return found


def _member(conn: sa.Connection, client: str, post_id: str) -> Any:
    return conn.execute(
        sa.select(incident_members).where(
            incident_members.c.client == client, incident_members.c.post_id == post_id
        )
    ).first()


def _members(conn: sa.Connection, client: str, post_ids: list[str]) -> list[Any]:
    if not post_ids:
        return []
    return list(
        conn.execute(
            sa.select(incident_members).where(
                incident_members.c.client == client, incident_members.c.post_id.in_(post_ids)
            )
        ).all()
    )


def _open(conn: sa.Connection, client: str, now: datetime) -> int:
    return int(
        conn.execute(
            incidents.insert()
            .values(client=client, opened_at=now, updated_at=now)
            .returning(incidents.c.id)
        ).scalar_one()
    )


def _add(
    conn: sa.Connection,
    incident_id: int,
    client: str,
    post_id: str,
    why: list[dict[str, Any]],
    now: datetime,
) -> None:
    """Make ``post_id`` a member of ``incident_id`` (it is in none, or in this one: then
    the reasons it lacks are added)."""
    known = _member(conn, client, post_id)
    if known is None:
        insert = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(
            incident_members
        )
        conn.execute(
            insert.values(
                incident_id=incident_id, client=client, post_id=post_id, why=why, linked_at=now
            ).on_conflict_do_nothing(index_elements=["client", "post_id"])
        )
        return
    merged = list(known.why) + [w for w in why if w not in known.why]
    if merged != list(known.why):
        conn.execute(
            incident_members.update().where(incident_members.c.id == known.id).values(why=merged)
        )


def _merge(conn: sa.Connection, source: int, *, into: int, now: datetime) -> None:
    """Move the members of incident ``source`` into ``into``; an escalation ``source``
    made is kept by ``into`` when it has none (else noted under ``merged``)."""
    conn.execute(
        incident_members.update()
        .where(incident_members.c.incident_id == source)
        .values(incident_id=into)
    )
    old = conn.execute(sa.select(incidents).where(incidents.c.id == source)).one()
    new = conn.execute(sa.select(incidents).where(incidents.c.id == into)).one()
    values: dict[str, Any] = {"updated_at": now}
    if old.escalated_at is not None:
        if new.escalated_at is None:
            values.update(
                escalated_at=old.escalated_at,
                escalation=old.escalation,
                escalation_logged_at=old.escalation_logged_at,
            )
        else:
            earlier = dict(new.escalation or {})
            earlier["merged"] = [
                *earlier.get("merged", []),
                {"incident": source, "at": old.escalated_at.isoformat(), **(old.escalation or {})},
            ]
            values["escalation"] = earlier
    conn.execute(incidents.update().where(incidents.c.id == into).values(values))
    # ``source`` keeps its own escalation record (its custody event is still logged).
    conn.execute(
        incidents.update().where(incidents.c.id == source).values(merged_into=into, updated_at=now)
    )
