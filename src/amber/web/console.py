"""The reviewer console: ``/console``, server-rendered pages over the review queue.

Reviewers sign in with a token holding the ``review`` (or ``admin``) scope; the console
keeps a signed session cookie (see ``amber.web.sessions``). Every form that changes state
carries the session's CSRF token. Pages parse input, make one library call (the review
queue, the vault, the console's sessions) and render a template.

Wellness by default: media arrive blurred and greyscale, are revealed one at a time on
click and blurred again when the pointer or focus leaves or the tab is hidden. Every
fetch and every reveal of evidence media is a ``viewed`` event in the custody log.
"""

from __future__ import annotations

import hmac
import io
import json
import threading
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from PIL import Image

from amber.engine import Engine
from amber.errors import AmberError, AuthenticationError, ConflictError, NotFoundError
from amber.review.queue import LockLimitError, QueueItem, time_left
from amber.tokens import Scope
from amber.web.sessions import ConsoleStore, Session, Settings, console_dir

COOKIE = "amber_console"
HERE = Path(__file__).parent
STATIC = {"console.css": "text/css", "console.js": "text/javascript"}
CHOICES = {  # form value -> (outcome, action)
    "remove": ("confirm", "remove"),
    "keep_restricted": ("confirm", "keep_restricted"),
    "reject": ("reject", None),
    "escalate": ("escalate", None),
}
#: Image types that may hold an animation (which the console never plays by itself).
ANIMATED = ("image/gif", "image/webp")
#: Longest side of a video's poster frame (pixels).
POSTER_SIDE = 480
#: How many of the author's decisions the account panel lists.
ACCOUNT_POSTS = 10

templates = Jinja2Templates(directory=HERE / "templates")


def segment(value: object) -> str:
    """``value`` as one URL path segment: every ``/``, ``.``-run and ``?`` escaped, so a post
    id such as ``../items/victim`` cannot point a link or a form at another item."""
    return quote(str(value), safe="")


templates.env.filters["segment"] = segment
_opening = threading.Lock()
router = APIRouter(prefix="/console", include_in_schema=False)


# -- wiring --------------------------------------------------------------------------------


def _engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def _store(request: Request) -> ConsoleStore:
    """The console store of this app, opened on first use."""
    state = request.app.state
    with _opening:
        store: ConsoleStore | None = getattr(state, "console", None)
        if store is None:
            engine = _engine(request)
            url = engine.db.url.render_as_string(hide_password=False)
            store = ConsoleStore(console_dir(url, engine.vault_path), clock=engine.clock)
            state.console = store
    return store


def _same_origin(request: Request) -> None:
    origin = request.headers.get("origin")
    if origin is not None and origin != f"{request.url.scheme}://{request.url.netloc}":
        raise HTTPException(403, "cross-origin form posts are refused")


def signed_in(request: Request) -> Session:
    """The signed-in reviewer. Pages redirect to sign-in; other requests get 401 or 403."""
    try:
        session = _store(request).session(request.cookies.get(COOKIE))
        live = {t.name for t in _engine(request).tokens.all() if t.revoked_at is None}
        if session.reviewer not in live:
            raise AuthenticationError(f"token {session.reviewer!r} was revoked; sign in again")
    except AuthenticationError as exc:
        if request.method == "GET" and not request.url.path.startswith("/console/media/"):
            target = quote(request.url.path, safe="/")
            raise HTTPException(
                303, headers={"location": f"/console/sign-in?next={target}"}
            ) from None
        raise HTTPException(401, exc.message) from None
    if not session.scopes & {Scope.review, Scope.admin}:
        raise HTTPException(403, f"token {session.reviewer!r} lacks the 'review' scope")
    return session


Reviewer = Annotated[Session, Depends(signed_in)]
Csrf = Annotated[str, Form()]


def _check_csrf(request: Request, session: Session, csrf: str) -> None:
    _same_origin(request)
    if not hmac.compare_digest(csrf.encode(), session.csrf.encode()):
        raise HTTPException(403, "the form's CSRF token is missing or stale; reload the page")


