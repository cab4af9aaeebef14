"""On-disk layout of a ``PdqIndex`` folder: manifest, segment files, atomic writes, lock.

The folder holds plain ``.npy`` arrays (opened with ``mmap_mode="r"``) and a
``manifest.json`` that names the files of the current state and is replaced last, so a
reader sees the old state or the new one. Writers, in any process, hold an exclusive
``flock`` on the folder's ``lock`` file. The layout, the manifest's fields and the crash
and concurrency guarantees are described in ``docs/index.md``. Everything that reads,
checks, writes or cleans up those files lives here; ``mih.py`` searches on top.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import mmap
import os
import re
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from amber.atomic_write import fsync_path
from amber.errors import AmberError, UserError

FORMAT = "amber-pdq-index"
FORMAT_VERSION = 4
HASH_BYTES = 32
MANIFEST = "manifest.json"
#: The file writers ``flock``; it is never deleted.
LOCK = "lock"
#: Chunk bits kept in each posting beyond the bucket key, to drop far candidates early.
SUFFIX_BITS = 3
#: Up to about 12 million rows a base has about 8 rows a bucket, with at most 2**20
#: buckets (4 MiB of offsets) a table ...
RULE_BUCKET_BITS = 20
#: ... a larger base takes the shape the probe cost model expects to be cheapest
#: (``probes.cheapest_tables``), up to 2**24 buckets (64 MiB of offsets) a table.
MAX_BUCKET_BITS = 24
MIN_BUCKET_BITS = 4
MAX_TABLES = 16
#: Bucket offsets are uint32, so a base holds fewer rows than this.
MAX_ROWS = 1 << 32
#: The files of a base segment: ``base-G.<part>.npy``.
BASE_PARTS = ("ids", "hashes", "postings", "offsets", "by_id")
#: Rows gathered at a time when a base's hashes are written in their new order.
_COPY_ROWS = 1 << 20

_FILE = re.compile(
    r"^(base-\d+\.(ids|hashes|postings|offsets|by_id)|delta-\d+\.(ids|hashes)|tombstones-\d+)\.npy$"
)
_TEMP = re.compile(r"^(manifest\.json|.+\.npy)\.tmp$")

Ids = npt.NDArray[np.int64]
Hashes = npt.NDArray[np.uint8]
Words = npt.NDArray[np.uint64]


class IndexCorruptError(AmberError):
    """An index folder cannot be read as a consistent state; rebuild it from the source."""

    def __init__(self, message: str, *, path: Path | str) -> None:
        super().__init__(f"{path}: {message}; rebuild the index from its source (PdqIndex.rebuild)")
        self.reason = message
        self.path = str(path)


# --------------------------------------------------------------------------- state


@dataclass(frozen=True, slots=True)
class Tables:
    """How a base cuts hashes into bucket tables (see ``kernels.py``)."""

    tables: int
    table_bits: int
    bucket_bits: int

    @classmethod
    def for_rows(cls, rows: int) -> Tables:
        """The shape for a base of ``rows``: about 8 rows per bucket, 3 suffix bits.

        At 10 million rows: 11 tables of 23 bits, bucketed by 20 of them. Past about
        12 million rows (more than 2**20 buckets wanted), the shape the probe cost model
        expects to be cheapest at PDQ's radius 31: at 100 million rows, 9 tables of 28
        bits bucketed by 24 (``probes.cheapest_tables``).
        """
        wanted = round(math.log2(max(rows, 1))) - 3
        if wanted > RULE_BUCKET_BITS:
            from amber.index import probes  # probes imports this module

            return probes.cheapest_tables(rows)
        bucket_bits = max(wanted, MIN_BUCKET_BITS)
        table_bits = bucket_bits + SUFFIX_BITS
        return cls(min(HASH_BYTES * 8 // table_bits, MAX_TABLES), table_bits, bucket_bits)

    @property
    def suffix_bits(self) -> int:
        """Chunk bits beyond the bucket key, stored in each posting."""
        return self.table_bits - self.bucket_bits

    def posting_bits(self, rows: int) -> int:
        """Bits per posting: the row position and the chunk's suffix."""
        return row_bits(rows) + self.suffix_bits

    def posting_words(self, rows: int) -> int:
        """uint64 words of the packed postings (table 0 has none: its buckets are runs of
        rows), plus one spare for branch-free reads."""
        return -(-(self.tables - 1) * rows * self.posting_bits(rows) // 64) + 1

    def valid(self) -> bool:
        """Whether the kernels can use this shape."""
        return (
            1 <= self.tables <= MAX_TABLES
            and 1 <= self.bucket_bits <= MAX_BUCKET_BITS
            and 0 <= self.suffix_bits <= 8
            and self.tables * self.table_bits <= HASH_BYTES * 8
        )


def row_bits(rows: int) -> int:
    """Bits that hold a row position below ``rows``."""
    return max(1, (rows - 1).bit_length())


@dataclass(frozen=True, slots=True)
class Manifest:
    """What ``manifest.json`` says: the generation of each segment and its row count."""

    generation: int = 0
    max_id: int = -1
    base_generation: int | None = None
    base_rows: int = 0
    base_tables: Tables | None = None
    delta_generation: int | None = None
    delta_rows: int = 0
    delta_capacity: int = 0
    tombstone_generation: int | None = None
    tombstone_rows: int = 0

    def files(self) -> set[str]:
        """Names of the files this state is made of."""
        names: set[str] = set()
        if self.base_generation is not None:
            names |= {base_file(self.base_generation, part) for part in BASE_PARTS}
        if self.delta_generation is not None:
            names |= {delta_file(self.delta_generation, part) for part in ("ids", "hashes")}
        if self.tombstone_generation is not None:
            names.add(tombstone_file(self.tombstone_generation))
        return names

    def to_json(self) -> dict[str, Any]:
        """The manifest as written to disk."""
        base = None
        if self.base_generation is not None and self.base_tables is not None:
            base = {
                "generation": self.base_generation,
                "rows": self.base_rows,
                "tables": self.base_tables.tables,
                "table_bits": self.base_tables.table_bits,
                "bucket_bits": self.base_tables.bucket_bits,
            }
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "generation": self.generation,
            "max_id": self.max_id,
            "base": base,
            "delta": None
            if self.delta_generation is None
            else {
                "generation": self.delta_generation,
                "rows": self.delta_rows,
                "capacity": self.delta_capacity,
            },
            "tombstones": None
            if self.tombstone_generation is None
            else {"generation": self.tombstone_generation, "rows": self.tombstone_rows},
        }

    @classmethod
    def from_json(cls, data: Any, path: Path) -> Manifest:
        """Parse a manifest. Raises ``IndexCorruptError`` naming what is wrong."""
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise IndexCorruptError(f"not an {FORMAT} manifest", path=path)
        if data.get("version") != FORMAT_VERSION:
            raise IndexCorruptError(
                f"format version {data.get('version')!r} is not {FORMAT_VERSION}", path=path
            )

        def number(holder: dict[str, Any], key: str, low: int) -> int:
            value = holder.get(key)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise IndexCorruptError(f"{key} is {value!r}, expected an integer", path=path)
            return value

        def section(key: str) -> dict[str, Any] | None:
            value = data.get(key)
            if value is not None and not isinstance(value, dict):
                raise IndexCorruptError(f"{key} is {value!r}, expected an object", path=path)
            return value

        base, delta, tombs = section("base"), section("delta"), section("tombstones")
        tables = None
        if base is not None:
            tables = Tables(
                number(base, "tables", 1),
                number(base, "table_bits", 1),
                number(base, "bucket_bits", 1),
            )
            if not tables.valid():
                raise IndexCorruptError(f"base tables {tables} cannot be searched", path=path)
        manifest = cls(
            generation=number(data, "generation", 0),
            max_id=number(data, "max_id", -1),
            base_generation=None if base is None else number(base, "generation", 0),
            base_rows=0 if base is None else number(base, "rows", 1),
            base_tables=tables,
            delta_generation=None if delta is None else number(delta, "generation", 0),
            delta_rows=0 if delta is None else number(delta, "rows", 0),
            delta_capacity=0 if delta is None else number(delta, "capacity", 1),
            tombstone_generation=None if tombs is None else number(tombs, "generation", 0),
            tombstone_rows=0 if tombs is None else number(tombs, "rows", 1),
        )
        if manifest.base_rows >= MAX_ROWS:
            raise IndexCorruptError(f"base rows {manifest.base_rows} exceed 2**32 - 1", path=path)
        if manifest.delta_rows > manifest.delta_capacity:
            raise IndexCorruptError("delta rows exceed its capacity", path=path)
        return manifest


