"""Lookups without a decision (ingest): hash media (an upload, or a URL amber fetches),
look a hash or a file up in the banks, compare two hashes. Nothing is stored, kept as
evidence or queued; the work is ``amber.lookup``'s and ``amber.fetch``'s.

A URL is fetched under ``amber.fetch``'s rules: private, loopback and link-local addresses
are refused unless the server was started with ``--allow-private-urls``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field, ValidationError
from starlette.datastructures import UploadFile

from amber.api.deps import EngineDep, Error, Ingest, errors, upload_name
from amber.errors import UserError
from amber.fetch import fetch
from amber.lookup import compare, hash_media, lookup_hash, lookup_media

router = APIRouter(prefix="/v1", tags=["lookup"])

#: What the routes that may fetch a URL answer besides ``errors``'s statuses.
_FETCH_ERRORS: dict[int | str, dict[str, Any]] = {
    413: {
        "model": Error,
        "description": "Request body over the server's --max-body, or the URL's content "
        "over the media size limit (declared or as sent)",
    },
    502: {
        "model": Error,
        "description": "The URL could not be fetched: its server was not reached, "
        "answered an error, broke off or redirected more than 5 times",
    },
    504: {"model": Error, "description": "Fetching the URL took longer than 30 s"},
}

#: The body of the routes that take media: a file upload, or JSON naming a URL.
_MEDIA_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": "an image or a video",
                        }
                    },
                    "required": ["file"],
                }
            },
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "url": {
                            "type": "string",
                            "description": "an http(s) URL of an image or a video",
                        }
                    },
                    "required": ["url"],
                }
            },
        },
    }
}

BankQuery = Annotated[
    list[str] | None,
    Query(description="Look up in this bank only (repeatable; default: every bank)"),
]


class UrlIn(BaseModel):
    """Media to fetch."""

    url: str


class CompareIn(BaseModel):
    """Two hashes of one signal type."""

    signal_type: str = "pdq"
    signals: list[str] = Field(min_length=2, max_length=2)


def _fetching(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``errors(*statuses)`` and what a route that fetches a URL answers, by status."""
    merged = {**errors(*statuses), **_FETCH_ERRORS}
    return dict(sorted(merged.items(), key=lambda item: int(item[0])))


@router.post("/hash", openapi_extra=_MEDIA_BODY, responses=_fetching(400))
async def hash_route(request: Request, engine: EngineDep, _: Ingest) -> dict[str, Any]:
    """The hashes of an image or a video (sha256, md5, pdq with its quality, a video's
    vpdq frames), uploaded as the multipart field ``file`` or fetched from JSON
    ``{"url": ...}``. Nothing is stored."""
    data, name = await _media(request)
    hashes = await run_in_threadpool(hash_media, engine, data, name)
    return hashes.to_json()


@router.get("/lookup", responses=errors(400, 404, 422))
def lookup_route(
    engine: EngineDep,
    _: Ingest,
    signal: Annotated[str, Query(description="The hash (pdq: 64 hex digits)")],
    signal_type: Annotated[str, Query(description="The hash's signal type")] = "pdq",
    bank: BankQuery = None,
    quality: Annotated[
        int | None,
        Query(ge=0, le=100, description="The hash's quality (default 100)"),
    ] = None,
) -> dict[str, Any]:
    """The bank entries a hash matches, with the thresholds and per-bank settings a
    post's media get. Nothing is stored, kept as evidence or queued."""
    return lookup_hash(engine, signal_type, signal, quality=quality, banks=bank).to_json()


@router.post(
    "/lookup",
    openapi_extra=_MEDIA_BODY,
    responses=_fetching(400, 404, 422),
)
async def lookup_media_route(
    request: Request, engine: EngineDep, _: Ingest, bank: BankQuery = None
) -> dict[str, Any]:
    """The hashes of an image or a video (the multipart field ``file``, or JSON
    ``{"url": ...}``) and the bank entries it matches, hashed and matched as a post's
    media would be. Nothing is stored, kept as evidence or queued."""
    data, name = await _media(request)
    found = await run_in_threadpool(lookup_media, engine, data, name, banks=bank)
    return found.to_json()


@router.post("/compare", responses=errors(400, 413, 422))
def compare_route(body: CompareIn, engine: EngineDep, _: Ingest) -> dict[str, Any]:
    """The distance between two hashes of one signal type, and whether they match under
    the type's default threshold (pdq: 31 bits; a bank may set its own)."""
    first, second = body.signals
    return compare(engine, body.signal_type, first, second).to_json()


async def _media(request: Request) -> tuple[bytes, str]:
    """The media of a request and its name: the multipart field ``file``, or the content
    of the URL that JSON ``{"url": ...}`` names. Raises ``UserError`` for neither."""
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        form = await request.form()
        try:
            item = form.get("file")
            if not isinstance(item, UploadFile):
                raise UserError(
                    "field 'file' must be the media file"
                    if item is not None
                    else "no field 'file': upload the media as the multipart field 'file', "
                    'or send JSON {"url": ...}'
                )
            name = upload_name(item.filename, field="file", default="upload")
            return await item.read(), name
        finally:
            await form.close()
    try:
        url = UrlIn.model_validate_json(await request.body()).url
    except ValidationError as exc:
        problem = exc.errors()[0]
        where = ".".join(str(p) for p in problem["loc"]) or "the body"
        raise UserError(
            f"expected the multipart field 'file' or JSON {{\"url\": ...}}; {where}: "
            f"{problem['msg']}"
        ) from None
    allow_private = bool(request.app.state.allow_private_urls)  # amber serve --allow-private-urls
    fetched = await run_in_threadpool(fetch, url, allow_private=allow_private)
    return fetched.data, url
