"""Banks (admin): create, read, change and delete them, add image files, import and export
CSV rows ``signal_type,signal[,label]``."""

from __future__ import annotations

import io
import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, File, Request, UploadFile
from fastapi.responses import PlainTextResponse, Response
from pydantic import BaseModel, StrictInt
from starlette.concurrency import run_in_threadpool

from amber.api.deps import Admin, EngineDep, errors, ok_as, upload_name
from amber.banks import ImportResult
from amber.engine import Engine
from amber.errors import UserError

router = APIRouter(prefix="/v1/banks", tags=["banks"])


class BankIn(BaseModel):
    """A new bank."""

    name: str
    action: str = "remove"
    label: str | None = None
    threshold: StrictInt = 31  # a JSON boolean is not a number
    #: Share (percent) of a banked video's frames a posted video must cover to match it.
    video_percent: StrictInt = 80


class BankPatch(BaseModel):
    """What to change in a bank; fields left out stay as they are."""

    action: str | None = None
    label: str | None = None
    threshold: StrictInt | None = None
    video_percent: StrictInt | None = None


@router.get("", responses=errors())
def banks(engine: EngineDep, _: Admin) -> list[dict[str, Any]]:
    """Every bank."""
    return [b.to_json() for b in engine.banks.all()]


@router.post("", status_code=201, responses=errors(400, 409, 413, 422))
def create_bank(bank: BankIn, engine: EngineDep, _: Admin) -> dict[str, Any]:
    """Create a bank."""
    created = engine.banks.create(
        bank.name,
        action=bank.action,
        label=bank.label,
        threshold=bank.threshold,
        video_percent=bank.video_percent,
    )
    return created.to_json()


@router.get("/{name}", responses=errors(400, 404, 422))
def get_bank(name: str, engine: EngineDep, _: Admin) -> dict[str, Any]:
    """One bank."""
    return engine.banks.get(name).to_json()


@router.patch("/{name}", responses=errors(400, 404, 413, 422))
def update_bank(name: str, patch: BankPatch, engine: EngineDep, _: Admin) -> dict[str, Any]:
    """Change a bank's action, label, threshold or video share."""
    changed = engine.banks.update(
        name,
        action=patch.action,
        label=patch.label,
        threshold=patch.threshold,
        video_percent=patch.video_percent,
    )
    return changed.to_json()


@router.delete("/{name}", responses=errors(400, 404, 422))
def delete_bank(name: str, engine: EngineDep, _: Admin) -> dict[str, Any]:
    """Delete a bank and its entries."""
    with engine.write_lock:
        removed = engine.banks.delete(name)
    return {"name": name, "entries_deleted": removed}


@router.post("/{name}/entries", responses=errors(400, 404, 413, 422))
def add_entries(
    name: str, files: Annotated[list[UploadFile], File()], engine: EngineDep, _: Admin
) -> dict[str, Any]:
    """Hash uploaded image and video files into a bank, one entry each."""
    with tempfile.TemporaryDirectory(prefix="amber-bank-") as folder:
        paths, sources = [], {}
        for i, upload_file in enumerate(files):
            original = upload_name(upload_file.filename, field=f"files[{i}]", default="file")
            path = Path(folder) / f"{i}-{original}"
            with path.open("wb") as out:
                shutil.copyfileobj(upload_file.file, out)
            paths.append(path)
            sources[str(path)] = original
        with engine.write_lock:
            result = engine.banks.add_files(name, paths, sources=sources)
    return {
        "added": len(result.added),
        "duplicates": len(result.duplicates),
        "failures": [{"file": Path(f.path).name, "reason": f.reason} for f in result.failures],
        "truncated": [sources.get(path, Path(path).name) for path in result.truncated],
    }


@router.post("/{name}/import", responses=errors(400, 404, 413, 422))
async def import_bank(name: str, request: Request, engine: EngineDep, _: Admin) -> dict[str, int]:
    """Import CSV rows ``signal_type,signal[,label]`` (the request body), all or nothing; a
    ``vpdq`` row's signal is a video's vPDQ frame lines in one quoted cell."""
    try:
        text = (await request.body()).decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UserError(f"the CSV is not UTF-8 (byte {exc.start})") from None
    result = await run_in_threadpool(_import, engine, name, text)  # the lock may wait
    return {"added": result.added, "duplicates": result.duplicates}


def _import(engine: Engine, name: str, text: str) -> ImportResult:
    with engine.write_lock:
        return engine.banks.import_csv(name, io.StringIO(text), source="request")


@router.get(
    "/{name}/export",
    response_class=Response,
    responses={**ok_as("text/csv", "The bank's rows"), **errors(400, 404, 422)},
)
def export_bank(name: str, engine: EngineDep, _: Admin) -> PlainTextResponse:
    """A bank as CSV rows ``signal_type,signal,label``."""
    out = io.StringIO()
    engine.banks.export_csv(name, out)
    return PlainTextResponse(out.getvalue(), media_type="text/csv")
