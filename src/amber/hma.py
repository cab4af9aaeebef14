"""HMA's vocabulary over amber's banks and lookups.

Meta's Hasher-Matcher-Actioner (HMA, "Open Media Match") names the things amber keeps in
its own way. ``amber.api.hma`` serves HMA's routes with HMA's request and response
shapes, and this module is what those routes call (and anything else that speaks HMA:
the stand-in that runs HMA's own tests against amber):

- signal types: HMA's ``pdq`` is amber's ``pdq``; HMA's ``video_md5`` is amber's ``md5``
  of the bytes. These two are the types HMA installs; amber's ``sha256`` and ``vpdq`` are
  served by amber's own API (``/v1``).
- content types: a ``photo`` is hashed with ``pdq``, a ``video`` with ``video_md5``.
- banks: HMA's bank names are ``UPPER_WITH_UNDERSCORE`` (amber takes more, and lists
  them all); HMA's ``matching_enabled_ratio`` is the bank's ``enabled_ratio``.
- content: an HMA content id is an amber bank entry id. Its ``disable_until_ts`` is the
  entry's ``disabled_until`` in Unix seconds, ``1`` when enabled; its ``metadata`` is the
  entry's ``content_id``, ``content_uri`` and ``metadata`` (HMA's ``json``); its ``note``
  is the entry's note.
- matches: an HMA match is ``{"bank_content_id": entry id, "distance": "9"}``, the distance
  as text, grouped by bank. They are amber's matches: each bank's threshold, the minimum
  quality, entries disabled for now and the bank's ``enabled_ratio`` all count (HMA draws
  a random number per request against the ratio; amber lets the same share of a bank's
  entries match every time).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Final

import sqlalchemy as sa

from amber.banks import LOCAL_ACTOR, Bank, Entry, NewEntry
from amber.errors import NotFoundError, UserError
from amber.exchange_fetch import SOURCE
from amber.exchanges import ApiStatus, Exchange
from amber.hashing import hash_data
from amber.lookup import compare, lookup_hash, lookup_media
from amber.matching import Match
from amber.signals import Role, SignalValue
from amber.store.tables import bank_entries, entry_signals

if TYPE_CHECKING:
    from amber.engine import Engine


class ContentType(StrEnum):
    """HMA's kinds of content: what an upload's field or a URL's content says it is."""

    photo = "photo"
    video = "video"


#: HMA's signal type names, and the amber signal type each one is.
SIGNAL_TYPES: Final[Mapping[str, str]] = {"pdq": "pdq", "video_md5": "md5"}
#: The HMA signal types each content type is hashed with (HMA's default install).
CONTENT_SIGNALS: Final[Mapping[ContentType, tuple[str, ...]]] = {
    ContentType.photo: ("pdq",),
    ContentType.video: ("video_md5",),
}
#: The amber signal types whose matches an HMA signal type reports: a photo's PDQ finds
#: banked photos and banked videos' frames (``vpdq`` values share PDQ's index).
_REPORTED_AS: Final[Mapping[str, tuple[str, ...]]] = {
    "pdq": ("pdq", "vpdq"),
    "video_md5": ("md5",),
}
#: HMA's bank names: capitals, digits and ``_``, not starting with a digit.
BANK_NAME: Final = re.compile(r"[A-Z_][A-Z0-9_]*")
#: HMA's ``disable_until_ts`` of an enabled entry, and of one disabled for ever.
ENABLED: Final = 1
DISABLED: Final = 0
#: The start of the source of an exchange's entries (``amber.exchanges.SOURCE``).
EXCHANGE_SOURCE: Final = SOURCE.format("")
#: The keys an HMA content's ``metadata`` may have.
METADATA_KEYS: Final = ("content_id", "content_uri", "json")


