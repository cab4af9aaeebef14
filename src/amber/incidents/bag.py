"""One evidence bag for a whole incident: every member post's evidence and custody in one
BagIt 1.0 bag, verifiable offline with ``amber evidence verify-bag`` (``docs/evidence.md``,
``docs/incidents.md``). Under ``data/``::

    incident.json                  the incident (members, why each was linked, escalation,
                                   timeline) and which folder holds which post
    checkpoint.txt                 one signed checkpoint every post's proofs lead to
    checkpoint.vkey                the verifier key that signed it
    posts/<NNN>-<post id>/         each member with evidence held, in the order they were
                                   made: media/, post.json, decision.json,
                                   collection.json, custody.jsonl, proof.json (as a
                                   one-post bag's data/)

with the manifests and the signed list of files of a one-post bag. Each post's custody
ends with its own ``exported`` record naming the incident.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path
from typing import Any

from amber.errors import AmberError, UserError
from amber.evidence.bag import (
    INCIDENT_FILE,
    SIGNATURE_FILE,
    close_bag,
    write_custody,
    write_item,
)
from amber.evidence.vault import ACTOR, Vault
from amber.incidents import Incident


def export_incident_bag(
    vault: Vault,
    incident: Incident,
    out: Path,
    *,
    actor: str = ACTOR,
    contact: str | None = None,
    organization: str | None = None,
) -> Path:
    """Write the bag of ``incident`` (read with ``Incidents.get``) to the new folder
    ``out`` and log the export on each post's evidence. Members whose evidence the vault
    does not hold (never preserved, or deleted after retention) are named in
    ``incident.json`` with why, and have no folder.

    Raises ``UserError`` if ``out`` exists or no member's evidence is held.
    """
    if out.exists():
        raise UserError(f"{str(out)!r} already exists; give a new folder for the bag")
    items = vault.items()
    held: list[tuple[str, str, str]] = []  # (folder, post id, key)
    left: list[dict[str, Any]] = []
    for n, member in enumerate(incident.members, 1):
        item = items.get(member.key)
        if item is None or item.deleted:
            why = "deleted after its retention period" if item else "not preserved"
            left.append({"post_id": member.post_id, "key": member.key, "evidence": why})
            continue
        held.append((f"posts/{n:03d}-{_safe(member.post_id)}", member.post_id, member.key))
    if not held:
        raise UserError(
            f"the vault holds no evidence of any post of incident {incident.id}; nothing to export"
        )
    staging = out.with_name(out.name + ".partial")
    if staging.exists():
        shutil.rmtree(staging)
    try:  # the evidence first: an export that cannot be made is not recorded
        for folder, _, key in held:
            write_item(vault, vault.item(key), staging / folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    for _, _, key in held:
        vault.record(
            key,
            "exported",
            actor=actor,
            to=out.name,
            signature=SIGNATURE_FILE,
            incident=incident.id,
        )
    latest = vault.log.latest_checkpoint()
    if latest is None:  # pragma: no cover - record() always signs
        raise AmberError("the vault has no signed checkpoint")
    text, checkpoint = latest
    for folder, _, key in held:
        write_custody(vault, key, staging / folder, checkpoint)
    record = {
        **incident.to_json(),
        "bag": {
            "posts": [{"folder": f, "post_id": p, "key": k} for f, p, k in held],
            "not_held": left,
        },
    }
    (staging / INCIDENT_FILE).write_text(
        json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    (staging / "checkpoint.txt").write_text(text, encoding="utf-8")
    (staging / "checkpoint.vkey").write_text(vault.log.verifier_key + "\n", encoding="utf-8")
    info = {
        "Source-Organization": organization or "amber operator (set AMBER_ORGANIZATION)",
        "Contact-Email": contact or "unset (set AMBER_CONTACT)",
        "External-Identifier": f"incident {incident.id}",
        "External-Description": (
            f"Evidence preserved by {ACTOR} for the {len(held)} posts of incident "
            f"{incident.id}: for each, original media, post, decision, collection data and "
            "custody records with RFC 9162 inclusion proofs; one signed checkpoint "
            "(docs/incidents.md)."
        ),
        "Bag-Group-Identifier": checkpoint.origin,
    }
    close_bag(staging, vault, info)
    staging.rename(out)
    return out


def _safe(post_id: str) -> str:
    """A post id as part of a folder name: letters, digits, ``_`` and ``-`` only, at most
    60 characters, with 12 hex digits of its SHA-256 when it had to change."""
    safe = re.sub(r"[^A-Za-z0-9_-]+", "_", post_id)[:60]
    if safe != post_id:
        safe += "-" + hashlib.sha256(post_id.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return safe
