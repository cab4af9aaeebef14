"""On-disk layout of a ``PdqIndex`` folder: manifest, segment files, atomic writes.

The folder holds plain ``.npy`` arrays (opened with ``mmap_mode="r"``) and a
``manifest.json`` that names the files of the current state and is replaced last, so a
reader sees the old state or the new one. The layout, the manifest's fields and the crash
guarantees are described in ``docs/index.md``. Everything that reads, checks, writes or
cleans up those files lives here; ``mih.py`` builds and searches the index on top.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from amber.durable import fsync_path
from amber.errors import AmberError

FORMAT = "amber-pdq-index"
FORMAT_VERSION = 1
HASH_BYTES = 32
CHUNKS = 16
BUCKETS = 1 << 16
MANIFEST = "manifest.json"
#: The files of a base segment: ``base-G.<part>.npy``.
BASE_PARTS = ("ids", "hashes", "postings", "offsets")

_FILE = re.compile(
    r"^(base-\d+\.(ids|hashes|postings|offsets)|delta-\d+\.(ids|hashes)|tombstones-\d+)\.npy$"
)
_TEMP = re.compile(r"^(manifest\.json|.+\.npy)\.tmp$")

Ids = npt.NDArray[np.int64]
Hashes = npt.NDArray[np.uint8]


class IndexCorruptError(AmberError):
    """An index folder cannot be read as a consistent state; rebuild it from the source."""

    def __init__(self, message: str, *, path: Path | str) -> None:
        super().__init__(f"{path}: {message}; rebuild the index from its source (PdqIndex.rebuild)")
        self.reason = message
        self.path = str(path)


# --------------------------------------------------------------------------- state


@dataclass(frozen=True, slots=True)
class Manifest:
    """What ``manifest.json`` says: the generation of each segment and its row count."""

    generation: int = 0
    max_id: int = -1
    base_generation: int | None = None
    base_rows: int = 0
    delta_generation: int | None = None
    delta_rows: int = 0
    delta_capacity: int = 0
    tombstone_generation: int | None = None
    tombstone_rows: int = 0

    def files(self) -> set[str]:
        """Names of the files this state is made of."""
        names: set[str] = set()
        if self.base_generation is not None:
            names |= {_base_file(self.base_generation, part) for part in BASE_PARTS}
        if self.delta_generation is not None:
            names |= {_delta_file(self.delta_generation, part) for part in ("ids", "hashes")}
        if self.tombstone_generation is not None:
            names.add(_tombstone_file(self.tombstone_generation))
        return names

    def to_json(self) -> dict[str, Any]:
        """The manifest as written to disk."""
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "generation": self.generation,
            "max_id": self.max_id,
            "base": None
            if self.base_generation is None
            else {"generation": self.base_generation, "rows": self.base_rows},
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
        manifest = cls(
            generation=number(data, "generation", 0),
            max_id=number(data, "max_id", -1),
            base_generation=None if base is None else number(base, "generation", 0),
            base_rows=0 if base is None else number(base, "rows", 1),
            delta_generation=None if delta is None else number(delta, "generation", 0),
            delta_rows=0 if delta is None else number(delta, "rows", 0),
            delta_capacity=0 if delta is None else number(delta, "capacity", 1),
            tombstone_generation=None if tombs is None else number(tombs, "generation", 0),
            tombstone_rows=0 if tombs is None else number(tombs, "rows", 1),
        )
        if manifest.delta_rows > manifest.delta_capacity:
            raise IndexCorruptError("delta rows exceed its capacity", path=path)
        return manifest


def _base_file(generation: int, part: str) -> str:
    """File name of one part of the base segment written by ``generation``."""
    return f"base-{generation}.{part}.npy"


def _delta_file(generation: int, part: str) -> str:
    """File name of one part of the delta segment written by ``generation``."""
    return f"delta-{generation}.{part}.npy"


def _tombstone_file(generation: int) -> str:
    """File name of the tombstones written by ``generation``."""
    return f"tombstones-{generation}.npy"


@dataclass(frozen=True, slots=True)
class Base:
    """The MIH-indexed segment (memory-mapped)."""

    ids: Ids
    hashes: Hashes
    postings: npt.NDArray[np.uint32]  # flat: chunk j's rows at [j * n, (j + 1) * n)
    offsets: Ids

    @property
    def rows(self) -> int:
        """Number of rows in the segment."""
        return int(self.ids.shape[0])


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
    postings=np.empty(0, np.uint32),
    offsets=np.zeros(1, np.int64),
)


# --------------------------------------------------------------------------- reading


def read_manifest(directory: Path) -> Manifest:
    """The manifest in ``directory``; an empty state if there is none."""
    path = directory / MANIFEST
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Manifest()
    except OSError as error:
        raise IndexCorruptError(f"cannot be read ({error})", path=path) from error
    try:
        data = json.loads(text)
    except ValueError as error:
        raise IndexCorruptError(f"is not valid JSON ({error})", path=path) from error
    return Manifest.from_json(data, path)


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


def _load_array(path: Path, dtype: str, shape: tuple[int, ...]) -> tuple[Any, int]:
    """Memory-map one ``.npy`` and check it; return it and where its data starts.

    The map is returned as a plain ``ndarray`` view (``np.memmap`` adds overhead to every
    operation). Raises ``IndexCorruptError`` naming the file.
    """
    try:
        array = np.load(path, mmap_mode="r" if all(shape) else None, allow_pickle=False)
    except (OSError, ValueError, EOFError, SyntaxError) as error:
        raise IndexCorruptError(f"cannot be read ({error})", path=path) from error
    if array.dtype != np.dtype(dtype) or array.shape != shape:
        raise IndexCorruptError(
            f"holds {array.dtype} {array.shape}, the manifest expects {np.dtype(dtype)} {shape}",
            path=path,
        )
    return np.asarray(array), int(getattr(array, "offset", 0))


def load_base(directory: Path, manifest: Manifest) -> Base:
    """Map the base segment. Raises ``IndexCorruptError``."""
    generation, rows = manifest.base_generation, manifest.base_rows
    if generation is None:
        return EMPTY_BASE
    ids, _ = _load_array(directory / _base_file(generation, "ids"), "<i8", (rows,))
    hashes, _ = _load_array(directory / _base_file(generation, "hashes"), "u1", (rows, HASH_BYTES))
    postings, _ = _load_array(directory / _base_file(generation, "postings"), "<u4", (CHUNKS, rows))
    offsets_path = directory / _base_file(generation, "offsets")
    offsets, _ = _load_array(offsets_path, "<i8", (CHUNKS * BUCKETS + 1,))
    if offsets[0] != 0 or offsets[-1] != CHUNKS * rows:
        raise IndexCorruptError("bucket offsets do not span the postings", path=offsets_path)
    return Base(ids=ids, hashes=hashes, postings=postings.reshape(-1), offsets=offsets)


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
        _load_array(directory / _delta_file(generation, part), dtype, shape)
        for part, dtype, shape in _delta_parts(capacity)
    )
    return Delta(ids=ids, hashes=hashes, ids_offset=ids_offset, hashes_offset=hashes_offset)


def load_tombstones(directory: Path, manifest: Manifest) -> Ids:
    """Read the tombstones (small: not mapped). Raises ``IndexCorruptError``."""
    generation = manifest.tombstone_generation
    if generation is None:
        return EMPTY_BASE.ids
    path = directory / _tombstone_file(generation)
    tombstones = np.array(_load_array(path, "<i8", (manifest.tombstone_rows,))[0])
    limit = manifest.base_rows + manifest.delta_rows
    if (np.diff(tombstones) <= 0).any() or tombstones[0] < 0 or tombstones[-1] >= limit:
        raise IndexCorruptError("row positions are not ascending and in range", path=path)
    result: Ids = tombstones
    return result


# --------------------------------------------------------------------------- writing


def write_base(directory: Path, manifest: Manifest, ids: Ids, hashes: Hashes) -> Manifest:
    """Write base files of these rows (unique ids) for ``manifest.generation``.

    Returns ``manifest`` naming them; the caller writes it.
    """
    generation = manifest.generation
    rows = int(ids.shape[0])
    if rows == 0:
        return manifest
    order = np.argsort(ids, kind="stable")
    ids = np.take(ids, order)
    hashes = np.take(hashes, order, axis=0)
    _write_array(directory / _base_file(generation, "ids"), ids.astype("<i8"))
    _write_array(directory / _base_file(generation, "hashes"), hashes)
    keys = hashes.view("<u2")
    offsets = np.zeros(CHUNKS * BUCKETS + 1, "<i8")
    postings_path = directory / _base_file(generation, "postings")
    temporary = _temporary(postings_path)
    postings = np.lib.format.open_memmap(temporary, mode="w+", dtype="<u4", shape=(CHUNKS, rows))
    for chunk in range(CHUNKS):
        key = np.ascontiguousarray(keys[:, chunk])
        postings[chunk] = np.argsort(key, kind="stable")
        counts = np.bincount(key, minlength=BUCKETS)
        begin = chunk * BUCKETS
        offsets[begin + 1 : begin + BUCKETS + 1] = chunk * rows + np.cumsum(counts)
    postings.flush()
    del postings
    fsync_path(temporary)
    os.replace(temporary, postings_path)
    _write_array(directory / _base_file(generation, "offsets"), offsets)
    return replace(manifest, base_generation=generation, base_rows=rows)


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
    temporary = _temporary(path)
    array = np.lib.format.open_memmap(temporary, mode="w+", dtype=dtype, shape=shape)
    del array
    fsync_path(temporary)
    os.replace(temporary, path)


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
        _write_preallocated(directory / _delta_file(generation, part), dtype, shape)
    return _open_delta(directory, generation, capacity)


def write_delta_rows(
    directory: Path, generation: int, delta: Delta, start: int, ids: Ids, hashes: Hashes
) -> None:
    """Write rows into the delta files of ``generation`` from row ``start`` on, durably.

    The rows stay invisible until a manifest whose ``rows`` covers them is written.
    """
    _write_at(
        directory / _delta_file(generation, "ids"),
        delta.ids_offset + start * 8,
        ids.astype("<i8").tobytes(),
    )
    _write_at(
        directory / _delta_file(generation, "hashes"),
        delta.hashes_offset + start * HASH_BYTES,
        hashes.tobytes(),
    )


def write_tombstones(directory: Path, generation: int, tombstones: Ids) -> None:
    """Write the tombstones file of ``generation`` (ascending row positions)."""
    _write_array(directory / _tombstone_file(generation), tombstones)


def write_manifest(directory: Path, manifest: Manifest) -> None:
    """Replace ``manifest.json`` atomically and durably, after every rename before it."""
    fsync_path(directory)
    path = directory / MANIFEST
    temporary = _temporary(path)
    with open(temporary, "w", encoding="utf-8") as handle:
        json.dump(manifest.to_json(), handle, indent=1)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    fsync_path(directory)


def remove_unreferenced(directory: Path, manifest: Manifest) -> None:
    """Delete index files and temporaries that ``manifest`` does not name."""
    keep = manifest.files()
    for path in directory.iterdir():
        name = path.name
        if (_FILE.match(name) and name not in keep) or _TEMP.match(name):
            path.unlink(missing_ok=True)
