"""Bank file formats: what ``amber bank import`` reads and ``amber bank export`` writes.

Each format is a ``BankFormat`` in a registry (``default_formats``), found by its stable
name: its reader turns text into numbered ``Row``s (or ``RowError``s naming the row), its
writer turns a bank's entries into text. ``detect`` tells the format of a file from its
first lines. The formats (``docs/exchange-formats.md`` has an example of each):

- ``amber-csv``: amber's own CSV, ``signal_type,signal,label,entry,quality`` under a
  header row that names the columns; rows with the same ``entry`` are one entry (a file's
  pdq, md5 and sha256). Without a header, ``signal_type,signal[,label]`` as before.
- ``pytx-csv``: python-threatexchange's ``threatexchange dataset -P --csv``:
  ``signal_type,signal_str,collab,category,tags``.
- ``lines``: ``<signal type> <signal>`` lines, what python-threatexchange's local file
  exchange (``LocalFileSignalExchangeAPI``) loads and ``threatexchange dataset -P -S``
  and ``threatexchange hash`` print.
- ``hashes``: one bare hash a line, of the type given (``--signal-type``), as
  ``threatexchange dataset -P -S -s pdq`` prints and its file exchange loads with a
  ``signal_type``.
- ``hma-json``: HMA's bank content, ``[{"id": 1, "signals": {"pdq": "..."}}]``; reads a
  list, one object or JSON lines, each object either that shape or HMA's ``/signal`` body
  ``{"pdq": "..."}``.

Formats other tools read leave out amber's own types (``SignalType.shared``: local
features, whose keypoints no other tool reads), name types as python-threatexchange does
(``video_md5``, ``video_sha256``: its only MD5 and SHA-256 types) and write a video's
vPDQ frames as its JSON list of ``"pdq_hex,quality,timestamp"``; amber reads both
spellings back.
"""

from __future__ import annotations

import contextlib
import csv
import itertools
import json
import re
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from queue import Empty, Queue
from typing import TYPE_CHECKING, Any, ClassVar, TextIO

from amber.errors import UserError
from amber.registry import Registry
from amber.signals.base import Reads, SignalType, SignalValue

if TYPE_CHECKING:
    from amber.signals import Registry as SignalRegistry

#: Names other tools write for signal types amber knows (python-threatexchange, HMA).
SIGNAL_ALIASES = {
    "photo_md5": "md5",
    "video_md5": "md5",
    "video_sha256": "sha256",
    "pdq_hash": "pdq",
}
#: The name python-threatexchange and HMA give each of amber's types, where it differs:
#: their only MD5 and SHA-256 types are the video ones.
PYTX_NAMES = {"md5": "video_md5", "sha256": "video_sha256"}
#: Longest cell a bank CSV may hold, in characters: a video of 40,000 frames
#: (``amber.video.VideoLimits.max_frames``) as vPDQ frame lines, about 90 characters each.
MAX_CELL = 4_000_000
#: A cell starting with one of these is a formula to a spreadsheet (OWASP, CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
#: amber's CSV columns, in the order its export writes them.
AMBER_COLUMNS = ("signal_type", "signal", "label", "entry", "quality")
#: python-threatexchange's ``dataset -P --csv`` columns.
PYTX_COLUMNS = ("signal_type", "signal_str", "collab", "category", "tags")
#: python-threatexchange's opinion categories (``AggregateSignalOpinionCategory``).
PYTX_CATEGORIES = ("NEGATIVE_CLASS", "INVESTIGATION_SEED", "POSITIVE_CLASS", "DISPUTED")
#: The categories whose rows are imported (no category: a row of a hand-made file).
_PYTX_KEPT = frozenset(("", "INVESTIGATION_SEED", "POSITIVE_CLASS", "DISPUTED"))
#: A line of one field: no separator a list of bare hashes could have (``Hashes``).
_ONE_FIELD = re.compile(r"[^,;\s]+")
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


@dataclass(frozen=True, slots=True)
class Row:
    """One entry, or one part of one, read from a bank file.

    ``number`` is where it starts (a CSV row, a line, a JSON item); rows that carry the
    same ``entry`` key one after another are one entry.
    """

    number: int
    values: Sequence[SignalValue]
    label: str | None = None
    entry: str | None = None
    content_id: str | None = None
    content_uri: str | None = None
    metadata: Any = None


@dataclass(frozen=True, slots=True)
class RowError:
    """A row that cannot be imported, and why (``entry``: the entry it belongs to, when
    the file says)."""

    number: int
    message: str
    entry: str | None = None


