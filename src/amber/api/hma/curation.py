"""HMA's curator: banks and their content.

A bank is ``{"matching_enabled_ratio": 1.0, "name": "MY_BANK"}`` (names
``UPPER_WITH_UNDERSCORE``; one that is taken is 403). A content is an amber bank entry,
its id the entry's: added from a URL or an uploaded file (hashed as ``amber bank add``
hashes one) or from hashes, read, disabled until a time, noted and deleted.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, StrictBool
from starlette.concurrency import run_in_threadpool

from amber.api.deps import EngineDep
from amber.api.hma import errors
from amber.api.hma.access import Curator
from amber.api.hma.hashing import UPLOAD_BODY, Media, from_upload, from_url
from amber.api.hma.matching import flag
from amber.banks import KEEP
from amber.engine import Engine
from amber.errors import NotFoundError, UserError
from amber.hma import (
    Metadata,
    bank_json,
    bank_media,
    bank_signals,
    content_json,
    create_bank,
    delete_bank,
    disabled_until,
    parse_metadata,
    signal_types_for,
    update_bank,
)

router = APIRouter(prefix="/c", tags=["hma"])

#: The ``requestBody`` of ``POST /c/bank/{bank_name}/content``.
CONTENT_BODY: dict[str, Any] = {
    "requestBody": {
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "description": "With ?url=: the content's metadata and a note",
                    "properties": {
                        "metadata": {
                            "type": "object",
                            "properties": {
                                "content_id": {"type": "string"},
                                "content_uri": {"type": "string"},
                                "json": {"type": "object"},
                            },
                            "additionalProperties": False,
                        },
                        "note": {"type": "string", "maxLength": 255},
                    },
                }
            },
            **UPLOAD_BODY["requestBody"]["content"],
        }
    }
}
#: The ``requestBody`` of ``POST /c/bank/{bank_name}/signal``.
SIGNAL_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "description": "HMA signal types and their hashes, and a note",
                    "properties": {
                        "pdq": {"type": "string"},
                        "video_md5": {"type": "string"},
                        "note": {"type": "string", "maxLength": 255},
                    },
                },
                "example": {"pdq": "0" * 64, "note": "from campaign ABC"},
            }
        },
    }
}


class BankCreate(BaseModel):
    """A new bank: its name, and the share of its entries that match."""

    name: str
    enabled_ratio: float | None = None
    enabled: StrictBool | None = None


class BankUpdate(BaseModel):
    """What to change in a bank; fields left out stay as they are."""

    name: str | None = None
    enabled_ratio: float | None = None
    enabled: StrictBool | None = None


class ContentUpdate(BaseModel):
    """What to change in a content: ``disable_until_ts`` (Unix seconds; ``1`` enables it
    again) and its ``note`` (``""`` clears it)."""

    disable_until_ts: int | None = None
    note: str | None = None


@router.get("/banks", responses=errors())
def banks(engine: EngineDep, _: Curator) -> list[dict[str, Any]]:
    """Every bank: ``[{"matching_enabled_ratio": 1.0, "name": "MY_BANK"}]``."""
    return [bank_json(b) for b in engine.banks.all()]


@router.post("/banks", status_code=201, responses=errors(413))
def create(bank: BankCreate, engine: EngineDep, actor: Curator) -> dict[str, Any]:
    """Create a bank (named ``UPPER_WITH_UNDERSCORE``; 403 when the name is taken)."""
    if bank.enabled_ratio is not None:
        ratio = bank.enabled_ratio
    else:
        ratio = 0.0 if bank.enabled is False else 1.0
    return bank_json(create_bank(engine, bank.name, enabled_ratio=ratio, actor=actor))


@router.get("/bank/{bank_name}", responses=errors())
def bank(bank_name: str, engine: EngineDep, _: Curator) -> dict[str, Any]:
    """One bank."""
    return bank_json(engine.banks.get(bank_name))


@router.put("/bank/{bank_name}", responses=errors(413))
def update(bank_name: str, change: BankUpdate, engine: EngineDep, actor: Curator) -> dict[str, Any]:
    """Rename a bank (``name``), enable or disable it (``enabled``) or let a share of its
    entries match (``enabled_ratio``)."""
    changed = update_bank(
        engine,
        bank_name,
        new_name=change.name,
        enabled=change.enabled,
        enabled_ratio=change.enabled_ratio,
        actor=actor,
    )
    return bank_json(changed)


@router.delete("/bank/{bank_name}", responses=errors())
def delete(bank_name: str, engine: EngineDep, actor: Curator) -> dict[str, str]:
    """Delete a bank and its content (done, too, when there is no such bank)."""
    delete_bank(engine, bank_name, actor=actor)
    return {"message": "Done"}


@router.post(
    "/bank/{bank_name}/content",
    openapi_extra=CONTENT_BODY,
    responses=errors(413, 500, 502, 504),
)
async def add_content(
    request: Request,
    bank_name: str,
    engine: EngineDep,
    actor: Curator,
    url: str | None = None,
    content_type: str | None = None,
    types: str | None = None,
) -> dict[str, Any]:
    """Add a photo or a video to a bank: fetched from ``url`` (with a JSON body of
    ``metadata`` ``{content_id, content_uri, json}`` and a ``note`` of at most 255
    characters), or uploaded (a multipart field named ``photo`` or ``video``). Gives its
    id and hashes: ``{"id": 1, "signals": {"pdq": "..."}}``."""
    engine.banks.get(bank_name)
    body: dict[str, Any] = {}
    if "json" in request.headers.get("content-type", ""):
        try:
            parsed = await request.json()
        except ValueError:
            raise UserError("the request body is not JSON") from None
        body = parsed if isinstance(parsed, dict) else {}
    metadata = parse_metadata(body.get("metadata"))
    note = body.get("note")
    if note is not None and not isinstance(note, str):
        raise UserError(f"note {note!r} is not text")
    if url:
        media = await run_in_threadpool(from_url, request, url, content_type)
    elif "multipart/form-data" in request.headers.get("content-type", ""):
        media = await from_upload(request)
    else:
        raise UserError("Neither `url` nor multipart file upload was received")
    return await run_in_threadpool(_bank, engine, bank_name, media, types, note, metadata, actor)


def _bank(
    engine: Engine,
    bank_name: str,
    media: Media,
    types: str | None,
    note: str | None,
    metadata: Metadata,
    actor: str,
) -> dict[str, Any]:
    entry_id, signals = bank_media(
        engine,
        bank_name,
        media.data,
        media.name,
        media.content,
        types=signal_types_for(media.content, types),
        source=media.source,
        note=note,
        metadata=metadata,
        actor=actor,
    )
    return {"id": entry_id, "signals": signals}


@router.post("/bank/{bank_name}/signal", openapi_extra=SIGNAL_BODY, responses=errors(413))
async def add_signal(
    request: Request, bank_name: str, engine: EngineDep, actor: Curator
) -> dict[str, Any]:
    """Add a content to a bank from its hashes: ``{"pdq": "...", "note": "..."}`` gives
    ``{"id": 2, "signals": {"pdq": "..."}}``."""
    try:
        body = await request.json()
    except ValueError:
        raise UserError("the request body is not JSON") from None
    if not isinstance(body, dict):
        raise UserError("the request body must be a JSON object of signal type to hash")
    signals = {k: v for k, v in body.items() if k != "note"}
    note = body.get("note")
    if note is not None and not isinstance(note, str):
        raise UserError(f"note {note!r} is not text")
    entry_id, stored = await run_in_threadpool(
        lambda: bank_signals(engine, bank_name, signals, note=note, actor=actor)
    )
    return {"id": entry_id, "signals": stored}


@router.get("/bank/{bank_name}/content/{content_id}", responses=errors())
def content(
    bank_name: str,
    content_id: int,
    engine: EngineDep,
    _: Curator,
    include_signals: str | None = None,
    include_metadata: str | None = None,
) -> dict[str, Any]:
    """One content of a bank: ``id``, ``disable_until_ts``, ``collab_metadata``,
    ``original_media_uri``, ``bank``, and its ``metadata`` and ``note`` when it has them;
    its ``signals`` with ``include_signals=true``, no ``metadata`` with
    ``include_metadata=false``."""
    found = engine.banks.get(bank_name)
    entry = engine.banks.entry(bank_name, content_id)
    return content_json(
        entry,
        found,
        signals=flag(include_signals, "include_signals"),
        metadata=flag(include_metadata, "include_metadata", default=True),
    )


@router.put("/bank/{bank_name}/content/{content_id}", responses=errors(413))
def update_content(
    bank_name: str, content_id: int, change: ContentUpdate, engine: EngineDep, actor: Curator
) -> dict[str, Any]:
    """Disable a content until a time (``disable_until_ts``, Unix seconds, at most 10
    years ahead; ``1`` enables it again) or set its ``note``."""
    given = change.model_fields_set
    until: Any = KEEP
    if "disable_until_ts" in given:
        until = disabled_until(change.disable_until_ts)
    note: Any = change.note if "note" in given else KEEP
    with engine.write_lock:
        entry = engine.banks.update_entry(
            bank_name, content_id, disabled_until=until, note=note, actor=actor
        )
    return content_json(entry, engine.banks.get(bank_name))


@router.delete("/bank/{bank_name}/content/{content_id}", responses=errors())
def delete_content(
    bank_name: str, content_id: int, engine: EngineDep, actor: Curator
) -> dict[str, int]:
    """Delete a content from a bank: ``{"deleted": 1}`` (0 when it held none such)."""
    engine.banks.get(bank_name)
    try:
        with engine.write_lock:
            engine.banks.delete_entry(bank_name, content_id, actor=actor)
    except NotFoundError:
        return {"deleted": 0}
    return {"deleted": 1}