@dataclass(frozen=True, slots=True)
class Metadata:
    """HMA's metadata of a content: its ``content_id``, ``content_uri`` and ``json``."""

    content_id: str | None = None
    content_uri: str | None = None
    json: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class IndexStatus:
    """What HMA's ``/m/index/status`` says of one signal type: whether amber holds any of
    its values, how many (one per entry) and when the newest was banked."""

    size: int
    newest: datetime | None

    def to_json(self) -> dict[str, Any]:
        """HMA's ``present``, ``built_to`` (Unix seconds, -1 for none) and ``size``."""
        return {
            "present": self.size > 0,
            "built_to": -1 if self.newest is None else int(self.newest.timestamp()),
            "size": self.size,
        }


# -- names --------------------------------------------------------------------------------


def amber_signal_type(name: object) -> str:
    """The amber signal type HMA's ``name`` is. Raises ``UserError`` naming HMA's."""
    if isinstance(name, str) and name in SIGNAL_TYPES:
        return SIGNAL_TYPES[name]
    known = ", ".join(SIGNAL_TYPES)
    raise UserError(f"no such signal type {name!r}; this server's HMA signal types are {known}")


def content_type(name: object) -> ContentType:
    """HMA's content type called ``name``. Raises ``UserError``."""
    try:
        return ContentType(str(name))
    except ValueError:
        raise UserError(f"no such content_type: {name!r}; use photo or video") from None


def content_type_of(media_type: str) -> ContentType:
    """The content type of a fetched URL, from its ``Content-Type`` (``image/*``: a photo,
    ``video/*``: a video). Raises ``UserError`` for another."""
    kind = media_type.split(";")[0].strip().lower()
    if kind.startswith("image/"):
        return ContentType.photo
    if kind.startswith("video/"):
        return ContentType.video
    raise UserError(
        f"unsupported url ContentType: {media_type!r}; if you know what it is, give it with "
        "the content_type query parameter (photo or video)"
    )


def signal_types_for(content: ContentType, types: str | None = None) -> tuple[str, ...]:
    """The HMA signal types to hash ``content`` with: all of its own, or those named in
    ``types`` (HMA's comma-separated ``types=``). Raises ``UserError`` for a name that is
    not one of the content's, or an empty choice."""
    own = CONTENT_SIGNALS[content]
    if types is None:
        return own
    chosen = tuple(dict.fromkeys(t.strip() for t in types.split(",") if t.strip()))
    for name in chosen:
        if name not in own:
            raise UserError(
                f"signal type {name!r} doesn't exist or is not one of {content.value}'s "
                f"({', '.join(own)})"
            )
    if not chosen:
        raise UserError("empty signal type selection (types=)")
    return chosen


def check_bank_name(name: object) -> str:
    """``name`` if HMA allows it as a bank name. Raises ``UserError``."""
    if not isinstance(name, str) or not BANK_NAME.fullmatch(name) or len(name) > 200:
        raise UserError(
            f"bank name {name!r} is not allowed: bank names must be UPPER_WITH_UNDERSCORE "
            "(capital letters, digits and '_', not starting with a digit; at most 200)"
        )
    return name


def check_ratio(ratio: object) -> float:
    """``ratio`` as a share from 0 to 1 (HMA's ``enabled_ratio``). Raises ``UserError``."""
    if isinstance(ratio, bool) or not isinstance(ratio, int | float) or not 0 <= ratio <= 1:
        raise UserError(f"enabled_ratio {ratio!r} is not a number from 0 to 1")
    return float(ratio)


def parse_metadata(metadata: object) -> Metadata:
    """HMA's ``metadata`` of new content (``None``: none). Raises ``UserError`` for one
    that is not an object, has other keys or values of the wrong kind."""
    if metadata is None:
        return Metadata()
    if not isinstance(metadata, dict):
        raise UserError("metadata should be a JSON object")
    unexpected = sorted(set(metadata) - set(METADATA_KEYS))
    if unexpected:
        raise UserError(
            f"metadata contains unexpected keys: {', '.join(map(str, unexpected))} "
            f"(allowed: {', '.join(METADATA_KEYS)})"
        )
    for key in ("content_id", "content_uri"):
        if metadata.get(key) is not None and not isinstance(metadata[key], str):
            raise UserError(f"metadata {key} {metadata[key]!r} is not text")
    extra = metadata.get("json")
    if extra is not None and not isinstance(extra, dict):
        raise UserError("metadata json should be a JSON object")
    return Metadata(metadata.get("content_id"), metadata.get("content_uri"), extra)


