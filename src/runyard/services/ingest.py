"""Turning incoming rows into committed, paged results.

Every batch commits the rows together with the run's new count and column list, so readers see
either all of a batch or none of it, and a crash loses at most the batch in flight.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from sqlalchemy import select, update

from runyard.storage import Database, RowStore, Run

DEFAULT_BATCH = 2000


def parse_row(text: str) -> dict[str, Any]:
    """Decode one row; the one place that decides what a row may be."""
    value = orjson.loads(text)
    if not isinstance(value, dict):
        raise ValueError(f"a row must be a JSON object, not {type(value).__name__}")
    return value


class RowIngestor:
    def __init__(
        self,
        db: Database,
        rows: RowStore,
        run_id: int,
        *,
        batch_size: int = DEFAULT_BATCH,
        on_commit: Callable[[int], None] | None = None,
    ) -> None:
        self.db = db
        self.rows = rows
        self.run_id = run_id
        self.batch_size = batch_size
        self.on_commit = on_commit
        with db.engine.connect() as conn:
            count, columns = conn.execute(
                select(Run.results, Run.columns).where(Run.id == run_id)
            ).one()
        self.count: int = count
        self._columns: list[dict[str, str]] = orjson.loads(columns)
        self._seen = {c["key"] for c in self._columns}
        self._columns_changed = False
        self._pending: list[str] = []

    def add(self, text: str, row: dict[str, Any]) -> None:
        """Queue one row: ``text`` is stored verbatim, ``row`` is its decoded form."""
        for key in row:
            if key not in self._seen:
                self._seen.add(key)
                self._columns.append({"key": key, "label": key})
                self._columns_changed = True
        self._pending.append(text)
        if len(self._pending) >= self.batch_size:
            self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        values: dict[str, Any] = {"results": self.count + len(self._pending)}
        if self._columns_changed:
            values["columns"] = orjson.dumps(self._columns).decode()
        with self.db.engine.begin() as conn:
            self.rows.append(conn, self.run_id, self.count, self._pending)
            conn.execute(update(Run).where(Run.id == self.run_id).values(**values))
        self.count += len(self._pending)
        self._pending = []
        self._columns_changed = False
        if self.on_commit is not None:
            self.on_commit(self.count)
