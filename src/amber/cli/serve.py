"""``amber serve``: the HTTP API (and the reviewers' console) on amber's state.

The server's packages are the ``serve`` extra; without them this command says which
``pip install`` to run instead of failing on an import.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from amber import __version__
from amber.cli.options import (
    DbOption,
    PolicyOption,
    SigningKeyOption,
    VaultOption,
    err,
    opened_engine,
)
from amber.errors import MissingExtraError

#: Top-level packages of the ``serve`` extra (pyproject.toml).
SERVE_PACKAGES = frozenset(
    {
        "fastapi",
        "fastapi_offline",
        "starlette",
        "pydantic",
        "uvicorn",
        "multipart",
        "python_multipart",
        "jinja2",
        "prometheus_client",
    }
)


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on", min=1, max=65535)] = 8080,
    media_root: Annotated[
        Path | None,
        typer.Option("--media-root", help="Folder JSON posts may name media under"),
    ] = None,
    max_body: Annotated[
        int, typer.Option("--max-body", help="Largest request body in bytes", min=1024)
    ] = 64 * 1024 * 1024,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            help="Worker processes sharing the port, the database, the vault and the index",
            min=1,
        ),
    ] = 1,
    allow_private_urls: Annotated[
        bool,
        typer.Option(
            "--allow-private-urls",
            help="Let URLs sent to hash (POST /v1/hash, /v1/lookup, HMA's url= routes) reach "
            "private, loopback and link-local addresses",
        ),
    ] = False,
    hma_anonymous: Annotated[
        bool,
        typer.Option(
            "--hma-anonymous",
            help="Let requests without a token use HMA's routes (/h, /m, /c), and only those: "
            "HMA's trusted network (docs/hma.md)",
        ),
    ] = False,
    no_webhooks: Annotated[
        bool,
        typer.Option(
            "--no-webhooks",
            help="Do not send the webhook outbox from this server (each worker sends it every "
            "second): leave it to amber webhook deliver --watch",
        ),
    ] = False,
    policy: PolicyOption = None,
    db: DbOption = None,
    vault: VaultOption = None,
    signing_key: SigningKeyOption = None,
) -> None:
    """Run the HTTP API (OpenAPI docs at /docs) on the embedded default state."""
    try:
        import uvicorn

        from amber.api.app import DELIVER_EVERY, SETTINGS_ENV, create_app
        from amber.api.hma import HmaSettings
    except ModuleNotFoundError as exc:
        MissingExtraError.check(exc, SERVE_PACKAGES, "serve")
        raise

    hma = HmaSettings(anonymous=hma_anonymous)
    # Migrate and check the settings and the policy's [checks] once, for every worker.
    with opened_engine(db, vault, policy, signing_key, preflight=True) as engine:
        err.print(
            f"amber {__version__} serving on http://{host}:{port} (docs at /docs)"
            + (f" with {workers} worker processes" if workers > 1 else "")
        )
        if workers == 1:
            api = create_app(
                engine,
                media_root=media_root,
                max_body=max_body,
                allow_private_urls=allow_private_urls,
                hma=hma,
                deliver_every=None if no_webhooks else DELIVER_EVERY,
            )
            uvicorn.run(api, host=host, port=port, log_level="warning")
            return
        settings = {
            "db": str(engine.db.url.render_as_string(hide_password=False)),
            "vault": str(engine.vault_path.resolve()),
            "signing_key": None if signing_key is None else str(signing_key.resolve()),
            "policy": None if policy is None else str(policy.resolve()),
            "media_root": None if media_root is None else str(media_root.resolve()),
            "max_body": max_body,
            "allow_private_urls": allow_private_urls,
            "hma": hma.to_json(),
            "deliver_webhooks": not no_webhooks,
        }
    os.environ[SETTINGS_ENV] = json.dumps(settings)
    metrics = None
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):  # where workers count for /v1/metrics
        metrics = tempfile.mkdtemp(prefix="amber-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics
    try:
        uvicorn.run(
            "amber.api.app:app_from_env",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level="warning",
        )
    finally:
        if metrics is not None:
            shutil.rmtree(metrics, ignore_errors=True)