def disabled_until(ts: object) -> datetime | None:
    """The entry's ``disabled_until`` for HMA's ``disable_until_ts`` (Unix seconds; ``1``
    enables it again). Raises ``UserError`` for a value that is not a whole number of
    seconds, for ``0`` (disabled for ever: amber disables an entry until a time) and for
    one too far ahead (``BankStore.update_entry`` says how far)."""
    if isinstance(ts, str) and ts.strip().lstrip("-").isdigit():
        ts = int(ts)
    if isinstance(ts, bool) or not isinstance(ts, int):
        raise UserError(f"disable_until_ts {ts!r} is not a whole number of Unix seconds")
    if ts < 0:
        raise UserError("disable_until_ts must be a non-negative integer")
    if ts == ENABLED:
        return None
    if ts == DISABLED:
        raise UserError(
            "disable_until_ts 0 (disabled for ever) is not kept: give the time until which "
            "the content must not match, or delete it"
        )
    try:
        return datetime.fromtimestamp(ts, UTC)
    except (OverflowError, OSError, ValueError):
        raise UserError(f"disable_until_ts {ts} is not a time amber can keep") from None


# -- views --------------------------------------------------------------------------------


def bank_json(bank: Bank) -> dict[str, Any]:
    """A bank as HMA shows it: ``{"matching_enabled_ratio": 1.0, "name": "X"}``."""
    return {"matching_enabled_ratio": bank.enabled_ratio, "name": bank.name}


def signals_of(entry: Entry) -> dict[str, str]:
    """An entry's own values under HMA's names: ``pdq``, and ``video_md5`` for an entry
    without one (HMA hashes a photo with PDQ only; amber keeps its MD5 too)."""
    own = {v.signal_type: v.value for v in entry.values if v.variant == "original"}
    if "pdq" in own:
        return {"pdq": own["pdq"]}
    if "md5" in own:
        return {"video_md5": own["md5"]}
    return {}


def content_json(
    entry: Entry, bank: Bank, *, signals: bool = False, metadata: bool = True
) -> dict[str, Any]:
    """An entry as HMA shows a bank's content: ``id``, ``disable_until_ts``,
    ``collab_metadata``, ``original_media_uri``, ``bank``; ``metadata`` and ``note`` when
    it has them (and ``metadata`` is asked for), ``signals`` when asked for and it has
    some."""
    out: dict[str, Any] = {
        "id": entry.id,
        "disable_until_ts": (
            ENABLED if entry.disabled_until is None else int(entry.disabled_until.timestamp())
        ),
        "collab_metadata": _collab(entry.source),
        "original_media_uri": entry.source if _is_url(entry.source) else None,
        "bank": bank_json(bank),
    }
    if metadata:
        fields = {
            "content_id": entry.content_id,
            "content_uri": entry.content_uri,
            "json": entry.metadata,
        }
        if any(v is not None for v in fields.values()):
            out["metadata"] = {k: v for k, v in fields.items() if v is not None}
    if entry.note:
        out["note"] = entry.note
    if signals and (own := signals_of(entry)):
        out["signals"] = own
    return out


def matches_json(matches: Iterable[Match]) -> dict[str, list[dict[str, Any]]]:
    """Matches grouped by bank as HMA gives them: ``{"BANK": [{"bank_content_id": 16,
    "distance": "0"}]}``, closest first, one per entry."""
    best: dict[tuple[str, int], int] = {}
    for m in matches:
        key = (m.bank, m.entry_id)
        best[key] = min(best.get(key, m.distance), m.distance)
    out: dict[str, list[dict[str, Any]]] = {}
    for (bank, entry), distance in sorted(best.items(), key=lambda kv: (kv[1], kv[0])):
        out.setdefault(bank, []).append({"bank_content_id": entry, "distance": str(distance)})
    return out


