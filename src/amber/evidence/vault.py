"""The evidence vault: what amber restricted or removed, kept so it can be proven unchanged.

Layout (see docs/evidence.md)::

    vault.json                     format, origin (the log's name), creation time
    objects/sha256/ab/<64 hex>     evidentiary copies, named by their SHA-256, read-only
    log/records.jsonl              the custody log (amber.evidence.log)
    log/checkpoints/<size>.txt     signed checkpoints
    keys/checkpoint.key            Ed25519 signing key, owner-only (0600); absent when
                                   the key is kept outside the vault (``signing_key``)
    keys/checkpoint.vkey           its verifier key, to publish
    staging/                       preservations not finished yet (amber.evidence.staging)
    lock                           held by a writer
    store.json                     where the log and the objects are, when not here:
                                   {"log": "database", "objects": "s3://bucket/prefix"}

A vault whose ``store.json`` says ``"log": "database"`` keeps its custody log in the
database (``amber.evidence.dblog``: appended in the writer's transaction, signed in
batches by one elected signer) and needs no shared folder for it; its objects are in the
store ``"objects"`` names (``amber.evidence.objects``: this folder's ``objects/`` by
default, or S3-compatible storage).

An item is one version of one client's post, known by its key (``amber.identity.item_key``:
the post id itself for a local post's first version). Preserving it stores the media bytes
exactly as received, the post JSON as received, the decision with its reasons and the
collection data (when, by which amber version and policy, from which source) as objects,
and appends a ``preserved`` record naming them. The state of every item (held, expired,
deleted) is the replay of the log: nothing else is trusted.
"""

from __future__ import annotations

import errno
import fcntl
import getpass
import hashlib
import json
import os
import platform
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import dataclass, field
from dataclasses import replace as replace_field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from amber import __version__
from amber.atomic_write import fsync_path, write_atomic
from amber.errors import ConflictError, ExternalError, NotFoundError, UserError
from amber.evidence.checkpoint import Signer, load_or_create_key, read_signing_key, use_key
from amber.evidence.log import CustodyLog, Entry, LogError, canonical
from amber.evidence.objects import FolderStore, ObjectMissing, ObjectStore, open_store
from amber.evidence.staging import SCAN_METHOD, Preservation, StagedMedia, Staging
from amber.identity import DEFAULT_CLIENT, item_key

if TYPE_CHECKING:
    import sqlalchemy as sa

    from amber.evidence.checkpoint import Checkpoint
    from amber.evidence.dblog import DatabaseLog

FORMAT = "amber-vault/1"
#: Where a vault's log and objects are kept when not in its folder (``read_store``).
STORE = "store.json"
#: The two places a custody log can be kept.
LOGS = ("file", "database")
DEFAULT_RETENTION = timedelta(days=183)  # six months: EU 2021/784 Art. 6(1)
ACTOR = f"amber/{__version__}"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _identity(record: Mapping[str, Any], post_id: str) -> tuple[str, int]:
    """A record's client and version (records without them: a local post's first)."""
    client, version = record.get("client", DEFAULT_CLIENT), record.get("version", 1)
    if not isinstance(client, str) or not isinstance(version, int):
        raise TypeError(f"client or version of {post_id!r} is not a name and a number")
    return client, version


class VaultError(UserError):
    """The vault cannot be used as asked."""

    http_status = 409


class EvidenceWriteError(ExternalError):
    """The vault's disk refused a write (full, read-only, gone): evidence could not be
    kept now. What was staged stays staged; a retry or the sweep finishes it."""

    http_status = 503


@contextmanager
def _writing(what: str) -> Iterator[None]:
    """Turn the operating system's refusal to write into ``EvidenceWriteError``."""
    try:
        yield
    except OSError as exc:
        raise EvidenceWriteError(
            f"the evidence vault cannot be written ({what}: {exc.strerror or exc}); "
            "free space or fix the vault's disk"
        ) from exc


