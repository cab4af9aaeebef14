"""Looking content up without a decision: hash media, look a hash or a file up in the
banks, compare two hashes.

Nothing here stores a decision, keeps evidence or queues a review: these are the
questions "what are this file's hashes?", "which bank entries does this hash or this
file match?" and "how far apart are these two hashes?", answered the way a post would be
judged. Files are hashed by ``amber.hashing`` (the query side: every view a post's media
gets, so a rotated or cropped copy is found as it would be in a post), and looked up
through the engine's matcher, so a lookup gets the same thresholds, minimum qualities and
per-bank settings as a post. ``amber hash``, ``amber lookup``, ``amber compare`` and the
API's ``/v1/hash``, ``/v1/lookup`` and ``/v1/compare`` are faces over these calls, and
render what they return with its one ``to_json``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from amber.errors import UserError
from amber.hashing import MediaHashes, hash_data, media_types
from amber.matching import Match
from amber.signals import Registry, Role, SignalType, SignalValue
from amber.signals.base import frame_of, is_own

if TYPE_CHECKING:
    from amber.engine import Engine

#: The quality a hash given as text is looked up with when none is given: whoever gives a
#: hash vouches for it (PDQ's scale is 0-100).
GIVEN_QUALITY = 100


@dataclass(frozen=True, slots=True)
class Hashes:
    """The hashes of one piece of content: a media file's own values (one per type; a
    video's frames), with its name, size and pixel size and why its pixels could not be
    seen (``undecoded``); or values given as text (``name`` and ``size`` ``None``)."""

    values: tuple[SignalValue, ...]
    name: str | None = None
    size: int | None = None
    width: int | None = None
    height: int | None = None
    undecoded: str | None = None
    truncated: bool = False

    def to_json(self) -> dict[str, Any]:
        """``name``, ``size``, ``width``, ``height``, ``undecoded``, ``truncated`` and
        ``signals``: each value's ``signal_type``, ``value``, ``quality`` and ``variant``
        (a video frame's ``time`` and ``frame`` too)."""
        return {
            "name": self.name,
            "size": self.size,
            "width": self.width,
            "height": self.height,
            "undecoded": self.undecoded,
            "truncated": self.truncated,
            "signals": [value_json(v) for v in self.values],
        }


@dataclass(frozen=True, slots=True)
class Lookup:
    """What a lookup found: the hashes looked up, the banks searched (``None``: every
    one) and the bank entries matched, best distance per entry."""

    hashes: Hashes
    matches: tuple[Match, ...]
    banks: tuple[str, ...] | None = None

    def to_json(self) -> dict[str, Any]:
        """The hashes' fields (``Hashes.to_json``), ``banks`` and ``matches``: each
        entry's ``bank``, ``label``, ``action``, ``entry``, ``entry_source``,
        ``signal_type``, ``distance``, ``quality`` (the query value's), ``query_variant``,
        ``entry_variant`` and, for a video, ``video`` (``Match.video``)."""
        return {
            **self.hashes.to_json(),
            "banks": None if self.banks is None else list(self.banks),
            "matches": [match_json(m) for m in self.matches],
        }


@dataclass(frozen=True, slots=True)
class Comparison:
    """Two values of one signal type: how far apart, and whether that is a match under
    the type's default threshold (banks may set their own)."""

    signal_type: str
    a: str
    b: str
    distance: int
    threshold: int

    @property
    def matches(self) -> bool:
        """Is ``distance`` within ``threshold``?"""
        return self.distance <= self.threshold

    def to_json(self) -> dict[str, Any]:
        """``signal_type``, ``signals`` (the two values, canonical), ``distance``,
        ``threshold`` and ``matches``."""
        return {
            "signal_type": self.signal_type,
            "signals": [self.a, self.b],
            "distance": self.distance,
            "threshold": self.threshold,
            "matches": self.matches,
        }


def value_json(value: SignalValue) -> dict[str, Any]:
    """One signal value as lookups write it: ``signal_type``, ``value``, ``quality``,
    ``variant``; a video frame's ``time`` (seconds) and ``frame`` (its number) too."""
    out: dict[str, Any] = {
        "signal_type": value.signal_type,
        "value": value.value,
        "quality": value.quality,
        "variant": value.variant,
    }
    frame = frame_of(value.variant)
    if frame is not None:
        out["time"] = frame.timestamp
        out["frame"] = frame.number
    if value.detail is not None:
        out["detail"] = value.detail
    return out


def match_json(match: Match) -> dict[str, Any]:
    """One bank entry matched, as lookups write it (see ``Lookup.to_json``)."""
    out: dict[str, Any] = {
        "bank": match.bank,
        "label": match.label,
        "action": match.action,
        "entry": match.entry_id,
        "entry_source": match.entry_source,
        "signal_type": match.signal_type,
        "distance": match.distance,
        "quality": match.quality,
        "query_variant": match.query_variant,
        "entry_variant": match.entry_variant,
    }
    video = match.video()
    if video is not None:
        out["video"] = video
    return out


def hash_media(
    source: Engine | Registry[SignalType], data: bytes, name: str, *, role: Role = Role.query
) -> Hashes:
    """The own hashes of one media file's bytes (``name`` names it in the result and in
    errors), by the media signal types of ``source`` (an engine's, or a registry such as
    ``amber.signals.load_signal_types()``): sha256 and md5 of the bytes, pdq of a photo
    (with its quality), vpdq of each sampled frame of a video. ``role`` says which side's
    sampling a video gets (a post's by default; ``Role.bank`` as ``amber bank add``).

    Bytes that are not an image or a video get their exact hashes, and ``undecoded`` says
    why the pixels could not be seen. Raises ``MediaError`` naming ``name`` for more
    bytes than the media limit.
    """
    signals = _media_signals(source)
    hashed = hash_data(data, source=name, role=role, signals=signals)
    return _own(hashed, len(data), signals)


def lookup_media(
    engine: Engine, data: bytes, name: str, *, banks: Sequence[str] | None = None
) -> Lookup:
    """Hash one media file's bytes as a post's media are hashed (every view, rotation and
    video frame a post's would get) and look them up in ``banks`` (default: every bank).
    Nothing is stored. Raises ``MediaError`` for more bytes than the media limit,
    ``NotFoundError`` naming a bank that does not exist."""
    wanted = _banks(engine, banks)
    hashed = hash_data(data, source=name, role=Role.query, signals=engine.media_signals)
    matches = _match(engine, hashed.values, wanted)
    return Lookup(_own(hashed, len(data), engine.media_signals), tuple(matches), wanted)


def lookup_values(
    engine: Engine, values: Sequence[SignalValue], *, banks: Sequence[str] | None = None
) -> list[Match]:
    """The bank entries that ``values`` (one piece of content's: a photo's views, a
    video's frames) match, best distance per entry, through the engine's matcher: the
    thresholds, minimum qualities and per-bank settings a post's media get. Only
    ``banks`` are searched (default: every bank). Nothing is stored. Raises
    ``NotFoundError`` naming a bank that does not exist."""
    return _match(engine, values, _banks(engine, banks))


def lookup_hash(
    engine: Engine,
    signal_type: str,
    value: str,
    *,
    quality: int | None = None,
    banks: Sequence[str] | None = None,
) -> Lookup:
    """Look up a hash given as text (``value``, in the form ``signal_type`` parses: 64
    hex digits for pdq, vPDQ frame lines for vpdq) in ``banks`` (default: every bank).

    A value of a type with qualities (pdq) that has none of its own is looked up with
    ``quality`` (default ``GIVEN_QUALITY``, 100): below the policy's minimum it cannot
    match, as a post's could not. Raises ``UserError`` for an unknown or non-media signal type or a
    quality out of 0-100, ``SignalValueError`` naming the type for a bad value,
    ``NotFoundError`` naming a bank that does not exist.
    """
    kind = _media_type(engine.signals, signal_type)
    if quality is not None and (
        isinstance(quality, bool) or not isinstance(quality, int) or not 0 <= quality <= 100
    ):
        raise UserError(f"quality {quality!r} is not a whole number from 0 to 100")
    given = GIVEN_QUALITY if quality is None else quality
    rated = engine.min_quality.get(kind.name) is not None  # a type without one has no quality
    values = tuple(
        replace(v, quality=given) if rated and v.quality is None else v for v in kind.parse(value)
    )
    wanted = _banks(engine, banks)
    matches = _match(engine, values, wanted)
    return Lookup(Hashes(values), tuple(matches), wanted)


def compare(source: Engine | Registry[SignalType], signal_type: str, a: str, b: str) -> Comparison:
    """How far apart two values of ``signal_type`` are, and whether they match under the
    type's default threshold (PDQ: 31 bits). Raises ``UserError`` for an unknown or
    non-media signal type, ``SignalValueError`` naming the type for a bad value."""
    signals = source if isinstance(source, Registry) else source.signals
    kind = _media_type(signals, signal_type)
    first, second = kind.validate(a), kind.validate(b)
    return Comparison(
        kind.name, first, second, kind.distance(first, second), kind.default_threshold
    )


def _media_signals(source: Engine | Registry[SignalType]) -> tuple[SignalType, ...]:
    if isinstance(source, Registry):
        return media_types(source)
    return tuple(source.media_signals)


def _media_type(signals: Registry[SignalType], name: str) -> SignalType:
    """The media signal type called ``name``. Raises ``UserError`` naming the known ones."""
    media = media_types(signals)
    for kind in media:
        if kind.name == name:
            return kind
    known = ", ".join(sorted(k.name for k in media)) or "none"
    if name in signals:
        raise UserError(
            f"signal type {name!r} is not a hash of media that banks hold; use one of {known}"
        )
    raise UserError(f"unknown signal type {name!r}; use one of {known}")


def _banks(engine: Engine, banks: Sequence[str] | None) -> tuple[str, ...] | None:
    """The banks named, each checked to exist (``NotFoundError``), in order, once each;
    ``None`` (or none named): every bank."""
    if not banks:
        return None
    for name in banks:
        engine.banks.get(name)
    return tuple(dict.fromkeys(banks))


def _match(
    engine: Engine, values: Sequence[SignalValue], banks: tuple[str, ...] | None
) -> list[Match]:
    # The matcher brings its indexes up to date before matching; one writer at a time
    # does that in this process, as when a post is decided or explained.
    with engine.write_lock:
        found = engine.matcher.match([values])
    return [m for m in found if banks is None or m.bank in banks]


def _own(hashed: MediaHashes, size: int, signals: Sequence[SignalType]) -> Hashes:
    """The content's own values (not the views added to match) of the types other tools
    read too (``SignalType.shared``: not a photo's hundreds of keypoints), and what was
    seen of it."""
    unshared = {t.name for t in signals if not t.shared}
    return Hashes(
        tuple(v for v in hashed.values if is_own(v.variant) and v.signal_type not in unshared),
        name=hashed.path,
        size=size,
        width=hashed.width,
        height=hashed.height,
        undecoded=hashed.undecoded,
        truncated=hashed.truncated,
    )