def raw_matches_json(matches: Iterable[Match], *, distance: bool) -> list[Any]:
    """HMA's raw lookup ``matches``: entry ids, or ``{"bank_content_id", "distance"}``."""
    grouped = matches_json(matches)
    found = sorted(
        (m for per_bank in grouped.values() for m in per_bank),
        key=lambda m: (int(m["distance"]), m["bank_content_id"]),
    )
    return found if distance else [m["bank_content_id"] for m in found]


def hashes_json(values: Sequence[SignalValue], types: Sequence[str]) -> dict[str, str]:
    """The content's own value of each HMA signal type in ``types``, under HMA's names;
    a type the content has no value of is left out."""
    own = {v.signal_type: v.value for v in values if v.variant == "original"}
    return {name: own[SIGNAL_TYPES[name]] for name in types if SIGNAL_TYPES[name] in own}


# -- operations ---------------------------------------------------------------------------


def create_bank(
    engine: Engine, name: str, *, enabled_ratio: float = 1.0, actor: str = LOCAL_ACTOR
) -> Bank:
    """Create a bank with an HMA name (and amber's defaults: action ``remove``, PDQ
    threshold 31), letting ``enabled_ratio`` of its entries match. Raises ``UserError``
    for a name HMA does not allow or a bad ratio, ``ConflictError`` if it exists."""
    check_bank_name(name)
    ratio = check_ratio(enabled_ratio)
    bank = engine.banks.create(name, actor=actor)
    if ratio != bank.enabled_ratio:
        bank = engine.banks.update(name, enabled_ratio=ratio, actor=actor)
    return bank


def update_bank(
    engine: Engine,
    name: str,
    *,
    new_name: str | None = None,
    enabled: bool | None = None,
    enabled_ratio: float | None = None,
    actor: str = LOCAL_ACTOR,
) -> Bank:
    """Rename a bank (to an HMA name), enable or disable it, or set the share of its
    entries that match (``enabled_ratio`` wins over ``enabled``, as in HMA). Raises
    ``NotFoundError``, ``UserError``, ``ConflictError`` for a name another bank has."""
    if new_name is not None:
        check_bank_name(new_name)
    if enabled is not None and not isinstance(enabled, bool):
        raise UserError(f"enabled {enabled!r} is not true or false")
    ratio = check_ratio(enabled_ratio) if enabled_ratio is not None else None
    if ratio is None and enabled is not None:
        ratio = 1.0 if enabled else 0.0
    return engine.banks.update(name, new_name=new_name, enabled_ratio=ratio, actor=actor)


def delete_bank(engine: Engine, name: str, *, actor: str = LOCAL_ACTOR) -> bool:
    """Delete a bank and its entries; ``False`` when there was none (HMA's delete
    succeeds either way)."""
    try:
        with engine.write_lock:
            engine.banks.delete(name, actor=actor)
    except NotFoundError:
        return False
    return True


def bank_media(
    engine: Engine,
    bank: str,
    data: bytes,
    name: str,
    content: ContentType,
    *,
    types: Sequence[str] | None = None,
    source: str | None = None,
    note: str | None = None,
    metadata: Metadata = Metadata(),
    actor: str = LOCAL_ACTOR,
) -> tuple[int, dict[str, str]]:
    """Hash one photo or video as ``amber bank add`` does (every signal amber has, and the
    views that let edited copies match) and add it to ``bank`` as one entry; returns the
    entry's id and its HMA signals (``types``, default the content type's).

    Raises ``NotFoundError`` for a bank that does not exist, ``MediaError`` for more bytes
    than the media limit, ``UserError`` for a photo whose pixels cannot be read (it has
    no PDQ hash) or a note, content id or metadata that cannot be stored.
    """
    engine.banks.get(bank)
    hashed = hash_data(data, source=name, role=Role.bank, signals=engine.media_signals)
    chosen = tuple(types or CONTENT_SIGNALS[content])
    shown = hashes_json(hashed.values, chosen)
    if not shown:
        why = hashed.undecoded or "no hash of it could be computed"
        raise UserError(f"{name}: no {', '.join(chosen)} hash for this {content.value} ({why})")
    entry = NewEntry(
        values=hashed.values,
        source=source or name,
        note=note,
        content_id=metadata.content_id,
        content_uri=metadata.content_uri,
        metadata=metadata.json,
    )
    with engine.write_lock:
        (entry_id,) = engine.banks.add_entries(bank, [entry], actor=actor)
    return entry_id, shown


