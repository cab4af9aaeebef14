"""Banks of known content: create, add files, import and export hash lists, list.

A bank has a label, an action (what a match to it means: remove, restrict or review, or
``allow`` for known-benign content whose matches override every other bank's) and a PDQ
distance threshold, and may be disabled (``enabled_ratio`` 0). Each entry is one file or
one imported row, and keeps its signal values, its source (file name or ``FILE:ROW``),
when it was added, a note, where the content lives (``content_id``, ``content_uri``) and
free metadata; an entry may be disabled until a time. Every change is in the bank's
audit (``BankStore.audit``).
"""

from __future__ import annotations

import contextlib
import gc
import io
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, TextIO

import sqlalchemy as sa

from amber.bank_formats import (
    MAX_CELL,
    SIGNAL_ALIASES,
    BankFormat,
    ExportBank,
    ExportEntry,
    Plain,
    ReadItem,
    Row,
    RowError,
    SignalReader,
    Skipped,
    default_formats,
    detect,
    group_rows,
    read_ahead,
)
from amber.errors import ConflictError, NotFoundError, UserError
from amber.hashing import Hasher, MediaFailure, media_types, parallel_map
from amber.signals import Registry, Role, SignalType, SignalValue
from amber.signals.base import Reads, is_own
from amber.signals.local import OrbSignal
from amber.signals.pdq import PdqSignal
from amber.store.bulk import ANALYZE_FROM, EntryWriter, Written, bulk_session, refresh_statistics
from amber.store.tables import bank_audit, bank_entries, banks, entry_signals

__all__ = ["MAX_CELL", "SIGNAL_ALIASES"]  # kept importable from here

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,199}")
MAX_THRESHOLD = 63
#: Longest bank or entry label, in characters: the size of ``banks.label`` and
#: ``bank_entries.label`` (PostgreSQL enforces it).
MAX_LABEL_LENGTH = 200
MAX_IMPORT_ERRORS_SHOWN = 20
#: Bad rows of an import kept with their messages (the rest are counted).
MAX_IMPORT_ERRORS_KEPT = 1000
#: The formats ``import_file``/``import_text`` read besides the registered ones: a vPDQ
#: hash file (one video), and ``auto`` (told from the file's first lines).
IMPORT_FORMATS = ("auto", "vpdq")
#: A posted video matches a banked video as a whole when it covers this share (percent)
#: of the banked frames (vPDQ's example operating point), unless the bank says otherwise.
DEFAULT_VIDEO_PERCENT = 80
#: Keypoint pairs on one homography a local-feature match needs, unless a bank says.
DEFAULT_MIN_INLIERS = OrbSignal.MIN_INLIERS
#: PostgreSQL advisory lock that orders bank writes ("amber" in ASCII; any fixed number).
BANK_WRITES_LOCK = 0x616D626572
#: Longest entry note, in characters (HMA's limit).
MAX_NOTE_LENGTH = 255
#: Longest ``content_id`` of an entry, in characters.
MAX_CONTENT_ID_LENGTH = 500
#: Furthest ahead an entry may be disabled: longer than this, delete it or bank the
#: content in an allow bank.
MAX_DISABLE = timedelta(days=3653)
#: Who changed a bank when no one is named: the local command line or library.
LOCAL_ACTOR = "local"


class _Keep:
    """The default of an optional change: leave the field as it is (``None`` clears it)."""

    def __repr__(self) -> str:
        return "KEEP"


KEEP: Any = _Keep()


class BankAction(StrEnum):
    """What a match to a bank means; the default policy turns it into the verdict."""

    remove = "remove"
    restrict = "restrict"
    review = "review"
    #: Known-benign content (news footage of the same event, say): a media item that
    #: matches an allow bank is not actioned for its matches to other banks.
    allow = "allow"


