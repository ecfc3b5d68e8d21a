"""Result rows behind one narrow interface.

Rows are kept as the JSON text the worker sent, numbered densely from 0 within their run, so a
page is the key range ``seq >= start AND seq < stop`` — constant cost at any depth, where SQL
``OFFSET`` grows with it (DESIGN §2).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Protocol

from sqlalchemy import Connection, Engine, bindparam, insert, select, update

from runyard.storage.models import result_rows
from runyard.storage.rawquery import RawQuery

_PAGE = (
    select(result_rows.c.data)
    .where(
        result_rows.c.run_id == bindparam("run_id"),
        result_rows.c.seq >= bindparam("start"),
        result_rows.c.seq < bindparam("stop"),
    )
    .order_by(result_rows.c.seq)
)


class RowStore(Protocol):
    def append(
        self, conn: Connection, run_id: int, first_seq: int, texts: Sequence[str]
    ) -> None: ...

    def replace(self, conn: Connection, run_id: int, rows: dict[int, str]) -> None: ...

    def read(self, run_id: int, start: int, stop: int) -> list[str]: ...

    def iter_batches(
        self, run_id: int, stop: int, batch_size: int = ...
    ) -> Iterator[list[str]]: ...


class SqlRowStore:
    """Rows in the metadata database itself (SQLite in the embedded mode).

    ``append`` takes the caller's connection so that rows, the run's count and its columns
    commit in one transaction: a crash loses at most the batch being written.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._page = RawQuery(engine, _PAGE)
        # The insert compiled once for this database and run as the driver's own executemany:
        # building and binding a statement per row cost more than the inserts (ingest profile).
        compiled = insert(result_rows).compile(dialect=engine.dialect)
        self._insert = compiled.string
        self._positional = compiled.positional

    def append(self, conn: Connection, run_id: int, first_seq: int, texts: Sequence[str]) -> None:
        if not texts:
            return
        if self._positional:
            params: list[Any] = [(run_id, first_seq + i, t) for i, t in enumerate(texts)]
        else:
            params = [
                {"run_id": run_id, "seq": first_seq + i, "data": t} for i, t in enumerate(texts)
            ]
        conn.exec_driver_sql(self._insert, params)

    def replace(self, conn: Connection, run_id: int, rows: dict[int, str]) -> None:
        """Overwrite committed rows in place (upserts): ``{seq: text}``."""
        if rows:
            conn.execute(
                update(result_rows)
                .where(
                    result_rows.c.run_id == bindparam("rid"),
                    result_rows.c.seq == bindparam("s"),
                )
                .values(data=bindparam("d")),
                [{"rid": run_id, "s": seq, "d": text} for seq, text in rows.items()],
            )

    def read(self, run_id: int, start: int, stop: int) -> list[str]:
        if stop <= start:
            return []
        return [row[0] for row in self._page.all(run_id=run_id, start=start, stop=stop)]

    def iter_batches(self, run_id: int, stop: int, batch_size: int = 5000) -> Iterator[list[str]]:
        # One short read per batch, not one long cursor: a long-lived reader would hold back
        # SQLite's WAL checkpoint (PostgreSQL's vacuum horizon) for the whole export.
        for start in range(0, stop, batch_size):
            yield self.read(run_id, start, min(start + batch_size, stop))


class PostgresRowStore(SqlRowStore):
    """Rows in PostgreSQL: appended with ``COPY``, read by the same key range.

    ``COPY`` streams a batch as one message instead of a statement per row; PostgreSQL checks
    each text is JSON as it lands in the ``json`` column.
    """

    _COPY = "COPY result_rows (run_id, seq, data) FROM STDIN"

    def append(self, conn: Connection, run_id: int, first_seq: int, texts: Sequence[str]) -> None:
        if not texts:
            return
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        with cursor, cursor.copy(self._COPY) as copy:
            write = copy.write_row
            for i, text in enumerate(texts, first_seq):
                write((run_id, i, text))


def row_store(engine: Engine) -> RowStore:
    """The row store for ``engine``'s database."""
    if engine.dialect.name == "postgresql":
        return PostgresRowStore(engine)
    return SqlRowStore(engine)