@dataclass(frozen=True, slots=True)
class Skipped:
    """A row left out on purpose (python-threatexchange's ``NEGATIVE_CLASS``)."""

    number: int
    reason: str


@dataclass(slots=True)
class Plain:
    """Rows one after another that each hold one value of one type and nothing else (no
    label, entry, quality): most of a hash list, read without objects for each row.
    ``values[i]``, already checked, was read at ``numbers[i]``. Readers give them only to
    a ``SignalReader`` made with ``plain=True``, in runs of at most ``PLAIN_RUN``."""

    signal_type: str
    numbers: list[int]
    values: list[str]


#: The most rows a ``Plain`` run holds.
PLAIN_RUN = 5000

ReadItem = Row | RowError | Skipped | Plain


@dataclass(frozen=True, slots=True)
class ExportEntry:
    """One entry to write: its id, its own label (``None``: the bank's), its own values."""

    id: int
    label: str | None
    values: Sequence[SignalValue]


@dataclass(frozen=True, slots=True)
class ExportBank:
    """What a writer knows of the bank: its name and label."""

    name: str
    label: str


class SignalReader:
    """Turns a file's type name and signal text into checked ``SignalValue``s.

    Type names are amber's or other tools' (``SIGNAL_ALIASES``); only types that read
    media can be banked. With ``plain``, readers may give ``Plain`` runs (``PlainRuns``).
    """

    def __init__(self, signals: SignalRegistry[SignalType], *, plain: bool = False) -> None:
        self.signals = signals
        self.plain = plain
        self._types: dict[str, SignalType | str] = {}
        self._single: dict[str, tuple[str, Callable[[str], str]] | None] = {}

    def signal_type(self, name: str) -> SignalType:
        """The media signal type a file calls ``name``. Raises ``UserError`` if none."""
        found = self._types.get(name)
        if found is None:
            found = self._types[name] = self._resolve(name)
        if isinstance(found, str):
            raise UserError(found)
        return found

    def _resolve(self, name: str) -> SignalType | str:
        key = name.strip().lower()
        key = SIGNAL_ALIASES.get(key, key)
        if key not in self.signals:
            return f"unknown signal type {name!r}; known: {', '.join(self.signals.names())}"
        signal_type = self.signals.get(key)
        if signal_type.reads is not Reads.media:
            return f"{key} values score posts; they cannot be put in a bank"
        return signal_type

    def values(self, type_name: str, text: str) -> list[SignalValue]:
        """The values ``text`` holds for the type called ``type_name``. Raises
        ``UserError`` (``SignalValueError``) naming what is wrong."""
        return self.signal_type(type_name).parse(text)

    def single(self, type_name: str) -> tuple[str, Callable[[str], str]] | None:
        """The name and ``validate`` of the type called ``type_name`` when a cell of it is
        one value (its ``parse`` is ``SignalType``'s own), else ``None``. Raises
        ``UserError`` for a type that cannot be banked."""
        try:
            return self._single[type_name]
        except KeyError:
            found = self.signal_type(type_name)
            one = (found.name, found.validate) if type(found).parse is SignalType.parse else None
            self._single[type_name] = one
            return one


class PlainRuns:
    """Gathers a reader's plain rows (one value of a one-value type, nothing else) into
    ``Plain`` runs when its ``SignalReader`` takes them (``plain``). A reader hands on
    the run gathered so far (``take``) before any row it reads as a ``Row`` or an error,
    so the file's order is kept."""

    def __init__(self, reader: SignalReader) -> None:
        self.reader = reader
        self.run: Plain | None = None

    def type_of(self, type_name: str) -> str | None:
        """The name of the type a file calls ``type_name`` when its rows can be plain;
        ``None`` when not (or the reader takes no runs). Raises ``UserError`` for a type
        that cannot be banked."""
        if not self.reader.plain or not type_name.strip():
            return None
        single = self.reader.single(type_name)
        return None if single is None else single[0]

    def add(self, number: int, type_name: str, text: str) -> list[Plain]:
        """Check ``text`` as a value of ``type_name`` (a name ``type_of`` gave) and add it
        to the run; returns the run before (none or one), to hand on first, when that one
        is full or of another type. Raises ``UserError`` for a bad value (nothing
        added)."""
        single = self.reader.single(type_name)
        if single is None:
            raise UserError(f"{type_name} values are not read as plain rows")
        value = single[1](text)
        run, done = self.run, None
        if run is not None and (run.signal_type != type_name or len(run.values) >= PLAIN_RUN):
            run, done = None, run
        if run is None:
            run = self.run = Plain(type_name, [], [])
        run.numbers.append(number)
        run.values.append(value)
        return [] if done is None else [done]

    def take(self) -> list[Plain]:
        """The run gathered so far (none or one); the next row starts a new one."""
        run, self.run = self.run, None
        return [] if run is None else [run]


