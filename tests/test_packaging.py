"""What ``pip install amber`` brings: the library, CLI and demo; the server and the
PostgreSQL driver are extras, and the test extra installs everything."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from amber.cli.serve import SERVE_PACKAGES

PROJECT = tomllib.loads(
    (Path(__file__).resolve().parent.parent / "pyproject.toml").read_text(encoding="utf-8")
)["project"]


def _names(requirements: list[str]) -> set[str]:
    return {re.split(r"[\[<>=!~ ;]", r, maxsplit=1)[0].lower() for r in requirements}


def test_the_server_and_the_driver_are_extras_and_video_is_core() -> None:
    extras = PROJECT["optional-dependencies"]
    serve, postgres = _names(extras["serve"]), _names(extras["postgres"])
    assert {"fastapi", "uvicorn", "jinja2", "prometheus-client", "python-multipart"} <= serve
    assert postgres == {"psycopg"}
    assert not (serve | postgres) & _names(PROJECT["dependencies"])
    # the tests install every extra they exercise: the server, PostgreSQL, the stream
    # brokers' clients, Dask and S3
    (own,) = [r for r in extras["test"] if r.startswith("amber[")]
    assert set(own[len("amber[") : -1].split(",")) == {"serve", "postgres", "stream", "dask", "s3"}
    # Videos are posted and banked like photos, and the demo shows one: PyAV (its wheel
    # bundles FFmpeg) comes with `pip install amber`; the old extra stays, empty.
    assert "av" in _names(PROJECT["dependencies"]) and extras["video"] == []


def test_serve_names_the_import_of_every_serve_package() -> None:
    imports = {n.replace("-", "_") for n in _names(PROJECT["optional-dependencies"]["serve"])}
    assert imports - {"python_multipart"} <= SERVE_PACKAGES and "multipart" in SERVE_PACKAGES
