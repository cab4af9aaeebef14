"""Staged preservations: what a decision's evidence needs, kept durably before the decision
is stored, so that neither a failed vault write nor a crash can lose it.

Layout, inside the vault (``docs/evidence.md``)::

    staging/<sha256 of the item key>.json  one pending preservation (a ``Preservation``)
    staging/media/<sha256>                 the media bytes it names, as received

A preservation is staged under the key of the vault item it becomes
(``amber.identity.item_key``: client, post id and version; the post id itself for a local
post's first version), so two clients' posts of the same id, or two versions of one post,
never share a manifest.

A preservation is staged (bytes first, then its manifest, each written atomically and
fsynced) before the decision is stored; it is finished by ``Vault.finish``, by a retry of
the same post, or by the sweep (``amber evidence sweep``), and then removed. A manifest
with no stored decision behind it (a crash between staging and storing) is removed by the
sweep once it is older than ``ORPHAN_AFTER``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from amber.atomic_write import fsync_path, write_atomic
from amber.identity import DEFAULT_CLIENT, item_key

#: A staged preservation whose decision was never stored is left this long (another process
#: may be storing it right now) before the sweep removes it.
ORPHAN_AFTER = timedelta(minutes=15)
#: How a scanned post's evidence was collected (the collection record's ``method``).
SCAN_METHOD = "amber scan: bytes read from the source file, hashed at collection"


@dataclass(frozen=True, slots=True)
class StagedMedia:
    """One media file of a staged preservation."""

    position: int
    path: str  # as written in the post
    sha256: str
    size: int


@dataclass(frozen=True, slots=True)
class Preservation:
    """Everything ``Vault.preserve`` needs for one post, plus custody events to append
    after it (a removal order, a review), each with an ``id`` so it is logged once."""

    post_id: str
    post: str
    decision: Mapping[str, Any]
    media: Sequence[StagedMedia]
    source: str
    policy: str
    staged_at: datetime
    events: Sequence[Mapping[str, Any]] = ()
    #: ``False`` for a person's act on a post: an item already held is not preserved
    #: again (only the events are appended); without one, what is here is preserved.
    replace: bool = True
    method: str = SCAN_METHOD
    #: Whose post (``amber.identity``) and which version of it.
    client: str = DEFAULT_CLIENT
    version: int = 1

    @property
    def key(self) -> str:
        """The key of the vault item it becomes (``item_key``), and its manifest's."""
        return item_key(self.post_id, self.client, self.version)

    def to_json(self) -> dict[str, Any]:
        """The manifest as stored in ``staging/``."""
        return {
            "post_id": self.post_id,
            "client": self.client,
            "version": self.version,
            "post": self.post,
            "decision": dict(self.decision),
            "media": [
                {"position": m.position, "path": m.path, "sha256": m.sha256, "size": m.size}
                for m in self.media
            ],
            "source": self.source,
            "policy": self.policy,
            "staged_at": self.staged_at.isoformat(),
            "events": [dict(e) for e in self.events],
            "replace": self.replace,
            "method": self.method,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Preservation:
        """A manifest read back. Raises ``KeyError``/``TypeError``/``ValueError``."""
        return cls(
            post_id=str(data["post_id"]),
            post=str(data["post"]),
            decision=dict(data["decision"]),
            media=[
                StagedMedia(int(m["position"]), str(m["path"]), str(m["sha256"]), int(m["size"]))
                for m in data["media"]
            ],
            source=str(data["source"]),
            policy=str(data["policy"]),
            staged_at=datetime.fromisoformat(str(data["staged_at"])),
            events=[dict(e) for e in data.get("events", [])],
            replace=bool(data.get("replace", True)),
            method=str(data.get("method", SCAN_METHOD)),
            client=str(data.get("client", DEFAULT_CLIENT)),
            version=int(data.get("version", 1)),
        )


class Staging:
    """The ``staging/`` folder of a vault. The vault's writer lock guards every change."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.media_dir = root / "media"

    def manifest_path(self, key: str) -> Path:
        """Where the manifest of the item ``key`` (``item_key``) is kept."""
        return self.root / (hashlib.sha256(key.encode("utf-8")).hexdigest() + ".json")

    def media_path(self, sha256: str) -> Path:
        return self.media_dir / sha256

    def put_media(self, data: bytes) -> str:
        """Keep media bytes (once per content); returns their SHA-256."""
        digest = hashlib.sha256(data).hexdigest()
        target = self.media_path(digest)
        if not target.exists():
            self.media_dir.mkdir(parents=True, exist_ok=True)
            write_atomic(target, data, mode=0o444)
        return digest

    def put(self, preservation: Preservation) -> None:
        """Write a manifest (its media must be staged already); replaces the last one of
        the same item (``Preservation.key``)."""
        self.root.mkdir(parents=True, exist_ok=True)
        text = json.dumps(preservation.to_json(), ensure_ascii=False, sort_keys=True)
        write_atomic(self.manifest_path(preservation.key), text.encode("utf-8") + b"\n")

    def get(self, key: str) -> Preservation | None:
        """The staged preservation of the item ``key``, or ``None``."""
        staged = self._read(self.manifest_path(key))
        return staged if staged is not None and staged.key == key else None

    def has(self, key: str) -> bool:
        return self.manifest_path(key).exists()

    def all(self) -> Iterator[Preservation]:
        """Every staged preservation (unreadable manifests are skipped: see ``broken``)."""
        for file in sorted(self.root.glob("*.json")) if self.root.is_dir() else []:
            staged = self._read(file)
            if staged is not None:
                yield staged

    def broken(self) -> list[Path]:
        """Manifests that cannot be read (a damaged disk; never left by a crash, since
        each is written atomically)."""
        return [
            file
            for file in (sorted(self.root.glob("*.json")) if self.root.is_dir() else [])
            if self._read(file) is None
        ]

    def remove(self, key: str) -> None:
        """Drop the manifest of the item ``key``, then every staged media file no manifest
        names."""
        self.manifest_path(key).unlink(missing_ok=True)
        if not self.media_dir.is_dir():
            return
        named = {m.sha256 for staged in self.all() for m in staged.media}
        for file in self.media_dir.iterdir():
            if file.name not in named and not file.name.startswith("."):
                file.unlink(missing_ok=True)
        fsync_path(self.root)

    @staticmethod
    def _read(file: Path) -> Preservation | None:
        try:
            return Preservation.from_json(json.loads(file.read_text(encoding="utf-8")))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError):
            return None