def _page(
    request: Request,
    name: str,
    session: Session | None,
    status: int = 200,
    **context: Any,
) -> HTMLResponse:
    if session is not None:
        context["session"] = session
        context["seen_today"] = _store(request).seen_today(session.reviewer)
    return templates.TemplateResponse(request, name, context, status_code=status)


# -- time ----------------------------------------------------------------------------------


def _row(item: QueueItem, now: datetime) -> dict[str, Any]:
    left, overdue = time_left(item.deadline, now)
    first = item.reasons[0] if item.reasons else {}
    return {
        "item": item,
        "left": left,
        "overdue": overdue,
        "first_reason": first.get("detail") or first.get("label") or first.get("rule") or "",
    }


# -- sign in and out -----------------------------------------------------------------------


@router.get("", response_class=RedirectResponse)
def home() -> RedirectResponse:
    return RedirectResponse("/console/queue", status_code=303)


@router.get("/sign-in", response_class=HTMLResponse)
def sign_in_form(request: Request, next: str = "/console/queue") -> HTMLResponse:
    return _page(request, "sign_in.html", None, next=_safe_next(next), error=None)


@router.post("/sign-in", response_model=None)
def sign_in(
    request: Request,
    token: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/console/queue",
) -> Response:
    _same_origin(request)
    try:
        found = _engine(request).tokens.authenticate(token.strip())
    except AuthenticationError as exc:
        return _page(request, "sign_in.html", None, 401, next=_safe_next(next), error=exc.message)
    if not found.scopes & {Scope.review, Scope.admin}:
        error = f"token {found.name!r} lacks the 'review' scope the console needs"
        return _page(request, "sign_in.html", None, 403, next=_safe_next(next), error=error)
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(
        COOKIE,
        _store(request).sign_in(found),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/console",
    )
    return response


@router.post("/sign-out")
def sign_out(request: Request, session: Reviewer, csrf: Csrf = "") -> RedirectResponse:
    _check_csrf(request, session, csrf)
    _store(request).sign_out(request.cookies.get(COOKIE))
    response = RedirectResponse("/console/sign-in", status_code=303)
    response.delete_cookie(COOKIE, path="/console")
    return response


def _safe_next(target: str) -> str:
    ok = (
        target.startswith("/console/")
        and "\\" not in target
        and not {".", ".."} & set(target.split("?")[0].split("/"))
    )
    return target if ok else "/console/queue"


# -- queue and item ------------------------------------------------------------------------


@router.get("/queue", response_class=HTMLResponse)
def queue(request: Request, session: Reviewer, empty: int = 0) -> HTMLResponse:
    engine = _engine(request)
    now = engine.clock()
    rows = [_row(i, now) for i in engine.review.items(limit=200)]
    return _page(request, "queue.html", session, rows=rows, empty=bool(empty))


@router.post("/next", response_model=None)
def next_item(request: Request, session: Reviewer, csrf: Csrf = "") -> Response:
    _check_csrf(request, session, csrf)
    return _to_next(request, session)


def _to_next(request: Request, session: Session) -> Response:
    try:
        item = _engine(request).review.next(session.reviewer)
    except LockLimitError as exc:
        return _page(request, "error.html", session, exc.http_status, message=exc.message)
    target = "/console/queue?empty=1" if item is None else _item_url(item.post_id)
    return RedirectResponse(target, status_code=303)


def _item_url(post_id: str) -> str:
    return "/console/items/" + segment(post_id)


@router.get("/items/{post_id:path}", response_class=HTMLResponse)
def item_page(request: Request, post_id: str, session: Reviewer) -> HTMLResponse:
    engine = _engine(request)
    try:
        item = engine.review.item(post_id)
    except NotFoundError as exc:
        return _page(request, "error.html", session, 404, message=exc.message)
    holder = error = None
    if item.state == "pending":
        try:
            engine.review.lock(post_id, session.reviewer)
        except LockLimitError as exc:  # the page shows the item, without the decision form
            error = exc.message
        except ConflictError:
            holder = engine.review.item(post_id).locked_by
    return _item(request, session, post_id, holder=holder, error=error, capped=error is not None)