def bank_signals(
    engine: Engine,
    bank: str,
    signals: Mapping[str, object],
    *,
    note: str | None = None,
    source: str = "HMA signal",
    actor: str = LOCAL_ACTOR,
) -> tuple[int, dict[str, str]]:
    """Add one entry to ``bank`` from hashes given under HMA's names (``{"pdq": ...}``);
    returns its id and the hashes as stored (canonical). Raises ``NotFoundError`` for a
    bank that does not exist, ``UserError`` for no hash, an unknown type or a bad value."""
    engine.banks.get(bank)
    if not signals:
        raise UserError('no signals given; give hashes such as {"pdq": "<64 hex digits>"}')
    values: list[SignalValue] = []
    shown: dict[str, str] = {}
    for name, text in signals.items():
        kind = engine.signals.get(amber_signal_type(name))
        if not isinstance(text, str):
            raise UserError(f"invalid {name} signal: {text!r} is not text")
        value = kind.validate(text)
        values.append(SignalValue(kind.name, value))
        shown[name] = value
    with engine.write_lock:
        (entry_id,) = engine.banks.add_entries(
            bank, [NewEntry(values=values, source=source, note=note)], actor=actor
        )
    return entry_id, shown


def lookup_signal(
    engine: Engine, signal_type: str, value: str, *, banks: Collection[str] | None = None
) -> list[Match]:
    """The entries a hash given under an HMA name matches, in ``banks`` only when given
    (a bank that does not exist matches nothing, as in HMA). Raises ``UserError`` for an
    unknown type, ``SignalValueError`` for a bad value."""
    found = lookup_hash(engine, amber_signal_type(signal_type), value).matches
    return [m for m in found if banks is None or m.bank in banks]


def lookup_content(
    engine: Engine,
    data: bytes,
    name: str,
    content: ContentType,
    *,
    types: Sequence[str] | None = None,
    banks: Collection[str] | None = None,
) -> dict[str, list[Match]]:
    """Look a photo or a video up as a post's media are (every view and rotation), and
    give the matches by HMA signal type (``types``, default the content type's), in
    ``banks`` only when given. Raises ``MediaError`` for more bytes than the media
    limit."""
    found = lookup_media(engine, data, name).matches
    chosen = tuple(types or CONTENT_SIGNALS[content])
    return {
        hma: [
            m
            for m in found
            if m.signal_type in _REPORTED_AS[hma] and (banks is None or m.bank in banks)
        ]
        for hma in chosen
    }


def compare_json(engine: Engine, pairs: object) -> dict[str, list[Any]]:
    """HMA's ``/m/compare``: for each HMA signal type, its two values compared,
    ``[match, {"distance": d}]`` under the type's default threshold. Raises ``UserError``
    for a body that is not an object of two-value lists, or an unknown type;
    ``SignalValueError`` for a bad value."""
    if not isinstance(pairs, dict):
        raise UserError("the request body must be a JSON object of signal type to two hashes")
    out: dict[str, list[Any]] = {}
    for name, values in pairs.items():
        if not isinstance(values, list):
            raise UserError(f"comparison hashes for {name} must be a list")
        if len(values) != 2 or not all(isinstance(v, str) for v in values):
            raise UserError(f"comparison hashes for {name} must be a list of exactly 2 hashes")
        result = compare(engine, amber_signal_type(name), values[0], values[1])
        out[name] = [result.matches, {"distance": result.distance}]
    return out


