"""The API's documentation: ``/docs`` (Swagger UI) and ``/redoc`` served offline, and
``docs/http.md`` rendered from the OpenAPI description.

FastAPI's own pages load Swagger UI and ReDoc from a CDN; an amber behind a firewall or
on an air-gapped investigation laptop has none. The pages here load the same bundles
from the ``fastapi-offline`` package (Swagger UI 5, ReDoc 2), served by the app itself.

``python -m amber.api.docs docs/http.md`` rewrites the HTTP reference; a test fails when
the checked-in file is stale.
"""

from __future__ import annotations

import sys
from importlib.resources import files
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse, Response

ASSETS = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "redoc.standalone.js": "text/javascript",
    "favicon.png": "image/png",
}
ASSET_URL = "/docs/assets/"

router = APIRouter(include_in_schema=False)


@router.get("/docs")
def swagger_ui(request: Request) -> HTMLResponse:
    """Swagger UI over ``/openapi.json``."""
    root = request.scope.get("root_path", "")
    return get_swagger_ui_html(
        openapi_url=f"{root}{request.app.openapi_url}",
        title=f"{request.app.title} - Swagger UI",
        oauth2_redirect_url=f"{root}/docs/oauth2-redirect",
        swagger_js_url=f"{root}{ASSET_URL}swagger-ui-bundle.js",
        swagger_css_url=f"{root}{ASSET_URL}swagger-ui.css",
        swagger_favicon_url=f"{root}{ASSET_URL}favicon.png",
        swagger_ui_parameters={"validatorUrl": None},  # the default validator is off-host
    )


@router.get("/docs/oauth2-redirect")
def swagger_ui_redirect() -> HTMLResponse:
    """Swagger UI's OAuth2 redirect page (part of its bundle's contract)."""
    return get_swagger_ui_oauth2_redirect_html()


@router.get("/redoc")
def redoc(request: Request) -> HTMLResponse:
    """ReDoc over ``/openapi.json``, without Google Fonts."""
    root = request.scope.get("root_path", "")
    return get_redoc_html(
        openapi_url=f"{root}{request.app.openapi_url}",
        title=f"{request.app.title} - ReDoc",
        redoc_js_url=f"{root}{ASSET_URL}redoc.standalone.js",
        redoc_favicon_url=f"{root}{ASSET_URL}favicon.png",
        with_google_fonts=False,
    )


@router.get(ASSET_URL + "{name}")
def asset(name: str) -> Response:
    """One file of the Swagger UI or ReDoc bundle."""
    if name not in ASSETS:
        raise HTTPException(404, f"no documentation asset {name!r}")
    data = files("fastapi_offline").joinpath("static", name).read_bytes()
    return Response(data, media_type=ASSETS[name], headers={"cache-control": "max-age=86400"})


# -- docs/http.md --------------------------------------------------------------------------

HEADER = """\
# HTTP API reference

Generated from the app's OpenAPI description by `python -m amber.api.docs docs/http.md`;
do not edit by hand (a test fails when this file is stale). `amber serve` also serves the
description at `/openapi.json` and browsable at `/docs` and `/redoc` (offline: no CDN).

Every route except `GET /v1/live` needs `Authorization: Bearer <token>` with the scope
named below (`admin` may do everything); make tokens with `amber token create`. Every
error has one shape:

    {"error": {"type": "NotFoundError", "message": "...", "status": 404}}

401 without a live token, 403 without the scope, 400/404/409 for what was asked, 413 for
a body over `--max-body` (declared or sent chunked), 422 for a malformed request (a
`limit` over 100000, a boolean where a number belongs), 429 for a reviewer holding the
most locks allowed (`AMBER_REVIEW_MAX_LOCKS`), 503 when the database is down. A NUL
character in the path or query is a 400. Media named by path are opened under
`--media-root` one path part at a time without following symbolic links, and copied before
they are decided: a symbolic link, `..` or an absolute path outside the root is a 400
naming `media[i].path`. Upload file names over 200 bytes are a 400 naming the field.
Evidence bag zips hold one folder `bag-<post id>` with only letters, digits, `_` and `-`
(an id that needed changing gets 12 hex digits of its SHA-256).
"""


def render_markdown(spec: dict[str, Any]) -> str:
    """The HTTP reference in Markdown, from an OpenAPI description."""
    lines = [HEADER]
    by_tag: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            tag = (operation.get("tags") or ["other"])[0]
            by_tag.setdefault(tag, []).append((method.upper(), path, operation))
    schemas = spec.get("components", {}).get("schemas", {})
    for tag, operations in by_tag.items():
        lines.append(f"## {tag}\n")
        for method, path, operation in operations:
            lines.extend(_operation(method, path, operation, schemas))
    return "\n".join(lines).rstrip() + "\n"


def _operation(
    method: str, path: str, operation: dict[str, Any], schemas: dict[str, Any]
) -> list[str]:
    lines = [f"### `{method} {path}`\n"]
    if operation.get("description"):
        lines.append(operation["description"].strip() + "\n")
    scopes = [s for need in operation.get("security", []) for v in need.values() for s in v]
    lines.append(f"Token scope: `{'`, `'.join(scopes)}`.\n" if scopes else "No token needed.\n")
    parameters = operation.get("parameters", [])
    if parameters:
        lines.append("| parameter | in | type | required |")
        lines.append("| --- | --- | --- | --- |")
        for p in parameters:
            kind = _type(p.get("schema", {}), schemas)
            lines.append(f"| `{p['name']}` | {p['in']} | {kind} | {_yes(p.get('required'))} |")
        lines.append("")
    for media, content in operation.get("requestBody", {}).get("content", {}).items():
        lines.append(f"Request body, `{media}`:\n")
        lines.extend(_fields(content.get("schema", {}), schemas))
    codes = ", ".join(
        f"{code} {answer.get('description', '')}".strip()
        for code, answer in operation.get("responses", {}).items()
    )
    lines.append(f"Responses: {codes}.\n")
    return lines


def _fields(schema: dict[str, Any], schemas: dict[str, Any]) -> list[str]:
    resolved = _resolve(schema, schemas)
    properties = resolved.get("properties")
    if not properties:
        return [f"{_type(schema, schemas)}\n"]
    required = set(resolved.get("required", []))
    lines = ["| field | type | required |", "| --- | --- | --- |"]
    for name, field in properties.items():
        lines.append(f"| `{name}` | {_type(field, schemas)} | {_yes(name in required)} |")
    return [*lines, ""]


def _resolve(schema: dict[str, Any], schemas: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if ref is None:
        return schema
    resolved: dict[str, Any] = schemas[ref.rsplit("/", 1)[-1]]
    return resolved


def _type(schema: dict[str, Any], schemas: dict[str, Any]) -> str:
    if "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[-1]
    if "anyOf" in schema:
        return " or ".join(_type(s, schemas) for s in schema["anyOf"])
    kind = str(schema.get("type", "any"))
    if kind == "array":
        return f"array of {_type(schema.get('items', {}), schemas)}"
    if "default" in schema and schema["default"] is not None:
        return f"{kind} (default {schema['default']!r})"
    return kind


def _yes(flag: object) -> str:
    return "yes" if flag else "no"


def main(argv: list[str]) -> None:
    """``python -m amber.api.docs [FILE]``: write the reference to FILE or stdout."""
    from amber.api.app import openapi_spec

    text = render_markdown(openapi_spec())
    if argv:
        Path(argv[0]).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main(sys.argv[1:])
