"""The fixtures HMA's tests import, shaped as HMA's own ``tests/utils.py`` and building
amber: an image server on 127.0.0.1 (two generated checkerboards, their PDQ hashes as
python-threatexchange computes them), an app on a fresh database and its client, and the
two helpers that create a bank and add an image to it, asserting what HMA answers."""

from __future__ import annotations

import functools
import http.server
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from threatexchange.signal_type.pdq.signal import PdqSignal

from OpenMediaMatch.app import App, Client, create_app
from OpenMediaMatch.storage.postgres import database
from OpenMediaMatch.storage.postgres.flask_utils import reset_tables

#: Each served image's URL and its PDQ hash (python-threatexchange's), once the server runs.
IMAGE_URL_TO_PDQ: dict[str, str] = {}


def _checkerboard(cell: int, size: int = 128) -> Image.Image:
    image = Image.new("RGB", (size, size))
    image.putdata(
        [
            (255, 255, 255) if (x // cell + y // cell) % 2 else (0, 0, 0)
            for y in range(size)
            for x in range(size)
        ]
    )
    return image


@pytest.fixture(scope="session", autouse=True)
def image_server() -> Iterator[str]:
    """Serve two checkerboard JPEGs (cells of 8 and 16 pixels) on 127.0.0.1; yields the
    base URL and fills ``IMAGE_URL_TO_PDQ``."""
    folder = Path(tempfile.mkdtemp(prefix="hma-images-"))
    server = None
    try:
        for name, cell in (("image1.jpg", 8), ("image2.jpg", 16)):
            _checkerboard(cell).save(folder / name, format="JPEG")
        handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
        server = http.server.HTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        base = f"http://127.0.0.1:{server.server_address[1]}"
        for name in ("image1.jpg", "image2.jpg"):
            IMAGE_URL_TO_PDQ[f"{base}/{name}"] = PdqSignal.hash_from_file(folder / name)
        yield base
    finally:
        if server is not None:
            server.shutdown()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture()
def app() -> Iterator[App]:
    """amber's app on a fresh database, made current (as Flask's app context)."""
    made = create_app()
    with made.app_context():
        reset_tables()
        from sqlalchemy.sql import text

        leaked = database.db.session.execute(
            text("SELECT count(1) FROM pg_largeobject_metadata;")
        ).scalar_one()
        assert leaked == 0, "Leaking large objects!"
        yield made


@pytest.fixture()
def client(app: App) -> Client:
    return app.test_client()


def create_bank(client: Client, bank_name: str) -> None:
    """Create a bank through ``POST /c/banks`` and check HMA's answer."""
    response = client.post("/c/banks", json={"name": bank_name})
    assert response.status_code == 201
    assert response.json == {"matching_enabled_ratio": 1.0, "name": bank_name}


def add_hash_to_bank(client: Client, bank_name: str, image_url: str, content_id: int = 1) -> Any:
    """Bank a served image by URL and check HMA's answer: its id and PDQ hash."""
    response = client.post(f"/c/bank/{bank_name}/content?url={image_url}&content_type=photo")
    assert response.status_code == 200
    assert response.json == {"id": content_id, "signals": {"pdq": IMAGE_URL_TO_PDQ[image_url]}}
    return response
