"""HMA's curator routes for exchanges (HMA's "collaborations"): hash-sharing sources that
fill a bank, over ``amber.exchanges``.

An exchange made here is named as the bank it fills (HMA's ``bank``, ``[A-Z0-9_]+``); its
``api_json`` holds its API type's settings (``GET /c/exchanges/api/<api>/schema`` lists
them). Its fetches run as amber's do (``amber exchange fetch``, ``POST
/v1/exchanges/<name>/fetch``). Deleting it keeps its bank and entries, as amber does
(delete the bank with ``DELETE /c/bank/<name>``); HMA deletes them too.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, StrictBool

from amber.api.deps import EngineDep
from amber.api.hma import errors
from amber.api.hma.access import Curator
from amber.errors import UserError
from amber.hma import create_exchange, delete_exchange, set_api_credentials

router = APIRouter(prefix="/c", tags=["hma"])


class ExchangeCreate(BaseModel):
    """A new exchange: the bank it fills and is named as, its API type and settings."""

    bank: str
    api: str | None = None
    api_json: dict[str, Any] | None = None


class ExchangeUpdate(BaseModel):
    """What to change in an exchange: whether it is fetched."""

    enabled: StrictBool | None = None


@router.get("/exchanges/apis", responses=errors())
def api_types(engine: EngineDep, _: Curator) -> list[str]:
    """The installed exchange API types, by name."""
    return [a.api.name for a in engine.exchanges.api_types()]


@router.get("/exchanges/api/{api_name}", responses=errors())
def api_type(api_name: str, engine: EngineDep, _: Curator) -> dict[str, bool]:
    """Whether an API type takes credentials and whether they are set:
    ``{"supports_authentification": true, "has_set_authentification": false}``."""
    return engine.exchanges.api_type(api_name).to_hma()


@router.post("/exchanges/api/{api_name}", responses=errors(413))
async def set_credentials(
    request: Request, api_name: str, engine: EngineDep, _: Curator
) -> dict[str, bool]:
    """Set an API type's credentials (``{"credential_json": {...}}``; ``{}`` clears them),
    used by every exchange of the type and never shown again."""
    try:
        body = await request.json()
    except ValueError:
        raise UserError('this route takes a JSON object: {"credential_json": {...}}') from None
    if not isinstance(body, dict):
        raise UserError('this route takes a JSON object: {"credential_json": {...}}')
    return set_api_credentials(engine, api_name, body.get("credential_json")).to_hma()


@router.get("/exchanges/api/{api_name}/schema", responses=errors())
def api_schema(api_name: str, engine: EngineDep, _: Curator) -> dict[str, Any]:
    """An API type's settings and credentials as form fields: ``{"config_schema":
    {"fields": [...]}, "credentials_schema": {"fields": [...]} or null}``."""
    return engine.exchanges.api_type(api_name).api.schema()


@router.post("/exchanges", status_code=201, responses=errors(413))
def create(body: ExchangeCreate, engine: EngineDep, actor: Curator) -> dict[str, str]:
    """Add an exchange filling bank ``bank`` (made if new), of API type ``api`` with its
    settings ``api_json``; 403 when the name is taken."""
    create_exchange(engine, body.bank, body.api, body.api_json, actor=actor)
    return {"message": "Created successfully"}


@router.get("/exchanges", responses=errors())
def exchanges(engine: EngineDep, _: Curator) -> list[str]:
    """Every exchange, by name."""
    return [e.name for e in engine.exchanges.all()]


@router.get("/exchange/{exchange_name}", responses=errors())
def exchange(exchange_name: str, engine: EngineDep, _: Curator) -> dict[str, Any]:
    """An exchange's settings: ``{"name", "api", "enabled", ...its API type's}``."""
    return engine.exchanges.get(exchange_name).to_hma()


@router.get("/exchange/{exchange_name}/status", responses=errors())
def status(exchange_name: str, engine: EngineDep, _: Curator) -> dict[str, Any]:
    """How an exchange's fetches go, in Unix seconds: ``checkpoint_ts``,
    ``running_fetch_start_ts``, ``last_fetch_complete_ts``, ``last_fetch_succeeded``,
    ``up_to_date``, ``fetched_items``."""
    return engine.exchanges.status(exchange_name).to_hma()


@router.put("/exchange/{exchange_name}", responses=errors(413))
def update(
    exchange_name: str, change: ExchangeUpdate, engine: EngineDep, _: Curator
) -> dict[str, Any]:
    """Enable or disable an exchange (a disabled one is not fetched)."""
    return engine.exchanges.update(exchange_name, enabled=change.enabled).to_hma()


@router.delete("/exchange/{exchange_name}", responses=errors())
def delete(exchange_name: str, engine: EngineDep, _: Curator) -> dict[str, str]:
    """Delete an exchange (done, too, when there is none); its bank and entries stay."""
    delete_exchange(engine, exchange_name)
    return {"message": "Exchange deleted"}