def _item(
    request: Request,
    session: Session,
    post_id: str,
    *,
    holder: str | None = None,
    error: str | None = None,
    status: int = 200,
    capped: bool = False,
) -> HTMLResponse:
    engine = _engine(request)
    item = engine.review.item(post_id)
    now = engine.clock()
    post = json.loads(item.post)
    poll = post.get("poll") if isinstance(post.get("poll"), dict) else None
    return _page(
        request,
        "item.html",
        session,
        status,
        row=_row(item, now),
        item=item,
        post=post,
        poll=poll,
        matches=[r for r in item.reasons if r.get("bank")],
        media=_media(engine, post_id, item.reasons),
        related=engine.decisions.related(post_id),
        followup=_followup(engine, item),
        account=_account(engine, item),
        incident=_incident(engine, item),
        holder=holder,
        capped=capped,
        banks=engine.banks.all(),
        settings=_store(request).settings(session.reviewer),
        error=error,
        media_url=lambda position: f"{_item_url(post_id).replace('/items/', '/media/')}/{position}",
    )


def _incident(engine: Engine, item: QueueItem) -> Any:
    """The incident panel of an item: the incident its post is in, with its members, why
    each was linked, its escalation and timeline (``None``: in no incident)."""
    found = engine.incidents.of_post(item.post_id, client=item.client)
    return None if found is None else engine.incidents.get(found)


def _account(engine: Engine, item: QueueItem) -> Any:
    """The account panel of an item: its author's record and newest decisions (``None``
    for a post without an author)."""
    if item.author is None:
        return None
    try:
        return engine.accounts.show(item.author, client=item.client, limit=ACCOUNT_POSTS)
    except NotFoundError:  # pragma: no cover - the item's own decision is the author's
        return None


