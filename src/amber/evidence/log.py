"""The custody log: append-only canonical JSON records, the leaves of an RFC 9162 tree.

On disk (inside the vault)::

    log/records.jsonl              one record per line: canonical JSON (sorted keys, no
                                   spaces, UTF-8); the line's bytes without its newline
                                   are the Merkle leaf
    log/checkpoints/<size>.txt     a signed checkpoint (C2SP signed note) for every size
                                   the log has had, 12-digit zero-padded

Every append writes and fsyncs the line, then signs a checkpoint for the new size. amber
never signs a checkpoint that is inconsistent with an earlier one: before signing, the
tree's root at the previous checkpoint's size must equal that checkpoint's root.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from amber.atomic_write import write_atomic
from amber.errors import AmberError
from amber.evidence.checkpoint import Checkpoint, CheckpointError, Signer, open_note
from amber.evidence.merkle import MerkleTree, leaf_hash

RECORDS = "records.jsonl"
PENDING = "pending"
CHECKPOINTS = "checkpoints"


class LogError(AmberError):
    """The custody log is damaged or would become inconsistent."""


def canonical(record: Mapping[str, Any]) -> bytes:
    """The one byte form of a record: sorted keys, no insignificant space, UTF-8."""
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True, slots=True)
class Entry:
    """One record of the log: its position, exact bytes and parsed value."""

    index: int
    line: bytes
    record: dict[str, Any]


class CustodyLog:
    """The log of one vault. Writers must hold the vault's lock."""

    def __init__(self, directory: Path, *, origin: str, verifier_key: str) -> None:
        self.directory = directory
        self.origin = origin
        self.verifier_key = verifier_key
        #: Bumped whenever the log is read from the start again (``refresh``).
        self.generation = 0
        self._read_all()

    def _read_all(self) -> None:
        self.generation += 1
        self.entries: list[Entry] = []
        self.tree = MerkleTree()
        self._identity: tuple[int, int] | None = None  # (device, inode) of the file read
        self._offset = 0  # bytes of complete lines read
        self.tail = b""
        self.partial_tail = False
        self._signed = max(self.checkpoint_sizes(), default=0)
        self.refresh()

    def refresh(self) -> int:
        """Read the lines other processes appended since the last read; returns how many.

        Reads only what is new, so a writer's cost does not grow with the log. When the
        file was replaced or shortened (recovery, or damage), it is read from the start.
        Raises ``LogError`` for a line that is not a canonical JSON record.
        """
        path = self.directory / RECORDS
        try:
            handle = path.open("rb")
        except FileNotFoundError:
            if self._offset:
                self._read_all()
            return 0
        with handle:
            info = os.fstat(handle.fileno())
            identity = (info.st_dev, info.st_ino)
            if self._identity is not None and (
                identity != self._identity or info.st_size < self._offset
            ):
                self._read_all()
                return len(self.entries)
            self._identity = identity
            handle.seek(self._offset)
            data = handle.read()
        *lines, self.tail = data.split(b"\n")
        self.partial_tail = self.tail != b""
        for line in lines:
            self._take(line)
            self._offset += len(line) + 1
        for size in range(len(self.entries), self._signed, -1):  # newest signed size
            if self.checkpoint_path(size).exists():
                self._signed = size
                break
        return len(lines)

    def _take(self, line: bytes) -> None:
        index = len(self.entries)
        try:
            record = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise LogError(
                f"{self.directory / RECORDS} line {index + 1} is not JSON: the log is damaged"
            ) from None
        if not isinstance(record, dict) or canonical(record) != line:
            raise LogError(
                f"{self.directory / RECORDS} line {index + 1} is not a canonical record: "
                "the log is damaged"
            )
        self.entries.append(Entry(index, line, record))
        self.tree.append(leaf_hash(line))

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[Entry]:
        return iter(self.entries)

    # -- checkpoints ---------------------------------------------------------------------

    def checkpoint_path(self, size: int) -> Path:
        return self.directory / CHECKPOINTS / f"{size:012d}.txt"

    def checkpoint_sizes(self) -> list[int]:
        """Sizes with a checkpoint file, ascending."""
        folder = self.directory / CHECKPOINTS
        if not folder.is_dir():
            return []
        sizes = []
        for file in folder.glob("*.txt"):
            if file.stem.isdigit() and len(file.stem) == 12:
                sizes.append(int(file.stem))
        return sorted(sizes)

    def open_checkpoint(self, size: int) -> tuple[str, Checkpoint]:
        """The note text and checkpoint for ``size``. Raises ``CheckpointError``."""
        text = self.checkpoint_path(size).read_text(encoding="utf-8")
        checkpoint = open_note(text, verifier_key=self.verifier_key)
        if checkpoint.size != size or checkpoint.origin != self.origin:
            raise CheckpointError(
                f"checkpoint file {self.checkpoint_path(size).name} holds size "
                f"{checkpoint.size} of {checkpoint.origin!r}"
            )
        return text, checkpoint

    def latest_checkpoint(self) -> tuple[str, Checkpoint] | None:
        """The newest signed checkpoint, or ``None`` for a log never signed."""
        return self.open_checkpoint(self._signed) if self._signed else None

    def sign(self, signer: Signer) -> Checkpoint:
        """Sign a checkpoint for the log's current size, if it has none yet.

        Raises ``LogError`` if the log no longer agrees with the newest checkpoint: amber
        never signs a checkpoint inconsistent with an earlier one.
        """
        size = len(self.entries)
        latest = self.latest_checkpoint()
        if latest is not None:
            _, previous = latest
            if previous.size > size or self.tree.root(previous.size) != previous.root:
                raise LogError(
                    f"the log does not extend its checkpoint of size {previous.size}; "
                    "refusing to sign an inconsistent checkpoint (run amber evidence verify)"
                )
            if previous.size == size:
                return previous
        checkpoint = Checkpoint(self.origin, size, self.tree.root(size))
        (self.directory / CHECKPOINTS).mkdir(parents=True, exist_ok=True)
        write_atomic(self.checkpoint_path(size), signer.sign(checkpoint).encode())
        self._signed = size
        return checkpoint

    # -- writing -------------------------------------------------------------------------

    def append(self, record: Mapping[str, Any], signer: Signer) -> Entry:
        """Append one record durably, then sign the new size.

        The record's leaf hash is written to ``pending`` first, so recovery signs an
        unsigned last record only if amber itself was appending it.
        """
        line = canonical(record)
        if b"\n" in line:
            raise LogError("a canonical record cannot contain a newline")  # pragma: no cover
        write_atomic(self.directory / PENDING, leaf_hash(line).hex().encode())
        path = self.directory / RECORDS
        self.refresh()  # the caller holds the lock: nothing more can arrive now
        if self.partial_tail:
            raise LogError(
                f"{path} ends in a partly written record; reopen the vault to recover it"
            )
        with path.open("ab") as handle:
            handle.write(line + b"\n")
            handle.flush()
            os.fsync(handle.fileno())
        self.refresh()
        entry = self.entries[-1]
        if entry.line != line:
            raise LogError(f"{path} changed while amber appended to it")  # pragma: no cover
        self.sign(signer)
        (self.directory / PENDING).unlink(missing_ok=True)
        return entry

    def recover(self, signer: Signer) -> list[str]:
        """Repair what a crash can leave, and nothing else. Returns what was done.

        - A partial last line: if it is a whole record that a checkpoint already signs
          (only its newline was lost), its newline is restored; otherwise it was never
          acknowledged and is dropped.
        - One complete record after the last checkpoint: signed only if it is the record
          amber announced in ``pending`` before appending it. Anything else unsigned is
          left alone for ``amber evidence verify`` to report.
        """
        done: list[str] = []
        path = self.directory / RECORDS
        self.refresh()
        if self.partial_tail:
            if self._signed_tail():
                with path.open("ab") as handle:
                    handle.write(b"\n")
                    handle.flush()
                    os.fsync(handle.fileno())
                done.append("restored the newline of the last signed record")
            else:
                with path.open("r+b") as handle:
                    handle.truncate(self._offset)
                    handle.flush()
                    os.fsync(handle.fileno())
                done.append("dropped a partly written last record")
            self.refresh()
        for stale in (self.directory / CHECKPOINTS).glob(".*.tmp"):
            stale.unlink()
            done.append(f"removed unfinished checkpoint file {stale.name}")
        sizes = self.checkpoint_sizes()
        signed = sizes[-1] if sizes else 0
        pending = self.directory / PENDING
        announced = pending.read_text().strip() if pending.exists() else ""
        if len(self.entries) == signed + 1 and announced == leaf_hash(self.entries[-1].line).hex():
            self.sign(signer)
            done.append(f"signed checkpoint for size {len(self.entries)}")
        elif len(self.entries) > signed:
            done.append(
                f"left {len(self.entries) - signed} unsigned record(s) that amber did not "
                "announce; run amber evidence verify"
            )
        pending.unlink(missing_ok=True)
        return done

    def _signed_tail(self) -> bool:
        """Whether the partial last line is a whole record some checkpoint already signs."""
        try:
            record = json.loads(self.tail)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return False
        if not isinstance(record, dict) or canonical(record) != self.tail:
            return False
        size = len(self.entries) + 1
        if size not in self.checkpoint_sizes():
            return False
        tree = MerkleTree(self.tree.leaf(i) for i in range(len(self.entries)))
        tree.append(leaf_hash(self.tail))
        try:
            return self.open_checkpoint(size)[1].root == tree.root()
        except (CheckpointError, OSError):
            return False
