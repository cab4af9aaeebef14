"""Posts: decide one (JSON with media under ``--media-root``, or media uploaded), register
a removal order, list stored decisions, read one with where its review stands, and
explain one."""

from __future__ import annotations

import json
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field, ValidationError

from amber.api.deps import Admin, EngineDep, Ingest
from amber.engine import Engine
from amber.errors import ExternalError, PostError, UserError
from amber.evidence.acts import RemovalOrder
from amber.posts import parse_post

router = APIRouter(prefix="/v1", tags=["posts"])


class UploadNotKept(ExternalError):
    """An upload's media could not be written to disk to be decided (HTTP 503)."""

    http_status = 503


class PostIn(BaseModel):
    """A post per the input contract; media paths resolve under ``--media-root``."""

    id: str
    author: str | None = None
    created_at: str | None = None
    text: str | None = None
    poll: dict[str, Any] | None = None
    media: list[dict[str, Any]] = Field(default_factory=list)
    reply_to: str | None = None


def _submit(request: Request, engine: Engine, body: dict[str, Any], base: Path) -> dict[str, Any]:
    submitted = engine.submit(parse_post(body, base=base, source="request"))
    if submitted.new:
        request.app.state.metrics.decided.labels(submitted.decision.verdict.value).inc()
    return submitted.to_json()


@router.post("/posts")
def submit(post: PostIn, request: Request, engine: EngineDep, _: Ingest) -> dict[str, Any]:
    """Decide a post synchronously; the same post id always gets the same decision."""
    body = post.model_dump(exclude_none=True)
    media_root: Path | None = request.app.state.media_root
    if body.get("media") and media_root is None:
        raise UserError(
            "media by path need 'amber serve --media-root DIR'; or upload "
            "the files to /v1/posts/upload"
        )
    root = (media_root or Path(".")).resolve()
    for i, item in enumerate(body.get("media", [])):
        target = (root / str(item.get("path", ""))).resolve()
        if not target.is_relative_to(root):
            raise PostError(
                "path leaves the media root", source="request", field=f"media[{i}].path"
            )
    return _submit(request, engine, body, root)


@router.post("/posts/upload")
def upload(
    post: Annotated[str, Form(description="the post JSON")],
    request: Request,
    engine: EngineDep,
    _: Ingest,
    media: Annotated[list[UploadFile] | None, File()] = None,
) -> dict[str, Any]:
    """Decide a post whose media come in the request (multipart/form-data)."""
    try:
        body = json.loads(post)
    except json.JSONDecodeError as exc:
        raise PostError(f"invalid JSON: {exc.msg}", source="request", field="post") from None
    if not isinstance(body, dict):
        raise PostError("expected a JSON object", source="request", field="post")
    with tempfile.TemporaryDirectory(prefix="amber-upload-") as folder:
        names = []
        for i, upload_file in enumerate(media or []):
            name = f"{i}-{Path(upload_file.filename or 'media').name}"
            try:
                with (Path(folder) / name).open("wb") as out:
                    shutil.copyfileobj(upload_file.file, out)
            except OSError as exc:  # a full disk: say so, and that nothing was stored
                raise UploadNotKept(
                    f"media[{i}] of the upload could not be kept on disk to decide it "
                    f"({exc.strerror or exc}); nothing was stored: send the post again"
                ) from exc
            names.append({"path": name})
        body["media"] = names
        return _submit(request, engine, body, Path(folder))


class RemovalOrderIn(BaseModel):
    """A removal order as relayed by the platform; every field is optional."""

    reference: str | None = Field(None, description="the order's reference")
    authority: str | None = Field(None, description="the authority that issued it")
    legal_basis: str | None = Field(None, description="e.g. Regulation (EU) 2021/784, Art. 3")


_ORDER_SCHEMA = RemovalOrderIn.model_json_schema()
_ORDER_BODY: dict[str, Any] = {
    "requestBody": {
        "required": False,
        "content": {
            "application/json": {"schema": _ORDER_SCHEMA},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "order": {"type": "string", "description": "the order as JSON"},
                        "media": {
                            "type": "array",
                            "items": {"type": "string", "format": "binary"},
                            "description": "the post's media files, in the post's order",
                        },
                    },
                }
            },
        },
    }
}