def base_file(generation: int, part: str) -> str:
    """File name of one part of the base segment written by ``generation``."""
    return f"base-{generation}.{part}.npy"


def delta_file(generation: int, part: str) -> str:
    """File name of one part of the delta segment written by ``generation``."""
    return f"delta-{generation}.{part}.npy"


def tombstone_file(generation: int) -> str:
    """File name of the tombstones written by ``generation``."""
    return f"tombstones-{generation}.npy"


class IdReader:
    """Reads ids at row positions with ``pread``, so searching never maps the ids file.

    A search needs an id only for each match, but every page fault on a mapped file also
    maps the cached pages around it, so a few thousand matches would leave the whole ids
    array (8 bytes a row) resident in every searching process. The descriptor keeps the
    file readable after a writer deletes it, as a mapping does; it closes with the reader.
    """

    #: Past this many ids in one call, reading the mapping is cheaper than system calls.
    MOST = 256

    def __init__(self, path: Path, offset: int) -> None:
        """Open ``path`` whose int64 ids start at byte ``offset``. Raises ``OSError``."""
        self._fd = os.open(path, os.O_RDONLY)
        self._offset = offset
        weakref.finalize(self, os.close, self._fd)

    def read(self, rows: Ids) -> Ids:
        """The ids at these row positions (in range)."""
        ids = np.empty(rows.shape, np.int64)
        for number, row in enumerate(rows.tolist()):
            data = os.pread(self._fd, 8, self._offset + 8 * row)
            ids[number] = int.from_bytes(data, "little", signed=True)
        return ids


