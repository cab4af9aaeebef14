"""``amber evidence verify``: check a whole vault without changing it.

Recomputes every object's SHA-256, parses every log record, rebuilds the Merkle tree,
checks every checkpoint's signature, that each checkpoint's root is the tree's root at its
size, and that consecutive checkpoints are consistent (RFC 9162 consistency proofs
computed from the log and verified). Any changed, removed or reordered byte of an object,
a record, a checkpoint, the vault's metadata or its keys shows up as a problem.

What the vault alone cannot show (its newest records dropped with their checkpoints, or its
log rewritten and signed again by whoever holds the key) shows against a key and
checkpoints published outside it (``amber.evidence.published``): the vault must be signed
by that key, and its log must extend every such checkpoint.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from amber.errors import AmberError

if TYPE_CHECKING:
    import sqlalchemy as sa
from amber.evidence.checkpoint import Checkpoint, CheckpointError, Signer, VerifierKey, open_note
from amber.evidence.dblog import DatabaseLog
from amber.evidence.log import CustodyLog
from amber.evidence.merkle import ProofError, verify_consistency
from amber.evidence.objects import ObjectMissing, ObjectStore, open_store
from amber.evidence.published import PublishedKey
from amber.evidence.vault import FORMAT, read_store, replay


@dataclass(slots=True)
class Report:
    """What ``verify_vault`` found. ``ok`` only when ``problems`` is empty."""

    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    records: int = 0
    checkpoints: int = 0
    objects: int = 0
    items: int = 0
    #: Each published checkpoint the log was found to extend: (its source, its size).
    extends: list[tuple[str, int]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_vault(
    path: Path,
    *,
    key: PublishedKey | None = None,
    published: Sequence[tuple[str, bytes]] = (),
    db: sa.Engine | None = None,
) -> Report:
    """Check the vault at ``path``; never raises for damage, only reports it.

    With ``key`` (the public key published for this vault) the vault's checkpoints must be
    signed by it. Each of ``published`` (a source's name and the signed checkpoint read
    from it) must be signed by ``key`` (or, without one, by the vault's own key) and the
    vault's log must extend it: the same tree at its size, consistent with the newest
    checkpoint. A vault whose log is in the database (``store.json``) is read from ``db``,
    its objects from the store it names.
    """
    report = Report()
    try:
        meta = json.loads((path / "vault.json").read_text(encoding="utf-8"))
        origin = str(meta["origin"])
        if meta.get("format") != FORMAT:
            report.problems.append(f"vault.json: unknown format {meta.get('format')!r}")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        report.problems.append(f"vault.json: unreadable ({exc}); not an amber vault")
        return report
    try:
        vkey_text = (path / "keys" / "checkpoint.vkey").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        report.problems.append(f"keys/checkpoint.vkey: unreadable ({exc})")
        return report
    verifier_key = vkey_text.strip()
    if vkey_text != verifier_key + "\n":
        report.problems.append("keys/checkpoint.vkey: changed (not the one line amber wrote)")
    _check_private_key(path, origin, verifier_key, report)
    log: CustodyLog | DatabaseLog
    try:
        store = read_store(path)
        objects = open_store(store.get("objects"), path, endpoint=store.get("endpoint"))
        if store.get("log") == "database":
            if db is None:
                report.problems.append("log: kept in the database; give it (--db or AMBER_DB)")
                return report
            log = DatabaseLog(db, origin=origin, verifier_key=verifier_key)
        else:
            log = CustodyLog(path / "log", origin=origin, verifier_key=verifier_key)
    except AmberError as exc:
        report.problems.append(f"log: {exc}")
        return report
    report.records = len(log)
    first = log.entries[0].record if len(log) else {}
    if first.get("event") != "vault_created":
        report.problems.append("log: the first record is not the vault's creation")
    else:
        if (
            first.get("vault_json_sha256")
            != hashlib.sha256((path / "vault.json").read_bytes()).hexdigest()
        ):
            report.problems.append("vault.json: changed since the vault was created")
        if first.get("verifier_key") != verifier_key:
            report.problems.append("keys/checkpoint.vkey: not the key the vault was created with")
    if log.partial_tail:
        report.problems.append(
            "log/records.jsonl: a partly written last record (a crash?); run "
            "'amber evidence recover'"
        )
    _check_checkpoints(log, report)
    _check_objects(objects, log, report)
    if key is not None:
        _check_key(verifier_key, key, report)
    elif published:
        report.notes.append(
            "the published checkpoints were checked with the vault's own key; give --key "
            "with the key you got from the platform to rule out a replaced key"
        )
    for source, note in published:
        _check_published(log, key, source, note, report)
    return report


def _check_key(verifier_key: str, key: PublishedKey, report: Report) -> None:
    try:
        verifier = VerifierKey.parse(verifier_key)
    except CheckpointError:
        return  # a damaged key file is already reported: no checkpoint verifies under it
    if not key.matches(verifier):
        report.problems.append(
            f"the vault's checkpoints are signed by key {verifier_key}, not by the key given "
            f"with --key ({key}): the vault was signed again by someone else"
        )


def _check_published(
    log: CustodyLog | DatabaseLog,
    key: PublishedKey | None,
    source: str,
    note: bytes,
    report: Report,
) -> None:
    """Check that the log extends a checkpoint published at ``source``."""
    first_line = note.split(b"\n", 1)[0].decode("utf-8", errors="replace")
    try:
        verifier = log.verifier_key if key is None else str(key.verifier(first_line))
        published = open_note(note, verifier_key=verifier)
    except CheckpointError as exc:
        whose = "the vault's key" if key is None else "the key given with --key"
        report.problems.append(f"{source}: not a checkpoint signed by {whose}: {exc.message}")
        return
    if published.origin != log.origin:
        report.problems.append(
            f"{source}: is a checkpoint of log {published.origin!r}, not of this vault's log "
            f"{log.origin!r}"
        )
        return
    size = published.size
    if size > len(log):
        report.problems.append(
            f"{source}: the published checkpoint signs {size} records, but the vault's log has "
            f"only {len(log)}: records were removed (or this is an older copy of the vault)"
        )
        return
    if log.tree.root(size) != published.root:
        report.problems.append(
            f"{source}: the vault's first {size} records do not hash to the published root: "
            f"records published at size {size} were changed, removed or reordered"
        )
        return
    try:
        latest = log.latest_checkpoint()
    except (AmberError, OSError, UnicodeDecodeError):
        latest = None  # a damaged newest checkpoint is reported by _check_checkpoints
    if latest is not None and 0 < size < latest[1].size:
        # RFC 9162 §2.1.4: the vault's newest signed tree extends the published one.
        try:
            verify_consistency(
                first=size,
                second=latest[1].size,
                first_hash=published.root,
                second_hash=latest[1].root,
                proof=log.tree.consistency_proof(size, latest[1].size),
            )
        except ProofError as exc:
            report.problems.append(
                f"{source}: the vault's newest checkpoint (size {latest[1].size}) is not "
                f"consistent with the published one (size {size}): {exc}"
            )
            return
    report.extends.append((source, size))


def _check_private_key(path: Path, origin: str, verifier_key: str, report: Report) -> None:
    key_file = path / "keys" / "checkpoint.key"
    if not key_file.exists():
        report.notes.append(
            "keys/checkpoint.key is absent (the signing key is kept outside the vault, or "
            "this is a copy without it)"
        )
        return
    if key_file.stat().st_mode & 0o077:
        report.problems.append(
            f"keys/checkpoint.key: mode {oct(key_file.stat().st_mode & 0o777)} lets others "
            "read the signing key; it must be 0600"
        )
    try:
        key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    except Exception as exc:  # damaged key bytes: cryptography raises many types for them
        report.problems.append(f"keys/checkpoint.key: unreadable ({type(exc).__name__})")
        return
    if not isinstance(key, Ed25519PrivateKey) or Signer(key, origin).verifier_key() != (
        verifier_key
    ):
        report.problems.append("keys/checkpoint.key does not match keys/checkpoint.vkey")
    elif (
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        != key_file.read_bytes()
    ):
        report.problems.append("keys/checkpoint.key: changed (not the file amber wrote)")


def _check_checkpoints(log: CustodyLog | DatabaseLog, report: Report) -> None:
    previous: Checkpoint | None = None
    for size in log.checkpoint_sizes():
        name = f"log/checkpoints/{size:012d}.txt"
        try:
            _, checkpoint = log.open_checkpoint(size)
        except (AmberError, OSError, UnicodeDecodeError) as exc:
            report.problems.append(f"{name}: {exc}")
            continue
        report.checkpoints += 1
        if size > len(log):
            report.problems.append(
                f"{name}: signed for {size} records but the log has {len(log)}: records "
                "were removed"
            )
            continue
        if log.tree.root(size) != checkpoint.root:
            report.problems.append(
                f"{name}: the log's first {size} records do not hash to the signed root: "
                "a record was changed, removed or reordered"
            )
            continue
        if previous is not None and previous.size > 0:
            try:
                verify_consistency(
                    first=previous.size,
                    second=size,
                    first_hash=previous.root,
                    second_hash=checkpoint.root,
                    proof=log.tree.consistency_proof(previous.size, size),
                )
            except ProofError as exc:
                report.problems.append(f"{name}: not consistent with size {previous.size}: {exc}")
        previous = checkpoint
    if previous is None:
        if len(log):
            report.problems.append("log: no valid signed checkpoint covers the records")
    elif previous.size < len(log) and isinstance(log, DatabaseLog):
        report.notes.append(
            f"log: {len(log) - previous.size} record(s) appended since the last signed "
            f"checkpoint (size {previous.size}), to be signed in the next batch; run "
            "'amber evidence sign' to sign them now"
        )
    elif previous.size < len(log):
        report.problems.append(
            f"log: {len(log) - previous.size} record(s) after the last signed checkpoint "
            f"(size {previous.size}); run 'amber evidence recover' if amber crashed"
        )


def _check_objects(store: ObjectStore, log: CustodyLog | DatabaseLog, report: Report) -> None:
    try:
        items = replay(log.entries)
    except AmberError as exc:
        report.problems.append(f"log: {exc}")
        return
    report.items = sum(1 for i in items.values() if not i.deleted)
    named: set[str] = set()
    for item in items.values():
        if item.deleted or item.expiring:
            continue
        named.update(item.hashes())
    stored = set(store.names())
    for item in items.values():
        if item.deleted or item.expiring:
            continue
        for digest in item.hashes():
            if digest not in stored:
                report.problems.append(f"object {digest} of post {item.post_id!r} is missing")
    for name in sorted(stored):
        report.objects += 1
        try:
            digest = hashlib.sha256(store.get(name)).hexdigest()
        except ObjectMissing:
            continue  # removed since it was listed
        if digest != name:
            report.problems.append(
                f"objects/sha256/{name[:2]}/{name[2:]}: content does not match its name (changed)"
            )
        elif name not in named:
            report.notes.append(f"object {name} is named by no held item (left by a crash?)")