@dataclass(frozen=True, slots=True)
class Item:
    """One preserved post, as the log says it stands."""

    post_id: str
    verdict: str
    preserved_at: datetime
    retain_until: datetime
    objects: Mapping[str, Any]
    records: tuple[int, ...]
    hold: str | None = None
    expiring: bool = False
    deleted: bool = False
    client: str = DEFAULT_CLIENT
    version: int = 1

    @property
    def key(self) -> str:
        """Its key (``item_key``): what ``Vault.item`` and the commands take."""
        return item_key(self.post_id, self.client, self.version)

    def to_json(self) -> dict[str, Any]:
        """The item as the CLI (``evidence list --format jsonl``) and the API write it."""
        return {
            "post_id": self.post_id,
            "client": self.client,
            "version": self.version,
            "key": self.key,
            "verdict": self.verdict,
            "preserved_at": self.preserved_at.isoformat(),
            "retain_until": self.retain_until.isoformat(),
            "hold": self.hold,
            "expiring": self.expiring,
            "deleted": self.deleted,
            "objects": dict(self.objects),
        }

    def hashes(self) -> list[str]:
        """Every object this item names: post, decision, collection and media."""
        media = [m["sha256"] for m in self.objects.get("media", [])]
        return [self.objects["post"], self.objects["decision"], self.objects["collection"], *media]


@dataclass(slots=True)
class _State:
    post_id: str
    verdict: str = ""
    preserved_at: datetime = EPOCH
    retain_until: datetime = EPOCH
    objects: dict[str, Any] = field(default_factory=dict)
    records: list[int] = field(default_factory=list)
    hold: str | None = None
    expiring: bool = False
    deleted: bool = False
    client: str = DEFAULT_CLIENT
    version: int = 1


def read_store(path: Path) -> dict[str, Any]:
    """A vault's ``store.json`` (``{}`` when absent: the file log and ``objects/``).
    Raises ``VaultError`` when it is unreadable or names an unknown log."""
    file = path / STORE
    try:
        store = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise VaultError(f"{file} is unreadable ({exc})") from None
    if not isinstance(store, dict) or store.get("log", "file") not in LOGS:
        raise VaultError(f"{file}: 'log' must be one of {', '.join(LOGS)}")
    return store


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def _now_text(now: datetime) -> str:
    return now.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _objects(value: object) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TypeError("objects is not a JSON object")
    for key in ("post", "decision", "collection"):
        if not isinstance(value[key], str):
            raise TypeError(f"objects.{key} is not a hash")
    for media in value.get("media", []):
        if not isinstance(media, dict) or not isinstance(media["sha256"], str):
            raise TypeError("a media entry has no sha256")
    return dict(value)


def replay(entries: Sequence[Entry]) -> dict[str, Item]:
    """Every item's state from the log records, in order."""
    return Replay().update(entries)


class Replay:
    """Items from log records, kept up to date as records are appended.

    ``update`` applies only the records it has not seen, so keeping a long log's items
    current costs what is new, not the whole log.
    """

    def __init__(self) -> None:
        self._states: dict[str, _State] = {}
        self._items: dict[str, Item] = {}
        self._seen = 0

    def update(self, entries: Sequence[Entry]) -> dict[str, Item]:
        """The items after ``entries`` (which extend the ones given before); a new dict."""
        changed = {key for entry in entries[self._seen :] if (key := self._apply(entry))}
        self._seen = len(entries)
        for key in changed:
            s = self._states[key]
            if s.objects:
                self._items[key] = Item(
                    s.post_id,
                    s.verdict,
                    s.preserved_at,
                    s.retain_until,
                    s.objects,
                    tuple(s.records),
                    s.hold,
                    s.expiring,
                    s.deleted,
                    s.client,
                    s.version,
                )
        return dict(self._items)

    def _apply(self, entry: Entry) -> str | None:
        record = entry.record
        post_id = record.get("post_id")
        if not isinstance(post_id, str):
            return None
        try:
            client, version = _identity(record, post_id)
        except TypeError as exc:
            raise LogError(f"log record {entry.index + 1} is not valid ({exc})") from None
        key = item_key(post_id, client, version)
        state = self._states.setdefault(key, _State(post_id, client=client, version=version))
        state.records.append(entry.index)
        event = record.get("event")
        if event == "preserved":
            try:
                state.verdict = str(record["verdict"])
                state.preserved_at = _time(record["time"])
                state.retain_until = _time(record["retain_until"])
                state.objects = _objects(record["objects"])
            except (KeyError, TypeError, ValueError) as exc:
                raise LogError(
                    f"log record {entry.index + 1} is not a valid 'preserved' record ({exc})"
                ) from None
            state.expiring = state.deleted = False
        elif event == "retention_extended":  # EU 2021/784 Art. 6(2): kept longer on request
            try:
                state.retain_until = max(state.retain_until, _time(record["retain_until"]))
            except (KeyError, TypeError, ValueError) as exc:
                raise LogError(
                    f"log record {entry.index + 1} is not a valid 'retention_extended' record "
                    f"({exc})"
                ) from None
        elif event == "hold_placed":
            state.hold = str(record.get("reason", ""))
        elif event == "hold_lifted":
            state.hold = None
        elif event == "retention_expired":
            state.expiring = True
        elif event == "deleted":
            state.deleted = True
        return key