class BankFormat(ABC):
    """A file format for bank entries: a reader, a writer, or both."""

    #: The stable name (``--format``, the API's ``format``).
    name: ClassVar[str]
    #: The media type of what ``write`` produces (the API's export response).
    media_type: ClassVar[str] = "text/plain"
    #: True when rows of the format can say which entry they belong to.
    groups: ClassVar[bool] = False
    #: True when reading needs ``signal_type`` (a list of bare hashes).
    needs_signal_type: ClassVar[bool] = False

    @abstractmethod
    def read(
        self, text: TextIO, reader: SignalReader, *, signal_type: str | None = None
    ) -> Iterator[ReadItem]:
        """Each row of ``text`` as a ``Row``, or a ``RowError`` saying what is wrong with
        it (after a ``RowError`` for text that cannot be read on, nothing follows)."""

    @abstractmethod
    def write(
        self,
        entries: Iterable[ExportEntry],
        out: TextIO,
        *,
        bank: ExportBank,
        signals: SignalRegistry[SignalType],
        signal_type: str | None = None,
    ) -> int:
        """Write ``entries`` to ``out``; returns the rows (lines, items) written.

        Raises ``UserError`` for an option the format cannot honour."""


# -- amber's CSV -------------------------------------------------------------------------


class AmberCsv(BankFormat):
    """``signal_type,signal,label,entry,quality`` under a header row naming the columns
    (any order; ``type`` may stand for ``signal_type``); without a header,
    ``signal_type,signal[,label]``."""

    name = "amber-csv"
    media_type = "text/csv"
    groups = True

    def read(
        self, text: TextIO, reader: SignalReader, *, signal_type: str | None = None
    ) -> Iterator[ReadItem]:
        columns: dict[str, int] | None = None
        first = True
        runs = PlainRuns(reader)
        for number, cells in csv_rows(text):
            if isinstance(cells, csv.Error):
                yield from runs.take()
                yield RowError(number, f"not valid CSV ({cells}); nothing after it was read")
                return
            if _blank(cells):
                continue
            if first:
                first = False
                if cells[0].strip().lower() in ("signal_type", "type"):
                    try:
                        columns = _header(cells)
                    except UserError as exc:
                        yield RowError(number, exc.message)
                        return
                    continue
            simple = _simple_cells(cells, columns)
            try:
                if simple is not None and (kind := runs.type_of(simple[0])) is not None:
                    yield from runs.add(number, kind, unguard(simple[1]))
                    continue
                yield from runs.take()
                if columns is None:
                    yield self._positional(number, cells, reader)
                else:
                    yield self._named(number, cells, columns, reader)
            except UserError as exc:
                yield from runs.take()
                entry = None
                if columns is not None and columns.get("entry", len(cells)) < len(cells):
                    entry = cells[columns["entry"]].strip() or None
                yield RowError(number, exc.message, entry)
        yield from runs.take()

    @staticmethod
    def _positional(number: int, cells: list[str], reader: SignalReader) -> Row:
        if len(cells) < 2:
            raise UserError("expected signal_type,signal[,label]")
        if len(cells) > 3:
            raise UserError(
                f"expected at most 3 columns without a header row, got {len(cells)}; name "
                f"the columns in a header row ({','.join(AMBER_COLUMNS)})"
            )
        values = reader.values(cells[0], unguard(cells[1]))
        label = unguard(cells[2].strip()) if len(cells) == 3 and cells[2].strip() else None
        if label is not None and _NUMBER.fullmatch(label):
            raise UserError(
                f"the third column is a number ({label}): a quality or a label? Name the "
                "columns in a header row (signal_type,signal,label or "
                "signal_type,signal,quality)"
            )
        return Row(number, values, label)

    @staticmethod
    def _named(number: int, cells: list[str], columns: dict[str, int], reader: SignalReader) -> Row:
        size = len(cells)
        if size > len(columns):
            raise UserError(f"{size} cells, but the header names {len(columns)} columns")
        at = columns["signal_type"]
        type_name = cells[at] if at < size else ""
        if not type_name.strip():
            raise UserError("signal_type is empty")
        at = columns["signal"]
        values = reader.values(type_name, unguard(cells[at]) if at < size else "")
        at = columns.get("quality", size)
        quality_text = cells[at].strip() if at < size else ""
        if quality_text:
            quality = _quality(quality_text)
            if len(values) != 1:
                raise UserError(
                    f"quality {quality_text!r} given for {len(values)} values; a vpdq cell's "
                    "frames carry their own quality, leave the column empty"
                )
            values = [replace(values[0], quality=quality)]
        at = columns.get("label", size)
        label = (unguard(cells[at].strip()) or None) if at < size else None
        at = columns.get("entry", size)
        entry = (cells[at].strip() or None) if at < size else None
        return Row(number, values, label, entry)

    def write(
        self,
        entries: Iterable[ExportEntry],
        out: TextIO,
        *,
        bank: ExportBank,
        signals: SignalRegistry[SignalType],
        signal_type: str | None = None,
    ) -> int:
        _no_signal_type(self.name, signal_type)
        rows = _CsvOut(out)
        rows.write(AMBER_COLUMNS)
        count = 0
        for entry in entries:
            label = entry.label or bank.label
            for type_name, values in _by_type(entry.values):
                cells = _cells(signals, type_name, values)
                qualities = (
                    [v.quality for v in values]
                    if len(cells) == len(values)
                    else [None] * len(cells)  # one cell of many values: a video's frames
                )
                for cell, quality in zip(cells, qualities, strict=True):
                    rows.write(
                        [type_name, cell, label, str(entry.id), "" if quality is None else quality]
                    )
                    count += 1
        return count


