"""Evidence bags: one held post as a BagIt 1.0 bag an investigator can verify offline.

A bag (see docs/evidence.md) holds, under ``data/``::

    media/<position>-<sha256>.<ext>   the original bytes, exactly as received
    post.json                         the post as received
    decision.json                     the verdict with its reasons and actions
    collection.json                   when, by which amber and policy, from which source
    custody.jsonl                     every custody-log record about this post, byte-exact
    proof.json                        each record's RFC 9162 inclusion proof
    checkpoint.txt                    the signed checkpoint the proofs lead to
    checkpoint.vkey                   the verifier key that signed it

with SHA-256 and SHA-512 payload and tag manifests, and ``bag-signature.txt``: a signed
note (the vault's key, as the checkpoints) listing the SHA-256 of every other file in the
bag but the tag manifests. BagIt manifests are unsigned, so a file planted in a bag whose
manifests were recomputed passes their check; it is not in the signed list. The bag's own
``exported`` custody record announces the signature, so it cannot be stripped unnoticed.
``verify_bag`` needs only the bag.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bagit

from amber.errors import AmberError, InternalError, UserError
from amber.evidence.checkpoint import (
    Checkpoint,
    CheckpointError,
    VerifierKey,
    open_note,
    open_signed_note,
    sign_note,
)
from amber.evidence.merkle import leaf_hash, verify_inclusion
from amber.evidence.vault import ACTOR, Item, Vault

PROOF_FORMAT = "amber-evidence-proof/1"
SIGNATURE_FILE = "bag-signature.txt"
"""The tag file holding the bag's signed list of files."""
INCIDENT_FILE = "incident.json"
"""An incident bag's record of its incident (``amber.incidents.bag``); no post's bag has it."""
SIGNATURE_FORMAT = "amber-bag/1"
"""The second line of that note (the first is the vault's origin); no checkpoint has it."""
PAYLOAD = (
    "post.json",
    "decision.json",
    "collection.json",
    "custody.jsonl",
    "proof.json",
    "checkpoint.txt",
    "checkpoint.vkey",
)
"""Every payload file of a bag but its media."""
SUFFIXES = {
    b"\xff\xd8": ".jpg",
    b"\x89PNG": ".png",
    b"GIF8": ".gif",
    b"RIFF": ".webp",
    b"BM": ".bmp",
    b"II*\x00": ".tif",
    b"MM\x00*": ".tif",
}


def _suffix(data: bytes) -> str:
    for magic, suffix in SUFFIXES.items():
        if data.startswith(magic):
            return suffix
    return ".bin"