@dataclass(frozen=True, slots=True)
class Base:
    """The segment searched through bucket tables (memory-mapped).

    Its rows are in the bucket order of table 0, so the candidates a bucket holds are
    neighbours in ``hashes``; ``by_id`` lists the rows by ascending id, for writers.
    """

    ids: Ids  # id of each row (not in order)
    hashes: Hashes
    words: Words  # the hashes as (n, 4) uint64
    offsets: npt.NDArray[np.uint32]  # (tables, 2**bucket_bits + 1)
    postings: Words  # bit-packed, see kernels.py
    by_id: npt.NDArray[np.uint32]  # row positions, their ids ascending
    tables: Tables
    generation: int
    id_reader: IdReader | None = None

    @property
    def rows(self) -> int:
        """Number of rows in the segment."""
        return int(self.ids.shape[0])

    def rows_of(self, ids: Ids) -> Ids:
        """Row position of each id, -1 where the base holds none (a binary search
        through ``by_id``: about 2 * log2(n) reads an id, from writers only)."""
        low = np.zeros(ids.shape, np.int64)
        high = np.full(ids.shape, self.rows, np.int64)
        while True:
            open_ = low < high
            if not open_.any():
                break
            middle = (low + high) // 2
            # mode="clip": a corrupt by_id yields wrong rows, which the check below drops.
            row = np.take(self.by_id, np.minimum(middle, self.rows - 1))
            below = np.take(self.ids, row, mode="clip") < ids
            low = np.where(open_ & below, middle + 1, low)
            high = np.where(open_ & ~below, middle, high)
        rows = np.take(self.by_id, np.minimum(low, self.rows - 1)).astype(np.int64)
        found = np.take(self.ids, rows, mode="clip") == ids
        return np.where(found & (rows < self.rows), rows, -1)

    def ids_at(self, rows: Ids) -> Ids:
        """Ids of these row positions; few are read without mapping (see ``IdReader``)."""
        if self.id_reader is None or rows.shape[0] > IdReader.MOST:
            result: Ids = np.take(self.ids, rows)
            return result
        return self.id_reader.read(rows)


@dataclass(frozen=True, slots=True)
class Delta:
    """The brute-force segment at full capacity (memory-mapped) and where its data starts."""

    ids: Ids
    hashes: Hashes
    ids_offset: int
    hashes_offset: int


EMPTY_BASE = Base(
    ids=np.empty(0, np.int64),
    hashes=np.empty((0, HASH_BYTES), np.uint8),
    words=np.empty((0, 4), np.uint64),
    offsets=np.zeros((1, 2), np.uint32),
    postings=np.zeros(1, np.uint64),
    by_id=np.empty(0, np.uint32),
    tables=Tables(1, 1, 1),
    generation=-1,
)


# --------------------------------------------------------------------------- reading


