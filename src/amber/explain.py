"""Why a post got its verdict: every signal, the nearest bank entries and the rules.

``Engine.explain`` builds an ``Explanation`` for a post not yet decided (nothing is stored
or preserved) or for a stored post id (re-derived from the stored post and its media
when they can still be read; otherwise the stored decision, with why it could not be
re-derived). An explanation answers "why was this allowed?" from the output alone: each
media value with its quality and the policy's minimum, each nearest bank entry with its
distance, threshold and quality and why it did or did not match, the post's own signals
(``harm_poll``), and the rules that fired (or "no rule fired").
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from amber.errors import AmberError, PostError
from amber.hashing import Hasher, MediaFailure, MediaHashes
from amber.identity import DEFAULT_CLIENT
from amber.matching import Nearest, VideoVerdict
from amber.policy import Outcome
from amber.posts import Media, Post, media_post, parse_post, read_jsonl
from amber.signals import Role, SignalValue

if TYPE_CHECKING:
    from amber.engine import Engine

#: How many nearest bank entries are shown per media value.
NEAREST = 3
#: What an explanation says when no rule fired.
NO_RULE = "no rule fired"


@dataclass(frozen=True, slots=True)
class ValueExplained:
    """One computed signal value: its type, view, quality against the policy's minimum;
    for a post-level detector its score and detail."""

    signal_type: str
    value: str
    variant: str = "original"
    quality: int | None = None
    #: The policy's minimum quality for this type (``None``: no minimum).
    min_quality: int | None = None
    score: float | None = None
    detail: str | None = None

    @property
    def weak(self) -> bool:
        """True when the value's quality is below the policy's minimum (it cannot match)."""
        return self.min_quality is not None and (self.quality or 0) < self.min_quality

    def to_json(self) -> dict[str, Any]:
        """The value's fields; ``weak`` says it is below the minimum quality."""
        out: dict[str, Any] = {
            "signal_type": self.signal_type,
            "variant": self.variant,
            "value": self.value,
            "quality": self.quality,
            "min_quality": self.min_quality,
            "weak": self.weak,
        }
        if self.score is not None:
            out["score"] = round(self.score, 3)
        if self.detail is not None:
            out["detail"] = self.detail
        return out


@dataclass(frozen=True, slots=True)
class MediaExplained:
    """One media item of the post: its values (``"original"`` first), or why it could
    not be read."""

    position: int
    path: str
    values: tuple[ValueExplained, ...] = ()
    width: int | None = None
    height: int | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The item's position, path, size, values and any read error."""
        return {
            "position": self.position,
            "path": self.path,
            "width": self.width,
            "height": self.height,
            "error": self.error,
            "values": [v.to_json() for v in self.values],
        }


@dataclass(frozen=True, slots=True)
class Candidate:
    """A bank entry near one media value, and why it did or did not match."""

    media: int
    signal_type: str
    query_variant: str
    query_quality: int | None
    bank: str
    label: str
    entry_id: int
    entry_source: str
    entry_variant: str
    entry_quality: int | None
    distance: int
    threshold: int
    min_quality: int | None
    matches: bool
    #: Plain words: "distance 40 is above the threshold 31", "the bank entry's pdq
    #: quality 0 is below the policy's minimum 50", or "distance 4 is within ...".
    why: str

    def to_json(self) -> dict[str, Any]:
        """Every field, by name."""
        return {
            "media": self.media,
            "signal_type": self.signal_type,
            "query_variant": self.query_variant,
            "query_quality": self.query_quality,
            "bank": self.bank,
            "label": self.label,
            "entry": self.entry_id,
            "entry_source": self.entry_source,
            "entry_variant": self.entry_variant,
            "entry_quality": self.entry_quality,
            "distance": self.distance,
            "threshold": self.threshold,
            "min_quality": self.min_quality,
            "matches": self.matches,
            "why": self.why,
        }


@dataclass(frozen=True, slots=True)
class Explanation:
    """Why one post got (or would get) its verdict."""

    post_id: str
    #: ``"input"`` for a post not yet decided, ``"stored"`` for a stored post id.
    origin: str
    #: True when the signals were computed now (False: only the stored decision is known).
    rederived: bool
    verdict: str
    #: The rules that fired, in policy order; empty when none did.
    rules: tuple[str, ...]
    reasons: tuple[Mapping[str, Any], ...]
    actions: tuple[str, ...]
    media: tuple[MediaExplained, ...] = ()
    nearest: tuple[Candidate, ...] = ()
    signals: tuple[ValueExplained, ...] = ()
    #: Each media video against each banked video it shares frames with, judged whole.
    videos: tuple[VideoVerdict, ...] = ()
    policy: str = ""
    #: For a stored post: the stored decision (``Decision.to_record()``).
    stored: Mapping[str, Any] | None = None
    #: Why the post could not be re-derived, when it could not.
    note: str | None = None

    @property
    def summary(self) -> str:
        """One line: which rules made the verdict, or ``no rule fired``."""
        if not self.rules:
            return NO_RULE
        return f"{self.verdict} by rule {', '.join(self.rules)}"

    def to_json(self) -> dict[str, Any]:
        """The whole explanation (``amber explain --format json``, the HTTP API)."""
        return {
            "post_id": self.post_id,
            "origin": self.origin,
            "rederived": self.rederived,
            "verdict": self.verdict,
            "summary": self.summary,
            "rules": list(self.rules),
            "reasons": [dict(r) for r in self.reasons],
            "actions": list(self.actions),
            "policy": self.policy,
            "media": [m.to_json() for m in self.media],
            "nearest": [n.to_json() for n in self.nearest],
            "videos": [v.to_json() for v in self.videos],
            "signals": [s.to_json() for s in self.signals],
            "stored": None if self.stored is None else dict(self.stored),
            "note": self.note,
        }