def index_status(engine: Engine, types: Sequence[str] | None = None) -> dict[str, IndexStatus]:
    """For each HMA signal type (``types``, default all), how many entries hold a value of
    it and when the newest was banked. amber's indexes are always built: each lookup
    brings them up to date first. Raises ``UserError`` for an unknown type."""
    chosen = tuple(SIGNAL_TYPES) if types is None else tuple(types)
    wanted = {name: amber_signal_type(name) for name in chosen}
    query = (
        sa.select(
            entry_signals.c.signal_type,
            sa.func.count(),
            sa.func.max(bank_entries.c.added_at),
        )
        .join(bank_entries, bank_entries.c.id == entry_signals.c.entry_id)
        .where(
            entry_signals.c.signal_type.in_(sorted(set(wanted.values()))),
            entry_signals.c.variant == "original",
        )
        .group_by(entry_signals.c.signal_type)
    )
    with engine.db.connect() as conn:
        counts = {str(r[0]): (int(r[1]), r[2]) for r in conn.execute(query)}
    out = {}
    for name, kind in wanted.items():
        size, newest = counts.get(kind, (0, None))
        if isinstance(newest, datetime) and newest.tzinfo is None:
            newest = newest.replace(tzinfo=UTC)
        out[name] = IndexStatus(size, newest)
    return out


def _collab(source: str) -> dict[str, list[str]]:
    """HMA's ``collab_metadata`` of an entry: the exchange that brought it, if one did."""
    exchange = source.removeprefix(EXCHANGE_SOURCE)
    return {exchange: []} if exchange != source else {}


def _is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


# -- exchanges ----------------------------------------------------------------------------

#: HMA's exchange (collaboration) names: capitals, digits and ``_``.
EXCHANGE_NAME: Final = re.compile(r"[A-Z0-9_]+")


def create_exchange(
    engine: Engine,
    bank: object,
    api: object,
    api_json: object = None,
    *,
    actor: str = LOCAL_ACTOR,
) -> Exchange:
    """Add an exchange as HMA's ``POST /c/exchanges`` does: named as the bank it fills
    (``bank``, ``[A-Z0-9_]+``), of API type ``api``, with that type's settings
    (``api_json``; its ``enabled`` too). Raises ``UserError`` for a bad name, an unknown
    API type or settings that do not fit it, ``ConflictError`` if it exists."""
    if not isinstance(bank, str) or not EXCHANGE_NAME.fullmatch(bank):
        raise UserError(f"Field `bank` must match /^[A-Z0-9_]+$/, not {bank!r}")
    if not isinstance(api, str) or not api:
        raise UserError("Field `api` is required: the exchange's API type")
    if api_json is None:
        api_json = {}
    if not isinstance(api_json, dict):
        raise UserError("Field `api_json` must be an object")
    settings = {k: v for k, v in api_json.items() if k not in ("name", "api", "enabled")}
    enabled = api_json.get("enabled", True)
    if not isinstance(enabled, bool):
        raise UserError(f"api_json enabled {enabled!r} is not true or false")
    if api not in {a.api.name for a in engine.exchanges.api_types()}:
        known = ", ".join(a.api.name for a in engine.exchanges.api_types())
        raise UserError(f"No such exchange type {api!r}; installed: {known}")
    return engine.exchanges.create(bank, api=api, config=settings, enabled=enabled, actor=actor)


def delete_exchange(engine: Engine, name: str) -> bool:
    """Delete an exchange (its bank and entries stay, amber's rule); ``False`` when there
    was none (HMA's delete succeeds either way)."""
    try:
        engine.exchanges.delete(name)
    except NotFoundError:
        return False
    return True


def set_api_credentials(engine: Engine, api: str, credentials: object) -> ApiStatus:
    """HMA's ``POST /c/exchanges/api/<name>``: ``credentials`` set an API type's
    credentials, ``{}`` clears them, ``None`` leaves them. Raises ``NotFoundError`` for an
    unknown type, ``UserError`` for credentials that do not fit it."""
    if credentials is not None and not isinstance(credentials, dict):
        raise UserError("credential_json must be an object")
    found = engine.exchanges.api_type(api)
    if credentials is None or (not credentials and not found.api.supports_credentials):
        return found
    return engine.exchanges.set_credentials(api, credentials or None)