class Vault:
    """One evidence vault on disk. Open it with ``Vault.open``."""

    def __init__(
        self,
        path: Path,
        *,
        signer: Signer,
        origin: str,
        clock: Callable[[], datetime],
        retention: timedelta,
        log: DatabaseLog | None = None,
        objects: ObjectStore | None = None,
    ) -> None:
        self.path = path
        self.signer = signer
        self.origin = origin
        self.clock = clock
        self.retention = retention
        self.log: CustodyLog | DatabaseLog = (
            CustodyLog(path / "log", origin=origin, verifier_key=signer.verifier_key())
            if log is None
            else log
        )
        #: Whether the custody log is in the database (appends need no shared folder).
        self.database = log is not None
        self.objects: ObjectStore = FolderStore(path / "objects") if objects is None else objects
        self.recovered: list[str] = []
        self.staging = Staging(path / "staging")
        self._replay = Replay()
        self._replayed = (self.log, self.log.generation)

    @classmethod
    def open(
        cls,
        path: Path,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        retention: timedelta = DEFAULT_RETENTION,
        signing_key: Path | None = None,
        db: sa.Engine | None = None,
        log: str = "file",
        objects: str | None = None,
    ) -> Vault:
        """Open (creating on first use) the vault at ``path`` and repair what a crash left.

        ``signing_key`` is a key file kept outside the vault (the vault then holds only the
        verifier key); without it the vault's own ``keys/checkpoint.key`` signs, created
        with a new vault. ``db`` is amber's database, where a vault with its log there
        keeps it; ``log`` (``"file"`` or ``"database"``) and ``objects`` (a folder or an
        ``s3://`` URL) say where a vault created now keeps its log and objects
        (``store.json``; an existing vault says where its are). Raises ``VaultError`` if
        ``path`` is not a vault, its log is damaged or in a database not given,
        ``CheckpointError`` for a missing or unusable key.
        """
        if log not in LOGS:
            raise VaultError(f"log {log!r}: give one of {', '.join(LOGS)}")
        if log == "database" and db is None:
            raise VaultError("a vault with its log in the database needs the database (--db)")
        # Read an outside key first: a wrong path must not leave a new, keyless vault.
        external = None if signing_key is None else (signing_key, read_signing_key(signing_key))
        if path.exists() and not path.is_dir():
            raise VaultError(f"vault path {str(path)!r} is a file; give a folder")
        meta_file = path / "vault.json"
        if not meta_file.exists():
            if path.exists() and any(path.iterdir()) and not meta_file.exists():
                raise VaultError(
                    f"{str(path)!r} is not empty and holds no vault.json: not an amber vault"
                )
            store = {"log": log, **({} if objects is None else {"objects": objects})}
            cls._create(path, clock(), store if store != {"log": "file"} else None)
        try:
            meta = json.loads(meta_file.read_text(encoding="utf-8"))
            origin = str(meta["origin"])
            if meta.get("format") != FORMAT:
                raise VaultError(f"{meta_file}: unknown vault format {meta.get('format')!r}")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise VaultError(f"{meta_file} is unreadable ({exc}): not an amber vault") from None
        if external is not None:
            signer = use_key(external[1], path / "keys", name=origin, source=external[0])
        elif not (path / "keys" / "checkpoint.key").exists() and (
            (path / "keys" / "checkpoint.vkey").exists()
            or (path / "log" / "records.jsonl").exists()
        ):
            raise VaultError(
                f"{path / 'keys' / 'checkpoint.key'} is missing: give the signing key kept "
                "outside the vault (--signing-key or AMBER_SIGNING_KEY), or restore it from "
                "your backup (a new key would not match this vault's signed log)"
            )
        else:
            signer = load_or_create_key(path / "keys", name=origin)
        store = read_store(path)
        database_log = None
        if store.get("log") == "database":
            if db is None:
                raise VaultError(
                    f"the custody log of the vault at {str(path)!r} is in the database: "
                    "give it (--db or AMBER_DB)"
                )
            from amber.evidence.dblog import DatabaseLog

            database_log = DatabaseLog(db, origin=origin, verifier_key=signer.verifier_key())
        vault = cls(
            path,
            signer=signer,
            origin=origin,
            clock=clock,
            retention=retention,
            log=database_log,
            objects=open_store(store.get("objects"), path, endpoint=store.get("endpoint")),
        )
        with vault.locked():
            vault.log.refresh()
            vault.recovered = vault.log.recover(signer)
            if not len(vault.log):
                # The first record ties the vault's metadata and key to the signed log.
                vault._append(
                    {
                        "event": "vault_created",
                        "time": _now_text(clock()),
                        "actor": ACTOR,
                        "vault_json_sha256": hashlib.sha256(meta_file.read_bytes()).hexdigest(),
                        "verifier_key": signer.verifier_key(),
                    },
                    check=lambda: not len(vault.log),  # another process's vault_created
                )
                vault.sign()
            for stale in [*(path / "objects").rglob(".*.tmp"), *vault.staging.root.rglob(".*.tmp")]:
                stale.unlink()
            for item in vault.items().values():
                if item.expiring and not item.deleted:
                    vault._delete(item)
                    vault.recovered.append(f"finished deleting expired {item.post_id!r}")
        return vault

    @staticmethod
    def _create(path: Path, now: datetime, store: Mapping[str, Any] | None = None) -> None:
        """Make a new vault at ``path`` in one step: built beside it, then renamed into
        place, so processes opening it at once never see half a vault. If another
        process's vault got there first, it is kept."""
        path.parent.mkdir(parents=True, exist_ok=True)
        building = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
        try:
            building.chmod(0o755)
            for sub in ("objects/sha256", "log/checkpoints", "keys"):
                (building / sub).mkdir(parents=True, exist_ok=True)
            meta = {
                "format": FORMAT,
                "origin": f"amber.vault/{secrets.token_hex(8)}",
                "created_at": _now_text(now),
                "created_by": ACTOR,
            }
            write_atomic(building / "vault.json", canonical(meta) + b"\n")
            if store is not None:
                write_atomic(building / STORE, canonical(store) + b"\n")
            try:
                os.rename(building, path)  # replaces an empty folder, never a full one
            except OSError as exc:
                if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                    raise
            fsync_path(path.parent)
        finally:
            shutil.rmtree(building, ignore_errors=True)  # gone already if it was renamed

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the vault's writer lock (other amber processes wait)."""
        fd = os.open(self.path / "lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _reload(self) -> None:
        """Take up what other processes appended; the caller holds the lock, so a partly
        written last record is a crash's leftover and is repaired as at opening."""
        self.log.refresh()
        if self.log.partial_tail:
            self.recovered += self.log.recover(self.signer)

    # -- objects -------------------------------------------------------------------------

    def object_path(self, sha256: str) -> Path:
        """A local file holding the object (for an object store elsewhere, a read-only
        copy under ``cache/``, fetched on first use; a path that does not exist when the
        object is missing)."""
        if isinstance(self.objects, FolderStore):
            return self.objects.path(sha256)
        copy = self.path / "cache" / "sha256" / sha256[:2] / sha256[2:]
        if not copy.exists():
            with suppress(VaultError):
                data = self.read(sha256)
                copy.parent.mkdir(parents=True, exist_ok=True)
                write_atomic(copy, data, mode=0o444)
        return copy

    def put(self, data: bytes) -> str:
        """Store ``data`` as a read-only object named by its SHA-256; returns the hash."""
        return self.objects.put(data)

    def read(self, sha256: str) -> bytes:
        """An object's bytes. Raises ``VaultError`` if missing or not what its name says."""
        try:
            data = self.objects.get(sha256)
        except ObjectMissing:
            raise VaultError(f"object {sha256} is missing from the vault") from None
        if hashlib.sha256(data).hexdigest() != sha256:
            raise VaultError(f"object {sha256} does not match its hash: it was changed")
        return data

    # -- the log -------------------------------------------------------------------------

    def _append(
        self, record: Mapping[str, Any], *, check: Callable[[], bool] | None = None
    ) -> Entry | None:
        """Append a record (and, to a file log, sign it at once). ``check`` runs where no
        other append can come in between (under the writer lock, or holding the database
        log's head): ``False`` appends nothing, an exception refuses it."""
        if isinstance(self.log, CustodyLog):
            if check is not None and not check():
                return None
            return self.log.append(record, self.signer)
        return self.log.append(record, check=check)

    def sign(self) -> Checkpoint | None:
        """Sign every record appended so far (a database log is signed in batches: by
        ``amber serve``'s signer, at the end of a scan, by ``amber evidence sign``);
        ``None`` when another process holds the database log's signer lock."""
        return self.log.sign(self.signer)

    # -- items ---------------------------------------------------------------------------

    def items(self) -> dict[str, Item]:
        """Every item the log names, by key (``item_key``), including other processes'
        latest."""
        self.log.refresh()
        if self._replayed != (self.log, self.log.generation):  # the log was read afresh
            self._replay, self._replayed = Replay(), (self.log, self.log.generation)
        return self._replay.update(self.log.entries)

    def item(self, key: str) -> Item:
        """One item by its key (``item_key``), or by a post id: the newest version of
        the only client holding it. Raises ``NotFoundError``, or ``ConflictError`` when
        several clients hold that post id (give the key)."""
        items = self.items()
        item = items.get(key)
        if item is not None:
            return item
        newest: dict[str, Item] = {}
        for found in items.values():
            if found.post_id == key and found.version >= newest.get(found.client, found).version:
                newest[found.client] = found
        if not newest:
            raise NotFoundError(f"no evidence held for post {key!r}")
        if len(newest) > 1:
            keys = ", ".join(sorted(i.key for i in newest.values()))
            raise ConflictError(f"several clients' posts are called {key!r}; give one of {keys}")
        return next(iter(newest.values()))

    def preserve(
        self,
        *,
        post_id: str,
        post: str,
        decision: Mapping[str, Any],
        media: Sequence[tuple[int, str, Path, str]],
        source: str,
        policy: str,
        client: str = DEFAULT_CLIENT,
        version: int = 1,
    ) -> Item | None:
        """Keep a post (version ``version`` of ``client``'s ``post_id``): its media bytes
        (position, path as written, file, expected SHA-256), the post JSON as received,
        the decision and how it was collected.

        Returns ``None`` when the same post, decision and media are already held. Raises
        ``VaultError`` if a media file no longer has the hash amber decided on,
        ``EvidenceWriteError`` if the vault's disk refuses the write.
        """
        stored = [
            (position, written, _checked(file.read_bytes(), expected, file))
            for position, written, file, expected in media
        ]
        with (
            nullcontext() if self.database else self.locked(),
            _writing(f"preserving post {post_id!r}"),
        ):
            self._reload()
            return self._preserve(
                post_id=post_id,
                client=client,
                version=version,
                post=post,
                decision=decision,
                media=stored,
                collection={"source": source, "policy": policy},
            )

    def _preserve(
        self,
        *,
        post_id: str,
        client: str,
        version: int,
        post: str,
        decision: Mapping[str, Any],
        media: Sequence[tuple[int, str, bytes]],
        collection: Mapping[str, Any],
        method: str = SCAN_METHOD,
    ) -> Item | None:
        """``preserve`` with the lock held and the media bytes read (and checked)."""
        stored = [
            {"position": position, "path": written, "sha256": self.put(data), "size": len(data)}
            for position, written, data in media
        ]
        post_hash = self.put(post.encode("utf-8"))
        decision_hash = self.put(canonical(decision))
        key = item_key(post_id, client, version)

        def new() -> bool:
            previous = self.items().get(key)
            return not (
                previous is not None
                and not previous.deleted
                and previous.objects.get("post") == post_hash
                and previous.objects.get("decision") == decision_hash
                and previous.objects.get("media") == stored
            )

        if not new():
            return None
        now = self.clock()
        collected = {
            "collected_at": _now_text(now),
            "collector": ACTOR,
            "host": platform.node(),
            "user": _user(),
            **collection,
            "method": method,
        }
        collection_hash = self.put(canonical(collected))
        record = {
            "event": "preserved",
            "post_id": post_id,
            **_scope(client, version),
            "time": _now_text(now),
            "actor": ACTOR,
            "verdict": str(decision.get("verdict")),
            "retain_until": _now_text(now + self.retention),
            "objects": {
                "post": post_hash,
                "decision": decision_hash,
                "collection": collection_hash,
                "media": stored,
            },
        }
        if self._append(record, check=new) is None:
            return None
        return self.items()[key]

    # -- preserving in the decision's transaction (a database log) -------------------------

    def prepare(
        self,
        *,
        post_id: str,
        post: str,
        decision: Mapping[str, Any],
        media: Sequence[tuple[int, str, Path | bytes, str]],
        source: str,
        policy: str,
        client: str = DEFAULT_CLIENT,
        method: str | None = None,
    ) -> Prepared:
        """Put a post's media bytes (each checked against the SHA-256 amber decided on)
        and the post as received into the object store, before its decision is stored;
        ``preserved_record`` then makes its record inside the decision's transaction.
        Raises ``VaultError`` for media that changed, ``EvidenceWriteError`` (or the object
        store's ``ExternalError``) when the store refuses."""
        with _writing(f"keeping the evidence of post {post_id!r}"):
            stored = []
            for position, written, content, expected in media:
                data = _checked(
                    content if isinstance(content, bytes) else content.read_bytes(),
                    expected,
                    content if isinstance(content, Path) else written,
                )
                stored.append(
                    {
                        "position": position,
                        "path": written,
                        "sha256": self.put(data),
                        "size": len(data),
                    }
                )
            post_hash = self.put(post.encode("utf-8"))
        return Prepared(
            post_id=post_id,
            client=client,
            post_hash=post_hash,
            decision=dict(decision),
            media=stored,
            collection={
                "source": source,
                "policy": policy,
                "method": SCAN_METHOD if method is None else method,
            },
        )

    def preserved_record(self, prepared: Prepared, *, version: int) -> dict[str, Any] | None:
        """The ``preserved`` record of a prepared post stored as ``version`` (its decision
        and collection objects put now); ``None`` when the item holds the same post,
        decision and media already."""
        decision = {**prepared.decision, "version": version}
        decision_hash = self.put(canonical(decision))
        key = item_key(prepared.post_id, prepared.client, version)
        previous = self.items().get(key)
        if (
            previous is not None
            and not previous.deleted
            and previous.objects.get("post") == prepared.post_hash
            and previous.objects.get("decision") == decision_hash
            and previous.objects.get("media") == prepared.media
        ):
            return None
        now = self.clock()
        collected = {
            "collected_at": _now_text(now),
            "collector": ACTOR,
            "host": platform.node(),
            "user": _user(),
            **prepared.collection,
        }
        return {
            "event": "preserved",
            "post_id": prepared.post_id,
            **_scope(prepared.client, version),
            "time": _now_text(now),
            "actor": ACTOR,
            "verdict": str(decision.get("verdict")),
            "retain_until": _now_text(now + self.retention),
            "objects": {
                "post": prepared.post_hash,
                "decision": decision_hash,
                "collection": self.put(canonical(collected)),
                "media": prepared.media,
            },
        }

    # -- staged preservations (amber.evidence.staging) -------------------------------------

    def stage(
        self,
        *,
        post_id: str,
        post: str,
        decision: Mapping[str, Any],
        media: Sequence[tuple[int, str, Path | bytes, str]],
        source: str,
        policy: str,
        events: Sequence[Mapping[str, Any]] = (),
        replace: bool = True,
        method: str | None = None,
        client: str = DEFAULT_CLIENT,
        version: int = 1,
    ) -> Preservation:
        """Keep durably what preserving a post (version ``version`` of ``client``'s
        ``post_id``) needs (media as files or bytes, each with the SHA-256 amber decided
        on), to be finished by ``finish`` with its key (``Preservation.key``, the item's
        ``item_key``): do this before the decision is stored. Raises ``VaultError`` for
        media that changed, ``EvidenceWriteError`` if the vault's disk refuses the write."""
        read = [
            (
                position,
                written,
                _checked(
                    content if isinstance(content, bytes) else content.read_bytes(),
                    expected,
                    content if isinstance(content, Path) else written,
                ),
            )
            for position, written, content, expected in media
        ]
        with self.locked(), _writing(f"staging the evidence of post {post_id!r}"):
            staged = []
            for position, written, data in read:
                staged.append(
                    StagedMedia(position, written, self.staging.put_media(data), len(data))
                )
            preservation = Preservation(
                post_id=post_id,
                client=client,
                version=version,
                post=post,
                decision=dict(decision),
                media=staged,
                source=source,
                policy=policy,
                staged_at=self.clock(),
                events=[{"id": secrets.token_hex(8), **e} for e in events],
                replace=replace,
                **({} if method is None else {"method": method}),
            )
            self.staging.put(preservation)
            return preservation

    def pending(self) -> list[Preservation]:
        """Every staged preservation not finished yet."""
        return list(self.staging.all())

    def unstage(self, key: str) -> None:
        """Forget a staged preservation (by its key, ``item_key``) that will not be
        finished (its decision was not stored). Raises ``EvidenceWriteError`` if the disk
        refuses."""
        with self.locked(), _writing(f"unstaging post {key!r}"):
            self.staging.remove(key)

    def restage(self, key: str, *, version: int) -> str:
        """Move a staged preservation to another version of its post (the decision was
        stored as a version other than the one staged for: another process stored one in
        between); returns its new key. Raises ``EvidenceWriteError`` if the disk refuses
        (it stays staged under ``key``)."""
        with self.locked(), _writing(f"restaging post {key!r}"):
            staged = self.staging.get(key)
            if staged is None or staged.version == version:
                return key
            decision = dict(staged.decision)
            if "version" in decision:
                decision["version"] = version
            moved = replace_field(staged, version=version, decision=decision)
            self.staging.put(moved)
            self.staging.remove(key)
            return moved.key

    def finish(self, key: str) -> Item | None:
        """Preserve what is staged under ``key`` (``item_key``: the post id of a local
        post's first version) if anything, and append its custody events, then drop it
        from staging; returns the item, or ``None`` when nothing was staged. Safe to
        repeat and to run in several processes at once. Raises ``EvidenceWriteError`` if
        the vault's disk refuses a write (it stays staged), ``VaultError`` if a staged
        media file was damaged."""
        with self.locked(), _writing(f"preserving post {key!r}"):
            self._reload()
            staged = self.staging.get(key)
            if staged is None:
                return None
            held = self.items().get(key)
            if staged.replace or held is None or held.deleted:
                media = [(m.position, m.path, self._staged_bytes(m)) for m in staged.media]
                self._preserve(
                    post_id=staged.post_id,
                    client=staged.client,
                    version=staged.version,
                    post=staged.post,
                    decision=staged.decision,
                    media=media,
                    collection={
                        "source": staged.source,
                        "policy": staged.policy,
                        "received_at": _now_text(staged.staged_at),
                    },
                    method=staged.method,
                )
            item = self.items()[key]
            logged = {self.log.entries[i].record.get("event_id") for i in item.records} - {None}
            for event in staged.events:
                if event["id"] in logged:
                    continue  # appended before a crash that left it staged
                fields = {k: v for k, v in event.items() if k not in ("id", "event", "actor")}
                self._append(
                    {
                        "event": str(event["event"]),
                        "post_id": staged.post_id,
                        **_scope(staged.client, staged.version),
                        "time": _now_text(self.clock()),
                        "actor": str(event.get("actor", ACTOR)),
                        "event_id": event["id"],
                        **fields,
                    },
                    check=partial(self._unlogged, key, event["id"]),
                )
            self.staging.remove(key)
            return self.items()[key]

    def _unlogged(self, key: str, event_id: str) -> bool:
        """Whether no record about the item ``key`` carries ``event_id`` yet."""
        item = self.items().get(key)
        records = () if item is None else item.records
        return all(self.log.entries[i].record.get("event_id") != event_id for i in records)

    def _not_expiring(self, key: str) -> bool:
        return not self.items()[key].expiring

    def _staged_bytes(self, media: StagedMedia) -> bytes:
        """A staged media file's bytes, from staging or (once another process finished a
        preservation naming the same bytes) from the objects."""
        file = self.staging.media_path(media.sha256)
        with suppress(FileNotFoundError):
            return _checked(file.read_bytes(), media.sha256, file)
        with suppress(ObjectMissing):
            return _checked(self.objects.get(media.sha256), media.sha256, self.objects.location)
        raise VaultError(
            f"staged media {media.sha256} of position {media.position} is missing from "
            f"{self.staging.media_dir} and the objects"
        )

    def record(
        self,
        key: str,
        event: str,
        *,
        actor: str,
        check: Callable[[Item, Sequence[Entry]], None] | None = None,
        **fields: Any,
    ) -> Entry:
        """Append a custody event about an item (viewed, exported…); ``key`` as ``item``
        takes it. ``check`` is called with the item and the log's records under the
        writer lock, before the append: what it raises refuses the event (an act that
        may happen once)."""
        with self.locked():
            self._reload()
            item = self.item(key)
            if check is not None:
                check(item, self.log.entries)
            record = {
                "event": event,
                "post_id": item.post_id,
                **_scope(item.client, item.version),
                "time": _now_text(self.clock()),
                "actor": actor,
                **fields,
            }

            def again() -> bool:  # a database log: another machine may have appended since
                if check is not None:
                    check(self.item(item.key), self.log.entries)
                return True

            entry = self._append(record, check=again if self.database else None)
            if entry is None:  # pragma: no cover - ``again`` never declines
                raise VaultError(f"the {event!r} record of {key!r} was not appended")
            return entry

    def extend(self, key: str, until: datetime, *, reason: str, actor: str) -> Entry:
        """Keep an item until ``until`` at least (EU 2021/784 Art. 6(2): a competent
        authority or court asks for longer): a ``retention_extended`` record; retention
        never shortens. Raises ``UserError`` without a reason, ``ConflictError`` when the
        item is deleted or already kept that long."""
        if not reason.strip():
            raise UserError("an extension needs a reason (e.g. the authority's request)")
        if until.utcoffset() is None:
            raise UserError(f"until {until.isoformat()!r} has no time zone; add one (Z)")

        def longer(item: Item, _: Sequence[Entry]) -> None:
            if item.deleted or item.expiring:
                raise ConflictError(f"evidence for {key!r} was deleted; nothing to keep")
            if until <= item.retain_until:
                raise ConflictError(
                    f"{key!r} is kept until {item.retain_until.isoformat()} already, not "
                    f"before {until.isoformat()}; give a later date"
                )

        return self.record(
            key,
            "retention_extended",
            actor=actor,
            check=longer,
            retain_until=_now_text(until),
            reason=reason,
        )

    def hold(self, post_id: str, *, reason: str, actor: str) -> None:
        """Place a legal hold: the item never expires until it is released."""
        if not reason.strip():
            raise UserError("a legal hold needs a reason (e.g. the order's reference)")
        item = self.item(post_id)
        if item.deleted:
            raise ConflictError(f"evidence for {post_id!r} was deleted; nothing to hold")
        if item.hold is not None:
            raise ConflictError(f"{post_id!r} is already under hold ({item.hold})")
        self.record(post_id, "hold_placed", actor=actor, reason=reason)

    def release(self, post_id: str, *, reason: str, actor: str) -> None:
        """Lift a legal hold."""
        if self.item(post_id).hold is None:
            raise ConflictError(f"{post_id!r} is not under hold")
        self.record(post_id, "hold_lifted", actor=actor, reason=reason)

    def expire(self, *, actor: str = ACTOR) -> list[str]:
        """Delete every item past its retention date and not under hold; log each deletion.

        The ``retention_expired`` record comes first, so a crash mid-way leaves an item
        that recovery finishes deleting. Returns the post ids deleted.
        """
        deleted = []
        with self.locked():
            self._reload()
            now = self.clock()
            for item in self.items().values():
                if item.deleted or item.hold is not None or item.retain_until > now:
                    continue
                entry = self._append(
                    {
                        "event": "retention_expired",
                        "post_id": item.post_id,
                        **_scope(item.client, item.version),
                        "time": _now_text(now),
                        "actor": actor,
                        "retain_until": _now_text(item.retain_until),
                    },
                    check=partial(self._not_expiring, item.key),
                )
                if entry is None:
                    continue  # another process expires it
                self._delete(item, actor=actor)
                deleted.append(item.post_id)
        return deleted

    def _delete(self, item: Item, *, actor: str = ACTOR) -> None:
        """Remove an expiring item's objects (those no live item names) and log it."""
        live = {
            h
            for other in self.items().values()
            if not (other.deleted or other.expiring)
            for h in other.hashes()
        }
        removed = []
        for digest in sorted(set(item.hashes()) - live):
            self.objects.delete(digest)
            removed.append(digest)
        self._append(
            {
                "event": "deleted",
                "post_id": item.post_id,
                **_scope(item.client, item.version),
                "time": _now_text(self.clock()),
                "actor": actor,
                "objects": removed,
            },
            check=lambda: not self.items()[item.key].deleted,
        )


@dataclass(frozen=True, slots=True)
class Prepared:
    """A post whose media and JSON are in the object store, its record still to be made
    (``Vault.prepare``, ``Vault.preserved_record``)."""

    post_id: str
    client: str
    post_hash: str
    decision: Mapping[str, Any]
    media: list[dict[str, Any]]
    collection: Mapping[str, Any]


def _scope(client: str, version: int) -> dict[str, Any]:
    """A record's ``client`` and ``version`` fields: none for a local post's first version
    (so records stay as they were before post ids were scoped)."""
    return (
        {} if (client, version) == (DEFAULT_CLIENT, 1) else {"client": client, "version": version}
    )


def _checked(data: bytes, expected: str, where: object) -> bytes:
    """``data`` if its SHA-256 is ``expected``; else ``VaultError``."""
    digest = hashlib.sha256(data).hexdigest()
    if digest != expected:
        raise VaultError(
            f"{where} changed since it was scanned (sha256 {digest}, scanned as "
            f"{expected}); not preserving a different file"
        )
    return data


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())
