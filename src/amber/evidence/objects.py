"""Where a vault keeps its evidentiary objects: content-addressed by SHA-256, write-once.

Two stores, one interface (``ObjectStore``):

- ``FolderStore``: ``objects/sha256/ab/<62 hex>`` in the vault's folder, each a read-only
  file written atomically and fsynced (the layout every vault has had);
- ``S3Store``: the same names under ``s3://BUCKET/PREFIX/`` in S3-compatible object
  storage (boto3, ``pip install 'amber[s3]'``), the endpoint from ``AWS_ENDPOINT_URL`` or
  the vault's ``store.json``; credentials as boto3 finds them (environment, profile, role).

Objects are put before the custody record naming them is appended, and putting one that
is there already does nothing: a crash in between leaves at worst an object no record
names, which ``amber evidence verify`` notes and expiry never needs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

from amber.atomic_write import fsync_path, write_atomic
from amber.errors import ExternalError, UserError


class ObjectMissing(LookupError):
    """No object of that hash is stored."""


class ObjectStore(Protocol):
    """A content-addressed, write-once store of evidentiary objects."""

    #: Where it is, as ``store.json`` and messages name it (a folder or an ``s3://`` URL).
    location: str

    def put(self, data: bytes) -> str:
        """Store ``data`` under its SHA-256 (nothing if it is there); returns the hash."""
        ...

    def get(self, sha256: str) -> bytes:
        """The bytes stored under ``sha256`` as stored (unchecked). Raises ``ObjectMissing``."""
        ...

    def exists(self, sha256: str) -> bool: ...

    def delete(self, sha256: str) -> None:
        """Remove an object (retention expired); nothing if it is absent."""
        ...

    def names(self) -> Iterator[str]:
        """Every stored object's name (its SHA-256 as stored), in no set order."""
        ...


def object_key(sha256: str) -> str:
    """An object's name inside a store: ``sha256/ab/<62 hex>``."""
    return f"sha256/{sha256[:2]}/{sha256[2:]}"


class FolderStore:
    """Objects as read-only files under ``root`` (a vault's ``objects/``)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.location = str(root)

    def path(self, sha256: str) -> Path:
        return self.root / object_key(sha256)

    def put(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        target = self.path(digest)
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(target, data, mode=0o444)
        return digest

    def get(self, sha256: str) -> bytes:
        try:
            return self.path(sha256).read_bytes()
        except FileNotFoundError:
            raise ObjectMissing(sha256) from None

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def delete(self, sha256: str) -> None:
        target = self.path(sha256)
        if target.exists():
            target.chmod(0o600)
            target.unlink()
            fsync_path(target.parent)

    def names(self) -> Iterator[str]:
        base = self.root / "sha256"
        for file in sorted(base.rglob("*")) if base.is_dir() else []:
            if file.is_file():
                yield file.parent.name + file.name


class S3Store:
    """Objects in S3-compatible storage: ``s3://BUCKET/PREFIX``, each under
    ``PREFIX/sha256/ab/<62 hex>``. Raises ``UserError`` for a URL that is not one, and
    without boto3."""

    def __init__(self, url: str, *, endpoint: str | None = None) -> None:
        parsed = urlparse(url)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise UserError(f"object store {url!r} is not an s3://BUCKET[/PREFIX] URL")
        try:
            import boto3  # type: ignore[import-untyped]
            from botocore.config import Config  # type: ignore[import-untyped]
        except ImportError:
            raise UserError("an S3 object store needs boto3: pip install 'amber[s3]'") from None
        self.location = url
        self.bucket = parsed.netloc
        self.prefix = parsed.path.strip("/")
        self.client: Any = boto3.client(
            "s3",
            endpoint_url=endpoint,  # None: AWS_ENDPOINT_URL or AWS itself, as boto3 decides
            config=Config(retries={"max_attempts": 3, "mode": "standard"}),
        )

    def _key(self, sha256: str) -> str:
        return f"{self.prefix}/{object_key(sha256)}" if self.prefix else object_key(sha256)

    def _call(self, what: str, call: Any, **kwargs: Any) -> Any:
        from botocore.exceptions import (  # type: ignore[import-untyped]
            BotoCoreError,
            ClientError,
        )

        try:
            return call(Bucket=self.bucket, **kwargs)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("404", "NoSuchKey", "NotFound"):
                raise ObjectMissing(kwargs.get("Key", "")) from None
            raise ExternalError(
                f"the object store {self.location} refused {what} ({code or exc}); check the "
                "bucket, its permissions and AWS_ENDPOINT_URL"
            ) from exc
        except BotoCoreError as exc:
            raise ExternalError(
                f"the object store {self.location} cannot be reached for {what} ({exc})"
            ) from exc

    def put(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        if not self.exists(digest):
            self._call("a write", self.client.put_object, Key=self._key(digest), Body=data)
        return digest

    def get(self, sha256: str) -> bytes:
        answer = self._call("a read", self.client.get_object, Key=self._key(sha256))
        body: bytes = answer["Body"].read()
        return body

    def exists(self, sha256: str) -> bool:
        try:
            self._call("a look-up", self.client.head_object, Key=self._key(sha256))
        except ObjectMissing:
            return False
        return True

    def delete(self, sha256: str) -> None:
        self._call("a deletion", self.client.delete_object, Key=self._key(sha256))

    def names(self) -> Iterator[str]:
        start = f"{self.prefix}/sha256/" if self.prefix else "sha256/"
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=start
        )
        for page in pages:
            for entry in page.get("Contents", []):
                parts = str(entry["Key"])[len(start) :].split("/")
                if len(parts) == 2:
                    yield parts[0] + parts[1]


def open_store(location: str | None, vault: Path, *, endpoint: str | None = None) -> ObjectStore:
    """The store ``location`` names: ``None`` or ``"folder"`` for the vault's own
    ``objects/``, a folder path, or ``s3://BUCKET[/PREFIX]``."""
    if location is None or location in ("", "folder"):
        return FolderStore(vault / "objects")
    if location.startswith("s3://"):
        return S3Store(location, endpoint=endpoint)
    if "://" in location:
        raise UserError(f"object store {location!r}: give a folder or an s3://BUCKET[/PREFIX] URL")
    return FolderStore(Path(location))