def _simple_cells(cells: list[str], columns: dict[str, int] | None) -> tuple[str, str] | None:
    """The type and signal cells of an amber CSV row that holds nothing else (no label,
    entry or quality), else ``None``."""
    if columns is None:
        if len(cells) == 2 or (len(cells) == 3 and not cells[2].strip()):
            return cells[0], cells[1]
        return None
    size = len(cells)
    kind, signal = columns["signal_type"], columns["signal"]
    if size > len(columns) or kind >= size or signal >= size:
        return None
    if size > 2 and any(c.strip() for i, c in enumerate(cells) if i != kind and i != signal):
        return None
    return cells[kind], cells[signal]


def _header(cells: list[str]) -> dict[str, int]:
    """amber's CSV header: each column's position. Raises ``UserError``."""
    columns: dict[str, int] = {}
    for i, raw in enumerate(cells):
        name = raw.strip().lower()
        name = "signal_type" if name == "type" else name
        if name not in AMBER_COLUMNS:
            hint = (
                "; a python-threatexchange dataset CSV is --format pytx-csv"
                if name == "signal_str"
                else ""
            )
            raise UserError(
                f"unknown column {raw.strip()!r} in the header; amber's CSV columns are "
                f"{', '.join(AMBER_COLUMNS)}{hint}"
            )
        if name in columns:
            raise UserError(f"column {name!r} is named twice in the header")
        columns[name] = i
    for needed in ("signal_type", "signal"):
        if needed not in columns:
            raise UserError(f"the header names no {needed!r} column")
    return columns


def _cell_reader(columns: dict[str, int], cells: list[str]) -> Callable[[str], str]:
    """A row's cell by column name, stripped; ``""`` for a column the row lacks."""

    def cell(name: str) -> str:
        at = columns.get(name)
        return "" if at is None or at >= len(cells) else cells[at].strip()

    return cell


def _quality(text: str) -> int:
    if not text.isdigit() or int(text) > 100:
        raise UserError(f"quality {text!r} is not a whole number from 0 to 100")
    return int(text)


# -- python-threatexchange's dataset CSV ---------------------------------------------------