@dataclass(frozen=True, slots=True)
class Bank:
    """A bank and how many entries it holds."""

    id: int
    name: str
    label: str
    action: BankAction
    threshold: int
    created_at: datetime
    entries: int = 0
    #: Share (percent) of a banked video's frames a posted video must cover to match it
    #: as a whole (a segment played in order matches whatever the share).
    video_percent: int = DEFAULT_VIDEO_PERCENT
    #: Share (0 to 1) of the bank's entries that match; 0 is a disabled bank.
    enabled_ratio: float = 1.0
    #: Keypoint pairs on one homography a local-feature match to its entries needs.
    min_inliers: int = DEFAULT_MIN_INLIERS

    @property
    def enabled(self) -> bool:
        """Does any of the bank's entries match?"""
        return self.enabled_ratio > 0

    def to_json(self) -> dict[str, Any]:
        """The bank as the CLI (``--format jsonl``) and the API write it."""
        return {
            "name": self.name,
            "label": self.label,
            "action": self.action.value,
            "threshold": self.threshold,
            "video_percent": self.video_percent,
            "min_inliers": self.min_inliers,
            "enabled": self.enabled,
            "enabled_ratio": self.enabled_ratio,
            "entries": self.entries,
            "created_at": self.created_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class Entry:
    """One bank entry: its own signal values and what is known of it."""

    id: int
    bank: str
    source: str
    label: str | None
    added_at: datetime
    note: str | None = None
    content_id: str | None = None
    content_uri: str | None = None
    metadata: Any = None
    disabled_until: datetime | None = None
    #: The entry's own values (a video's frames; never robust-matching views).
    values: tuple[SignalValue, ...] = ()

    def enabled(self, now: datetime) -> bool:
        """Does the entry match at ``now``?"""
        return self.disabled_until is None or self.disabled_until <= now

    def to_json(self) -> dict[str, Any]:
        """The entry as the CLI (``--format jsonl``) and the API write it."""
        signals: dict[str, list[str]] = {}
        for v in self.values:
            signals.setdefault(v.signal_type, []).append(v.value)
        return {
            "id": self.id,
            "bank": self.bank,
            "source": self.source,
            "label": self.label,
            "note": self.note,
            "content_id": self.content_id,
            "content_uri": self.content_uri,
            "metadata": self.metadata,
            "added_at": self.added_at.isoformat(),
            "disabled_until": (
                None if self.disabled_until is None else self.disabled_until.isoformat()
            ),
            "signals": signals,
        }


@dataclass(frozen=True, slots=True)
class NewEntry:
    """An entry to add from signal values (``BankStore.add_entries``)."""

    values: Sequence[SignalValue]
    source: str
    label: str | None = None
    note: str | None = None
    content_id: str | None = None
    content_uri: str | None = None
    metadata: Any = None


@dataclass(frozen=True, slots=True)
class BankEvent:
    """One change to a bank, from its audit: who did what, when."""

    id: int
    bank: str
    at: datetime
    actor: str
    action: str
    entry: int | None
    detail: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        """The event as the CLI (``--format jsonl``) and the API write it."""
        return {
            "id": self.id,
            "bank": self.bank,
            "at": self.at.isoformat(),
            "actor": self.actor,
            "action": self.action,
            "entry": self.entry,
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True)
class WeakHash:
    """A file's own value whose quality is below a minimum: it will never match."""

    path: str
    signal_type: str
    quality: int
    minimum: int


@dataclass(frozen=True, slots=True)
class AddResult:
    """What ``add_files`` did: entries added, files already in the bank, files that failed.

    ``weak`` lists values of added files too weak to match under the policy's minimum
    quality; ``refused`` the values that kept files out (``add_files(min_quality=...)``);
    ``truncated`` the added files that ended early (banked as far as they decode).
    """

    added: list[str]
    duplicates: list[str]
    failures: list[MediaFailure]
    weak: list[WeakHash] = field(default_factory=list)
    refused: list[WeakHash] = field(default_factory=list)
    truncated: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ImportResult:
    """What an import did: entries added, entries already in the bank (or given twice),
    rows skipped on purpose (python-threatexchange's ``NEGATIVE_CLASS``), and entries
    deleted because the file no longer lists them (``sync``)."""

    added: int
    duplicates: int
    skipped: int = 0
    deleted: int = 0

    def to_json(self) -> dict[str, int]:
        """The result as the API returns it."""
        return {
            "added": self.added,
            "duplicates": self.duplicates,
            "skipped": self.skipped,
            "deleted": self.deleted,
        }


class ImportRowsError(UserError):
    """Rows of an import were invalid; nothing was imported. ``rows`` lists (row, message)
    of the first ``MAX_IMPORT_ERRORS_KEPT``; ``total`` counts them all."""

    def __init__(
        self, source: str, rows: list[tuple[int, str]], *, total: int | None = None
    ) -> None:
        total = len(rows) if total is None else total
        shown = rows[:MAX_IMPORT_ERRORS_SHOWN]
        lines = [f"{source} row {row}: {message}" for row, message in shown]
        if total > len(shown):
            lines.append(f"... and {total - len(shown)} more bad rows")
        super().__init__(
            f"{total} bad row(s) in {source}; nothing was imported:\n" + "\n".join(lines)
        )
        self.rows = rows
        self.total = total


def image_files(paths: Iterable[Path]) -> Iterator[Path]:
    """Each file given, and every non-hidden file under each folder given, sorted.

    Raises ``UserError`` for a path that does not exist.
    """
    for path in paths:
        if path.is_dir():
            for file in sorted(p for p in path.rglob("*") if p.is_file()):
                if not any(part.startswith(".") for part in file.relative_to(path).parts):
                    yield file
        elif path.is_file():
            yield path
        else:
            raise UserError(f"{str(path)!r} does not exist; give image or video files, or folders")


class BankStore:
    """Bank operations on one database. ``on_change`` runs after entries are committed;
    after a bulk import, ``on_import`` instead, given the value rows written by type
    (``amber.store.bulk.Written``) so that the indexes need not read them back."""

    def __init__(
        self,
        db: sa.Engine,
        signals: Registry[SignalType],
        *,
        on_change: Callable[[], object] = lambda: None,
        on_delete: Callable[[list[int]], object] = lambda ids: None,
        on_import: Callable[[Written], object] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        min_quality: Mapping[str, int | None] | None = None,
        formats: Registry[BankFormat] | None = None,
    ) -> None:
        self.db = db
        self.signals = signals
        #: The bank file formats ``import_text`` reads and ``export`` writes.
        self.formats = default_formats() if formats is None else formats
        self.on_change = on_change
        self.on_delete = on_delete
        self.on_import = on_import or (lambda written: self.on_change())
        self.clock = clock
        #: Each type's minimum quality to match (the policy's); default the type's own.
        self.min_quality = {s.name: (min_quality or {}).get(s.name, s.min_quality) for s in signals}

    # -- banks ---------------------------------------------------------------------------

    def create(
        self,
        name: str,
        *,
        action: BankAction | str = BankAction.remove,
        label: str | None = None,
        threshold: int = PdqSignal.DEFAULT_THRESHOLD,
        video_percent: int = DEFAULT_VIDEO_PERCENT,
        min_inliers: int = DEFAULT_MIN_INLIERS,
        actor: str = LOCAL_ACTOR,
    ) -> Bank:
        """Create a bank. Raises ``UserError`` for a bad value, ``ConflictError`` if it exists."""
        _check_name(name)
        action = _action(action)
        _check_threshold(threshold)
        _check_percent(video_percent)
        _check_inliers(min_inliers)
        label = name if label is None else label.strip()
        if not label:
            raise UserError("bank label is empty; give a label such as 'terror-execution'")
        _storable(label, what="bank label", limit=MAX_LABEL_LENGTH)
        with self.db.begin() as conn:
            _serialize_bank_writes(conn)
            exists = conn.execute(sa.select(banks.c.id).where(banks.c.name == name)).first()
            if exists:
                raise ConflictError(f"bank {name!r} already exists; choose another name")
            now = self.clock()
            bank_id = conn.execute(
                banks.insert()
                .values(
                    name=name,
                    label=label,
                    action=action.value,
                    threshold=threshold,
                    video_percent=video_percent,
                    min_inliers=min_inliers,
                    created_at=now,
                )
                .returning(banks.c.id)
            ).scalar_one()
            self._audit(
                conn,
                name,
                actor,
                "create",
                action=action.value,
                label=label,
                threshold=threshold,
                video_percent=video_percent,
                min_inliers=min_inliers,
            )
        return Bank(
            bank_id,
            name,
            label,
            action,
            threshold,
            now,
            video_percent=video_percent,
            min_inliers=min_inliers,
        )

    def get(self, name: str) -> Bank:
        """The bank called ``name``. Raises ``NotFoundError`` naming the known banks."""
        for bank in self.all():
            if bank.name == name:
                return bank
        known = ", ".join(b.name for b in self.all()) or "none yet"
        raise NotFoundError(
            f"no bank called {name!r} (banks: {known}); create it with: amber bank create {name}"
        )

    def all(self) -> list[Bank]:
        """Every bank with its entry count, by name (in code-point order, whatever the
        database's collation)."""
        count = (
            sa.select(sa.func.count(bank_entries.c.id))
            .where(bank_entries.c.bank_id == banks.c.id)
            .scalar_subquery()
        )
        with self.db.connect() as conn:
            rows = conn.execute(sa.select(banks, count.label("entries")))
            found = [
                Bank(
                    r.id,
                    r.name,
                    r.label,
                    BankAction(r.action),
                    r.threshold,
                    r.created_at,
                    r.entries,
                    r.video_percent,
                    r.enabled_ratio,
                    r.min_inliers,
                )
                for r in rows
            ]
        return sorted(found, key=lambda b: b.name)

    def update(
        self,
        name: str,
        *,
        action: BankAction | str | None = None,
        label: str | None = None,
        threshold: int | None = None,
        video_percent: int | None = None,
        min_inliers: int | None = None,
        new_name: str | None = None,
        enabled: bool | None = None,
        enabled_ratio: float | None = None,
        actor: str = LOCAL_ACTOR,
    ) -> Bank:
        """Change a bank's action, label, threshold, video share, minimum inliers or name,
        or enable or disable it (``enabled``; ``enabled_ratio`` lets a share of its
        entries match, as HMA's ``matching_enabled_ratio``). Raises ``NotFoundError`` or
        ``UserError``, and ``ConflictError`` for a new name that another bank has."""
        bank = self.get(name)
        values: dict[str, object] = {}
        if action is not None:
            values["action"] = _action(action).value
        if label is not None:
            if not label.strip():
                raise UserError("bank label is empty")
            values["label"] = _storable(label.strip(), what="bank label", limit=MAX_LABEL_LENGTH)
        if threshold is not None:
            _check_threshold(threshold)
            values["threshold"] = threshold
        if video_percent is not None:
            _check_percent(video_percent)
            values["video_percent"] = video_percent
        if min_inliers is not None:
            _check_inliers(min_inliers)
            values["min_inliers"] = min_inliers
        if enabled is not None and enabled_ratio is not None:
            raise UserError("give enabled or enabled_ratio, not both")
        if enabled is not None:
            if not isinstance(enabled, bool):
                raise UserError(f"enabled {enabled!r} is not true or false")
            values["enabled_ratio"] = 1.0 if enabled else 0.0
        if enabled_ratio is not None:
            values["enabled_ratio"] = _check_ratio(enabled_ratio)
        if new_name is not None and new_name != name:
            _check_name(new_name)
            values["name"] = new_name
        values = {k: v for k, v in values.items() if getattr(bank, k) != v}
        if values:
            with self.db.begin() as conn:
                _serialize_bank_writes(conn)
                if (
                    "name" in values
                    and conn.execute(sa.select(banks.c.id).where(banks.c.name == new_name)).first()
                ):
                    raise ConflictError(f"bank {new_name!r} already exists; choose another name")
                conn.execute(banks.update().where(banks.c.id == bank.id).values(**values))
                if "name" in values:  # the audit follows the bank
                    conn.execute(
                        bank_audit.update().where(bank_audit.c.bank == name).values(bank=new_name)
                    )
                self._audit(conn, str(values.get("name", name)), actor, "update", **values)
            if {"enabled_ratio", "action", "threshold"} & values.keys():
                self.on_change()
        return self.get(new_name or name)

    def delete(self, name: str, *, actor: str = LOCAL_ACTOR) -> int:
        """Delete a bank and its entries; returns how many entries went.

        Deleted entries stop matching at once (matches are confirmed against the
        database); ``on_delete`` drops their rows from the PDQ index.
        """
        bank = self.get(name)
        with self.db.begin() as conn:
            _serialize_bank_writes(conn)
            ids = [
                int(r.id)
                for r in conn.execute(
                    sa.select(entry_signals.c.id)
                    .join(bank_entries, bank_entries.c.id == entry_signals.c.entry_id)
                    .where(bank_entries.c.bank_id == bank.id)
                )
            ]
            if ids:
                conn.execute(entry_signals.delete().where(entry_signals.c.id.in_(ids)))
            conn.execute(bank_entries.delete().where(bank_entries.c.bank_id == bank.id))
            conn.execute(banks.delete().where(banks.c.id == bank.id))
            self._audit(conn, name, actor, "delete", entries=bank.entries)
        self.on_delete(ids)
        return bank.entries

    # -- entries from files ----------------------------------------------------------------

    def add_files(
        self,
        name: str,
        paths: Iterable[Path],
        *,
        sources: Mapping[str, str] | None = None,
        min_quality: int | None = None,
        note: str | None = None,
        actor: str = LOCAL_ACTOR,
    ) -> AddResult:
        """Hash each image or video file (folders are walked) and add it as one entry.

        A file whose SHA-256 the bank already holds is skipped as a duplicate; a file that
        cannot be decoded is reported in ``failures`` and the others are still added.
        A file's own value whose quality is below its type's minimum (the policy's
        ``[signals.pdq] min_quality`` for PDQ) is reported in ``weak``: that value will
        never match. With ``min_quality``, a file with any own value below it is not added
        and is reported in ``refused``. Raises ``UserError`` for ``min_quality`` outside
        0..100.
        """
        if min_quality is not None and (
            isinstance(min_quality, bool) or not 0 <= min_quality <= 100
        ):
            raise UserError(f"min_quality {min_quality!r} is out of range; give 0 to 100")
        bank = self.get(name)
        note = _optional_text(note, what="note", limit=MAX_NOTE_LENGTH)
        files = [str(p) for p in image_files(paths)]
        hasher = Hasher(media_types(self.signals), Role.bank)
        results = parallel_map(hasher.one, files)
        added: list[str] = []
        duplicates: list[str] = []
        failures: list[MediaFailure] = []
        weak: list[WeakHash] = []
        refused: list[WeakHash] = []
        truncated: list[str] = []
        with self.db.begin() as conn:
            _serialize_bank_writes(conn)
            known = self._known_sha256(conn, bank.id)
            for result in results:
                if isinstance(result, MediaFailure):
                    failures.append(result)
                    continue
                if result.undecoded is not None:  # a bank entry is an image's hashes
                    failures.append(MediaFailure(result.path, result.undecoded))
                    continue
                if min_quality is not None:
                    below = self._below(result.path, result.values, lambda _: min_quality)
                    if below:
                        refused.extend(below)
                        continue
                digest = result.original("sha256")
                if digest is None or digest.value in known:
                    duplicates.append(result.path)
                    continue
                known.add(digest.value)
                source = (sources or {}).get(result.path, result.path)
                entry = self._insert_entry(
                    conn, bank.id, source, None, result.values, extra={"note": note}
                )
                self._audit(conn, name, actor, "add", entry, source=source)
                added.append(result.path)
                if result.truncated:
                    truncated.append(result.path)
                weak.extend(self._below(result.path, result.values, self.min_quality.get))
        if added:
            self.on_change()
        return AddResult(added, duplicates, failures, weak, refused, truncated)

    @staticmethod
    def _below(
        path: str, values: Iterable[SignalValue], minimum: Callable[[str], int | None]
    ) -> list[WeakHash]:
        """The file's own values with a quality below ``minimum(signal_type)``; for a
        video, its frames' type when not one of its own frames reaches it (the best
        frame's quality is reported)."""
        out = []
        frames: dict[str, int] = {}  # the best quality of each type's own frames
        for v in values:
            floor = minimum(v.signal_type)
            if floor is None or v.quality is None:
                continue
            if v.variant == "original" and v.quality < floor:
                out.append(WeakHash(path, v.signal_type, v.quality, floor))
            elif is_own(v.variant) and v.variant != "original":
                frames[v.signal_type] = max(frames.get(v.signal_type, 0), v.quality)
        for type_name, best in frames.items():
            floor = minimum(type_name)
            if floor is not None and best < floor:
                out.append(WeakHash(path, type_name, best, floor))
        return out

    # -- entries one by one ------------------------------------------------------------------

    def add_entries(
        self, name: str, items: Iterable[NewEntry], *, actor: str = LOCAL_ACTOR
    ) -> list[int]:
        """Add entries from signal values (a hash list, an exchange, HMA's ``/signal``), in
        one transaction; returns their ids in order. No entry is checked against the
        others: each call adds what it is given. Raises ``UserError`` for a value of an
        unknown or non-media type, or a note, content id or metadata that cannot be
        stored; then nothing is added."""
        bank = self.get(name)
        rows = []
        for i, item in enumerate(items):
            if not item.values:
                raise UserError(f"entry {i} has no signal value")
            for v in item.values:
                if v.signal_type not in self.signals:
                    known = ", ".join(self.signals.names())
                    raise UserError(f"unknown signal type {v.signal_type!r}; known: {known}")
                if self.signals.get(v.signal_type).reads is not Reads.media:
                    raise UserError(f"{v.signal_type} values score posts; they cannot be banked")
            rows.append((item, _entry_extra(item)))
        ids = []
        with self.db.begin() as conn:
            _serialize_bank_writes(conn)
            for item, extra in rows:
                label = _optional_text(item.label, what="label", limit=MAX_LABEL_LENGTH)
                source = _storable(item.source, what="source")
                ids.append(
                    self._insert_entry(conn, bank.id, source, label, item.values, extra=extra)
                )
            if len(ids) == 1:
                self._audit(conn, name, actor, "add", ids[0], source=rows[0][0].source)
            elif ids:
                self._audit(conn, name, actor, "add", entries=len(ids), first=ids[0], last=ids[-1])
        if ids:
            self.on_change()
        return ids

    def entries(
        self, name: str, *, after: int = 0, limit: int = 100, signals: bool = True
    ) -> list[Entry]:
        """Up to ``limit`` of the bank's entries with ids above ``after``, by id (page on
        with the last id). ``signals=False`` leaves their values out."""
        _check_page(after, limit, 10_000)
        bank = self.get(name)
        with self.db.connect() as conn:
            rows = conn.execute(
                sa.select(bank_entries)
                .where(bank_entries.c.bank_id == bank.id, bank_entries.c.id > after)
                .order_by(bank_entries.c.id)
                .limit(limit)
            ).all()
            values = self._own_values(conn, [int(r.id) for r in rows]) if signals else {}
        return [_entry(bank.name, r, values.get(int(r.id), ())) for r in rows]

    def entry(self, name: str, entry_id: int) -> Entry:
        """One entry of the bank, with its own values. Raises ``NotFoundError``."""
        bank = self.get(name)
        if (
            isinstance(entry_id, bool)
            or not isinstance(entry_id, int)
            or not 0 < entry_id <= MAX_ID
        ):
            raise NotFoundError(f"bank {name!r} has no entry {entry_id!r}")
        with self.db.connect() as conn:
            row = conn.execute(
                sa.select(bank_entries).where(
                    bank_entries.c.bank_id == bank.id, bank_entries.c.id == entry_id
                )
            ).first()
            if row is None:
                raise NotFoundError(f"bank {name!r} has no entry {entry_id}")
            values = self._own_values(conn, [entry_id])
        return _entry(bank.name, row, values.get(entry_id, ()))

    def update_entry(
        self,
        name: str,
        entry_id: int,
        *,
        disabled_until: datetime | None = KEEP,
        note: str | None = KEEP,
        label: str | None = KEEP,
        content_id: str | None = KEEP,
        content_uri: str | None = KEEP,
        metadata: Any = KEEP,
        actor: str = LOCAL_ACTOR,
    ) -> Entry:
        """Change an entry: disable it until a time (``None`` enables it again), or its
        note, label, content id, URI or metadata (``None`` or ``""`` clears one). Fields
        left out stay. Raises ``NotFoundError``, or ``UserError`` for a bad value."""
        before = self.entry(name, entry_id)
        values: dict[str, Any] = {}
        if disabled_until is not KEEP:
            values["disabled_until"] = _check_disabled_until(disabled_until, self.clock())
        if note is not KEEP:
            values["note"] = _optional_text(note, what="note", limit=MAX_NOTE_LENGTH)
        if label is not KEEP:
            values["label"] = _optional_text(label, what="label", limit=MAX_LABEL_LENGTH)
        if content_id is not KEEP:
            values["content_id"] = _optional_text(
                content_id, what="content_id", limit=MAX_CONTENT_ID_LENGTH
            )
        if content_uri is not KEEP:
            values["content_uri"] = _optional_text(content_uri, what="content_uri")
        if metadata is not KEEP:
            values["metadata"] = _check_metadata(metadata)
        values = {k: v for k, v in values.items() if getattr(before, k) != v}
        if values:
            with self.db.begin() as conn:
                _serialize_bank_writes(conn)
                conn.execute(
                    bank_entries.update().where(bank_entries.c.id == entry_id).values(**values)
                )
                detail = {
                    k: v.isoformat() if isinstance(v, datetime) else v for k, v in values.items()
                }
                what = "update"
                if values.keys() == {"disabled_until"}:
                    what = "enable" if values["disabled_until"] is None else "disable"
                self._audit(conn, name, actor, what, entry_id, **detail)
            if "disabled_until" in values:
                self.on_change()
        return self.entry(name, entry_id)

    def delete_entry(self, name: str, entry_id: int, *, actor: str = LOCAL_ACTOR) -> Entry:
        """Delete one entry; it stops matching at once. Returns what it was. Raises
        ``NotFoundError``."""
        entry = self.entry(name, entry_id)
        with self.db.begin() as conn:
            _serialize_bank_writes(conn)
            gone = self._delete_rows(conn, [entry_id])
            self._audit(
                conn,
                name,
                actor,
                "delete_entry",
                entry_id,
                source=entry.source,
                signals=entry.to_json()["signals"],
            )
        self.on_delete(gone)
        return entry

    def delete_entries(
        self, name: str, entry_ids: Iterable[int], *, actor: str = LOCAL_ACTOR
    ) -> int:
        """Delete many of the bank's entries in one transaction (an exchange's upstream
        deletions); ids the bank does not hold are skipped. Returns how many went."""
        bank = self.get(name)
        wanted = sorted(i for i in set(entry_ids) if 0 < i <= MAX_ID)
        with self.db.begin() as conn:
            _serialize_bank_writes(conn)
            held: list[int] = []
            for start in range(0, len(wanted), 500):
                held += conn.execute(
                    sa.select(bank_entries.c.id).where(
                        bank_entries.c.bank_id == bank.id,
                        bank_entries.c.id.in_(wanted[start : start + 500]),
                    )
                ).scalars()
            gone = self._delete_rows(conn, [int(i) for i in held])
            if held:
                self._audit(conn, name, actor, "delete_entries", entries=len(held))
        self.on_delete(gone)
        return len(held)

    @staticmethod
    def _delete_rows(conn: sa.Connection, entry_ids: Sequence[int]) -> list[int]:
        """Delete entries and their values; returns the value rows' ids (for the index)."""
        gone: list[int] = []
        for start in range(0, len(entry_ids), 500):
            chunk = entry_ids[start : start + 500]
            gone += conn.execute(
                sa.select(entry_signals.c.id).where(entry_signals.c.entry_id.in_(chunk))
            ).scalars()
            conn.execute(entry_signals.delete().where(entry_signals.c.entry_id.in_(chunk)))
            conn.execute(bank_entries.delete().where(bank_entries.c.id.in_(chunk)))
        return [int(i) for i in gone]

    def audit(self, name: str, *, after: int = 0, limit: int = 1000) -> list[BankEvent]:
        """The bank's changes, oldest first (ids above ``after``, at most ``limit``). A
        deleted bank's history stays under its name. Raises ``UserError`` for ``after``
        or ``limit`` out of range."""
        _check_page(after, limit, 10_000)
        with self.db.connect() as conn:
            rows = conn.execute(
                sa.select(bank_audit)
                .where(bank_audit.c.bank == name, bank_audit.c.id > after)
                .order_by(bank_audit.c.id)
                .limit(limit)
            ).all()
        if not rows and name not in {b.name for b in self.all()}:
            raise NotFoundError(f"no bank called {name!r}, now or before")
        return [
            BankEvent(
                int(r.id), str(r.bank), r.at, str(r.actor), str(r.action), r.entry_id, r.detail
            )
            for r in rows
        ]

    @staticmethod
    def _own_values(
        conn: sa.Connection, entry_ids: Sequence[int]
    ) -> dict[int, tuple[SignalValue, ...]]:
        """Each entry's own values (``is_own``), in row order."""
        out: dict[int, list[SignalValue]] = {}
        for start in range(0, len(entry_ids), 500):
            chunk = entry_ids[start : start + 500]
            for r in conn.execute(
                sa.select(entry_signals)
                .where(entry_signals.c.entry_id.in_(chunk))
                .order_by(entry_signals.c.id)
            ):
                if is_own(str(r.variant)):
                    out.setdefault(int(r.entry_id), []).append(
                        SignalValue(str(r.signal_type), str(r.value), r.quality, str(r.variant))
                    )
        return {k: tuple(v) for k, v in out.items()}

    # -- import and export -----------------------------------------------------------------

    def import_file(
        self,
        name: str,
        path: Path,
        *,
        format: str = "auto",
        signal_type: str | None = None,
        sync: bool = False,
        actor: str = LOCAL_ACTOR,
    ) -> ImportResult:
        """Import a bank file (``import_text``), read as it streams; a vPDQ hash file is
        one video entry (``import_vpdq``).

        Raises ``UserError`` for a file that cannot be read or is not UTF-8, and what
        ``import_text`` raises.
        """
        try:
            with path.open(encoding="utf-8-sig", newline="") as text:
                return self.import_text(
                    name,
                    text,
                    source=str(path),
                    format=format,
                    signal_type=signal_type,
                    sync=sync,
                    actor=actor,
                )
        except OSError as exc:
            raise UserError(f"cannot read {str(path)!r}: {exc.strerror}") from None
        except UnicodeDecodeError as exc:
            raise UserError(f"{str(path)!r} is not UTF-8 text (byte {exc.start})") from None

    def import_text(
        self,
        name: str,
        text: TextIO,
        *,
        source: str,
        format: str = "auto",
        signal_type: str | None = None,
        sync: bool = False,
        actor: str = LOCAL_ACTOR,
    ) -> ImportResult:
        """Import entries from ``text`` in a bank format (``amber.bank_formats``; ``auto``
        tells it from the first lines), all or nothing, in one transaction.

        Rows of one entry (amber's CSV ``entry`` column, HMA's ``id``) become one entry.
        An entry the bank already holds (its one value, or a video's very frames) is a
        duplicate and is not added again. With ``sync`` the bank is made equal to the
        file: entries it holds whose values the file does not list are deleted.
        ``signal_type`` is the type of a list of bare hashes. Raises ``ImportRowsError``
        naming every bad row (then nothing is stored), ``UserError`` for an unknown
        format or an option the format does not take.
        """
        bank = self.get(name)
        _storable(source, what="import source")
        if not text.seekable():
            text = io.StringIO(text.read(), newline="")
        if format == "auto":
            head = text.read(64 * 1024)
            text.seek(0)
            format = detect(head, signal_type=signal_type, known_types=self.signals.names())
        if format == "vpdq":
            if sync or signal_type is not None:
                raise UserError(
                    "a vPDQ hash file is one video: --sync and --signal-type do not apply"
                )
            return self._import_vpdq(bank, text.read(), source=source, label=None, actor=actor)
        if format not in self.formats:
            known = ", ".join([*IMPORT_FORMATS, *self.formats.names()])
            raise UserError(f"bank file format {format!r} is unknown; use one of: {known}")
        chosen = self.formats.get(format)
        if signal_type is not None and not chosen.needs_signal_type:
            raise UserError(f"--signal-type is for a list of bare hashes (hashes), not {format}")
        if signal_type is None and chosen.needs_signal_type:
            raise UserError("a list of bare hashes needs --signal-type (pdq, md5, sha256, ...)")
        rows = chosen.read(text, SignalReader(self.signals, plain=True), signal_type=signal_type)
        if chosen.groups:
            rows = group_rows(rows)
        return self._import_rows(bank, read_ahead(rows), source=source, sync=sync, actor=actor)

    def import_csv(
        self, name: str, text: TextIO, *, source: str, actor: str = LOCAL_ACTOR
    ) -> ImportResult:
        """Import amber's CSV (``signal_type,signal[,label]`` rows, or columns named by a
        header row), all or nothing: ``import_text`` with ``format="amber-csv"``."""
        return self.import_text(name, text, source=source, format="amber-csv", actor=actor)

    def _import_rows(
        self,
        bank: Bank,
        items: Iterable[ReadItem],
        *,
        source: str,
        sync: bool,
        actor: str,
    ) -> ImportResult:
        """Add the entries ``items`` read, in one transaction, in batches (the bank writer
        lock held throughout). After the first bad row nothing more is written, the rest
        is only checked, and the transaction is rolled back."""
        errors: list[tuple[int, str]] = []
        bad = duplicates = skipped = 0
        versions = {s.name: s.version for s in self.signals}
        gone: list[int] = []
        with _no_gc(), self.db.begin() as conn, bulk_session(conn):
            _serialize_bank_writes(conn)
            writer = EntryWriter(conn, bank.id, added_at=self.clock(), versions=versions)
            try:
                if sync:
                    entries, kept = _entry_keys(conn, bank.id), set()
                else:
                    known, videos = self._known(conn, bank.id)
                for item in items:
                    if isinstance(item, Plain):  # many rows of one hash each
                        if bad:
                            continue
                        kind, fresh, numbers = item.signal_type, [], []
                        for number, signal in zip(item.numbers, item.values, strict=True):
                            pair = (kind, signal)
                            if sync:
                                held = entries.get(pair)
                                if held is not None:
                                    duplicates += 1
                                    kept.update(held)
                                    continue
                                entries[pair] = []
                            elif pair in known:
                                duplicates += 1
                                continue
                            else:
                                known.add(pair)
                            fresh.append(signal)
                            numbers.append(number)
                        writer.add_plain(source, kind, numbers, fresh)
                        continue
                    if isinstance(item, Skipped):
                        skipped += 1
                        continue
                    if isinstance(item, Row):
                        try:
                            label, extra = _row_fields(item)
                        except UserError as exc:
                            item = RowError(item.number, exc.message)
                    if isinstance(item, RowError):
                        bad += 1
                        if len(errors) < MAX_IMPORT_ERRORS_KEPT:
                            errors.append((item.number, item.message))
                        continue
                    if bad:
                        continue  # nothing more is written: the rest is only checked
                    if sync:
                        key = _key(item.values)
                        held = entries.get(key)
                        if held is not None:
                            duplicates += 1
                            kept.update(held)
                            continue
                        entries[key] = []
                    elif len(item.values) == 1:  # most lists: one hash a row
                        value = item.values[0]
                        one = (value.signal_type, value.value)
                        if one in known:
                            duplicates += 1
                            continue
                        known.add(one)
                    else:
                        keys = {(v.signal_type, v.value) for v in item.values}
                        if _held(keys, known, videos):
                            duplicates += 1
                            continue
                        known |= keys
                        if len(keys) > 1:
                            videos.add(frozenset(keys))
                    writer.add(f"{source}:{item.number}", label, item.values, extra)
                if bad:
                    raise ImportRowsError(source, errors, total=bad)
                writer.flush()
            finally:
                writer.close()  # its thread is done before the transaction ends
            if sync:
                stale = sorted(e for held in entries.values() for e in held if e not in kept)
                gone = self._delete_rows(conn, stale)
            detail: dict[str, Any] = {
                "source": source,
                "added": writer.added,
                "duplicates": duplicates,
            }
            if skipped:
                detail["skipped"] = skipped
            if sync:
                detail.update(sync=True, deleted=len(stale))
            self._audit(conn, bank.name, actor, "import", **detail)
        if gone:
            self.on_delete(gone)
        if writer.added >= ANALYZE_FROM:
            refresh_statistics(self.db)
        if writer.added:
            self.on_import(writer.written)
        return ImportResult(writer.added, duplicates, skipped, len(stale) if sync else 0)

    def export(
        self, name: str, out: TextIO, *, format: str = "amber-csv", signal_type: str | None = None
    ) -> int:
        """Write the bank's entries to ``out`` in a bank format (``amber.bank_formats``);
        returns the rows (lines, items) written.

        Only each entry's own values are written (not robust-matching variants), so the
        file is what other tools expect. Raises ``UserError`` for an unknown format, or an
        option the format does not take.
        """
        bank = self.get(name)
        if format not in self.formats:
            known = ", ".join(self.formats.names())
            raise UserError(f"bank file format {format!r} is unknown; use one of: {known}")
        with self.db.connect() as conn:
            rows = conn.execute(_entry_rows(bank.id).execution_options(yield_per=10_000))
            return self.formats.get(format).write(
                _export_entries(rows),
                out,
                bank=ExportBank(bank.name, bank.label),
                signals=self.signals,
                signal_type=signal_type,
            )

    def export_csv(self, name: str, out: TextIO) -> int:
        """Write the bank as amber's CSV (``signal_type,signal,label,entry,quality`` under a
        header row); returns the rows written. A type whose entry holds many values (a
        video's ``vpdq`` frames) writes them as one cell (``SignalType.cells``)."""
        return self.export(name, out, format="amber-csv")

    def export_vpdq(self, name: str, folder: Path) -> list[Path]:
        """Write each video entry's frames as a vPDQ hash file (``<entry id>.txt``, vPDQ's
        ``frame_number,quality,pdq_hex,timestamp`` lines) in ``folder``; returns the files.

        Raises ``UserError`` when ``folder`` cannot be created or written.
        """
        from amber.signals.vpdq import to_feature, write_features

        bank = self.get(name)
        query = _entry_rows(bank.id).where(entry_signals.c.signal_type == "vpdq")
        written: list[Path] = []
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with self.db.connect() as conn:
                for (entry, _, _), values in _own_values_by_entry(conn.execute(query)):
                    features = sorted(
                        (f for v in values if (f := to_feature(v)) is not None),
                        key=lambda f: (f.frame_number, f.timestamp),
                    )
                    path = folder / f"{entry}.txt"
                    write_features(path, features)
                    written.append(path)
        except OSError as exc:
            raise UserError(f"cannot write to {str(folder)!r}: {exc.strerror}") from None
        return written

    def import_vpdq(
        self, name: str, path: Path, *, label: str | None = None, actor: str = LOCAL_ACTOR
    ) -> ImportResult:
        """Import one vPDQ hash file (``frame_number,quality,pdq_hex,timestamp`` lines, the
        reference ``vpdq-hash-video`` tool's output) as one video entry.

        Raises ``SignalValueError`` naming the file and line of a malformed line, and
        ``UserError`` for a file that cannot be read or holds no frame.
        """
        bank = self.get(name)
        try:
            text = path.read_text(encoding="utf-8-sig")
        except OSError as exc:
            raise UserError(f"cannot read {str(path)!r}: {exc.strerror}") from None
        except UnicodeDecodeError as exc:
            raise UserError(f"{str(path)!r} is not UTF-8 text (byte {exc.start})") from None
        return self._import_vpdq(bank, text, source=str(path), label=label, actor=actor)

    def _import_vpdq(
        self, bank: Bank, text: str, *, source: str, label: str | None, actor: str
    ) -> ImportResult:
        from amber.signals.vpdq import parse_lines, to_value

        features = parse_lines(text.splitlines(), where=f"{source}:")
        if not features:
            raise UserError(f"{source!r} holds no vPDQ frame")
        if label is not None:
            _storable(label, what="label", limit=MAX_LABEL_LENGTH)
        values = [to_value(f) for f in features]
        with self.db.begin() as conn:
            _serialize_bank_writes(conn)
            if _held({(v.signal_type, v.value) for v in values}, *self._known(conn, bank.id)):
                return ImportResult(0, 1)
            entry = self._insert_entry(conn, bank.id, source, label, values)
            self._audit(conn, bank.name, actor, "add", entry, source=source)
        self.on_change()
        return ImportResult(1, 0)

    # -- storage -------------------------------------------------------------------------

    def _insert_entry(
        self,
        conn: sa.Connection,
        bank_id: int,
        source: str,
        label: str | None,
        values: Iterable[SignalValue],
        *,
        extra: Mapping[str, Any] | None = None,
    ) -> int:
        """Insert one entry and its values; ``extra`` sets other columns (note,
        content_id, ...). Returns the entry's id."""
        entry_id = conn.execute(
            bank_entries.insert()
            .values(
                bank_id=bank_id, source=source, label=label, added_at=self.clock(), **(extra or {})
            )
            .returning(bank_entries.c.id)
        ).scalar_one()
        conn.execute(
            entry_signals.insert(),
            [
                {
                    "entry_id": entry_id,
                    "signal_type": v.signal_type,
                    "signal_version": self.signals.get(v.signal_type).version,
                    "value": v.value,
                    "quality": v.quality,
                    "variant": v.variant,
                }
                for v in values
            ],
        )
        return int(entry_id)

    def _audit(
        self,
        conn: sa.Connection,
        bank: str,
        actor: str,
        event: str,
        entry: int | None = None,
        /,
        **detail: Any,
    ) -> None:
        """Record a change (``event``) in the bank's audit, in the transaction that makes it."""
        conn.execute(
            bank_audit.insert().values(
                bank=bank,
                at=self.clock(),
                actor=_storable(actor, what="actor", limit=MAX_LABEL_LENGTH),
                action=event,
                entry_id=entry,
                detail=detail,
            )
        )

    @staticmethod
    def _known(
        conn: sa.Connection, bank_id: int
    ) -> tuple[set[tuple[str, str]], set[frozenset[tuple[str, str]]]]:
        """In one pass over the bank: every own value, and the own values of each entry
        that has several (a video, known by all its frames)."""
        values: set[tuple[str, str]] = set()
        first: dict[int, tuple[str, str]] = {}  # each entry's first value
        more: dict[int, set[tuple[str, str]]] = {}  # the values of entries with several
        for entry, value in _own_keys(conn, bank_id):
            values.add(value)
            seen = first.setdefault(entry, value)
            if seen is not value:
                more.setdefault(entry, {seen}).add(value)
        return values, {frozenset(v) for v in more.values() if len(v) > 1}

    def _known_sha256(self, conn: sa.Connection, bank_id: int) -> set[str]:
        return {value for kind, value in self._known(conn, bank_id)[0] if kind == "sha256"}


#: The largest id a database row may have (a signed 64-bit integer).
MAX_ID = 2**63 - 1


def _check_page(after: object, limit: object, most: int) -> None:
    """Raise ``UserError`` unless ``after`` is an id (0 to ``MAX_ID``) and ``limit`` a
    whole number from 1 to ``most``."""
    if isinstance(after, bool) or not isinstance(after, int) or not 0 <= after <= MAX_ID:
        raise UserError(f"after {after!r} is out of range; give an id from 0 to {MAX_ID}")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= most:
        raise UserError(f"limit {limit!r} is out of range; give 1 to {most}")


def _check_name(name: str) -> None:
    """Raise ``UserError`` unless ``name`` may name a bank."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise UserError(
            f"bank name {name!r} is not allowed; use 1-200 letters, digits, '_', '.' or "
            "'-', starting with a letter or digit"
        )


def _action(action: object) -> BankAction:
    """``action`` as a ``BankAction``. Raises ``UserError`` naming the known ones."""
    try:
        return BankAction(str(action))
    except ValueError:
        raise UserError(
            f"bank action {action!r} is unknown; use one of: "
            + ", ".join(a.value for a in BankAction)
        ) from None


def _check_ratio(ratio: object) -> float:
    """``ratio`` as a float from 0 to 1. Raises ``UserError``."""
    if isinstance(ratio, bool) or not isinstance(ratio, int | float) or not 0 <= ratio <= 1:
        raise UserError(
            f"enabled_ratio {ratio!r} is not a number from 0 to 1 (the share of the bank's "
            "entries that match; 0 disables the bank)"
        )
    return float(ratio)


def _optional_text(value: object, *, what: str, limit: int | None = None) -> str | None:
    """``value`` stripped, ``None`` for ``None`` or blank. Raises ``UserError``."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise UserError(f"{what} {value!r} is not text")
    value = value.strip()
    return _storable(value, what=what, limit=limit) if value else None


#: Largest entry metadata, in characters of its JSON.
MAX_METADATA = 64 * 1024


def _check_metadata(metadata: object) -> Any:
    """``metadata`` if it is a JSON object amber can store (``None`` clears it)."""
    import json

    if metadata is None:
        return None
    if not isinstance(metadata, dict):
        raise UserError(f"metadata must be a JSON object, not {type(metadata).__name__}")
    try:
        text = json.dumps(metadata, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise UserError(f"metadata is not JSON: {exc}") from None
    if len(text) > MAX_METADATA:
        raise UserError(f"metadata is {len(text)} characters of JSON; at most {MAX_METADATA}")
    _storable(text, what="metadata")
    return metadata


def _check_disabled_until(when: object, now: datetime) -> datetime | None:
    """``when`` if an entry may be disabled until it (``None``: enabled again)."""
    if when is None:
        return None
    if not isinstance(when, datetime) or when.tzinfo is None:
        raise UserError(f"disabled_until {when!r} is not a time with a time zone")
    if when - now > MAX_DISABLE:
        raise UserError(
            f"disabled_until {when.isoformat()} is more than {MAX_DISABLE.days} days ahead; "
            "delete the entry, or bank the content in an allow bank"
        )
    return when.astimezone(UTC)


def _entry_extra(item: NewEntry) -> dict[str, Any]:
    """The columns of a new entry beyond its source and label, checked."""
    return {
        "note": _optional_text(item.note, what="note", limit=MAX_NOTE_LENGTH),
        "content_id": _optional_text(
            item.content_id, what="content_id", limit=MAX_CONTENT_ID_LENGTH
        ),
        "content_uri": _optional_text(item.content_uri, what="content_uri"),
        "metadata": _check_metadata(item.metadata),
    }


def _entry(bank: str, row: sa.Row[Any], values: Sequence[SignalValue]) -> Entry:
    return Entry(
        id=int(row.id),
        bank=bank,
        source=str(row.source),
        label=row.label,
        added_at=row.added_at,
        note=row.note,
        content_id=row.content_id,
        content_uri=row.content_uri,
        metadata=row.metadata,
        disabled_until=row.disabled_until,
        values=tuple(values),
    )


def _check_inliers(inliers: object) -> None:
    """Raise ``UserError`` unless ``inliers`` is a whole number from 8 to 500."""
    if isinstance(inliers, bool) or not isinstance(inliers, int) or not 8 <= inliers <= 500:
        raise UserError(
            f"min_inliers {inliers!r} is not a whole number from 8 to 500 (keypoint pairs "
            f"that must agree for a local-feature match; default {DEFAULT_MIN_INLIERS})"
        )


def _check_percent(percent: object) -> None:
    """Raise ``UserError`` unless ``percent`` is a whole number from 1 to 100."""
    if isinstance(percent, bool) or not isinstance(percent, int) or not 1 <= percent <= 100:
        raise UserError(
            f"video_percent {percent!r} is not a whole number from 1 to 100 (the share of a "
            "banked video's frames a posted video must cover to match it)"
        )


def _check_threshold(threshold: object) -> None:
    """Raise ``UserError`` unless ``threshold`` is a whole number of bits in range (a
    boolean is not a number, though Python calls it one)."""
    if isinstance(threshold, bool) or not isinstance(threshold, int):
        raise UserError(
            f"threshold {threshold!r} is not a whole number; PDQ thresholds run from 0 to "
            f"{MAX_THRESHOLD} bits"
        )
    if not 0 <= threshold <= MAX_THRESHOLD:
        raise UserError(
            f"threshold {threshold} is out of range; PDQ thresholds run from 0 to "
            f"{MAX_THRESHOLD} bits (31 is the reference choice)"
        )


def _storable(value: str, *, what: str, limit: int | None = None) -> str:
    """``value`` if every backend can store it. Raises ``UserError`` naming ``what`` if not.

    PostgreSQL text cannot hold NUL; a lone surrogate is not Unicode text (nor UTF-8);
    ``limit`` is the column's size in characters.
    """
    shown = repr(value if len(value) <= 60 else value[:60] + "...")
    if "\x00" in value:
        raise UserError(f"{what} {shown} contains a NUL character (\\u0000); remove it")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise UserError(
            f"{what} {shown} contains a lone surrogate {value[exc.start]!r}, which is not "
            "valid Unicode; give the character's full surrogate pair or UTF-8"
        ) from None
    if limit is not None and len(value) > limit:
        raise UserError(
            f"{what} {shown} is {len(value)} characters long; at most {limit} are allowed"
        )
    return value


def _serialize_bank_writes(conn: sa.Connection) -> None:
    """Make this transaction the only bank writer until it ends.

    Bank writes then commit in the order their rows are numbered, so a process that has
    seen entry signal ``n`` has seen every one below it (``Matcher.sync`` reads only rows
    above the last it indexed), and check-then-insert (duplicate files, bank names)
    cannot race between processes.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(BANK_WRITES_LOCK)))
    else:  # SQLite: a write statement takes the database's write lock now, not at commit
        conn.execute(banks.update().where(sa.false()).values(name=banks.c.name))


def _held(
    keys: set[tuple[str, str]],
    known: set[tuple[str, str]],
    videos: set[frozenset[tuple[str, str]]],
) -> bool:
    """Does the bank already have this entry: its one value, or a video's very frames?"""
    return keys <= known if len(keys) == 1 else frozenset(keys) in videos


def _entry_rows(bank_id: int) -> sa.Select[tuple[object, ...]]:
    """Every ``entry_signals`` row of a bank's entries with the entry's label, in row order."""
    return (
        sa.select(
            entry_signals.c.entry_id,
            entry_signals.c.signal_type,
            entry_signals.c.value,
            entry_signals.c.quality,
            entry_signals.c.variant,
            bank_entries.c.label,
        )
        .join(bank_entries, bank_entries.c.id == entry_signals.c.entry_id)
        .where(bank_entries.c.bank_id == bank_id)
        .order_by(entry_signals.c.id)
    )


def _own_values_by_entry(
    rows: Iterable[sa.Row[tuple[object, ...]]],
) -> Iterator[tuple[tuple[int, str, str | None], list[SignalValue]]]:
    """Rows of ``entry_signals`` (with the entry's label) grouped by entry and type, own
    values only (``is_own``), in the order each group first appears."""
    groups: dict[tuple[int, str, str | None], list[SignalValue]] = {}
    for r in rows:
        if is_own(str(r.variant)):
            key = (int(r.entry_id), str(r.signal_type), r.label)
            value = SignalValue(str(r.signal_type), str(r.value), r.quality, str(r.variant))
            groups.setdefault(key, []).append(value)
    yield from groups.items()


def _export_entries(rows: Iterable[sa.Row[tuple[object, ...]]]) -> Iterator[ExportEntry]:
    """Rows of ``_entry_rows`` as entries with their own values (an entry's rows are
    written together, so they come one after another)."""
    entry: int | None = None
    label: str | None = None
    values: list[SignalValue] = []
    for r in rows:
        if not is_own(str(r.variant)):
            continue
        if r.entry_id != entry:
            if entry is not None:
                yield ExportEntry(entry, label, values)
            entry, label, values = int(r.entry_id), r.label, []
        values.append(SignalValue(str(r.signal_type), str(r.value), r.quality, str(r.variant)))
    if entry is not None:
        yield ExportEntry(entry, label, values)


#: What ``sync`` compares an entry by: its one value, or the set of its values.
EntryKey = tuple[str, str] | frozenset[tuple[str, str]]


def _key(values: Sequence[SignalValue]) -> EntryKey:
    if len(values) == 1:
        return (values[0].signal_type, values[0].value)
    keys = {(v.signal_type, v.value) for v in values}
    return keys.pop() if len(keys) == 1 else frozenset(keys)


def _entry_keys(conn: sa.Connection, bank_id: int) -> dict[EntryKey, list[int]]:
    """The bank's entries by their ``_key``, in one pass over its rows."""
    grouped: dict[int, Any] = {}  # an entry's one key, or the set of its keys
    for entry, value in _own_keys(conn, bank_id):
        held = grouped.get(entry)
        if held is None:
            grouped[entry] = value
        elif isinstance(held, set):
            held.add(value)
        elif held != value:
            grouped[entry] = {held, value}
    keys: dict[EntryKey, list[int]] = {}
    for entry, held in grouped.items():
        keys.setdefault(frozenset(held) if isinstance(held, set) else held, []).append(entry)
    return keys


def _own_keys(conn: sa.Connection, bank_id: int) -> Iterator[tuple[int, tuple[str, str]]]:
    """Each own value of the bank's entries as (entry id, (signal type, value)), streamed
    (plain tuples: a bank of millions of rows is read in seconds)."""
    query = (
        sa.select(
            entry_signals.c.entry_id,
            entry_signals.c.signal_type,
            entry_signals.c.value,
            entry_signals.c.variant,
        )
        .join(bank_entries, bank_entries.c.id == entry_signals.c.entry_id)
        .where(bank_entries.c.bank_id == bank_id)
    )
    result = conn.execute(query.execution_options(yield_per=50_000))
    for rows in result.partitions():
        for entry, kind, value, variant in rows:
            if variant == "original" or variant.startswith("original@"):  # is_own
                yield entry, (kind, value)


@contextlib.contextmanager
def _no_gc() -> Iterator[None]:
    """No cyclic garbage collection while the block runs: an import makes millions of
    objects that live to its end, and each full collection would walk them all (a
    10-million-row bank read for duplicates took minutes of it)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _row_fields(row: Row) -> tuple[str | None, dict[str, Any] | None]:
    """A read row's label and other columns (note, content id, URI, metadata), checked.
    Raises ``UserError``."""
    fields = (row.label, row.content_id, row.content_uri, row.metadata)
    if fields == (None, None, None, None):  # most rows: a hash and nothing else
        return None, None
    label = (
        None
        if row.label is None
        else _optional_text(row.label, what="label", limit=MAX_LABEL_LENGTH)
    )
    if row.content_id is None and row.content_uri is None and row.metadata is None:
        return label, None
    item = NewEntry(
        row.values,
        "",
        content_id=row.content_id,
        content_uri=row.content_uri,
        metadata=row.metadata,
    )
    return label, _entry_extra(item)
