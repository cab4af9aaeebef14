"""Evidence (admin): what the vault holds, and one post's evidence bag as a zip."""

from __future__ import annotations

import io
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
    with tempfile.TemporaryDirectory(prefix="amber-bag-") as folder:
        bag = export_bag(
            engine.open_vault(),
            post_id,
            Path(folder) / f"bag-{post_id}",
            actor=f"{token.name} via amber serve",
        )
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for file in sorted(bag.rglob("*")):
                if file.is_file():
                    archive.write(file, file.relative_to(bag.parent))
    return Response(
        buffer.getvalue(),
        media_type="application/zip",
        headers={"content-disposition": f'attachment; filename="bag-{post_id}.zip"'},
    )