def read_stamp(directory: Path) -> bytes:
    """The bytes of ``manifest.json`` (empty if there is none): what names a state."""
    path = directory / MANIFEST
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return b""
    except OSError as error:
        raise IndexCorruptError(f"cannot be read ({error})", path=path) from error


def parse_manifest(directory: Path, stamp: bytes) -> Manifest:
    """The manifest these bytes of ``manifest.json`` hold; an empty state for none."""
    if not stamp:
        return Manifest()
    path = directory / MANIFEST
    try:
        data = json.loads(stamp)
    except ValueError as error:
        raise IndexCorruptError(f"is not valid JSON ({error})", path=path) from error
    return Manifest.from_json(data, path)


def read_manifest(directory: Path) -> Manifest:
    """The manifest in ``directory``; an empty state if there is none."""
    return parse_manifest(directory, read_stamp(directory))


def next_generation(directory: Path) -> int:
    """A generation above the manifest's and above every index file in the folder."""
    highest = 0
    with contextlib.suppress(IndexCorruptError):
        highest = read_manifest(directory).generation
    for path in directory.iterdir():
        match = re.match(r"^(?:base|delta|tombstones)-(\d+)\.", path.name)
        if match:
            highest = max(highest, int(match.group(1)))
    return highest + 1


def _load_array(
    path: Path, dtype: str, shape: tuple[int, ...], *, huge: bool = False
) -> tuple[Any, int]:
    """Memory-map one ``.npy`` and check it; return it and where its data starts.

    The map is returned as a plain ``ndarray`` view (``np.memmap`` adds overhead to every
    operation). ``huge`` asks the kernel for huge pages (``MADV_HUGEPAGE``) where it
    offers them for files: pages read from disk then come in 2 MiB folios, each mapped by
    one TLB entry instead of 512. Raises ``IndexCorruptError`` naming the file.
    """
    try:
        array = np.load(path, mmap_mode="r" if all(shape) else None, allow_pickle=False)
    except (OSError, ValueError, EOFError, SyntaxError) as error:
        raise IndexCorruptError(f"cannot be read ({error})", path=path) from error
    mapping = getattr(array, "_mmap", None)
    if huge and mapping is not None and hasattr(mmap, "MADV_HUGEPAGE"):
        with contextlib.suppress(OSError):  # a kernel without transparent huge pages
            mapping.madvise(mmap.MADV_HUGEPAGE)
    if array.dtype != np.dtype(dtype) or array.shape != shape:
        raise IndexCorruptError(
            f"holds {array.dtype} {array.shape}, the manifest expects {np.dtype(dtype)} {shape}",
            path=path,
        )
    return np.asarray(array), int(getattr(array, "offset", 0))


def load_base(directory: Path, manifest: Manifest) -> Base:
    """Map the base segment. Raises ``IndexCorruptError``."""
    generation, rows, tables = manifest.base_generation, manifest.base_rows, manifest.base_tables
    if generation is None or tables is None:
        return EMPTY_BASE
    ids_path = directory / base_file(generation, "ids")
    ids, ids_offset = _load_array(ids_path, "<i8", (rows,))
    try:
        id_reader = IdReader(ids_path, ids_offset)
    except OSError as error:
        raise IndexCorruptError(f"cannot be read ({error})", path=ids_path) from error
    hashes_path = directory / base_file(generation, "hashes")
    hashes, _ = _load_array(hashes_path, "u1", (rows, HASH_BYTES), huge=True)
    postings_path = directory / base_file(generation, "postings")
    postings, _ = _load_array(postings_path, "<u8", (tables.posting_words(rows),), huge=True)
    offsets_path = directory / base_file(generation, "offsets")
    shape = (tables.tables, (1 << tables.bucket_bits) + 1)
    offsets, _ = _load_array(offsets_path, "<u4", shape, huge=True)
    if (offsets[:, 0] != 0).any() or (offsets[:, -1] != rows).any():
        raise IndexCorruptError("bucket offsets do not span the postings", path=offsets_path)
    by_id, _ = _load_array(directory / base_file(generation, "by_id"), "<u4", (rows,))
    return Base(
        ids=ids,
        hashes=hashes,
        words=hashes.view(np.uint64),
        offsets=offsets,
        postings=postings,
        by_id=by_id,
        tables=tables,
        generation=generation,
        id_reader=id_reader,
    )