def explain_post(engine: Engine, post: Post, *, k: int = NEAREST) -> Explanation:
    """Explain ``post`` as the engine would decide it now, storing nothing."""
    return _explain(engine, post, origin="input", k=k)


def explain_stored(
    engine: Engine, post_id: str, *, k: int = NEAREST, client: str | None = None
) -> Explanation:
    """Explain a stored post (of ``client``; without it, of the only client holding the
    id): re-derived from its stored post and media when they can still be read (from
    where it was scanned, else from the vault's evidentiary copies), else its stored
    decision and why. Raises ``NotFoundError``, or ``ConflictError`` for a post id that
    several clients hold when ``client`` is not given."""
    decision = engine.decisions.get(post_id, client=client)
    key = decision.key
    record = decision.to_record()
    try:
        post = parse_post(
            json.loads(decision.post),
            base=_base(decision.source),
            source=decision.source or "<stored>",
            raw=decision.post,
        )
    except (PostError, ValueError) as exc:
        message = exc.message if isinstance(exc, PostError) else str(exc)
        kept = _from_vault(engine, decision.post, decision.source, key)
        if kept is not None:
            note = f"media read from the evidence vault's copies ({message})"
            return _explain(
                engine, kept, origin="stored", k=k, stored=record, note=note, client=decision.client
            )
        return Explanation(
            post_id=post_id,
            origin="stored",
            rederived=False,
            verdict=decision.verdict.value,
            rules=tuple(dict.fromkeys(str(r["rule"]) for r in decision.reasons if "rule" in r)),
            reasons=tuple(decision.reasons),
            actions=tuple(decision.actions),
            policy=decision.policy,
            stored=record,
            note=f"cannot re-derive: {message}; showing the stored decision",
        )
    return _explain(engine, post, origin="stored", k=k, stored=record, client=decision.client)


def explain_file(
    engine: Engine, path: Path, *, k: int = NEAREST
) -> Iterator[Explanation | PostError]:
    """Explain each post of a ``.jsonl`` file, or one media file as a one-media post;
    a ``PostError`` in place of each bad line."""
    if path.suffix.lower() == ".jsonl":
        for item in read_jsonl(path):
            yield item if isinstance(item, PostError) else engine.explain(item, k=k)
        return
    yield engine.explain(media_post(path, path.name, source=str(path.parent)), k=k)


def _from_vault(engine: Engine, raw: str, source: str, key: str) -> Post | None:
    """The stored post with each media item read from the vault's evidentiary copy (the
    vault item ``key``), when the vault holds a copy of every one (posts decided review
    or stronger); else None."""
    if not engine.vault_path.is_dir():  # nothing preserved; do not create a vault
        return None
    try:
        obj = json.loads(raw)
        item = engine.open_vault().item(key)
        listed = obj.get("media") or []
        copies = {int(m["position"]): str(m["sha256"]) for m in item.objects.get("media", [])}
        if item.deleted or not listed or set(copies) != set(range(len(listed))):
            return None
        post = parse_post({**obj, "media": None}, base=Path("."), source=source, raw=raw)
    except (AmberError, KeyError, TypeError, ValueError):
        return None
    files = [engine.open_vault().object_path(copies[i]) for i in range(len(listed))]
    if not all(f.is_file() for f in files):
        return None
    media = tuple(Media(path=str(m["path"]), file=f) for m, f in zip(listed, files, strict=True))
    return replace(post, media=media)


def _base(source: str) -> Path:
    """The folder a stored post's media paths are relative to: its JSONL file's folder,
    or the folder that was scanned."""
    where = Path(source) if source else Path(".")
    return where if where.is_dir() else where.parent


