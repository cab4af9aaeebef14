"""A decided post rebuilt from what amber stored, to be decided again without its media.

A retro-hunt (``amber.retrohunt``) and a user report (``amber.reports``) decide a post
again through the engine's normal path: the post from its stored JSON, each media file
from its stored signal values (``media_signals``: the file's own values, so the
engine's matcher and policy see what they saw at the scan, with today's banks, policy
and related posts). Nothing is read from the media to match.

Its evidence needs the bytes, though: each file comes from the vault's copy of the post
(when it was preserved before) or from where the post named it (a local scan's file),
and only when its SHA-256 is the one amber decided on; a file at hand in neither place is
preserved as missing (``Engine._stage`` names it under ``media_unavailable``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from amber.decisions import Decision
from amber.errors import AmberError, PostError, UserError
from amber.hashing import MediaFailure, MediaHashes
from amber.media import DEFAULT_LIMITS
from amber.posts import Media, Post, parse_post
from amber.signals import SignalValue
from amber.signals.base import TRUNCATED
from amber.store.tables import decisions, media_signals, post_media

if TYPE_CHECKING:
    from amber.engine import Engine

#: How the evidence of a post decided again is collected (the vault's ``method``).
REDECIDED_METHOD = (
    "amber re-decision of a stored post (retro-hunt, user report): decided from its stored "
    "JSON and signal values; media bytes from the vault's earlier copy or the file the post "
    "names, each checked against the SHA-256 amber decided on; any not at hand are listed "
    "under media_unavailable in the decision"
)
#: Bytes read at a time when checking a media file's SHA-256.
_CHUNK = 1 << 20
_UNREADABLE = "could not be read: "


@dataclass(frozen=True, slots=True)
class StoredPost:
    """A stored decision's post and its media's hashes, as ``Engine.findings`` takes them."""

    decision: Decision
    post: Post
    hashed: list[MediaHashes | MediaFailure]


def rebuild(engine: Engine, decision: Decision) -> StoredPost:
    """``decision``'s post (its newest version) rebuilt from what was stored. Raises
    ``UserError`` when its stored JSON is no longer a post amber reads."""
    try:
        body = json.loads(decision.post)
        listed = body.get("media") or []
        # Parsed without its media (which need not exist any more), then given them back.
        post = parse_post(
            {**body, "media": None},
            base=Path("."),
            source=decision.source or "<stored>",
            raw=decision.post,
        )
        base = _base(decision.source)
        files = tuple(
            Media(
                path=str(m["path"]),
                file=Path(m["path"]) if Path(m["path"]).is_absolute() else base / str(m["path"]),
            )
            for m in listed
        )
    except (PostError, ValueError, TypeError, KeyError, AttributeError) as exc:
        message = exc.message if isinstance(exc, PostError) else f"{type(exc).__name__}: {exc}"
        raise UserError(
            f"the stored post {decision.post_id!r} of client {decision.client!r} cannot be "
            f"read again ({message})"
        ) from None
    post = replace(post, media=files)
    rows, values = _stored_media(engine, decision)
    kept = _vault_copies(engine, decision.key)
    why = _unreadable(decision.reasons)
    hashed: list[MediaHashes | MediaFailure] = []
    for position, media in enumerate(post.media):
        row = rows.get(position)
        if row is None:  # never read: its reason said why
            hashed.append(MediaFailure(media.path, why.get(media.path, "not stored")))
            continue
        own = tuple(values.get(position, ()))
        sha256 = next(
            (v.value for v in own if v.signal_type == "sha256" and v.variant == "original"), None
        )
        hashed.append(
            MediaHashes(
                path=_evidence_file(kept, position, sha256, media.file),
                values=own,
                width=row.width,
                height=row.height,
                undecoded=why.get(media.path),
                truncated=any((v.detail or "").startswith(TRUNCATED) for v in own)
                or _said_truncated(decision.reasons, media.path),
            )
        )
    return StoredPost(decision, post, hashed)


def _base(source: str) -> Path:
    """The folder a stored post's media paths are relative to (``amber.explain``'s rule)."""
    where = Path(source) if source else Path(".")
    return where if where.is_dir() else where.parent


def _stored_media(
    engine: Engine, decision: Decision
) -> tuple[dict[int, Any], dict[int, list[SignalValue]]]:
    """The ``post_media`` rows and the stored signal values of a decision, by position."""
    row_id = (
        sa.select(decisions.c.id)
        .where(decisions.c.client == decision.client, decisions.c.post_id == decision.post_id)
        .scalar_subquery()
    )
    with engine.db.connect() as conn:
        rows = {
            int(r.position): r
            for r in conn.execute(sa.select(post_media).where(post_media.c.decision_id == row_id))
        }
        values: dict[int, list[SignalValue]] = {}
        for v in conn.execute(
            sa.select(media_signals)
            .where(media_signals.c.decision == row_id)
            .order_by(
                media_signals.c.position, media_signals.c.signal_type, media_signals.c.variant
            )
        ):
            values.setdefault(int(v.position), []).append(
                SignalValue(v.signal_type, v.value, v.quality, v.variant)
            )
    return rows, values


def _unreadable(reasons: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """Why each media file could not be read, as the stored reasons said (by path)."""
    out = {}
    for reason in reasons:
        detail = str(reason.get("detail") or "")
        if reason.get("signal") == "media" and detail.startswith(_UNREADABLE):
            out[str(reason.get("media"))] = detail[len(_UNREADABLE) :]
    return out


def _said_truncated(reasons: Sequence[Mapping[str, Any]], path: str) -> bool:
    return any(
        r.get("media") == path and "the file is truncated" in str(r.get("detail") or "")
        for r in reasons
    )


def _vault_copies(engine: Engine, key: str) -> dict[int, tuple[str, Path]]:
    """The vault's copies of an item's media (position: SHA-256 and file), without
    creating a vault; none when it holds no live item under ``key``."""
    if not (engine.vault_path / "vault.json").exists():
        return {}
    try:
        vault = engine.open_vault()
        item = vault.item(key)
    except AmberError:
        return {}
    if item.deleted:
        return {}
    return {
        int(m["position"]): (str(m["sha256"]), vault.object_path(str(m["sha256"])))
        for m in item.objects.get("media", [])
    }


def _evidence_file(
    kept: Mapping[int, tuple[str, Path]], position: int, sha256: str | None, named: Path
) -> str:
    """Where the bytes of media ``position`` can be read for its evidence: the vault's
    copy, else the file the post names when its SHA-256 is ``sha256``; ``""`` when
    neither (``Engine._stage`` then names it as unavailable)."""
    if sha256 is None:
        return ""
    copy = kept.get(position)
    if copy is not None and copy[0] == sha256 and copy[1].is_file():
        return str(copy[1])
    try:
        if not named.is_file() or named.stat().st_size > DEFAULT_LIMITS.max_bytes:
            return ""
        digest = hashlib.sha256()
        with named.open("rb") as stream:
            while chunk := stream.read(_CHUNK):
                digest.update(chunk)
    except OSError:
        return ""
    return str(named) if digest.hexdigest() == sha256 else ""
