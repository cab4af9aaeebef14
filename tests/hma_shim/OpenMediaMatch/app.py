"""``create_app``: amber's API on a fresh PostgreSQL schema, shaped as HMA's Flask app.

What HMA's tests use of a Flask app, each over amber:

- ``app.config``: HMA's settings; the ones amber has (``ROLE_*``, ``ALLOWED_HOSTNAMES``,
  ``MAX_REMOTE_FILE_SIZE``) read and set the app's ``HmaSettings``, the others are kept
  and mean nothing to amber;
- ``app.test_client()``: a client with Flask's test-client interface over FastAPI's
  ``TestClient``, sending an ``admin`` token of the app's database (amber's tokens guard
  HMA's routes);
- ``app.app_context()``: makes this the app that ``get_storage`` and ``is_valid_url`` see.

The database is a schema of the PostgreSQL server amber's own tests use
(``AMBER_TEST_POSTGRES``, default ``postgresql://postgres@127.0.0.1:5432/test``), named as
theirs are so a later run drops any left behind; each app drops its schema when the next
app is made, and the last at exit. URLs are fetched with ``allow_private_urls`` (HMA's
tests serve their images on 127.0.0.1: a trusted test network).
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from fastapi.testclient import TestClient

from amber.api.app import create_app as create_amber_app
from amber.api.hma import HmaRole, HmaSettings
from amber.engine import Engine, open_engine
from amber.store.db import database_url
from amber.tokens import Scope
from OpenMediaMatch.blueprints.matching import index_state

POSTGRES = os.environ.get("AMBER_TEST_POSTGRES") or "postgresql://postgres@127.0.0.1:5432/test"

#: HMA's role settings and the role each turns on.
ROLES = {
    "ROLE_HASHER": HmaRole.hasher,
    "ROLE_MATCHER": HmaRole.matcher,
    "ROLE_CURATOR": HmaRole.curator,
}

_apps: list[App] = []
_current: list[App] = []


def create_app() -> App:
    """A new amber app on a fresh schema (the previous app's schema is dropped)."""
    while _apps:
        _apps.pop().close()
    app = App()
    _apps.append(app)
    return app


def current_app() -> App:
    """The app of the innermost ``app_context`` (else the newest app), as Flask's."""
    if _current:
        return _current[-1]
    if _apps:
        return _apps[-1]
    raise RuntimeError("no app: call OpenMediaMatch.app.create_app() first")


@atexit.register
def _close_all() -> None:
    while _apps:
        _apps.pop().close()


class App:
    """amber's API, its engine and database, with the parts of a Flask app HMA's tests use."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="amber-hma-"))
        self.schema = f"t_{int(time.time())}_{secrets.token_hex(6)}"
        self._server = sa.create_engine(database_url(POSTGRES), isolation_level="AUTOCOMMIT")
        with self._server.connect() as conn:
            conn.exec_driver_sql(f"CREATE SCHEMA {self.schema}")
        url = self._server.url.set(drivername="postgresql").update_query_dict(
            {"options": f"-csearch_path={self.schema}"}
        )
        self.engine: Engine = open_engine(
            db=url.render_as_string(hide_password=False),
            vault=self.folder / "vault",
            index_dir=self.folder / "index",
        )
        _, self.secret = self.engine.tokens.create("hma-tests", [Scope.admin])
        self.api = create_amber_app(
            self.engine, allow_private_urls=True, sweep_every=None, hma=HmaSettings()
        )
        self.api.state.hma_index_state = index_state  # HMA's (fakeable) index cache
        self.config = Config(self)
        #: Whether ``build_all_indices`` ran: HMA has no index before its first build.
        self.indexed = False
        #: HMA's storage object of this app (``persistence.get_storage``).
        self.storage: Any = None

    @property
    def hma(self) -> HmaSettings:
        """The app's HMA settings."""
        settings: HmaSettings = self.api.state.hma
        return settings

    @hma.setter
    def hma(self, value: HmaSettings) -> None:
        self.api.state.hma = value

    def test_client(self) -> Client:
        """A client with Flask's test-client interface."""
        return Client(self)

    @contextlib.contextmanager
    def app_context(self) -> Iterator[App]:
        """Make this the app ``get_storage`` and ``is_valid_url`` see."""
        _current.append(self)
        try:
            yield self
        finally:
            _current.remove(self)

    def close(self) -> None:
        """Close the engine, drop the schema, remove the folder."""
        self.engine.close()
        with contextlib.suppress(sa.exc.DBAPIError), self._server.connect() as conn:
            conn.exec_driver_sql("SET lock_timeout = '30s'")
            conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {self.schema} CASCADE")
        self._server.dispose()
        shutil.rmtree(self.folder, ignore_errors=True)


class Config(MutableMapping[str, Any]):
    """HMA's ``app.config``: the keys amber has set the app's ``HmaSettings``."""

    def __init__(self, app: App) -> None:
        self._app = app
        self._other: dict[str, Any] = {"TESTING": True}

    def __getitem__(self, key: str) -> Any:
        hma = self._app.hma
        if key in ROLES:
            return ROLES[key] in hma.roles
        if key == "ALLOWED_HOSTNAMES":
            return set(hma.allowed_hosts)
        if key == "MAX_REMOTE_FILE_SIZE":
            return hma.max_fetch_bytes
        return self._other[key]

    def __setitem__(self, key: str, value: Any) -> None:
        hma = self._app.hma
        if key in ROLES:
            role = ROLES[key]
            roles = hma.roles | {role} if value else hma.roles - {role}
            self._app.hma = dataclasses.replace(hma, roles=frozenset(roles))
        elif key == "ALLOWED_HOSTNAMES":
            self._app.hma = dataclasses.replace(hma, allowed_hosts=frozenset(value or ()))
        elif key == "MAX_REMOTE_FILE_SIZE":
            self._app.hma = dataclasses.replace(hma, max_fetch_bytes=value)
        else:
            self._other[key] = value

    def __delitem__(self, key: str) -> None:
        del self._other[key]

    def __iter__(self) -> Iterator[str]:
        yield from (*ROLES, "ALLOWED_HOSTNAMES", "MAX_REMOTE_FILE_SIZE", *self._other)

    def __len__(self) -> int:
        return len(ROLES) + 2 + len(self._other)


class Response:
    """A response with the interface of Flask's test response."""

    def __init__(self, status_code: int, data: bytes, headers: Any) -> None:
        self.status_code = status_code
        self.data = data
        self.headers = headers
        self.mimetype = str(headers.get("content-type", "")).split(";")[0].strip()

    @property
    def is_json(self) -> bool:
        return self.mimetype == "application/json" or self.mimetype.endswith("+json")

    @property
    def json(self) -> Any:
        return self.get_json()

    def get_json(self) -> Any:
        import json

        return json.loads(self.data) if self.is_json else None

    def get_data(self, as_text: bool = False) -> bytes | str:
        return self.data.decode("utf-8") if as_text else self.data


class Client:
    """Flask's test-client interface over FastAPI's ``TestClient`` (in process)."""

    def __init__(self, app: App) -> None:
        self.application = app
        self._client = TestClient(app.api, raise_server_exceptions=False)
        self._auth = {"Authorization": f"Bearer {app.secret}"}

    def get(self, path: str, **kwargs: Any) -> Response:
        return self.open("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Response:
        return self.open("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> Response:
        return self.open("PUT", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Response:
        return self.open("DELETE", path, **kwargs)

    def open(
        self,
        method: str,
        path: str,
        *,
        query_string: dict[str, Any] | None = None,
        json: Any = None,
        data: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        """Send a request: ``query_string`` as Werkzeug encodes one (``True`` is
        ``"True"``), ``json``, and ``data`` whose ``(path, name, mime)`` tuples are files."""
        params = None if query_string is None else {k: str(v) for k, v in query_string.items()}
        files: dict[str, tuple[str, bytes, str]] = {}
        form: dict[str, str] = {}
        for key, value in (data or {}).items():
            if isinstance(value, tuple):
                file, name, *mime = value
                content = Path(file).read_bytes() if isinstance(file, str) else file.read()
                files[key] = (name, content, mime[0] if mime else "application/octet-stream")
            else:
                form[key] = str(value)
        answer = self._client.request(
            method,
            path,
            params=params,
            json=json,
            data=form or None,
            files=files or None,
            headers={**self._auth, **(headers or {})},
        )
        return Response(answer.status_code, answer.content, answer.headers)