def _delta_parts(capacity: int) -> list[tuple[str, str, tuple[int, ...]]]:
    """Part name, dtype and shape of each delta file at ``capacity`` rows."""
    return [("ids", "<i8", (capacity,)), ("hashes", "u1", (capacity, HASH_BYTES))]


def load_delta(directory: Path, manifest: Manifest) -> Delta | None:
    """Map the delta segment at full capacity. Raises ``IndexCorruptError``."""
    generation = manifest.delta_generation
    if generation is None:
        return None
    return _open_delta(directory, generation, manifest.delta_capacity)


def _open_delta(directory: Path, generation: int, capacity: int) -> Delta:
    """Map the delta files of ``generation``. Raises ``IndexCorruptError``."""
    (ids, ids_offset), (hashes, hashes_offset) = (
        _load_array(directory / delta_file(generation, part), dtype, shape)
        for part, dtype, shape in _delta_parts(capacity)
    )
    return Delta(ids=ids, hashes=hashes, ids_offset=ids_offset, hashes_offset=hashes_offset)


def load_tombstones(directory: Path, manifest: Manifest) -> Ids:
    """Read the tombstones (small: not mapped). Raises ``IndexCorruptError``."""
    generation = manifest.tombstone_generation
    if generation is None:
        return EMPTY_BASE.ids
    path = directory / tombstone_file(generation)
    tombstones = np.array(_load_array(path, "<i8", (manifest.tombstone_rows,))[0])
    limit = manifest.base_rows + manifest.delta_rows
    if (np.diff(tombstones) <= 0).any() or tombstones[0] < 0 or tombstones[-1] >= limit:
        raise IndexCorruptError("row positions are not ascending and in range", path=path)
    result: Ids = tombstones
    return result


# --------------------------------------------------------------------------- writing


