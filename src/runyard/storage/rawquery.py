"""Hot-path reads on a raw DBAPI cursor.

SQLAlchemy Core costs ~3 µs a row and ~100 µs a statement on this machine class; on a result
page (three small reads) that was most of the server's time. A ``RawQuery`` is built from an
ordinary SQLAlchemy statement, compiled once to the driver's own SQL and parameter style, so it
stays portable across dialects while each execution is just the driver's.
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import Engine
from sqlalchemy.sql import Executable
from sqlalchemy.sql.compiler import SQLCompiler

from runyard.storage.database import as_storage_error, refuse_nul


class RawQuery:
    def __init__(self, engine: Engine, statement: Executable) -> None:
        compiled = cast(SQLCompiler, statement.compile(dialect=engine.dialect))  # type: ignore[attr-defined]
        self.engine = engine
        self._postgres = engine.dialect.name == "postgresql"
        self.sql = str(compiled)
        self._order = list(compiled.positiontup or []) if compiled.positional else None
        # Values the statement carries itself, such as a LIMIT.
        self._defaults = dict(compiled.params)

    def all(self, **params: Any) -> list[tuple[Any, ...]]:
        refuse_nul(params)  # what the engine's own statements get from an event
        values = {**self._defaults, **params}
        args: Any = values if self._order is None else tuple(values[n] for n in self._order)
        conn = self.engine.raw_connection()
        # psycopg would open a transaction for the read and the pool roll it back: two more
        # round trips than the read itself (SQLite's module has no such switch to set).
        driver = conn.driver_connection if self._postgres else None
        try:
            if driver is not None:
                driver.autocommit = True
            cur = conn.cursor()
            try:
                cur.execute(self.sql, args)
                return list(cur.fetchall())
            except Exception as exc:
                # As the engine's own statements leave (no SQLAlchemy event sees this cursor).
                problem = as_storage_error(exc)
                if problem is None:
                    raise
                raise problem from exc
            finally:
                cur.close()
        finally:
            if driver is not None:
                driver.autocommit = False
            conn.close()

    def first(self, **params: Any) -> tuple[Any, ...] | None:
        rows = self.all(**params)
        return rows[0] if rows else None
