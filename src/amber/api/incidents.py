"""Incidents: the posts of one harm linked as they are decided (``amber.incidents``): the
list, one incident with its members, escalation and timeline, and its one evidence bag.

An ``ingest`` token reads the incidents of its own posts and the local ones; a ``review``
or ``admin`` token every client's. The bag is for ``admin`` tokens, as post bags are."""

from __future__ import annotations

import io
import tempfile
import zipfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import Response

from amber.api.appeals import _clients
from amber.api.deps import Admin, EngineDep, IngestOrReviewer, errors, ok_as
from amber.api.posts import ClientQuery
from amber.incidents import MAX_LIMIT

router = APIRouter(prefix="/v1/incidents", tags=["incidents"])


@router.get("", responses=errors(400, 422))
def incidents(
    engine: EngineDep,
    token: IngestOrReviewer,
    escalated: Annotated[
        bool | None, Query(description="Only those escalated to the authorities (or not)")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="At most this many")] = 100,
    client: ClientQuery = None,
) -> list[dict[str, Any]]:
    """Incidents, the most recently changed first: id, client, when opened and last
    changed, how many posts, the first post, the authors, the strongest verdict and when
    it was escalated."""
    found = engine.incidents.find(clients=_clients(token, client), escalated=escalated, limit=limit)
    return [i.to_summary() for i in found]


@router.get("/{incident_id}", responses=errors(400, 404, 422))
def incident(incident_id: int, engine: EngineDep, token: IngestOrReviewer) -> dict[str, Any]:
    """One incident: its posts in the order they were made, each with why it was linked
    (``why``: ``{"by": reply|replied_by|author|entry|sha256|pdq|threat_to_life, "to":
    post id, ...}``), its one escalation to the authorities (EU DSA Art. 18) and its
    timeline. A merged incident's id answers with the incident it was merged into."""
    return engine.incidents.get(incident_id, clients=_clients(token, None)).to_json()


@router.get(
    "/{incident_id}/bag",
    response_class=Response,
    responses={**ok_as("application/zip", "The bag, zipped"), **errors(400, 404, 409, 422)},
)
def incident_bag(incident_id: int, engine: EngineDep, token: Admin) -> Response:
    """The incident's one evidence bag as a zip (BagIt 1.0 inside: every post's evidence
    and custody, one checkpoint; ``amber evidence verify-bag`` checks it); each post's
    export is logged."""
    name = f"incident-{incident_id}"
    with tempfile.TemporaryDirectory(prefix="amber-bag-") as folder, engine.write_lock:
        bag = engine.incidents.export(
            incident_id, Path(folder) / name, actor=f"{token.name} via amber serve"
        )
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for file in sorted(bag.rglob("*")):
                if file.is_file():
                    archive.write(file, "/".join((name, *file.relative_to(bag).parts)))
    return Response(
        buffer.getvalue(),
        media_type="application/zip",
        headers={"content-disposition": f'attachment; filename="{name}.zip"'},
    )
