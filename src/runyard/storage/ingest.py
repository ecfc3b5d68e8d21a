"""Turning incoming rows into committed, paged results.

Every batch commits the rows together with the run's new count and column list, so readers see
either all of a batch or none of it, and a crash loses at most the batch in flight.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from sqlalchemy import select, update

from runyard.storage.database import Database
from runyard.storage.models import Run
from runyard.storage.rowstore import RowStore

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
        #: Committed rows replaced by upserts since the last flush: ``{seq: text}``.
        self._replaced: dict[int, str] = {}
        #: Per upsert key field: the field's value (as canonical JSON) → seq of its first row.
        #: Built on the first upsert with that field, so plain pushes pay nothing.
        self._indexes: dict[str, dict[bytes, int]] = {}

    def add(self, text: str, row: dict[str, Any]) -> None:
        """Queue one row: ``text`` is stored verbatim, ``row`` is its decoded form."""
        if not row.keys() <= self._seen:  # a set comparison in C: most rows add no column
            self._track_columns(row)
        if self._indexes:
            seq = self.count + len(self._pending)
            for field, index in self._indexes.items():
                if field in row:
                    index.setdefault(_marker(row[field]), seq)
        self._pending.append(text)
        if len(self._pending) >= self.batch_size:
            self.flush()

    def upsert(self, text: str, row: dict[str, Any], key: str) -> None:
        """Replace the earlier row whose ``key`` field equals this row's, in place; else add."""
        if key not in row:
            self.add(text, row)
            return
        seq = self._index(key).get(_marker(row[key]))
        if seq is None:
            self.add(text, row)
            return
        self._track_columns(row)
        if seq >= self.count:
            self._pending[seq - self.count] = text
        else:
            self._replaced[seq] = text
            if len(self._replaced) >= self.batch_size:
                self.flush()

    def _index(self, field: str) -> dict[bytes, int]:
        index = self._indexes.get(field)
        if index is None:
            index = {}
            seq = 0
            for batch in self.rows.iter_batches(self.run_id, self.count):
                for text in batch:
                    _index_row(index, field, self._replaced.get(seq, text), seq)
                    seq += 1
            for text in self._pending:
                _index_row(index, field, text, seq)
                seq += 1
            self._indexes[field] = index
        return index

    def _track_columns(self, row: dict[str, Any]) -> None:
        for key in row:
            if key not in self._seen:
                self._seen.add(key)
                self._columns.append({"key": key, "label": key})
                self._columns_changed = True

    def set_headers(self, headers: list[dict[str, str]]) -> None:
        """Declared headers come first, in their order and with their labels."""
        declared = [{"key": h["key"], "label": h.get("label") or h["key"]} for h in headers]
        keys = {c["key"] for c in declared}
        self._columns = declared + [c for c in self._columns if c["key"] not in keys]
        self._seen = {c["key"] for c in self._columns}
        self._columns_changed = True

    def flush(self) -> None:
        """Commit what is queued. ``StorageFull`` when the disk cannot take it (nothing is
        written, the rows stay queued); a database busy past its retries is retried whole,
        then raised as ``StorageBusy``."""
        if not (self._pending or self._replaced or self._columns_changed):
            return
        values: dict[str, Any] = {"results": self.count + len(self._pending)}
        if self._columns_changed:
            values["columns"] = orjson.dumps(self._columns).decode()
        # Characters, not bytes: check_room's margin covers the difference.
        size = sum(map(len, self._pending)) + sum(map(len, self._replaced.values()))
        self.db.check_room(size + len(values.get("columns", "")))
        self.db.retry(lambda: self._commit(values), f"storing rows of run {self.run_id}")
        self.count += len(self._pending)
        self._pending = []
        self._replaced = {}
        self._columns_changed = False
        if self.on_commit is not None:
            self.on_commit(self.count)

    def _commit(self, values: dict[str, Any]) -> None:
        with self.db.engine.begin() as conn:
            # First, even with no new rows: a fenced store (execution.process.FencedRows)
            # checks there that the run is still active before anything is written.
            self.rows.append(conn, self.run_id, self.count, self._pending)
            self.rows.replace(conn, self.run_id, self._replaced)
            conn.execute(update(Run).where(Run.id == self.run_id).values(**values))


def _marker(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def _index_row(index: dict[bytes, int], field: str, text: str, seq: int) -> None:
    try:
        row = orjson.loads(text)
    except orjson.JSONDecodeError:
        return
    if isinstance(row, dict) and field in row:
        index.setdefault(_marker(row[field]), seq)
