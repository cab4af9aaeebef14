"""Banks (admin): create, read, change (rename, enable, disable) and delete them, add image
files, import and export hash lists (``amber.bank_formats``), read their audit; list,
read, change (disable until a time, enable, note) and delete one entry."""

from __future__ import annotations

import io
import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Query, Request, UploadFile
from fastapi.responses import PlainTextResponse, Response
from pydantic import AwareDatetime, BaseModel, StrictBool, StrictFloat, StrictInt
from starlette.concurrency import run_in_threadpool

from amber.api.deps import Admin, EngineDep, errors, ok_as, upload_name
from amber.banks import KEEP, ImportResult
from amber.engine import Engine
from amber.errors import UserError
from amber.tokens import Token

router = APIRouter(prefix="/v1/banks", tags=["banks"])


class BankIn(BaseModel):
    """A new bank."""

    name: str
    action: str = "remove"
    label: str | None = None
    threshold: StrictInt = 31  # a JSON boolean is not a number
    #: Share (percent) of a banked video's frames a posted video must cover to match it.
    video_percent: StrictInt = 80
    #: Keypoint pairs that must agree with one homography for a local-feature match.
    min_inliers: StrictInt = 16


class BankPatch(BaseModel):
    """What to change in a bank; fields left out stay as they are."""

    action: str | None = None
    label: str | None = None
    threshold: StrictInt | None = None
    video_percent: StrictInt | None = None
    min_inliers: StrictInt | None = None
    #: A new name (the bank's entries, settings and audit follow).
    name: str | None = None
    #: false: none of its entries match; true: they match again.
    enabled: StrictBool | None = None
    #: The share (0 to 1) of its entries that match (HMA's matching_enabled_ratio).
    enabled_ratio: StrictFloat | StrictInt | None = None


class EntryPatch(BaseModel):
    """What to change in a bank entry; fields left out stay, ``null`` clears one (a
    ``null`` ``disabled_until`` enables the entry again)."""

    disabled_until: AwareDatetime | None = None
    note: str | None = None
    label: str | None = None
    content_id: str | None = None
    content_uri: str | None = None
    metadata: dict[str, Any] | None = None


@router.get("", responses=errors())
def banks(engine: EngineDep, _: Admin) -> list[dict[str, Any]]:
    """Every bank."""
    return [b.to_json() for b in engine.banks.all()]


@router.post("", status_code=201, responses=errors(400, 409, 413, 422))
def create_bank(bank: BankIn, engine: EngineDep, token: Admin) -> dict[str, Any]:
    """Create a bank (action ``allow``: known-benign content whose matches override the
    other banks')."""
    created = engine.banks.create(
        bank.name,
        action=bank.action,
        label=bank.label,
        threshold=bank.threshold,
        video_percent=bank.video_percent,
        min_inliers=bank.min_inliers,
        actor=actor(token),
    )
    return created.to_json()


@router.get("/{name}", responses=errors(400, 404, 422))
def get_bank(name: str, engine: EngineDep, _: Admin) -> dict[str, Any]:
    """One bank."""
    return engine.banks.get(name).to_json()


@router.patch("/{name}", responses=errors(400, 404, 413, 422))
def update_bank(name: str, patch: BankPatch, engine: EngineDep, token: Admin) -> dict[str, Any]:
    """Change a bank's action, label, threshold, video share, minimum inliers or name,
    or enable or disable it."""
    changed = engine.banks.update(
        name,
        action=patch.action,
        label=patch.label,
        threshold=patch.threshold,
        video_percent=patch.video_percent,
        min_inliers=patch.min_inliers,
        new_name=patch.name,
        enabled=patch.enabled,
        enabled_ratio=patch.enabled_ratio,
        actor=actor(token),
    )
    return changed.to_json()


@router.delete("/{name}", responses=errors(400, 404, 422))
def delete_bank(name: str, engine: EngineDep, token: Admin) -> dict[str, Any]:
    """Delete a bank and its entries (its audit stays)."""
    with engine.write_lock:
        removed = engine.banks.delete(name, actor=actor(token))
    return {"name": name, "entries_deleted": removed}


@router.get("/{name}/audit", responses=errors(400, 404, 422))
def bank_audit(
    name: str, engine: EngineDep, _: Admin, after: int = 0, limit: int = 1000
) -> list[dict[str, Any]]:
    """Every change to the bank and its entries, oldest first (page on with ``after``,
    the last event's id); a deleted bank's too."""
    return [e.to_json() for e in engine.banks.audit(name, after=after, limit=limit)]


@router.get("/{name}/entries", responses=errors(400, 404, 422))
def list_entries(
    name: str, engine: EngineDep, _: Admin, after: int = 0, limit: int = 100
) -> list[dict[str, Any]]:
    """The bank's entries by id, ``limit`` (1-10000) of them after id ``after`` (page on
    with the last id)."""
    return [e.to_json() for e in engine.banks.entries(name, after=after, limit=limit)]


