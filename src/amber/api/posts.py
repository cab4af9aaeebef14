"""Posts: decide one (JSON with media under ``--media-root``, or media uploaded), register
a removal order, list stored decisions, read one with where its review stands, and
explain one.

A post id is scoped to its client, the name of the token that sent it: a token reads its
own posts' decisions and the local ones (``amber scan``'s, and every decision stored
before post ids were scoped), never another token's; an ``admin`` token reads every
client's and names the client (``?client=``) when several hold the post id."""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
import tempfile
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field, ValidationError

from amber.api.deps import Admin, EngineDep, Ingest, errors, upload_name
from amber.api.review import MAX_LIMIT
from amber.decisions import Decision
from amber.engine import Engine
from amber.errors import ExternalError, NotFoundError, PostError, UserError
from amber.evidence.acts import RemovalOrder
from amber.identity import DEFAULT_CLIENT
from amber.posts import Media, Post, parse_post
from amber.tokens import Scope, Token

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


#: The ``client`` query parameter of the reading routes.
ClientQuery = Annotated[
    str | None,
    Query(description="Whose post (admin: any client; others: their own or the local ones)"),
]


def _readable(token: Token, client: str | None) -> list[str] | None:
    """The clients whose decisions ``token`` may read (``None``: every one), narrowed to
    ``client`` when given."""
    if Scope.admin in token.scopes:
        return None if client is None else [client]
    mine = [token.name, DEFAULT_CLIENT]
    return mine if client is None else [c for c in mine if c == client]


def _stored(engine: Engine, token: Token, post_id: str, client: str | None) -> Decision:
    """The decision ``token`` may read for ``post_id``: its own client's first, then the
    local one. Raises ``NotFoundError`` (also for another client's post: its existence
    is not told), ``ConflictError`` for an admin who must name the client."""
    clients = _readable(token, client)
    if clients is None:
        return engine.decisions.get(post_id, client=client)
    for name in clients:
        try:
            return engine.decisions.get(post_id, client=name)
        except NotFoundError:
            continue
    raise NotFoundError(f"no decision for post {post_id!r}; submit it first")


def _submit(
    request: Request, engine: Engine, body: dict[str, Any], base: Path, token: Token
) -> dict[str, Any]:
    return _decide(request, engine, parse_post(body, base=base, source="request"), token)


def _decide(request: Request, engine: Engine, post: Post, token: Token) -> dict[str, Any]:
    submitted = engine.submit(post, client=token.name)
    if submitted.new:
        request.app.state.metrics.decided.labels(submitted.decision.verdict.value).inc()
    return submitted.to_json()


@router.post("/posts", responses=errors(400, 409, 413, 422))
def submit(post: PostIn, request: Request, engine: EngineDep, token: Ingest) -> dict[str, Any]:
    """Decide a post synchronously. The token's post id with the same content (text and
    media bytes) gets the same decision; with other content it is the post's next
    ``version``, decided anew."""
    body = post.model_dump(exclude_none=True)
    media_root: Path | None = request.app.state.media_root
    if body.get("media") and media_root is None:
        raise UserError(
            "media by path need 'amber serve --media-root DIR'; or upload "
            "the files to /v1/posts/upload"
        )
    root = (media_root or Path(".")).resolve()
    with tempfile.TemporaryDirectory(prefix="amber-media-") as folder:
        copies = [
            _copy_under_root(
                root, str(item.get("path", "")), Path(folder) / str(i), f"media[{i}].path"
            )
            for i, item in enumerate(body.get("media", []))
        ]
        parsed = parse_post(body, base=root, source="request")
        # What is decided and preserved is the copy taken under the root, whatever the path
        # names by now (a symlink swapped in after the check is never read).
        parsed = replace(
            parsed,
            media=tuple(
                Media(path=m.path, file=c) for m, c in zip(parsed.media, copies, strict=True)
            ),
        )
        return _decide(request, engine, parsed, token)