class PytxCsv(BankFormat):
    """python-threatexchange's ``dataset -P --csv``: ``signal_type,signal_str,collab,
    category,tags``. ``tags`` become the entry's label; ``NEGATIVE_CLASS`` rows (false
    positives, test data) are skipped."""

    name = "pytx-csv"
    media_type = "text/csv"

    def read(
        self, text: TextIO, reader: SignalReader, *, signal_type: str | None = None
    ) -> Iterator[ReadItem]:
        columns: dict[str, int] | None = None
        runs = PlainRuns(reader)
        for number, cells in csv_rows(text):
            if isinstance(cells, csv.Error):
                yield from runs.take()
                yield RowError(number, f"not valid CSV ({cells}); nothing after it was read")
                return
            if _blank(cells):
                continue
            if columns is None:
                names = [c.strip().lower() for c in cells]
                if "signal_type" not in names or "signal_str" not in names:
                    yield RowError(
                        number,
                        f"expected python-threatexchange's header row ({','.join(PYTX_COLUMNS)})",
                    )
                    return
                columns = {n: i for i, n in enumerate(names)}
                continue
            cell = _cell_reader(columns, cells)
            category = cell("category").upper()
            if category in _PYTX_KEPT and not cell("tags"):
                try:
                    kind = runs.type_of(cell("signal_type"))
                    if kind is not None:
                        yield from runs.add(number, kind, unguard(cell("signal_str")))
                        continue
                except UserError as exc:
                    yield from runs.take()
                    yield RowError(number, exc.message)
                    continue
            yield from runs.take()
            if category and category not in PYTX_CATEGORIES:
                yield RowError(
                    number, f"category {category!r} is unknown; known: {', '.join(PYTX_CATEGORIES)}"
                )
                continue
            try:
                values = reader.values(cell("signal_type"), unguard(cell("signal_str")))
            except UserError as exc:
                yield RowError(number, exc.message)
                continue
            if category == "NEGATIVE_CLASS":
                yield Skipped(number, "NEGATIVE_CLASS")
                continue
            yield Row(number, values, unguard(cell("tags")) or None)
        yield from runs.take()

    def write(
        self,
        entries: Iterable[ExportEntry],
        out: TextIO,
        *,
        bank: ExportBank,
        signals: SignalRegistry[SignalType],
        signal_type: str | None = None,
    ) -> int:
        _no_signal_type(self.name, signal_type)
        rows = _CsvOut(out)
        rows.write(PYTX_COLUMNS)
        count = 0
        for entry in entries:
            for type_name, cell in _pytx_cells(signals, entry.values):
                rows.write(
                    [type_name, cell, bank.name, "POSITIVE_CLASS", entry.label or bank.label]
                )
                count += 1
        return count


# -- <type> <signal> lines and bare hashes -------------------------------------------------


class Lines(BankFormat):
    """``<signal type> <signal>`` lines (python-threatexchange's local file exchange);
    blank lines and lines starting with ``#`` are skipped."""

    name = "lines"

    def read(
        self, text: TextIO, reader: SignalReader, *, signal_type: str | None = None
    ) -> Iterator[ReadItem]:
        runs = PlainRuns(reader)
        for number, line in _lines(text):
            parts = line.split(None, 1)
            if len(parts) < 2:
                yield from runs.take()
                yield RowError(
                    number,
                    f"expected '<signal type> <signal>', got {line[:80]!r}; a list of bare "
                    "hashes is --format hashes with --signal-type",
                )
                continue
            try:
                kind = runs.type_of(parts[0])
                if kind is not None:
                    yield from runs.add(number, kind, parts[1])
                    continue
                yield from runs.take()
                yield Row(number, reader.values(parts[0], parts[1]))
            except UserError as exc:
                yield from runs.take()
                yield RowError(number, exc.message)
        yield from runs.take()

    def write(
        self,
        entries: Iterable[ExportEntry],
        out: TextIO,
        *,
        bank: ExportBank,
        signals: SignalRegistry[SignalType],
        signal_type: str | None = None,
    ) -> int:
        _no_signal_type(self.name, signal_type)
        count = 0
        for entry in entries:
            for type_name, cell in _pytx_cells(signals, entry.values):
                out.write(f"{type_name} {cell}\n")
                count += 1
        return count


class Hashes(BankFormat):
    """One bare hash a line, all of one type (``signal_type``)."""

    name = "hashes"
    needs_signal_type = True

    def read(
        self, text: TextIO, reader: SignalReader, *, signal_type: str | None = None
    ) -> Iterator[ReadItem]:
        if signal_type is None:
            raise UserError("a list of bare hashes needs --signal-type (pdq, md5, sha256, ...)")
        reader.signal_type(signal_type)  # an unknown type is one error, not one a line
        runs = PlainRuns(reader)
        kind = runs.type_of(signal_type)
        for number, line in _lines(text):
            if kind is not None and _ONE_FIELD.fullmatch(line):
                try:
                    yield from runs.add(number, kind, line)
                except UserError as exc:
                    yield from runs.take()
                    yield RowError(number, exc.message)
                continue
            yield from runs.take()
            parts = [p for p in re.split(r"[,;\s]+", line) if p]
            if len(parts) > 1:
                if _NUMBER.fullmatch(parts[1]):
                    message = (
                        f"a number ({parts[1]}) follows the hash: a quality, a label, a count? "
                        "A bare list holds one hash a line; remove it, or import a CSV with a "
                        "header row naming the columns (signal_type,signal,quality)"
                    )
                else:
                    message = f"expected one hash a line, got {len(parts)} fields"
                yield RowError(number, message)
                continue
            try:
                yield Row(number, reader.values(signal_type, line))
            except UserError as exc:
                yield RowError(number, exc.message)
        yield from runs.take()

    def write(
        self,
        entries: Iterable[ExportEntry],
        out: TextIO,
        *,
        bank: ExportBank,
        signals: SignalRegistry[SignalType],
        signal_type: str | None = None,
    ) -> int:
        if signal_type is None:
            raise UserError("--format hashes writes the values of one type: give --signal-type")
        wanted = SignalReader(signals).signal_type(signal_type)
        if wanted.timed:
            raise UserError(
                f"a {wanted.name} value is a list of frames, not a bare hash; export it "
                "--format lines or amber-csv"
            )
        count = 0
        for entry in entries:
            for value in entry.values:
                if value.signal_type == wanted.name:
                    out.write(value.value + "\n")
                    count += 1
        return count


