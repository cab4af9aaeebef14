"""Posts: decide one (JSON with media under ``--media-root``, or media uploaded), register
a removal order, read a stored decision with where its review stands."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, UploadFile
from pydantic import BaseModel, Field

from amber.api.deps import Admin, EngineDep, Ingest
from amber.engine import Engine
from amber.errors import PostError, UserError
from amber.posts import parse_post

router = APIRouter(prefix="/v1", tags=["posts"])


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
            with (Path(folder) / name).open("wb") as out:
                shutil.copyfileobj(upload_file.file, out)
            names.append({"path": name})
        body["media"] = names
        return _submit(request, engine, body, Path(folder))


@router.post("/posts/{post_id}/removal-order")
def removal_order(post_id: str, engine: EngineDep, _: Admin) -> dict[str, str]:
    """Register a removal order: the post goes to review with a one-hour deadline."""
    deadline = engine.decisions.removal_order(post_id, received_at=engine.clock())
    return {"post_id": post_id, "deadline": deadline.isoformat()}


@router.get("/decisions/{post_id}")
def decision(post_id: str, engine: EngineDep, _: Ingest) -> dict[str, Any]:
    """A stored decision, with where its human review stands (``review``: its state and,
    once decided, the reviewer's outcome, action, reason and time) so the platform can act."""
    stored = engine.decisions.get(post_id)
    review = engine.review.outcome(post_id)
    return {
        **stored.to_json(),
        "review": {
            "state": engine.review.item(post_id).state,
            **({} if review is None else review.to_json()),
        },
    }