def _order(data: object, field: str) -> RemovalOrder:
    if data is None or data == b"" or data == "":
        return RemovalOrder()
    try:
        parsed = RemovalOrderIn.model_validate_json(data)  # type: ignore[arg-type]
    except ValidationError as exc:
        problem = exc.errors()[0]
        where = ".".join(str(p) for p in problem["loc"]) or field
        raise UserError(
            f"the removal order ({field}) is not valid at {where!r}: {problem['msg']}"
        ) from None
    return RemovalOrder(parsed.reference, parsed.authority, parsed.legal_basis)


@router.post("/posts/{post_id}/removal-order", openapi_extra=_ORDER_BODY)
async def removal_order(
    post_id: str, request: Request, engine: EngineDep, token: Admin
) -> dict[str, str]:
    """Register a removal order: the post goes to review with a one-hour deadline, and
    the order (its ``reference``, ``authority``, ``legal_basis``, the time received and
    the token that sent it) becomes a custody event of the post's evidence. A post
    amber did not keep (it allowed it) is preserved from its media sent with the order
    (multipart/form-data: the order as the field ``order``, the files as ``media`` in
    the post's order): 400 when they are needed and missing, 409 when a file's sha256
    is not the one amber decided on; nothing is stored then."""
    media: list[bytes] | None = None
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        form = await request.form()
        try:
            raw = form.get("order")
            order = _order(raw if isinstance(raw, str) else None, "field 'order'")
            media = []
            for item in form.getlist("media"):
                if isinstance(item, str):
                    raise UserError("field 'media' must be files, not text")
                media.append(await item.read())
        finally:
            await form.close()
    else:
        order = _order(await request.body(), "the JSON body")

    def register() -> dict[str, str]:
        with engine.write_lock:  # the vault takes one writer
            done = engine.acts.removal_order(post_id, order, sent_by=token.name, media=media)
        return done.to_json()

    return await run_in_threadpool(register)


def _utc(moment: datetime | None) -> datetime | None:
    """A time without a zone is taken as UTC, as ``amber decisions list`` takes it."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


@router.get("/decisions")
def decisions(
    engine: EngineDep,
    _: Ingest,
    verdict: Annotated[
        str | None, Query(description="Only this verdict: allow, review, restrict or remove")
    ] = None,
    since: Annotated[
        datetime | None, Query(description="Scanned at or after this ISO time (UTC if no zone)")
    ] = None,
    until: Annotated[
        datetime | None, Query(description="Scanned before this ISO time (UTC if no zone)")
    ] = None,
    author: Annotated[str | None, Query(description="Only this author's posts")] = None,
    bank: Annotated[
        str | None, Query(description="Only decisions with a reason naming this bank")
    ] = None,
    limit: Annotated[int, Query(ge=1, description="At most this many")] = 100,
) -> list[dict[str, Any]]:
    """Stored decisions, the most recently scanned first, as ``amber decisions list
    --format jsonl`` prints them (each the whole stored decision)."""
    found = engine.decisions.find(
        verdict=verdict,
        since=_utc(since),
        until=_utc(until),
        author=author,
        bank=bank,
        limit=limit,
    )
    return [d.to_record() for d in engine.with_evidence_all(found)]


@router.get("/decisions/{post_id}")
def decision(post_id: str, engine: EngineDep, _: Ingest) -> dict[str, Any]:
    """A stored decision, with where its human review stands (``review``: its state and,
    once decided, the reviewer's outcome, action, reason and time) so the platform can act."""
    stored = engine.with_evidence(engine.decisions.get(post_id))
    review = engine.review.outcome(post_id)
    return {
        **stored.to_json(),
        "review": {
            "state": engine.review.item(post_id).state,
            **({} if review is None else review.to_json()),
        },
    }


@router.get("/decisions/{post_id}/explain")
def explain(post_id: str, engine: EngineDep, _: Ingest) -> dict[str, Any]:
    """Why a stored post got its verdict (as ``amber explain POST_ID --format json``):
    its signals, the nearest bank entries and why each did or did not match, and the
    rules that fired; re-derived from the stored post when its media can still be read."""
    return engine.explain(post_id).to_json()