# -- HMA's JSON ------------------------------------------------------------------------


class HmaJson(BankFormat):
    """HMA's bank content: a JSON list of ``{"id": N, "signals": {"pdq": "..."}}`` (its
    ``/c/bank/<bank>/signal`` body is each object's ``signals``). Reads a list, one object
    or JSON lines; an object may be the ``signals`` map itself. Objects with the same
    ``id`` are one entry; ``metadata`` (``content_id``, ``content_uri``, ``json``) and
    ``original_media_uri`` are kept, and amber's ``label``."""

    name = "hma-json"
    media_type = "application/json"
    groups = True

    def read(
        self, text: TextIO, reader: SignalReader, *, signal_type: str | None = None
    ) -> Iterator[ReadItem]:
        body = text.read()
        try:
            items: list[tuple[int, Any]] = [(1, json.loads(body))]
        except ValueError as exc:
            if not body.lstrip().startswith("{"):
                yield RowError(1, f"not valid JSON ({exc})")
                return
            items = []
            for number, line in enumerate(body.splitlines(), start=1):
                if line.strip():
                    try:
                        items.append((number, json.loads(line)))
                    except ValueError as line_exc:
                        yield RowError(number, f"not valid JSON ({line_exc})")
                        return
        if len(items) == 1 and isinstance(items[0][1], list):
            items = list(enumerate(items[0][1], start=1))
        entries: dict[str, Row] = {}
        for number, item in items:
            try:
                row = _hma_row(number, item, reader)
            except UserError as exc:
                yield RowError(number, exc.message)
                continue
            if row.entry is None:
                yield row
            elif row.entry in entries:
                held = entries[row.entry]
                entries[row.entry] = replace(held, values=[*held.values, *row.values])
            else:
                entries[row.entry] = row
        yield from sorted(entries.values(), key=lambda r: r.number)

    def write(
        self,
        entries: Iterable[ExportEntry],
        out: TextIO,
        *,
        bank: ExportBank,
        signals: SignalRegistry[SignalType],
        signal_type: str | None = None,
    ) -> int:
        _no_signal_type(self.name, signal_type)
        count = 0
        out.write("[")
        for entry in entries:
            objects: list[dict[str, str]] = []
            for type_name, cell in _pytx_cells(signals, entry.values):
                free = next((o for o in objects if type_name not in o), None)
                if free is None:
                    free = {}
                    objects.append(free)
                free[type_name] = cell
            for found in objects:
                item: dict[str, Any] = {"id": entry.id, "signals": found}
                if entry.label:
                    item["label"] = entry.label
                out.write(("\n" if count == 0 else ",\n") + json.dumps(item, ensure_ascii=False))
                count += 1
        out.write("\n]\n" if count else "]\n")
        return count


def _hma_row(number: int, item: Any, reader: SignalReader) -> Row:
    """One HMA object as a row. Raises ``UserError``."""
    if not isinstance(item, dict):
        raise UserError(f"expected a JSON object, got {type(item).__name__}")
    signals = item.get("signals", item)
    if not isinstance(signals, dict) or not signals:
        raise UserError('expected "signals": {"<signal type>": "<signal>", ...}')
    values: list[SignalValue] = []
    for type_name, text in signals.items():
        if not isinstance(text, str):
            raise UserError(f"signal {type_name!r} is {type(text).__name__}, not a string")
        values.extend(reader.values(type_name, text))
    if "signals" not in item:
        return Row(number, values)
    key = item.get("id")
    if key is not None and not isinstance(key, int | str):
        raise UserError(f"id {key!r} is not a number or a string")
    metadata = item.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise UserError("metadata is not a JSON object")
    label = item.get("label")
    if label is not None and not isinstance(label, str):
        raise UserError(f"label {label!r} is not a string")
    return Row(
        number,
        values,
        label or None,
        None if key is None else str(key),
        metadata.get("content_id"),
        metadata.get("content_uri") or item.get("original_media_uri"),
        metadata.get("json"),
    )


