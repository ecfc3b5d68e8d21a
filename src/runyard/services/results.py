"""Result pages, answered from stored text: no row is decoded or re-encoded on the way out."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from runyard.services.errors import NotFound
from runyard.services.paging import Window
from runyard.services.runs import LAST
from runyard.storage import Database, RowStore, Run


@dataclass(frozen=True)
class ResultPage:
    count: int
    #: The run's ``[{"key", "label"}, …]`` as JSON text, ready to splice.
    headers_json: str
    #: Each row's JSON object text, exactly as stored.
    rows: list[str]
    page_index: int
    page_size: int


class Results:
    def __init__(self, db: Database, rows: RowStore) -> None:
        self.db = db
        self.rows = rows

    def page(self, user_id: int, run_slug: str, window: Window) -> ResultPage:
        query = select(Run.id, Run.results, Run.columns).where(Run.user_id == user_id)
        if run_slug == LAST:
            query = query.order_by(Run.created_at.desc(), Run.id.desc()).limit(1)
        else:
            query = query.where(Run.slug == run_slug)
        with self.db.engine.connect() as conn:
            run = conn.execute(query).first()
        if run is None:
            raise NotFound("run not found")
        # Rows past ``results`` may belong to a batch still committing elsewhere; the count is
        # what the reply promises, so it bounds the read.
        stop = min(window.stop, run.results)
        return ResultPage(
            count=run.results,
            headers_json=run.columns,
            rows=self.rows.read(run.id, window.start, stop),
            page_index=window.page_index,
            page_size=window.size,
        )