@contextlib.contextmanager
def locked(directory: Path) -> Iterator[None]:
    """Hold the folder's exclusive writer lock (``flock`` on ``lock``), across processes.

    Blocks while another process (or another ``PdqIndex`` in this one) writes.
    """
    fd = os.open(directory / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def write_base(directory: Path, manifest: Manifest, ids: Ids, hashes: Hashes) -> Manifest:
    """Write base files of these rows (unique ids) for ``manifest.generation``.

    The rows are stored in the bucket order of table 0 (by id within a bucket), so the
    candidates of one bucket share cache lines and pages. Raises ``UserError`` for 2**32
    rows or more.

    Returns ``manifest`` naming them; the caller writes it.
    """
    from amber.index import kernels  # numba: imported on first use, not with amber

    generation = manifest.generation
    rows = int(ids.shape[0])
    if rows == 0:
        return manifest
    if rows >= MAX_ROWS:
        raise UserError(f"{rows} rows do not fit one index (at most {MAX_ROWS - 1})")
    tables = Tables.for_rows(rows)
    # Rows by id (ids come in order from the database), then stably by table 0's bucket.
    by_id: npt.NDArray[np.int64] | None = None
    if not (ids[1:] > ids[:-1]).all():
        by_id = np.argsort(ids, kind="stable")
    sequence = np.arange(rows, dtype=np.uint32) if by_id is None else by_id.astype(np.uint32)
    order = np.empty(rows, np.uint32)
    kernels.bucket_order(hashes.view(np.uint64), sequence, tables.bucket_bits, order)
    del sequence
    _write_array(directory / base_file(generation, "ids"), np.take(ids, order).astype("<i8"))
    # Where each given row goes, then the rows in id order: ``by_id``.
    row_of = np.empty(rows, np.uint32)
    row_of[order] = np.arange(rows, dtype=np.uint32)
    ranked = row_of if by_id is None else np.take(row_of, by_id)
    del by_id, row_of
    _write_array(directory / base_file(generation, "by_id"), ranked.astype("<u4", copy=False))
    del ranked
    # Every file is written with write(), not through a shared mapping: the page cache
    # then holds it in large folios where the file system allows, which a reader maps
    # with huge pages (see ``_load_array``).
    hashes_path = directory / base_file(generation, "hashes")
    with _writing(hashes_path) as temporary, open(temporary, "wb") as handle:
        header = {"descr": "|u1", "fortran_order": False, "shape": (rows, HASH_BYTES)}
        np.lib.format.write_array_header_1_0(handle, header)
        for start in range(0, rows, _COPY_ROWS):
            handle.write(np.take(hashes, order[start : start + _COPY_ROWS], axis=0).data)
    del order
    ordered, _ = _load_array(hashes_path, "u1", (rows, HASH_BYTES), huge=True)
    postings = np.zeros(tables.posting_words(rows), "<u8")
    offsets = np.empty((tables.tables, (1 << tables.bucket_bits) + 1), "<u4")
    kernels.build_tables(
        ordered.view(np.uint64),
        tables.tables,
        tables.table_bits,
        tables.bucket_bits,
        row_bits(rows),
        offsets,
        postings,
    )
    del ordered
    _write_array(directory / base_file(generation, "postings"), postings)
    del postings
    _write_array(directory / base_file(generation, "offsets"), offsets)
    return replace(manifest, base_generation=generation, base_rows=rows, base_tables=tables)


@contextlib.contextmanager
def _writing(path: Path) -> Iterator[Path]:
    """Yield a temporary path to write; then fsync it and rename it to ``path``."""
    temporary = _temporary(path)
    yield temporary
    fsync_path(temporary)
    os.replace(temporary, path)


def _temporary(path: Path) -> Path:
    """Where ``path`` is written before it is renamed into place."""
    return path.with_name(path.name + ".tmp")


def _write_array(path: Path, array: npt.NDArray[Any]) -> None:
    """Write one ``.npy`` under a temporary name, fsync it and rename it into place."""
    temporary = _temporary(path)
    with open(temporary, "wb") as handle:
        np.lib.format.write_array(handle, np.ascontiguousarray(array), allow_pickle=False)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def _write_preallocated(path: Path, dtype: str, shape: tuple[int, ...]) -> None:
    """Create a zero-filled (sparse) ``.npy`` of ``shape``, atomically."""
    with _writing(path) as temporary:
        array = np.lib.format.open_memmap(temporary, mode="w+", dtype=dtype, shape=shape)
        del array


def _write_at(path: Path, offset: int, data: bytes) -> None:
    """Overwrite bytes at ``offset`` of an existing file and fsync it."""
    with open(path, "r+b") as handle:
        handle.seek(offset)
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def create_delta(directory: Path, generation: int, capacity: int) -> Delta:
    """Create zero-filled delta files of ``capacity`` rows for ``generation`` and map them."""
    for part, dtype, shape in _delta_parts(capacity):
        _write_preallocated(directory / delta_file(generation, part), dtype, shape)
    return _open_delta(directory, generation, capacity)


def write_delta_rows(
    directory: Path, generation: int, delta: Delta, start: int, ids: Ids, hashes: Hashes
) -> None:
    """Write rows into the delta files of ``generation`` from row ``start`` on, durably.

    The rows stay invisible until a manifest whose ``rows`` covers them is written; rows
    below ``start`` are never rewritten, so readers of an older manifest are unaffected.
    """
    _write_at(
        directory / delta_file(generation, "ids"),
        delta.ids_offset + start * 8,
        ids.astype("<i8").tobytes(),
    )
    _write_at(
        directory / delta_file(generation, "hashes"),
        delta.hashes_offset + start * HASH_BYTES,
        hashes.tobytes(),
    )


def write_tombstones(directory: Path, generation: int, tombstones: Ids) -> None:
    """Write the tombstones file of ``generation`` (ascending row positions)."""
    _write_array(directory / tombstone_file(generation), tombstones)


def write_manifest(directory: Path, manifest: Manifest) -> bytes:
    """Replace ``manifest.json`` atomically and durably, after every rename before it.

    Returns the bytes written (the new state's stamp).
    """
    fsync_path(directory)
    path = directory / MANIFEST
    temporary = _temporary(path)
    stamp = (json.dumps(manifest.to_json(), indent=1) + "\n").encode()
    with open(temporary, "wb") as handle:
        handle.write(stamp)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    fsync_path(directory)
    return stamp


def remove_unreferenced(directory: Path, manifest: Manifest) -> None:
    """Delete index files and temporaries that ``manifest`` does not name.

    Only a writer holding the lock calls this. A reader that still maps a deleted file
    keeps reading it: on Linux an unlinked file lives until its last mapping goes.
    """
    keep = manifest.files()
    for path in directory.iterdir():
        name = path.name
        if (_FILE.match(name) and name not in keep) or _TEMP.match(name):
            path.unlink(missing_ok=True)