# -- detection and the registry ----------------------------------------------------------


#: What a format's name looks like: lowercase words joined by hyphens (``amber-csv``).
FORMAT_NAME = re.compile(r"[a-z][a-z0-9]*(-[a-z0-9]+)*")


def default_formats() -> Registry[BankFormat]:
    """The built-in bank file formats, registered as a plug-in would register its own."""
    registry: Registry[BankFormat] = Registry("bank format", pattern=FORMAT_NAME)
    for item in (AmberCsv(), PytxCsv(), Lines(), Hashes(), HmaJson()):
        registry.register(item)
    return registry


def detect(head: str, *, signal_type: str | None, known_types: Iterable[str]) -> str:
    """The format of a file that starts with ``head``: ``vpdq``, ``hma-json``,
    ``pytx-csv``, ``amber-csv``, ``lines`` or ``hashes``.

    A file with ``signal_type`` given is a list of bare hashes. Raises ``UserError`` for
    a file that looks like a bare list without one.
    """
    from amber.signals.vpdq import looks_like_vpdq

    if signal_type is not None:
        return "hashes"
    lines = [line.strip() for line in head.splitlines()]
    first = next((line for line in lines if line and not line.startswith("#")), "")
    if not first:
        return "amber-csv"
    if first[0] in "[{":
        return "hma-json"
    if looks_like_vpdq(head):
        return "vpdq"
    names = {n.lower() for n in known_types} | SIGNAL_ALIASES.keys() | {"signal_type", "type"}
    cells = [c.strip().strip('"').lower() for c in first.split(",")]
    if cells[0] in ("signal_type", "type"):
        return "pytx-csv" if "signal_str" in cells else "amber-csv"
    if len(cells) > 1 and cells[0] in names:
        return "amber-csv"
    word = first.split(None, 1)[0].lower()
    if word in names and len(first.split(None, 1)) == 2:
        return "lines"
    if re.fullmatch(r"[0-9a-fA-F]+", re.split(r"[,;\s]+", first)[0]):
        raise UserError(
            "the file looks like a list of bare hashes: give --signal-type (pdq, md5, sha256)"
        )
    return "amber-csv"


# -- helpers beside their users -----------------------------------------------------------


def guard(cell: str) -> str:
    """``cell`` as a spreadsheet shows it as text: a leading ``'`` before a formula start
    (OWASP's advice) or before a ``'`` (so ``unguard`` restores exactly what was stored)."""
    return "'" + cell if cell.startswith((*FORMULA_STARTS, "'")) else cell


def unguard(cell: str) -> str:
    """The value ``guard`` wrote as ``cell``: amber's own export imports unchanged."""
    if cell.startswith("'") and cell[1:].startswith((*FORMULA_STARTS, "'")):
        return cell[1:]
    return cell


def csv_rows(text: TextIO) -> Iterator[tuple[int, list[str] | csv.Error]]:
    """Numbered rows of CSV ``text``; the error in place of the row that is not valid CSV
    (a field over the csv module's size limit, say), and nothing after it."""
    number = 0
    # A video's vPDQ frame lines are one cell: allow a cell of up to MAX_CELL characters
    # (the csv module's own limit, 131,072, is about 1,600 frames). Only ever raised.
    csv.field_size_limit(max(csv.field_size_limit(), MAX_CELL))
    reader = csv.reader(text)
    while True:
        number += 1
        try:
            yield number, next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield number, exc
            return


def _blank(cells: list[str]) -> bool:
    """Is a CSV row empty or only spaces? (Checked cheaply: most rows start with a type.)"""
    return not cells or (not cells[0].strip() and all(not c.strip() for c in cells))


def _lines(text: TextIO) -> Iterator[tuple[int, str]]:
    """Numbered non-blank lines of ``text``, stripped; ``#`` comment lines left out."""
    for number, line in enumerate(text, start=1):
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            yield number, stripped


class _CsvOut:
    """Writes CSV rows with cells guarded against spreadsheet formulas, each ending in
    ``\\n`` (``\\r\\n`` as the writer's terminator makes it quote a CR inside a cell)."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.line = _Buffer()
        self.writer = csv.writer(self.line, lineterminator="\r\n")

    def write(self, cells: Sequence[object]) -> None:
        self.writer.writerow([guard(c) if isinstance(c, str) else c for c in cells])
        self.out.write(self.line.take().removesuffix("\r\n") + "\n")


class _Buffer:
    """A write target that hands over what was written since the last ``take``."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    def write(self, text: str) -> int:
        self.parts.append(text)
        return len(text)

    def take(self) -> str:
        text = "".join(self.parts)
        self.parts.clear()
        return text


