"""The DSA Transparency Database's submission schema, as amber checks its statements of
reasons against it.

``statements_schema.json`` (beside this module; its sources are in
``statements_schema.NOTICE.md``) describes the body of the database's batch endpoint,
``POST /api/v1/statements``: ``{"statements": [...]}`` with 1 to ``BATCH_SIZE`` statements.
This module reads it (once, when first asked), names its enumerations for amber's
configuration, and checks statements and batches, including the two rules JSON Schema
cannot state (end dates not before the application date; PUIDs unique in a batch).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from functools import cache
from importlib.resources import files
from typing import Any

from amber.errors import InternalError

#: The most statements the database takes in one call of its batch endpoint.
BATCH_SIZE = 100
#: Where a platform submits a batch (the body is ``{"statements": [...]}``).
BATCH_ENDPOINT = "https://transparency.dsa.ec.europa.eu/api/v1/statements"
SCHEMA_FILE = "statements_schema.json"

#: The European Union's member states and the European Economic Area's, by their codes as
#: the database spells them (Greece is ``GR``), for ``territorial_scope``.
EU = (
    "AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU",
    "IE", "IT", "LT", "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK",
)  # fmt: skip
EEA = tuple(sorted((*EU, "IS", "LI", "NO")))

END_DATES = (
    "end_date_account_restriction",
    "end_date_monetary_restriction",
    "end_date_service_restriction",
    "end_date_visibility_restriction",
)


class StatementSchemaError(InternalError):
    """A statement or a batch amber made does not meet the Transparency Database's schema
    (a bug: the configuration is checked when the policy is loaded); ``path`` says where
    (``statements/3/category``)."""

    def __init__(self, message: str, *, path: str) -> None:
        super().__init__(f"{path or 'the batch'}: {message}")
        self.path = path


@cache
def schema() -> dict[str, Any]:
    """The batch schema (``statements_schema.json``), read once."""
    text = files("amber").joinpath(SCHEMA_FILE).read_text(encoding="utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def statement_schema() -> dict[str, Any]:
    """The schema of one statement (the batch schema's ``$defs/statement``, standalone)."""
    return {"$schema": schema()["$schema"], "$defs": schema()["$defs"], "$ref": "#/$defs/statement"}


def allowed(field: str) -> tuple[str, ...]:
    """The values the schema allows for ``field`` of a statement (for an array field, the
    values of its items), nulls left out. Raises ``KeyError`` for a field without a list."""
    spec = schema()["$defs"]["statement"]["properties"][field]
    values = spec["items"]["enum"] if "items" in spec else spec["enum"]
    return tuple(v for v in values if v is not None)


@cache
def _validator(which: str) -> Any:
    import jsonschema

    chosen = schema() if which == "batch" else statement_schema()
    return jsonschema.Draft202012Validator(
        chosen, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


def problems(statement: Mapping[str, Any]) -> list[str]:
    """What is wrong with one statement, each as ``field: message``; empty when it is
    valid."""
    found = [
        f"{'/'.join(str(p) for p in e.absolute_path) or 'statement'}: {e.message}"
        for e in sorted(_validator("statement").iter_errors(statement), key=str)
    ]
    application = statement.get("application_date")
    for field in END_DATES:
        end = statement.get(field)
        if isinstance(end, str) and isinstance(application, str) and end < application:
            found.append(f"{field}: {end!r} is before the application_date {application!r}")
    return found


def check_statement(statement: Mapping[str, Any]) -> None:
    """Raises ``StatementSchemaError`` (naming the first field wrong, and the PUID) when
    ``statement`` does not meet the schema."""
    found = problems(statement)
    if found:
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        raise StatementSchemaError(
            f"{found[0]}{more}", path=f"statement {statement.get('puid', '?')}"
        )


def check_batch(body: Mapping[str, Any]) -> None:
    """Raises ``StatementSchemaError`` when ``body`` is not a valid batch: 1 to
    ``BATCH_SIZE`` valid statements with PUIDs all different."""
    errors = sorted(_validator("batch").iter_errors(body), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        raise StatementSchemaError(
            first.message, path="/".join(str(p) for p in first.absolute_path)
        )
    statements: Sequence[Mapping[str, Any]] = body["statements"]
    seen: set[str] = set()
    for i, statement in enumerate(statements):
        check_statement(statement)
        puid = str(statement["puid"])
        if puid in seen:
            raise StatementSchemaError(
                f"PUID {puid!r} is given twice; each statement needs its own",
                path=f"statements/{i}/puid",
            )
        seen.add(puid)