def export_bag(
    vault: Vault,
    post_id: str,
    out: Path,
    *,
    actor: str = ACTOR,
    contact: str | None = None,
    organization: str | None = None,
) -> Path:
    """Write the bag of ``post_id`` to the new folder ``out`` and log the export.

    Raises ``NotFoundError`` for an unknown post, ``UserError`` if ``out`` exists or the
    item was deleted.
    """
    if out.exists():
        raise UserError(f"{str(out)!r} already exists; give a new folder for the bag")
    item = vault.item(post_id)
    if item.deleted:
        raise UserError(f"evidence for {post_id!r} was deleted after its retention period")
    staging = out.with_name(out.name + ".partial")
    if staging.exists():
        shutil.rmtree(staging)
    # The evidence first: an export that cannot be made is not recorded as exported.
    try:
        write_item(vault, item, staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    vault.record(post_id, "exported", actor=actor, to=out.name, signature=SIGNATURE_FILE)
    log = vault.log
    latest = log.latest_checkpoint()
    if latest is None:  # pragma: no cover - record() always signs
        raise AmberError("the vault has no signed checkpoint")
    text, checkpoint = latest
    write_custody(vault, vault.item(post_id).key, staging, checkpoint)
    (staging / "checkpoint.txt").write_text(text, encoding="utf-8")
    (staging / "checkpoint.vkey").write_text(log.verifier_key + "\n", encoding="utf-8")
    info = {
        "Source-Organization": organization or "amber operator (set AMBER_ORGANIZATION)",
        "Contact-Email": contact or "unset (set AMBER_CONTACT)",
        "External-Identifier": post_id,
        "External-Description": (
            f"Evidence preserved by {ACTOR} for post {post_id}: original media, post, "
            "decision, collection data, custody records with RFC 9162 inclusion proofs "
            "and a signed checkpoint (docs/evidence.md)."
        ),
        "Bag-Group-Identifier": checkpoint.origin,
    }
    close_bag(staging, vault, info)
    staging.rename(out)
    return out


def write_item(vault: Vault, item: Item, folder: Path) -> None:
    """Write a held item's media, post, decision and collection record into ``folder``
    (as a bag's ``data/`` holds them)."""
    (folder / "media").mkdir(parents=True)
    for media in item.objects.get("media", []):
        data = vault.read(media["sha256"])
        name = f"{media['position']}-{media['sha256']}{_suffix(data)}"
        (folder / "media" / name).write_bytes(data)
    (folder / "post.json").write_bytes(vault.read(item.objects["post"]))
    (folder / "decision.json").write_bytes(vault.read(item.objects["decision"]))
    (folder / "collection.json").write_bytes(vault.read(item.objects["collection"]))


def write_custody(vault: Vault, key: str, folder: Path, checkpoint: Checkpoint) -> None:
    """Write every custody record of item ``key`` (``custody.jsonl``) and each one's
    inclusion proof in the tree ``checkpoint`` signs (``proof.json``) into ``folder``."""
    log = vault.log
    entries = [log.entries[i] for i in vault.item(key).records]
    (folder / "custody.jsonl").write_bytes(b"".join(e.line + b"\n" for e in entries))
    proofs: dict[str, Any] = {
        "format": PROOF_FORMAT,
        "origin": checkpoint.origin,
        "tree_size": checkpoint.size,
        "root": base64.b64encode(checkpoint.root).decode(),
        "hash": "RFC 9162 SHA-256: leaf = SHA-256(0x00 || line), node = SHA-256(0x01 || l || r)",
        "records": [
            {
                "line": n + 1,
                "index": e.index,
                "leaf_hash": base64.b64encode(leaf_hash(e.line)).decode(),
                "inclusion_proof": [
                    base64.b64encode(h).decode()
                    for h in log.tree.inclusion_proof(e.index, checkpoint.size)
                ],
            }
            for n, e in enumerate(entries)
        ],
    }
    (folder / "proof.json").write_text(json.dumps(proofs, indent=2) + "\n", encoding="utf-8")


def close_bag(staging: Path, vault: Vault, info: dict[str, str]) -> None:
    """Make the folder ``staging`` (its payload written) a signed BagIt 1.0 bag."""
    bagit.make_bag(str(staging), bag_info=info, checksums=["sha256", "sha512"])
    # bagit-python writes version 0.97; the layout is already RFC 8493 (BagIt 1.0), so
    # declare 1.0 and recompute the tag manifests over the new bagit.txt.
    (staging / "bagit.txt").write_text(
        "BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n", encoding="utf-8"
    )
    bagit.Bag(str(staging)).save(manifests=False)
    _sign(staging, vault)


def _signed_files(bag: Path) -> dict[str, str]:
    """The SHA-256 of every file a bag's signature covers: all but the tag manifests (which
    list the signature) and the signature itself, by path relative to the bag."""
    files = {}
    for file in sorted(bag.rglob("*")):
        name = file.relative_to(bag).as_posix()
        if file.is_dir() or name == SIGNATURE_FILE or name.startswith("tagmanifest-"):
            continue
        files[name] = hashlib.sha256(file.read_bytes()).hexdigest()
    return files


def _sign(staging: Path, vault: Vault) -> None:
    """Write the bag's signed list of files, then the tag manifests again to include it."""
    files = _signed_files(staging)
    lines = [vault.origin, SIGNATURE_FORMAT, *(f"{h}  {n}" for n, h in files.items())]
    note = sign_note("".join(line + "\n" for line in lines), [vault.signer])
    (staging / SIGNATURE_FILE).write_text(note, encoding="utf-8")
    bagit.Bag(str(staging)).save(manifests=False)
    if _signed_files(staging) != files:  # pragma: no cover - bagit rewrote a signed file
        raise InternalError("writing the tag manifests changed a signed file of the bag")


@dataclass(slots=True)
class BagReport:
    """What ``verify_bag`` found; ``ok`` only without problems."""

    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    post_id: str | None = None
    key: str | None = None
    tree_size: int | None = None
    records: int = 0
    #: An incident bag's incident id and the posts it holds (``None``, ``[]``: one post).
    incident: int | None = None
    posts: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


REQUIRED = (
    "manifest-sha256.txt",
    "manifest-sha512.txt",
    "tagmanifest-sha256.txt",
    "tagmanifest-sha512.txt",
)


def verify_bag(path: Path, *, expected_key: str | None = None) -> BagReport:
    """Check a bag offline: fixity, every inclusion proof, the checkpoint signature, the
    signed list of the bag's files, and that the preserved record names exactly the files
    in the bag. With ``expected_key`` (the key the platform published, in any form
    ``amber.evidence.published.read_key`` takes), the bag's key must be that one. An
    incident's bag (``data/incident.json``: ``amber.incidents.bag``) is checked post by
    post the same way, against its one checkpoint and signature. Never raises for
    damage."""
    report = BagReport()
    missing = [name for name in REQUIRED if not (path / name).is_file()]
    if missing:
        report.problems.append(f"bag fixity: missing {', '.join(missing)}")
        return report
    try:
        bag = bagit.Bag(str(path))
        bag.validate()
    except (bagit.BagError, OSError) as exc:
        report.problems.append(f"bag fixity: {exc}")
        details = getattr(exc, "details", None) or []
        report.problems.extend(f"  {d}" for d in details)
        return report
    data = path / "data"
    try:
        vkey = (data / "checkpoint.vkey").read_text(encoding="utf-8").strip()
        report.key = vkey
        if expected_key is not None and not _is_key(vkey, expected_key):
            report.problems.append(
                f"the bag is signed by {vkey!r}, not the published key {expected_key.strip()!r}"
            )
        checkpoint = open_note(
            (data / "checkpoint.txt").read_text(encoding="utf-8"), verifier_key=vkey
        )
        report.tree_size = checkpoint.size
    except (AmberError, OSError, ValueError) as exc:
        report.problems.append(f"checkpoint: {exc}")
        return report
    if (data / INCIDENT_FILE).is_file():
        _verify_incident(path, data, vkey, checkpoint, report)
        return report
    lines = _check_records(data, checkpoint, report)
    if lines is None:
        return report
    _check_signature(path, vkey, checkpoint.origin, lines, report)
    _check_payload(data, lines, report)
    return report


def _check_records(
    folder: Path, checkpoint: Checkpoint, report: BagReport, where: str = ""
) -> list[bytes] | None:
    """Check every custody record in ``folder`` (``custody.jsonl``) against its inclusion
    proof (``proof.json``) in the tree ``checkpoint`` signs; returns the records, or
    ``None`` when they cannot be read. ``where`` prefixes each problem (a post's folder
    in an incident bag)."""
    try:
        proofs = json.loads((folder / "proof.json").read_text(encoding="utf-8"))
        lines = (folder / "custody.jsonl").read_bytes().split(b"\n")[:-1]
    except (OSError, ValueError) as exc:
        report.problems.append(f"{where}checkpoint: {exc}")
        return None
    if not isinstance(proofs, dict):
        proofs = {}
        report.problems.append(f"{where}proof.json is not a JSON object")
    if proofs.get("tree_size") != checkpoint.size or proofs.get("origin") != checkpoint.origin:
        report.problems.append(f"{where}proof.json does not refer to the signed checkpoint")
    records = proofs.get("records", [])
    if not isinstance(records, list):
        records = []
        report.problems.append(f"{where}proof.json: 'records' is not a list")
    if len(records) != len(lines):
        report.problems.append(
            f"{where}proof.json has {len(records)} proofs for {len(lines)} records"
        )
    for line, proof in zip(lines, records, strict=False):
        if not isinstance(proof, dict):
            report.problems.append(
                f"{where}proof.json: a record's proof is not an object: {proof!r}"
            )
            continue
        try:
            verify_inclusion(
                leaf_index=int(proof["index"]),
                tree_size=checkpoint.size,
                leaf_hash=leaf_hash(line),
                proof=[base64.b64decode(h) for h in proof["inclusion_proof"]],
                root=checkpoint.root,
            )
            report.records += 1
        except (AmberError, KeyError, ValueError, TypeError) as exc:
            report.problems.append(f"{where}custody.jsonl line {proof.get('line')}: {exc}")
    return lines


def _verify_incident(
    path: Path, data: Path, vkey: str, checkpoint: Checkpoint, report: BagReport
) -> None:
    """An incident bag (``amber.incidents.bag``): each post's folder under ``posts/``
    checked as a one-post bag's payload is, against the one checkpoint; the folders must
    be those ``incident.json`` lists; the whole bag is under one signature."""
    try:
        incident = json.loads((data / INCIDENT_FILE).read_text(encoding="utf-8"))
        listed = {
            str(p["folder"]): str(p["post_id"])
            for p in incident["bag"]["posts"]
            if isinstance(p, dict)
        }
        report.incident = int(incident["id"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        report.problems.append(f"{INCIDENT_FILE}: not an incident amber wrote ({exc})")
        return
    posts = data / "posts"
    found = sorted(f"posts/{p.name}" for p in posts.iterdir()) if posts.is_dir() else []
    for name in sorted(set(found) - listed.keys()):
        report.problems.append(f"data/{name}: not a post {INCIDENT_FILE} lists (planted?)")
    for name in sorted(listed.keys() - set(found)):
        report.problems.append(f"data/{name}: listed in {INCIDENT_FILE} but missing")
    first: list[bytes] | None = None
    for name in sorted(set(found) & listed.keys()):
        folder = data / name
        lines = _check_records(folder, checkpoint, report, where=f"data/{name}/")
        if lines is None:
            continue
        first = lines if first is None else first
        part = BagReport()
        _check_payload(folder, lines, part)
        report.problems.extend(f"data/{name}/: {p}" for p in part.problems)
        if part.post_id is not None and part.post_id != listed[name]:
            report.problems.append(
                f"data/{name}/ holds post {part.post_id!r}, not {listed[name]!r} as "
                f"{INCIDENT_FILE} says"
            )
        report.posts.append(listed[name])
    if not found:
        report.problems.append("the incident bag holds no post")
    note = path / SIGNATURE_FILE
    if not note.is_file():
        report.problems.append(f"{SIGNATURE_FILE} is missing: amber signs every incident bag")
        return
    _check_signature(path, vkey, checkpoint.origin, first or [], report)


def _is_key(vkey: str, expected: str) -> bool:
    """Whether the bag's verifier key is the published key ``expected`` (in any form)."""
    from amber.evidence.published import read_key

    try:
        return read_key(expected).matches(VerifierKey.parse(vkey))
    except UserError:  # not a key in any form: only the same string can match
        return vkey == expected.strip()


def _announced(lines: list[bytes]) -> bool:
    """Whether the bag's own ``exported`` record (its last) says it carries a signature."""
    try:
        last = json.loads(lines[-1]) if lines else {}
    except ValueError:
        return False
    return (
        isinstance(last, dict)
        and last.get("event") == "exported"
        and (last.get("signature") == SIGNATURE_FILE)
    )


def _check_signature(
    path: Path, vkey: str, origin: str, lines: list[bytes], report: BagReport
) -> None:
    """Check the signed list of the bag's files against the bag, naming every file added,
    missing or changed since amber signed it."""
    note = path / SIGNATURE_FILE
    if not note.is_file():
        if _announced(lines):
            report.problems.append(
                f"{SIGNATURE_FILE} is missing, but the bag's signed 'exported' record says "
                "amber signed the bag: it was removed"
            )
        else:
            report.notes.append(
                f"this bag has no signed list of its files ({SIGNATURE_FILE}; bags exported "
                "before amber signed them): its payload was checked against the signed "
                "custody records, its bag-info.txt is unsigned"
            )
            _check_closed(path / "data", lines, report)
        return
    try:
        body = open_signed_note(note.read_bytes(), verifier_key=vkey)
    except (CheckpointError, OSError) as exc:
        report.problems.append(f"{SIGNATURE_FILE}: not a valid signature by the bag's key: {exc}")
        return
    header = body[:-1].split("\n")
    if header[:2] != [origin, SIGNATURE_FORMAT]:
        report.problems.append(f"{SIGNATURE_FILE}: not a signed list of files of {origin!r}")
        return
    signed = {}
    for row in header[2:]:
        digest, _, name = row.partition("  ")
        signed[name] = digest
    actual = _signed_files(path)
    for name in sorted(actual.keys() - signed.keys()):
        report.problems.append(f"{name}: not among the files amber signed (added after export)")
    for name in sorted(signed.keys() - actual.keys()):
        report.problems.append(f"{name}: signed by amber but missing from the bag")
    for name in sorted(actual.keys() & signed.keys()):
        if actual[name] != signed[name]:
            report.problems.append(f"{name}: changed since amber signed the bag")


def _check_closed(data: Path, lines: list[bytes], report: BagReport) -> None:
    """For an unsigned bag: every payload file must be one an amber bag holds, its media
    named by the signed preserved record."""
    media = set()
    for line in lines:
        if b'"event":"preserved"' in line:
            record = json.loads(line)
            media = {
                f"{m.get('position')}-{m.get('sha256')}"
                for m in record.get("objects", {}).get("media", [])
                if isinstance(m, dict)
            }
    seen: set[str] = set()
    for file in sorted(data.rglob("*")):
        if file.is_dir():
            continue
        name = file.relative_to(data).as_posix()
        folder, _, rest = name.partition("/")
        stem = rest.split(".", 1)[0]
        if name in PAYLOAD:
            continue
        if folder == "media" and "/" not in rest and stem in media and stem not in seen:
            seen.add(stem)
            continue
        report.problems.append(f"data/{name}: no part of the bag amber made (planted?)")


def _check_payload(data: Path, lines: list[bytes], report: BagReport) -> None:
    preserved = [line for line in lines if b'"event":"preserved"' in line]
    if not preserved:
        report.problems.append("custody.jsonl has no preserved record")
        return
    try:
        record = json.loads(preserved[-1])
    except ValueError as exc:
        report.problems.append(f"custody.jsonl: the preserved record is not JSON: {exc}")
        return
    objects = record.get("objects") if isinstance(record, dict) else None
    if not isinstance(objects, dict) or not isinstance(objects.get("media", []), list):
        report.problems.append("custody.jsonl: the preserved record names no objects")
        return
    post_id = record.get("post_id")
    report.post_id = post_id if isinstance(post_id, str) else None
    expected = {
        "post.json": objects.get("post"),
        "decision.json": objects.get("decision"),
        "collection.json": objects.get("collection"),
    }
    for media in objects.get("media", []):
        if not (
            isinstance(media, dict)
            and isinstance(media.get("position"), int)
            and isinstance(media.get("sha256"), str)
            and re.fullmatch(r"[0-9a-f]{64}", media["sha256"])
        ):
            report.problems.append(f"custody.jsonl: media {media!r} is not a position and SHA-256")
            continue
        found = list((data / "media").glob(f"{media['position']}-{media['sha256']}.*"))
        if not found:
            report.problems.append(f"media {media['position']} ({media['sha256']}) is missing")
            continue
        expected[f"media/{found[0].name}"] = media["sha256"]
    for name, digest in expected.items():
        file = data / name
        actual = hashlib.sha256(file.read_bytes()).hexdigest() if file.is_file() else None
        if actual != digest:
            report.problems.append(
                f"data/{name}: SHA-256 {actual} is not the {digest} the signed record names"
            )