def _by_type(values: Sequence[SignalValue]) -> Iterator[tuple[str, list[SignalValue]]]:
    """An entry's values grouped by type, in the order each type first appears."""
    groups: dict[str, list[SignalValue]] = {}
    for v in values:
        groups.setdefault(v.signal_type, []).append(v)
    yield from groups.items()


def _cells(
    signals: SignalRegistry[SignalType], type_name: str, values: list[SignalValue]
) -> list[str]:
    """amber's cells for one type's values (``SignalType.cells``)."""
    if type_name in signals:
        return signals.get(type_name).cells(values)
    return [v.value for v in values]  # a plug-in no longer installed


def _pytx_cells(
    signals: SignalRegistry[SignalType], values: Sequence[SignalValue]
) -> Iterator[tuple[str, str]]:
    """An entry's values as python-threatexchange names and writes them: a video's frames
    as its JSON list of ``"pdq_hex,quality,timestamp"`` strings. Types that are amber's
    own (``SignalType.shared`` false: local features) are left out."""
    from amber.signals.vpdq import to_feature

    for type_name, group in _by_type(values):
        if type_name in signals and not signals.get(type_name).shared:
            continue
        name = PYTX_NAMES.get(type_name, type_name)
        timed = type_name in signals and signals.get(type_name).timed
        if timed and type_name == "vpdq":
            features = sorted(
                (f for v in group if (f := to_feature(v)) is not None),
                key=lambda f: (f.frame_number, f.timestamp),
            )
            frames = [f"{f.pdq_hex},{f.quality},{f.timestamp:.3f}" for f in features]
            yield name, json.dumps(frames)
            continue
        for cell in _cells(signals, type_name, group):
            yield name, cell.replace("\n", " ")


def _no_signal_type(name: str, signal_type: str | None) -> None:
    if signal_type is not None:
        raise UserError(f"--signal-type is for --format hashes, not {name}")


def read_ahead(
    items: Iterable[ReadItem], *, chunk: int = 2000, depth: int = 16
) -> Iterator[ReadItem]:
    """``items``, read in a thread of their own in chunks: parsing a file goes on while
    the caller waits for its database (which lets go of the interpreter meanwhile). An
    exception in the reader is raised here, where it would have been."""
    queue: Queue[list[ReadItem] | BaseException | None] = Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            iterator = iter(items)
            while not stop.is_set():
                batch = list(itertools.islice(iterator, chunk))
                if not batch:
                    break
                queue.put(batch)
            queue.put(None)
        except BaseException as exc:  # handed to the consumer, which raises it
            queue.put(exc)

    thread = threading.Thread(target=produce, name="amber-bank-read", daemon=True)
    thread.start()
    try:
        while (batch := queue.get()) is not None:
            if isinstance(batch, BaseException):
                raise batch
            yield from batch
    finally:
        stop.set()
        while thread.is_alive():  # unblock a reader waiting on a full queue
            with contextlib.suppress(Empty):
                queue.get_nowait()
            thread.join(0.01)


def group_rows(items: Iterable[ReadItem]) -> Iterator[ReadItem]:
    """Rows that carry the same ``entry`` key one after another, merged into one row
    (its values in order, the first row's number); an entry key that comes back after
    other entries' rows is a ``RowError``, and so are two labels for one entry."""
    seen: set[str] = set()
    for key, run in itertools.groupby(items, key=lambda i: getattr(i, "entry", None)):
        if key is None:
            yield from run
            continue
        group = [r for r in run if isinstance(r, Row | RowError)]  # only they have entries
        if key in seen:
            yield RowError(
                group[0].number,
                f"entry {key!r} comes back after other entries' rows; keep an entry's rows "
                "together",
            )
            continue
        seen.add(key)
        rows = [r for r in group if isinstance(r, Row)]
        if len(rows) < len(group):  # a bad row: the entry is only its errors
            yield from (r for r in group if isinstance(r, RowError))
            continue
        first = rows[0]
        if len(rows) == 1:
            yield first
            continue
        labels = {r.label for r in rows if r.label is not None}
        if len(labels) > 1:
            yield RowError(
                first.number, f"entry {key!r} has several labels: {', '.join(sorted(labels))}"
            )
            continue
        values = [v for r in rows for v in r.values]
        yield replace(first, values=values, label=labels.pop() if labels else None)