def _copy_under_root(root: Path, path: str, copy: Path, field: str) -> Path:
    """Copy the file ``path`` names under ``root`` to ``copy``, opening each part of the
    path with ``O_NOFOLLOW`` relative to the folder before it: neither ``..`` nor a
    symlink (checked or swapped in later) leads outside the root. Raises ``PostError``."""
    if "\x00" in path:
        raise PostError("contains a NUL character (\\u0000)", source="request", field=field)
    relative = Path(path)
    if relative.is_absolute():
        if not relative.is_relative_to(root):
            raise PostError("path leaves the media root", source="request", field=field)
        relative = relative.relative_to(root)
    parts = [p for p in relative.parts if p not in ("", ".")]
    if not parts or ".." in parts:
        raise PostError("path leaves the media root", source="request", field=field)
    nofollow = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    folder = os.open(root, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        for part in parts[:-1]:
            inner = os.open(part, nofollow | getattr(os, "O_DIRECTORY", 0), dir_fd=folder)
            os.close(folder)
            folder = inner
        handle = os.open(parts[-1], nofollow, dir_fd=folder)
    except OSError as exc:
        why = {
            errno.ELOOP: "is a symbolic link; media under the root must be plain files",
            errno.ENOTDIR: "goes through a symbolic link or a file; use a plain path",
            errno.ENOENT: "does not exist under the media root",
        }.get(exc.errno or 0, f"cannot be opened ({exc.strerror})")
        raise PostError(f"media file {path!r} {why}", source="request", field=field) from None
    finally:
        os.close(folder)
    with os.fdopen(handle, "rb") as source:
        if not stat.S_ISREG(os.fstat(source.fileno()).st_mode):
            raise PostError(f"media file {path!r} is not a file", source="request", field=field)
        copy.mkdir()
        target = copy / parts[-1]
        with target.open("wb") as out:
            shutil.copyfileobj(source, out)
    return target


@router.post("/posts/upload", responses=errors(400, 409, 413, 422))
def upload(
    post: Annotated[str, Form(description="the post JSON")],
    request: Request,
    engine: EngineDep,
    token: Ingest,
    media: Annotated[list[UploadFile] | None, File()] = None,
) -> dict[str, Any]:
    """Decide a post whose media come in the request (multipart/form-data)."""
    try:
        body = json.loads(post)
    except json.JSONDecodeError as exc:
        raise PostError(f"invalid JSON: {exc.msg}", source="request", field="post") from None
    except RecursionError:
        raise PostError("JSON nested too deeply to read", source="request", field="post") from None
    if not isinstance(body, dict):
        raise PostError("expected a JSON object", source="request", field="post")
    with tempfile.TemporaryDirectory(prefix="amber-upload-") as folder:
        names = []
        for i, upload_file in enumerate(media or []):
            name = f"{i}-{upload_name(upload_file.filename, field=f'media[{i}]', default='media')}"
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
        return _submit(request, engine, body, Path(folder), token)


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


@router.post(
    "/posts/{post_id}/removal-order",
    openapi_extra=_ORDER_BODY,
    responses=errors(400, 404, 409, 413, 422),
)
async def removal_order(
    post_id: str, request: Request, engine: EngineDep, token: Admin, client: ClientQuery = None
) -> dict[str, Any]:
    """Register a removal order: the post goes to review with a one-hour deadline, and
    the order (its ``reference``, ``authority``, ``legal_basis``, the time received and
    the token that sent it) becomes a custody event of the post's evidence. A post
    amber did not keep (it allowed it) is preserved from its media sent with the order
    (multipart/form-data: the order as the field ``order``, the files as ``media`` in
    the post's order): 400 when they are needed and missing, 409 when a file's sha256
    is not the one amber decided on; nothing is stored then. The order is for the
    newest version of ``client``'s post (``client`` may be left out when one client
    holds the post id; 409 when several do)."""
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

    def register() -> dict[str, Any]:
        with engine.write_lock:  # the vault takes one writer
            done = engine.acts.removal_order(
                post_id, order, sent_by=token.name, media=media, client=client
            )
        return done.to_json()

    return await run_in_threadpool(register)


def _utc(moment: datetime | None) -> datetime | None:
    """A time without a zone is taken as UTC, as ``amber decisions list`` takes it."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


@router.get("/decisions", responses=errors(400, 409, 422))
def decisions(
    engine: EngineDep,
    token: Ingest,
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
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="At most this many")] = 100,
    client: ClientQuery = None,
) -> list[dict[str, Any]]:
    """Stored decisions, the most recently scanned first, as ``amber decisions list
    --format jsonl`` prints them (each the whole stored decision)."""
    found = engine.decisions.find(
        verdict=verdict,
        since=_utc(since),
        until=_utc(until),
        author=author,
        bank=bank,
        clients=_readable(token, client),
        limit=limit,
    )
    return [d.to_record() for d in engine.with_evidence_all(found)]


@router.get("/decisions/{post_id}", responses=errors(400, 404, 409, 422))
def decision(
    post_id: str, engine: EngineDep, token: Ingest, client: ClientQuery = None
) -> dict[str, Any]:
    """A stored decision, with where its human review stands (``review``: its state and,
    once decided, the reviewer's outcome, action, reason and time) so the platform can act."""
    stored = engine.with_evidence(_stored(engine, token, post_id, client))
    review = engine.review.outcome(post_id, client=stored.client)
    return {
        **stored.to_answer(),
        "review": {
            "state": stored.review_state,
            **({} if review is None else review.to_json()),
        },
    }


@router.get("/decisions/{post_id}/explain", responses=errors(400, 404, 409, 422))
def explain(
    post_id: str, engine: EngineDep, token: Ingest, client: ClientQuery = None
) -> dict[str, Any]:
    """Why a stored post got its verdict (as ``amber explain POST_ID --format json``):
    its signals, the nearest bank entries and why each did or did not match, and the
    rules that fired; re-derived from the stored post when its media can still be read."""
    stored = _stored(engine, token, post_id, client)
    return engine.explain(post_id, client=stored.client).to_json()
