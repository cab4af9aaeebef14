"""Evidence (admin): what the vault holds, and one post's evidence bag as a zip."""

from __future__ import annotations

import hashlib
import io
import re
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from amber.api.deps import Admin, EngineDep
from amber.evidence.bag import export_bag

router = APIRouter(prefix="/v1/evidence", tags=["evidence"])


@router.get("")
def evidence(engine: EngineDep, _: Admin) -> list[dict[str, Any]]:
    """What the vault holds, one item per preserved post."""
    if not (engine.vault_path / "vault.json").exists():
        return []
    return [i.to_json() for i in engine.open_vault().items().values()]


@router.get("/{post_id}/bag", response_class=Response)
def evidence_bag(post_id: str, engine: EngineDep, token: Admin) -> Response:
    """The post's evidence bag as a zip (BagIt 1.0 inside); the export is logged."""
    name = bag_name(post_id)
    with tempfile.TemporaryDirectory(prefix="amber-bag-") as folder:
        bag = export_bag(
            engine.open_vault(), post_id, Path(folder) / name, actor=f"{token.name} via amber serve"
        )
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for file in sorted(bag.rglob("*")):
                if file.is_file():  # names amber made: the bag's folder, then BagIt's
                    archive.write(file, "/".join((name, *file.relative_to(bag).parts)))
    return Response(
        buffer.getvalue(),
        media_type="application/zip",
        headers={"content-disposition": f'attachment; filename="{name}.zip"'},
    )


def bag_name(post_id: str) -> str:
    """``bag-<post id>`` as a folder name any extractor keeps inside its target: letters,
    digits, ``_`` and ``-`` only (no ``..``, drive letters, ``\\`` or ``/``), at most 100
    characters; an id that had to change gets 12 hex digits of its SHA-256 appended, so
    two ids never share a name."""
    safe = re.sub(r"[^A-Za-z0-9_-]+", "_", post_id)[:100]
    if safe != post_id:
        safe += "-" + hashlib.sha256(post_id.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return f"bag-{safe}"
