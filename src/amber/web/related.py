"""Read-only queries the item page needs: an item's media and the items related to it."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from amber.store.tables import decisions, media_signals

RELATED_LIMIT = 20


@dataclass(frozen=True, slots=True)
class Related:
    """Another decided post related to an item, and why."""

    post_id: str
    verdict: str
    review_state: str
    author: str | None
    why: str  # "same author" or "same media"


def related(db: sa.Engine, post_id: str, *, limit: int = RELATED_LIMIT) -> list[Related]:
    """Posts by the same author, then posts sharing a media value (any media signal type)."""
    with db.connect() as conn:
        me = conn.execute(
            sa.select(decisions.c.id, decisions.c.author).where(decisions.c.post_id == post_id)
        ).first()
        if me is None:
            return []
        found: dict[str, Related] = {}
        if me.author is not None:
            rows = conn.execute(
                sa.select(decisions)
                .where(decisions.c.author == me.author, decisions.c.id != me.id)
                .order_by(decisions.c.first_scanned_at.desc(), decisions.c.id.desc())
                .limit(limit)
            )
            for r in rows:
                found[r.post_id] = Related(
                    r.post_id, r.verdict, r.review_state, r.author, "same author"
                )
        mine = sa.select(media_signals.c.signal_type, media_signals.c.value).where(
            media_signals.c.decision == me.id
        )
        hashes = [(h.signal_type, h.value) for h in conn.execute(mine)]
        if hashes:
            # No DISTINCT over decisions.*: PostgreSQL cannot compare its JSON columns.
            sharing = sa.select(media_signals.c.decision).where(
                sa.tuple_(media_signals.c.signal_type, media_signals.c.value).in_(hashes)
            )
            rows = conn.execute(
                sa.select(decisions)
                .where(decisions.c.id != me.id, decisions.c.id.in_(sharing))
                .order_by(decisions.c.first_scanned_at.desc(), decisions.c.id.desc())
                .limit(limit)
            )
            for r in rows:
                if r.post_id in found:
                    found[r.post_id] = Related(
                        r.post_id, r.verdict, r.review_state, r.author, "same author, same media"
                    )
                else:
                    found[r.post_id] = Related(
                        r.post_id, r.verdict, r.review_state, r.author, "same media"
                    )
    return list(found.values())[:limit]