def _media(
    engine: Engine, post_id: str, reasons: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """The item's preserved media: position, path as written, whether it is a video, and
    for a video the stretches its matches cover (``timeline``)."""
    try:
        vault = engine.open_vault()
        held = vault.item(post_id)
    except AmberError:
        return []
    out = []
    for m in held.objects.get("media", []):
        path = str(m["path"])
        entry: dict[str, Any] = {"position": int(m["position"]), "path": path, "video": False}
        try:
            with vault.object_path(str(m["sha256"])).open("rb") as file:
                head = file.read(64)
        except OSError:
            head = b""
        kind = sniff(head)
        if kind.startswith("video/") or (kind in ANIMATED and _moving(vault, m)):
            entry["video"] = kind.startswith("video/")
            entry["animation"] = not entry["video"]  # shown as its poster frame, never playing
            spans = _matched_spans(path, reasons)
            seconds = _seconds(vault.read(str(m["sha256"]))) if spans else None
            entry["timeline"] = _timeline(spans, seconds)
        out.append(entry)
    return out


def _moving(vault: Any, media: Mapping[str, Any]) -> bool:
    """Is this preserved GIF or WebP an animation (more than one frame)?"""
    from amber.video import is_moving

    return is_moving(vault.read(str(media["sha256"])))


def _matched_spans(path: str, reasons: Sequence[Mapping[str, Any]]) -> list[tuple[float, float]]:
    """The times of ``path``'s frames that matched a bank, from its reasons."""
    spans: list[tuple[float, float]] = []
    for r in reasons:
        video = r.get("video")
        if r.get("media") != path or not isinstance(video, Mapping):
            continue
        segments = video.get("segments") or []
        if segments:
            spans.extend((float(g["post"][0]), float(g["post"][1])) for g in segments)
        elif "post" in video:
            spans.append((float(video["post"][0]), float(video["post"][1])))
    return spans


def _seconds(data: bytes) -> float | None:
    """A video's declared duration, from its header; ``None`` when it cannot be read."""
    from amber.video import decode_video

    try:
        decoded = decode_video(data)
    except AmberError:
        return None
    decoded.close()
    return decoded.seconds


def _timeline(spans: list[tuple[float, float]], seconds: float | None) -> list[dict[str, Any]]:
    """Marks for a timeline under the video: each matched stretch as a share (percent) of
    the video's length (at least 1 %, so that one frame shows)."""
    if not spans:
        return []
    length = max(seconds or 0.0, max(end for _, end in spans) + 1.0)
    return [
        {
            "left": round(100 * start / length, 2),
            "width": round(max(1.0, 100 * (end - start) / length), 2),
            "title": f"{start:.1f}-{end:.1f} s matched" if end > start else f"{start:.1f} s",
        }
        for start, end in sorted(spans)
    ]


def _followup(engine: Engine, item: QueueItem) -> dict[str, Any]:
    """What an item's page shows after the post (``amber.web.followup``): its review
    history, the bank entries its reviews added (each revertible), its escalation and
    owner, and its appeals."""
    escalation = engine.escalations.item(item.post_id) if item.state == "escalated" else None
    return {
        "steps": engine.history.steps(item.post_id),
        "banked": sorted(engine.history.banked(item.post_id).items()),
        "escalation": escalation,
        "owner": None if escalation is None or escalation.owner is None else escalation.owner,
        "appeals": engine.appeals.find(post_id=item.post_id, clients=[item.client], limit=50),
    }


@router.post("/items/{post_id:path}/decision", response_model=None)
def decide(
    request: Request,
    post_id: str,
    session: Reviewer,
    csrf: Csrf = "",
    choice: Annotated[str, Form()] = "",
    reason: Annotated[str, Form()] = "",
    bank: Annotated[str, Form()] = "",
) -> Response:
    _check_csrf(request, session, csrf)
    if choice not in CHOICES:
        return _item(request, session, post_id, error=f"unknown decision {choice!r}", status=400)
    outcome, action = CHOICES[choice]
    try:
        with _engine(request).write_lock:  # a bank may grow
            _engine(request).review.decide(
                post_id,
                session.reviewer,
                outcome,
                reason=reason,
                action=action,
                bank=(bank or None) if outcome == "confirm" else None,
            )
    except AmberError as exc:
        return _item(request, session, post_id, error=exc.message, status=exc.http_status)
    return _to_next(request, session)


@router.post("/items/{post_id:path}/release", response_model=None)
def release(request: Request, post_id: str, session: Reviewer, csrf: Csrf = "") -> Response:
    _check_csrf(request, session, csrf)
    try:
        _engine(request).review.unlock(post_id, session.reviewer)
    except AmberError as exc:
        return _page(request, "error.html", session, exc.http_status, message=exc.message)
    return RedirectResponse("/console/queue", status_code=303)


# -- media ---------------------------------------------------------------------------------


def _media_bytes(request: Request, post_id: str, position: int) -> bytes:
    held = _engine(request).open_vault().item(post_id)
    for m in held.objects.get("media", []):
        if int(m["position"]) == position:
            return _engine(request).open_vault().read(str(m["sha256"]))
    raise NotFoundError(f"post {post_id!r} has no preserved media at position {position}")


def _viewed(request: Request, session: Session, post_id: str, position: int, shown: str) -> None:
    with _engine(request).write_lock:
        _engine(request).open_vault().record(
            post_id,
            "viewed",
            actor=f"{session.reviewer} via amber console",
            media=position,
            shown=shown,
        )


@router.get("/media/{post_id:path}/{position}/poster")
def poster(request: Request, post_id: str, position: int, session: Reviewer) -> Response:
    """A video's first frame as a JPEG (at most 480 px), shown before anyone presses play;
    logged as viewed like the video. 404 for a file that is not a decodable video."""
    from amber.video import decode_video

    try:
        data = _media_bytes(request, post_id, position)
        decoded = decode_video(data, max_side=POSTER_SIDE)
        frame = next(iter(decoded), None)
        decoded.close()
    except AmberError as exc:
        raise HTTPException(404, f"no poster frame: {exc.message}") from None
    if frame is None:
        raise HTTPException(404, "no poster frame: the video has no frame")
    _viewed(request, session, post_id, position, "poster")
    out = io.BytesIO()
    Image.fromarray(frame.pixels).save(out, format="JPEG", quality=80)
    return Response(
        out.getvalue(),
        media_type="image/jpeg",
        headers={"cache-control": "no-store, private", "x-content-type-options": "nosniff"},
    )


@router.get("/media/{post_id:path}/{position}")
def media(request: Request, post_id: str, position: int, session: Reviewer) -> Response:
    """The evidentiary copy of one media file; each fetch is logged as viewed."""
    try:
        data = _media_bytes(request, post_id, position)
    except AmberError as exc:
        raise HTTPException(exc.http_status, exc.message) from None
    blurred = _store(request).settings(session.reviewer).blur
    _viewed(request, session, post_id, position, "blurred" if blurred else "unblurred")
    if not blurred:
        _store(request).count_reveal(session.reviewer, post_id, position)
    return Response(
        data,
        media_type=sniff(data),
        headers={"cache-control": "no-store, private", "x-content-type-options": "nosniff"},
    )


@router.post("/media/{post_id:path}/{position}/reveal")
def reveal(
    request: Request, post_id: str, position: int, session: Reviewer, csrf: Csrf = ""
) -> JSONResponse:
    """A reviewer revealed one media file: logged as viewed and counted for today."""
    _check_csrf(request, session, csrf)
    try:
        _media_bytes(request, post_id, position)
    except AmberError as exc:
        raise HTTPException(exc.http_status, exc.message) from None
    _viewed(request, session, post_id, position, "revealed")
    seen = _store(request).count_reveal(session.reviewer, post_id, position)
    return JSONResponse({"seen_today": seen})


def sniff(data: bytes) -> str:
    """The media type of image or video bytes, by their signature."""
    signatures = (
        (b"\xff\xd8\xff", "image/jpeg"),
        (b"\x89PNG\r\n\x1a\n", "image/png"),
        (b"GIF8", "image/gif"),
        (b"BM", "image/bmp"),
        (b"II*\x00", "image/tiff"),
        (b"MM\x00*", "image/tiff"),
        (b"\x1a\x45\xdf\xa3", "video/webm"),
    )
    for prefix, kind in signatures:
        if data.startswith(prefix):
            return kind
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[4:8] == b"ftyp":
        return "video/mp4"
    return "application/octet-stream"


# -- settings and static files -------------------------------------------------------------


@router.get("/settings", response_class=HTMLResponse)
def settings_page(request: Request, session: Reviewer, saved: int = 0) -> HTMLResponse:
    chosen = _store(request).settings(session.reviewer)
    return _page(request, "settings.html", session, settings=chosen, saved=bool(saved))


@router.post("/settings")
def save_settings(
    request: Request,
    session: Reviewer,
    csrf: Csrf = "",
    blur: Annotated[str, Form()] = "",
    greyscale: Annotated[str, Form()] = "",
) -> RedirectResponse:
    _check_csrf(request, session, csrf)
    chosen = Settings(blur=bool(blur), greyscale=bool(greyscale))
    _store(request).save_settings(session.reviewer, chosen)
    return RedirectResponse("/console/settings?saved=1", status_code=303)


@router.get("/static/{name}")
def static(name: str) -> Response:
    if name not in STATIC:
        raise HTTPException(404, f"no static file {name!r}")
    return Response(
        (HERE / "static" / name).read_bytes(),
        media_type=STATIC[name],
        headers={"cache-control": "no-cache"},
    )