def _explain(
    engine: Engine,
    post: Post,
    *,
    origin: str,
    k: int,
    stored: Mapping[str, Any] | None = None,
    note: str | None = None,
    client: str = DEFAULT_CLIENT,
) -> Explanation:
    hasher = Hasher(engine.media_signals, Role.query)
    hashed = hasher([str(m.file) for m in post.media])
    findings = engine.findings(post, hashed, client=client)
    outcome: Outcome = engine.policy.decide(findings)
    values = [h.values if isinstance(h, MediaHashes) else () for h in hashed]
    nearest = _closest(engine.matcher.nearest(values, k=k), k)
    floors = engine.min_quality
    geometric = {t.name for t in engine.signals if t.geometric}
    media = tuple(_media(i, post.media[i].path, h, floors, geometric) for i, h in enumerate(hashed))
    return Explanation(
        post_id=post.id,
        origin=origin,
        rederived=True,
        verdict=outcome.verdict.value,
        rules=tuple(outcome.rules),
        reasons=tuple(r.to_json() for r in outcome.reasons),
        actions=tuple(outcome.actions),
        media=media,
        nearest=tuple(_candidate(n, floors) for n in nearest),
        videos=tuple(engine.matcher.videos(values)),
        signals=tuple(_value(v, floors) for v in findings.signals),
        policy=engine.policy.ref,
        stored=stored,
        note=note,
    )


def _closest(found: list[Nearest], k: int) -> list[Nearest]:
    """Each bank entry once per media item and type (its best view), the ``k`` closest."""
    best: dict[tuple[int, str, int], Nearest] = {}
    for n in found:
        key = (n.media, n.signal_type, n.entry_id)
        if key not in best or (not best[key].matches, best[key].distance) > (
            not n.matches,
            n.distance,
        ):
            best[key] = n
    ordered = sorted(best.values(), key=lambda n: (n.media, n.signal_type, n.distance, n.entry_id))
    count: dict[tuple[int, str], int] = {}
    out = []
    for n in ordered:
        group = (n.media, n.signal_type)
        count[group] = count.get(group, 0) + 1
        if count[group] <= k:
            out.append(n)
    return out


def _value(v: SignalValue, floors: Mapping[str, int | None]) -> ValueExplained:
    return ValueExplained(
        signal_type=v.signal_type,
        value=v.value,
        variant=v.variant,
        quality=v.quality,
        min_quality=floors.get(v.signal_type) if v.quality is not None else None,
        score=v.score,
        detail=v.detail,
    )


def _media(
    position: int,
    path: str,
    hashed: MediaHashes | MediaFailure,
    floors: Mapping[str, int | None],
    geometric: set[str],
) -> MediaExplained:
    if isinstance(hashed, MediaFailure):
        return MediaExplained(position, path, error=hashed.reason)
    ordered = sorted(hashed.values, key=lambda v: v.variant != "original")  # stable
    values = [_value(v, floors) for v in ordered if v.signal_type not in geometric]
    # Keypoints are judged together: one line a view says how many there are.
    counts: dict[tuple[str, str], int] = {}
    for v in ordered:
        if v.signal_type in geometric:
            counts[(v.signal_type, v.variant)] = counts.get((v.signal_type, v.variant), 0) + 1
    values += [
        ValueExplained(
            signal_type=name,
            value=f"{count} keypoints",
            variant=variant,
            detail="matched together, by a homography (a match's reason gives its region)",
        )
        for (name, variant), count in counts.items()
    ]
    return MediaExplained(
        position,
        path,
        values=tuple(values),
        width=hashed.width,
        height=hashed.height,
        error=hashed.undecoded,
    )


def _candidate(n: Nearest, floors: Mapping[str, int | None]) -> Candidate:
    floor = floors.get(n.signal_type)
    why: list[str] = []
    if n.distance > n.threshold:
        why.append(f"distance {n.distance} is above the threshold {n.threshold}")
    if floor is not None and n.entry_quality is not None and n.entry_quality < floor:
        why.append(
            f"the bank entry's {n.signal_type} quality {n.entry_quality} is below the "
            f"policy's minimum {floor}"
        )
    if floor is not None and (n.query.quality or 0) < floor:
        why.append(
            f"this media's {n.signal_type} quality {n.query.quality} is below the "
            f"policy's minimum {floor}"
        )
    if n.matches:
        text = f"matches: distance {n.distance} is within the threshold {n.threshold}"
    else:
        text = "no match: " + ("; ".join(why) or "not a match under this policy")
    return Candidate(
        media=n.media,
        signal_type=n.signal_type,
        query_variant=n.query.variant,
        query_quality=n.query.quality,
        bank=n.bank,
        label=n.label,
        entry_id=n.entry_id,
        entry_source=n.entry_source,
        entry_variant=n.entry_variant,
        entry_quality=n.entry_quality,
        distance=n.distance,
        threshold=n.threshold,
        min_quality=floor,
        matches=n.matches,
        why=text,
    )


__all__ = [
    "NEAREST",
    "NO_RULE",
    "Candidate",
    "Explanation",
    "MediaExplained",
    "ValueExplained",
    "explain_file",
    "explain_post",
    "explain_stored",
]