@router.get("/{name}/entries/{entry}", responses=errors(400, 404, 422))
def get_entry(name: str, entry: int, engine: EngineDep, _: Admin) -> dict[str, Any]:
    """One entry: its signals, source, note, content id and URI, metadata, disabled until."""
    return engine.banks.entry(name, entry).to_json()


@router.patch("/{name}/entries/{entry}", responses=errors(400, 404, 413, 422))
def update_entry(
    name: str, entry: int, patch: EntryPatch, engine: EngineDep, token: Admin
) -> dict[str, Any]:
    """Disable an entry until a time (``disabled_until``; ``null`` enables it again), or
    change its note, label, content id, URI or metadata."""
    given = patch.model_fields_set
    fields = ("disabled_until", "note", "label", "content_id", "content_uri", "metadata")
    changes = {f: getattr(patch, f) if f in given else KEEP for f in fields}
    with engine.write_lock:
        return engine.banks.update_entry(name, entry, **changes, actor=actor(token)).to_json()


@router.delete("/{name}/entries/{entry}", responses=errors(400, 404, 422))
def delete_entry(name: str, entry: int, engine: EngineDep, token: Admin) -> dict[str, Any]:
    """Delete one entry; it stops matching at once. Returns what it was."""
    with engine.write_lock:
        return engine.banks.delete_entry(name, entry, actor=actor(token)).to_json()


def actor(token: Token) -> str:
    """Who makes a change through the API, for the bank's audit: the token's name."""
    return f"token:{token.name}"


@router.post("/{name}/entries", responses=errors(400, 404, 413, 422))
def add_entries(
    name: str, files: Annotated[list[UploadFile], File()], engine: EngineDep, token: Admin
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
            result = engine.banks.add_files(name, paths, sources=sources, actor=actor(token))
    return {
        "added": len(result.added),
        "duplicates": len(result.duplicates),
        "failures": [{"file": Path(f.path).name, "reason": f.reason} for f in result.failures],
        "truncated": [sources.get(path, Path(path).name) for path in result.truncated],
    }


#: The formats the import route reads (``amber.bank_formats``, ``auto`` and ``vpdq``).
ImportFormat = Literal["auto", "amber-csv", "pytx-csv", "lines", "hashes", "hma-json", "vpdq"]
#: The formats the export route writes.
ExportFormat = Literal["amber-csv", "pytx-csv", "lines", "hashes", "hma-json"]


@router.post("/{name}/import", responses=errors(400, 404, 413, 422))
async def import_bank(
    name: str,
    request: Request,
    engine: EngineDep,
    token: Admin,
    format: Annotated[
        ImportFormat, Query(description="The body's format; auto tells it from its first lines")
    ] = "auto",
    signal_type: Annotated[
        str | None, Query(description="The type of a list of bare hashes (format hashes)")
    ] = None,
    sync: Annotated[
        bool, Query(description="Also delete the entries the body no longer lists")
    ] = False,
) -> dict[str, int]:
    """Import a hash list (the request body), all or nothing: amber's CSV
    (``signal_type,signal[,label]``, or columns named by a header row), python-
    threatexchange's dataset CSV or ``<type> <hash>`` lines, bare hashes, HMA's JSON, or
    a vPDQ hash file (one video). Returns the entries added, already there, skipped and
    deleted."""
    try:
        text = (await request.body()).decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UserError(f"the body is not UTF-8 (byte {exc.start})") from None
    options = {"format": format, "signal_type": signal_type, "sync": sync, "actor": actor(token)}
    result = await run_in_threadpool(_import, engine, name, text, options)  # the lock may wait
    return result.to_json()


def _import(engine: Engine, name: str, text: str, options: dict[str, Any]) -> ImportResult:
    with engine.write_lock:
        return engine.banks.import_text(
            name, io.StringIO(text, newline=""), source="request", **options
        )


@router.get(
    "/{name}/export",
    response_class=Response,
    responses={**ok_as("text/csv", "The bank's rows"), **errors(400, 404, 422)},
)
def export_bank(
    name: str,
    engine: EngineDep,
    _: Admin,
    format: Annotated[ExportFormat, Query(description="The format to write")] = "amber-csv",
    signal_type: Annotated[
        str | None, Query(description="With format hashes: the type to write")
    ] = None,
) -> PlainTextResponse:
    """A bank in a hash-list format: amber's CSV (``signal_type,signal,label,entry,quality``
    under a header row) by default."""
    out = io.StringIO()
    engine.banks.export(name, out, format=format, signal_type=signal_type)
    return PlainTextResponse(out.getvalue(), media_type=engine.banks.formats.get(format).media_type)
