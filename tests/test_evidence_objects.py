"""The vault's object stores: the local folder and S3-compatible storage (moto_server, a
local S3 server, started once for the session on a free port), and a database-logged
vault whose objects are in S3, migrated from a file vault and verified."""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from amber.errors import UserError
from amber.evidence.migrate import export_vault, migrate_vault
from amber.evidence.objects import FolderStore, ObjectMissing, S3Store, open_store
from amber.evidence.vault import Vault, read_store
from amber.evidence.verify import verify_vault
from amber.store.db import connect


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A moto_server on a free port (credentials set to its dummy ones)."""
    binary = shutil.which("moto_server")
    if binary is None:
        pytest.fail("moto_server is missing: pip install 'moto[server]'", pytrace=False)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [binary, "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    os.environ.update(AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    pytest.fail("moto_server did not start", pytrace=False)
                time.sleep(0.1)
        yield endpoint
    finally:
        server.terminate()
        server.wait(10)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _bucket(endpoint: str, name: str) -> str:
    import boto3

    unique = f"{name}-{secrets.token_hex(4)}"  # one per test: the server is the session's
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=unique)
    return f"s3://{unique}/evidence"


def test_the_s3_store_round_trips_and_is_idempotent(s3_endpoint: str) -> None:
    store = S3Store(_bucket(s3_endpoint, "round-trip"), endpoint=s3_endpoint)
    data = b"original bytes \x00\xff"
    digest = store.put(data)
    assert digest == hashlib.sha256(data).hexdigest()
    assert store.put(data) == digest and store.exists(digest)
    assert store.get(digest) == data
    assert list(store.names()) == [digest]
    store.delete(digest)
    assert not store.exists(digest)
    with pytest.raises(ObjectMissing):
        store.get(digest)


def test_the_folder_store_keeps_read_only_files(tmp_path: Path) -> None:
    store = FolderStore(tmp_path / "objects")
    digest = store.put(b"x")
    assert store.path(digest).stat().st_mode & 0o777 == 0o444
    assert list(store.names()) == [digest] and store.get(digest) == b"x"
    with pytest.raises(UserError, match="s3://BUCKET"):
        open_store("ftp://example/x", tmp_path)


def test_a_file_vault_moves_to_the_database_and_s3(
    s3_endpoint: str, database: str, tmp_path: Path
) -> None:
    path = tmp_path / "vault"
    vault = Vault.open(path)
    (tmp_path / "m.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    media = (0, "m.jpg", tmp_path / "m.jpg", hashlib.sha256(b"\xff\xd8 not really a jpeg"))
    vault.preserve(
        post_id="p",
        post='{"id":"p"}',
        decision={"verdict": "remove"},
        media=[(*media[:3], media[3].hexdigest())],
        source="test",
        policy="default@0",
    )
    url = _bucket(s3_endpoint, "migrated")
    db = connect(database)
    os.environ["AWS_ENDPOINT_URL"] = s3_endpoint
    try:
        done = migrate_vault(path, db, objects=url)
        assert done.objects == 4 and read_store(path) == {"log": "database", "objects": url}
        moved = Vault.open(path, db=db)
        shutil.rmtree(path / "objects")  # the objects are read from S3 from now on
        item = moved.items()["p"]
        assert moved.read(item.objects["media"][0]["sha256"]) == b"\xff\xd8 not really a jpeg"
        assert moved.object_path(item.objects["post"]).read_bytes() == b'{"id":"p"}'
        report = verify_vault(path, db=db)
        assert report.ok and report.objects == 4, report.problems
        copy = tmp_path / "copy"
        export_vault(moved, copy)
        assert verify_vault(copy).ok
    finally:
        os.environ.pop("AWS_ENDPOINT_URL", None)
