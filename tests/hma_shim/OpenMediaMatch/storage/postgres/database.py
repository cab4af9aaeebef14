"""``db.session.execute``: a statement run on the current app's database (HMA's tests ask
PostgreSQL whether large objects leaked; amber stores none)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from OpenMediaMatch.app import current_app


class _Session:
    def execute(self, statement: Any) -> sa.Result[Any]:
        """Run ``statement`` on the current app's database; the rows, buffered."""
        with current_app().engine.db.connect() as conn:
            return conn.execute(statement).freeze()()


class _Database:
    session = _Session()


db = _Database()
