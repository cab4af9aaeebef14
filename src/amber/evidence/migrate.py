"""Moving a vault's custody log into the database (and its objects to another store), and
copying a vault out in its file form for offline verification.

``migrate_vault`` copies ``log/records.jsonl`` into the database in order, each record byte
for byte, and every signed checkpoint with it; checks that the database's tree has the root
of every checkpoint; copies the objects to the new store if one is given; and only then
switches ``store.json``. Each step skips what is there already, so a migration a crash
interrupted is finished by running it again. Stop every amber writing to the vault first:
the writer lock keeps out writers on this machine only.

``export_vault`` writes a vault in the file form (``vault.json``, the verifier key,
``log/records.jsonl``, ``log/checkpoints/``, ``objects/``) that ``amber evidence verify``
checks with nothing but the files: how an investigator gets a database-logged vault.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from amber.atomic_write import write_atomic
from amber.errors import UserError
from amber.evidence.dblog import DatabaseLog
from amber.evidence.log import CustodyLog, LogError, canonical
from amber.evidence.objects import FolderStore, ObjectStore, open_store
from amber.evidence.vault import STORE, Vault, VaultError, read_store


@dataclass(frozen=True, slots=True)
class Migration:
    """What ``migrate_vault`` did."""

    records: int  # records in the log
    imported: int  # of them, copied into the database now
    checkpoints: int  # checkpoints the database holds for the log
    objects: int  # objects copied to the new store now
    root: str  # the signed root at the log's size, base64-free hex

    def to_json(self) -> dict[str, object]:
        return {
            "records": self.records,
            "imported": self.imported,
            "checkpoints": self.checkpoints,
            "objects": self.objects,
            "root": self.root,
        }


def migrate_vault(
    path: Path,
    db: sa.Engine,
    *,
    objects: str | None = None,
    signing_key: Path | None = None,
) -> Migration:
    """Move the vault at ``path`` to a custody log in ``db`` (and its objects to
    ``objects``, a folder or ``s3://`` URL, if given). Raises ``VaultError`` when ``path``
    is not a vault, ``LogError`` when the database holds another log under its name or a
    checkpoint's root differs."""
    if not (path / "vault.json").exists():
        raise VaultError(f"no evidence vault at {str(path)!r}")
    vault = Vault.open(path, signing_key=signing_key, db=db)  # recovers a crashed file log
    store = read_store(path)
    with vault.locked():
        if isinstance(vault.log, CustodyLog):
            file_log = vault.log
            file_log.refresh()
            log = DatabaseLog(db, origin=vault.origin, verifier_key=file_log.verifier_key)
            imported = log.import_lines([entry.line for entry in file_log.entries])
            for size in file_log.checkpoint_sizes():
                note, checkpoint = file_log.open_checkpoint(size)
                if size > len(log) or log.tree.root(size) != checkpoint.root:
                    raise LogError(
                        f"the database's first {size} records do not have the root the file "
                        "log's checkpoint signs; the switch is not made"
                    )
                log.import_checkpoint(note, checkpoint)
            latest = log.latest_checkpoint()
            if len(log) and (latest is None or latest[1].size != len(log)):
                log.sign_held(vault.signer)  # a record the file log never signed
        else:
            log, imported = vault.log, 0
        copied = 0
        target = store.get("objects")
        if objects is not None and objects != target:
            copied = copy_objects(vault.objects, open_store(objects, path))
            target = objects
        switched = {"log": "database", **({} if target is None else {"objects": target})}
        if store.get("endpoint"):
            switched["endpoint"] = store["endpoint"]
        write_atomic(path / STORE, canonical(switched) + b"\n")
    latest = log.latest_checkpoint()
    return Migration(
        records=len(log),
        imported=imported,
        checkpoints=len(log.checkpoint_sizes()),
        objects=copied,
        root="" if latest is None else latest[1].root.hex(),
    )


def copy_objects(source: ObjectStore, target: ObjectStore) -> int:
    """Copy every object ``target`` lacks, each checked against its name; returns how
    many were copied. Raises ``VaultError`` for an object whose bytes are not its name."""
    import hashlib

    copied = 0
    for name in source.names():
        if len(name) != 64 or name.startswith(".") or target.exists(name):
            continue
        data = source.get(name)
        if hashlib.sha256(data).hexdigest() != name:
            raise VaultError(f"object {name} in {source.location} does not match its name")
        target.put(data)
        copied += 1
    return copied


def export_vault(vault: Vault, out: Path) -> int:
    """Write ``vault`` in the file form to the new folder ``out`` (no private key, no
    staging) for offline verification; returns the records written. Raises
    ``UserError`` when ``out`` exists and is not empty."""
    if out.exists() and any(out.iterdir()):
        raise UserError(f"{str(out)!r} is not empty; give a new folder")
    (out / "keys").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(vault.path / "vault.json", out / "vault.json")
    shutil.copyfile(vault.path / "keys" / "checkpoint.vkey", out / "keys" / "checkpoint.vkey")
    if isinstance(vault.log, DatabaseLog):
        written = vault.log.export_files(out)
    else:
        shutil.copytree(vault.path / "log", out / "log", ignore=shutil.ignore_patterns(".*"))
        written = len(vault.log)
    copy_objects(vault.objects, FolderStore(out / "objects"))
    (out / "objects" / "sha256").mkdir(parents=True, exist_ok=True)
    return written
