"""The console after an outcome: users' appeals (``/console/appeals``), the escalation
queue (``/console/escalations``), and on an item's page its review history with what
changes an outcome: reopen it, revert the bank entries it added one by one, own an
escalated item. Pages parse input, make one library call (``engine.appeals``,
``engine.history``, ``engine.escalations``) and render a template, as the queue's do;
every form carries the session's CSRF token."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from amber.errors import AmberError, NotFoundError
from amber.review.appeals import AppealStatus
from amber.review.queue import time_left
from amber.web.console import Csrf, Reviewer, _check_csrf, _engine, _item, _item_url, _page

router = APIRouter(prefix="/console", include_in_schema=False)
#: The most appeals or escalations a page lists.
LISTED = 500


# -- appeals -------------------------------------------------------------------------------


@router.get("/appeals", response_class=HTMLResponse)
def appeals_page(request: Request, session: Reviewer, status: str = "open") -> HTMLResponse:
    engine = _engine(request)
    chosen = None if status == "all" else status
    try:
        found = engine.appeals.find(status=chosen, limit=LISTED)
    except AmberError as exc:
        return _page(request, "error.html", session, exc.http_status, message=exc.message)
    now = engine.clock()
    rows = [
        {"appeal": a, **_left(a.due_at if a.status is AppealStatus.open else None, now)}
        for a in found
    ]
    return _page(request, "appeals.html", session, rows=rows, showing=status)


def _left(deadline: datetime | None, now: datetime, *, none: str = "decided") -> dict[str, Any]:
    """``left`` (the time left, or ``none`` without a deadline) and ``overdue``."""
    left, overdue = time_left(deadline, now) if deadline is not None else (none, False)
    return {"left": left, "overdue": overdue}


@router.get("/appeals/{appeal_id}", response_class=HTMLResponse)
def appeal_page(request: Request, appeal_id: int, session: Reviewer) -> HTMLResponse:
    return _appeal(request, session, appeal_id)


def _appeal(
    request: Request, session: Any, appeal_id: int, *, error: str | None = None, status: int = 200
) -> HTMLResponse:
    engine = _engine(request)
    try:
        appeal = engine.appeals.get(appeal_id)
        decision = engine.decisions.get(appeal.post_id, client=appeal.client)
    except NotFoundError as exc:
        return _page(request, "error.html", session, 404, message=exc.message)
    barred = engine.appeals.deciders(appeal)
    return _page(
        request,
        "appeal.html",
        session,
        status,
        appeal=appeal,
        decision=decision,
        post=json.loads(decision.post),
        barred=barred,
        may_decide=appeal.status is AppealStatus.open and session.reviewer not in barred,
        error=error,
        **_left(appeal.due_at if appeal.status is AppealStatus.open else None, engine.clock()),
    )


@router.post("/appeals/{appeal_id}/decision", response_model=None)
def decide_appeal(
    request: Request,
    appeal_id: int,
    session: Reviewer,
    csrf: Csrf = "",
    outcome: Annotated[str, Form()] = "",
    reason: Annotated[str, Form()] = "",
) -> Response:
    _check_csrf(request, session, csrf)
    engine = _engine(request)
    try:
        with engine.write_lock:  # its custody event is written to the vault
            engine.appeals.decide(appeal_id, session.reviewer, outcome, reason=reason)
    except AmberError as exc:
        return _appeal(request, session, appeal_id, error=exc.message, status=exc.http_status)
    return RedirectResponse("/console/appeals", status_code=303)


# -- escalations and an item's history ---------------------------------------------------


@router.get("/escalations", response_class=HTMLResponse)
def escalations_page(request: Request, session: Reviewer) -> HTMLResponse:
    engine = _engine(request)
    now = engine.clock()
    rows = [
        {"escalation": e, **_left(e.item.deadline, now, none="no deadline")}
        for e in engine.escalations.items(limit=LISTED)
    ]
    return _page(request, "escalations.html", session, rows=rows)


@router.post("/escalations/{post_id:path}/own", response_model=None)
def own(
    request: Request,
    post_id: str,
    session: Reviewer,
    csrf: Csrf = "",
    reason: Annotated[str, Form()] = "",
) -> Response:
    _check_csrf(request, session, csrf)
    try:
        _engine(request).escalations.own(post_id, session.reviewer, reason=reason)
    except AmberError as exc:
        return _page(request, "error.html", session, exc.http_status, message=exc.message)
    return RedirectResponse(_item_url(post_id), status_code=303)


@router.post("/items/{post_id:path}/reopen", response_model=None)
def reopen(
    request: Request,
    post_id: str,
    session: Reviewer,
    csrf: Csrf = "",
    reason: Annotated[str, Form()] = "",
) -> Response:
    _check_csrf(request, session, csrf)
    try:
        _engine(request).history.reopen(post_id, session.reviewer, reason=reason)
    except AmberError as exc:
        return _item(request, session, post_id, error=exc.message, status=exc.http_status)
    return RedirectResponse(_item_url(post_id), status_code=303)


@router.post("/items/{post_id:path}/unbank", response_model=None)
def unbank(
    request: Request,
    post_id: str,
    session: Reviewer,
    csrf: Csrf = "",
    entry: Annotated[int, Form()] = 0,
    reason: Annotated[str, Form()] = "",
) -> Response:
    """Revert one bank entry a review of the item added (the page has a form per entry)."""
    _check_csrf(request, session, csrf)
    engine = _engine(request)
    try:
        with engine.write_lock:  # the bank's index changes
            engine.history.unbank(post_id, session.reviewer, reason=reason, entries=[entry])
    except AmberError as exc:
        return _item(request, session, post_id, error=exc.message, status=exc.http_status)
    return RedirectResponse(_item_url(post_id), status_code=303)
