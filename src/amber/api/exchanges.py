"""Exchanges (admin): hash-sharing sources that fill banks (``amber.exchanges``): add,
list, read with their status, change, remove and fetch them; the installed API types and
their credentials (set or cleared, never shown)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field, StrictBool

from amber.api.banks import actor
from amber.api.deps import Admin, EngineDep, errors
from amber.banks import KEEP

router = APIRouter(prefix="/v1/exchanges", tags=["exchanges"])


class ExchangeIn(BaseModel):
    """A new exchange: its name, API type and the type's settings (``config``), the bank
    it fills (default: its name; created with ``action`` and ``label`` if new), the
    server's ``endpoint`` (fb_threatexchange) and the API type's ``credentials``."""

    name: str
    api: str
    bank: str | None = None
    config: dict[str, Any] = Field(default_factory=dict)
    endpoint: str | None = None
    credentials: dict[str, Any] | None = None
    enabled: StrictBool = True
    action: str | None = None
    label: str | None = None


class ExchangePatch(BaseModel):
    """What to change in an exchange; fields left out stay (``endpoint: null`` clears it)."""

    enabled: StrictBool | None = None
    config: dict[str, Any] | None = None
    endpoint: str | None = None


class CredentialsIn(BaseModel):
    """An API type's credentials: its credential fields (``GET /v1/exchanges/apis``)."""

    credentials: dict[str, Any]


@router.get("/apis", responses=errors())
def api_types(engine: EngineDep, _: Admin) -> list[dict[str, Any]]:
    """The installed API types: their settings' and credentials' fields, whether they take
    credentials and whether those are set."""
    return [a.to_json() for a in engine.exchanges.api_types()]


@router.get("/apis/{api}", responses=errors(404, 422))
def api_type(api: str, engine: EngineDep, _: Admin) -> dict[str, Any]:
    """One API type."""
    return engine.exchanges.api_type(api).to_json()


@router.put("/apis/{api}/credentials", responses=errors(400, 404, 413, 422))
def set_credentials(api: str, body: CredentialsIn, engine: EngineDep, _: Admin) -> dict[str, Any]:
    """Set an API type's credentials, used by all its exchanges (never shown again)."""
    return engine.exchanges.set_credentials(api, body.credentials).to_json()


@router.delete("/apis/{api}/credentials", responses=errors(400, 404, 422))
def clear_credentials(api: str, engine: EngineDep, _: Admin) -> dict[str, Any]:
    """Forget an API type's credentials."""
    return engine.exchanges.set_credentials(api, None).to_json()


@router.get("", responses=errors())
def exchanges(engine: EngineDep, _: Admin) -> list[dict[str, Any]]:
    """Every exchange with its status."""
    return [s.to_json() for s in engine.exchanges.statuses()]


@router.post("", status_code=201, responses=errors(400, 404, 409, 413, 422))
def create_exchange(body: ExchangeIn, engine: EngineDep, token: Admin) -> dict[str, Any]:
    """Add an exchange (and its bank, if new)."""
    engine.exchanges.create(
        body.name,
        api=body.api,
        config=body.config,
        bank=body.bank,
        endpoint=body.endpoint,
        credentials=body.credentials,
        enabled=body.enabled,
        action=body.action,
        label=body.label,
        actor=actor(token),
    )
    return engine.exchanges.status(body.name).to_json()


@router.get("/{name}", responses=errors(404, 422))
def get_exchange(name: str, engine: EngineDep, _: Admin) -> dict[str, Any]:
    """One exchange with its status: the last fetch (when, result, counts, error), the
    checkpoint the next resumes from, and what it holds."""
    return engine.exchanges.status(name).to_json()


@router.patch("/{name}", responses=errors(400, 404, 413, 422))
def update_exchange(name: str, patch: ExchangePatch, engine: EngineDep, _: Admin) -> dict[str, Any]:
    """Enable or disable an exchange, or change its settings or endpoint."""
    engine.exchanges.update(
        name,
        enabled=patch.enabled,
        config=patch.config,
        endpoint=patch.endpoint if "endpoint" in patch.model_fields_set else KEEP,
    )
    return engine.exchanges.status(name).to_json()


@router.delete("/{name}", responses=errors(400, 404, 422))
def delete_exchange(
    name: str, engine: EngineDep, token: Admin, delete_bank: bool = False
) -> dict[str, Any]:
    """Remove an exchange; its bank and entries stay unless ``delete_bank``."""
    exchange = engine.exchanges.delete(name, delete_bank=delete_bank, actor=actor(token))
    return {"name": exchange.name, "bank": exchange.bank, "bank_deleted": delete_bank}


@router.post("/{name}/fetch", responses=errors(400, 404, 409, 422, 502))
def fetch_exchange(
    name: str,
    engine: EngineDep,
    _: Admin,
    batch_size: Annotated[
        int, Query(ge=1, description="Upstream records a transaction group")
    ] = 5000,
) -> dict[str, Any]:
    """Fetch an exchange's updates from its checkpoint into its bank, now. A source that
    fails answers 502 (what came before is kept; the status has the error); a fetch
    already running, 409."""
    return engine.exchanges.fetch(name, batch_size=batch_size).to_json()
