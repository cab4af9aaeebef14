"""HMA's hasher: ``/h/hash`` hashes a photo or a video fetched from a URL (GET) or uploaded
(POST, one file in a multipart field named for its content type, ``photo`` or ``video``)
and answers HMA's signal types and values: ``{"pdq": "..."}``.

URLs are fetched by ``amber.fetch`` (http and https only, never a private address unless
the server allows it, at most ``HmaSettings.max_fetch_bytes``); the media intake here is
shared with the matcher's and the curator's routes that take content.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from amber.api.deps import EngineDep, upload_name
from amber.api.hma import errors, settings
from amber.api.hma.access import Hasher
from amber.engine import Engine
from amber.errors import UserError
from amber.fetch import fetch
from amber.hma import ContentType, content_type, content_type_of, hashes_json, signal_types_for
from amber.lookup import hash_media

router = APIRouter(prefix="/h", tags=["hma"])

#: The ``requestBody`` of a route taking one file (HMA's multipart field names).
UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "description": "One file, in the field named for its content type",
                    "properties": {
                        "photo": {"type": "string", "format": "binary"},
                        "video": {"type": "string", "format": "binary"},
                    },
                }
            }
        }
    }
}


@dataclass(frozen=True, slots=True)
class Media:
    """One photo or video to hash: its bytes, a name for messages, what HMA calls its kind
    and where it came from (the URL, or the upload's file name)."""

    data: bytes
    name: str
    content: ContentType
    source: str


def from_url(request: Request, url: str, kind: str | None) -> Media:
    """Fetch ``url`` (``amber.fetch``, private addresses only with the server's
    ``--allow-private-urls``, HMA's host list and size limit); its kind is ``kind`` when
    given (``content_type=``), else what its ``Content-Type`` says. Raises ``UserError``
    for a kind HMA does not have, a ``FetchError`` when the fetch fails."""
    chosen = None if not kind else content_type(kind)
    served = settings(request)
    fetched = fetch(
        url,
        allow_private=bool(getattr(request.app.state, "allow_private_urls", False)),
        allowed_hosts=served.allowed_hosts,
        max_bytes=served.max_fetch_bytes,
    )
    return Media(fetched.data, url, chosen or content_type_of(fetched.content_type), url)


async def from_upload(request: Request) -> Media:
    """The one file of a multipart request, its field naming its kind (``photo``,
    ``video``). Raises ``UserError`` for none, more than one, or another field name."""
    form = await request.form()
    files = [(key, value) for key, value in form.multi_items() if isinstance(value, UploadFile)]
    if not files:
        raise UserError("Missing multipart/form-data file upload (a field named photo or video)")
    if len(files) > 1:
        raise UserError("Only one file allowed per request")
    field, upload = files[0]
    kind = content_type(field)
    name = upload_name(upload.filename, field=field, default=kind.value)
    return Media(await upload.read(), name, kind, name)


def hashes(engine: Engine, media: Media, types: str | None) -> dict[str, str]:
    """HMA's signal types and values of ``media`` (``types=``: some of its kind's).
    Raises ``UserError`` when none could be computed (a photo whose pixels cannot be
    read)."""
    chosen = signal_types_for(media.content, types)
    found = hashes_json(hash_media(engine, media.data, media.name).values, chosen)
    if not found:
        raise UserError(f"{media.name}: no {', '.join(chosen)} hash for this {media.content}")
    return found


@router.get("/hash", responses=errors(413, 500, 502, 504))
def hash_url(
    request: Request,
    engine: EngineDep,
    _: Hasher,
    url: str,
    content_type: str | None = None,
    types: str | None = None,
) -> dict[str, str]:
    """Fetch a photo or a video from ``url`` and give its hashes: ``{"pdq": "..."}`` for a
    photo, ``{"video_md5": "..."}`` for a video (``content_type=`` says which, else the
    URL's ``Content-Type``; ``types=`` picks some)."""
    return hashes(engine, from_url(request, url, content_type), types)


@router.post("/hash", openapi_extra=UPLOAD_BODY, responses=errors(413))
async def hash_upload(
    request: Request, engine: EngineDep, _: Hasher, types: str | None = None
) -> dict[str, str]:
    """Hash one uploaded file, sent in a multipart field named ``photo`` or ``video``."""
    media = await from_upload(request)
    return await run_in_threadpool(hashes, engine, media, types)
