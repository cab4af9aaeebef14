"""HMA's matcher: look a hash, a URL or an uploaded file up in the banks, compare two
hashes, and say what the indexes hold.

Matches are amber's (each bank's threshold, minimum quality, disabled entries and
``enabled_ratio`` count), in HMA's shapes: ``{"BANK": [{"bank_content_id": 16,
"distance": "0"}]}``, the distance as text. ``banks=`` (comma-separated) keeps the matches
in those banks only; a bank that does not exist matches nothing. HMA's ``seed`` and
``bypass_coinflip`` are taken and have no effect: amber lets the same share of a bank's
entries match every time rather than drawing a random number per request.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from amber.api.deps import EngineDep
from amber.api.hma import HmaRole, errors, settings
from amber.api.hma.access import Matcher, require_role
from amber.api.hma.hashing import UPLOAD_BODY, Media, from_upload, from_url
from amber.engine import Engine
from amber.errors import UserError
from amber.hma import (
    compare_json,
    index_status,
    lookup_content,
    lookup_signal,
    matches_json,
    raw_matches_json,
    signal_types_for,
)

router = APIRouter(prefix="/m", tags=["hma"])

#: The ``requestBody`` of ``/m/compare``.
COMPARE_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "description": "Each HMA signal type and the two hashes to compare",
                    "additionalProperties": {
                        "type": "array",
                        "items": {"type": "string"},
                        "minItems": 2,
                        "maxItems": 2,
                    },
                },
                "example": {"pdq": ["facd8bcb2a49bcebdec1985298d5fe84", "..."]},
            }
        },
    }
}


def flag(value: str | None, name: str, default: bool = False) -> bool:
    """A true-or-false query parameter as HMA reads one (``true``/``false``, ``1``/``0``,
    any case). Raises ``UserError``."""
    if value is None:
        return default
    text = value.strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise UserError(f"{name}={value!r} is not a boolean; give true or false")


def bank_filter(banks: str | None) -> set[str] | None:
    """``banks=A,B`` as a set of names; ``None`` when not given."""
    return {b.strip() for b in banks.split(",") if b.strip()} if banks else None


def required(value: str | None, name: str) -> str:
    if not value:
        raise UserError(f"{name} is required")
    return value


@router.get("/raw_lookup", responses=errors())
def raw_lookup(
    engine: EngineDep,
    _: Matcher,
    signal: str | None = None,
    signal_type: str | None = None,
    banks: str | None = None,
    include_distance: str | None = None,
) -> dict[str, list[Any]]:
    """The bank entries a hash matches: ``{"matches": [16, ...]}`` (entry ids), or with
    ``include_distance=true`` ``{"matches": [{"bank_content_id": 16, "distance": "0"}]}``."""
    found = lookup_signal(
        engine,
        required(signal_type, "signal_type"),
        required(signal, "signal"),
        banks=bank_filter(banks),
    )
    distance = flag(include_distance, "include_distance")
    return {"matches": raw_matches_json(found, distance=distance)}


@router.get("/lookup", responses=errors(413, 500, 502, 504))
def lookup(
    request: Request,
    engine: EngineDep,
    _: Matcher,
    signal: str | None = None,
    signal_type: str | None = None,
    url: str | None = None,
    content_type: str | None = None,
    types: str | None = None,
    banks: str | None = None,
    seed: str | None = None,
    bypass_coinflip: str | None = None,
) -> dict[str, Any]:
    """The banks a hash matches (``signal`` and ``signal_type``): ``{"BANK":
    [{"bank_content_id": 16, "distance": "0"}]}``; or, for a URL (``url``, which needs the
    hasher role), the same for each signal type of its content, ``{"pdq": {...}}`` (just
    the one with ``signal_type``)."""
    served = settings(request)
    wanted = bank_filter(banks)
    if url:
        require_role(served, HmaRole.hasher, "Hashing")
        media = from_url(request, url, content_type)
        by_type = _lookup_media(engine, media, types, wanted)
        return by_type.get(signal_type, {}) if signal_type else by_type
    if not signal or not signal_type:
        raise UserError("Either url or both signal and signal_type are required")
    return matches_json(lookup_signal(engine, signal_type, signal, banks=wanted))


@router.post("/lookup", openapi_extra=UPLOAD_BODY, responses=errors(413))
async def lookup_upload(
    request: Request,
    engine: EngineDep,
    _: Matcher,
    types: str | None = None,
    banks: str | None = None,
    seed: str | None = None,
    bypass_coinflip: str | None = None,
) -> dict[str, Any]:
    """Look one uploaded file up (a multipart field named ``photo`` or ``video``; needs
    the hasher role): ``{"pdq": {"BANK": [{"bank_content_id": 16, "distance": "4"}]}}``."""
    require_role(settings(request), HmaRole.hasher, "Hashing")
    media = await from_upload(request)
    return await run_in_threadpool(_lookup_media, engine, media, types, bank_filter(banks))


def _lookup_media(
    engine: Engine, media: Media, types: str | None, banks: set[str] | None
) -> dict[str, Any]:
    chosen = signal_types_for(media.content, types)
    found = lookup_content(engine, media.data, media.name, media.content, types=chosen, banks=banks)
    return {name: matches_json(matches) for name, matches in found.items()}


@router.get("/index/status", responses=errors())
def index(engine: EngineDep, _: Matcher, signal_type: str | None = None) -> dict[str, Any]:
    """What amber holds of each HMA signal type (``signal_type=``: one):
    ``{"pdq": {"present": true, "built_to": 1700146048, "size": 16}}``; ``size`` counts the
    entries with a value of it, ``built_to`` is when the newest was banked. amber's
    indexes are always built: each lookup brings them up to date first."""
    chosen = None if signal_type is None else [signal_type]
    return {name: status.to_json() for name, status in index_status(engine, chosen).items()}


@router.post("/compare", openapi_extra=COMPARE_BODY, responses=errors(413))
async def compare(request: Request, engine: EngineDep, _: Matcher) -> dict[str, Any]:
    """Compare two hashes of each signal type given: ``{"pdq": [a, b]}`` gives ``{"pdq":
    [true, {"distance": 9}]}`` (a match under the type's default threshold, PDQ's 31)."""
    try:
        body = await request.json()
    except ValueError:
        raise UserError("the request body is not JSON") from None
    return compare_json(engine, body)
