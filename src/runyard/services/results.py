"""Result pages, answered from stored text: no row is decoded or re-encoded on the way out."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import bindparam, select

from runyard.services.errors import NotFound
from runyard.services.paging import Window
from runyard.services.runs import LAST
from runyard.storage import Database, RawQuery, RowStore, Run


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
        base = select(Run.id, Run.results, Run.columns).where(Run.user_id == bindparam("user"))
        self._by_slug = RawQuery(db.engine, base.where(Run.slug == bindparam("slug")))
        self._last = RawQuery(
            db.engine, base.order_by(Run.created_at.desc(), Run.id.desc()).limit(1)
        )

    def page(self, user_id: int, run_slug: str, window: Window) -> ResultPage:
        if run_slug == LAST:
            run = self._last.first(user=user_id)
        else:
            run = self._by_slug.first(user=user_id, slug=run_slug)
        if run is None:
            raise NotFound("run not found")
        run_id, count, columns = run
        # Rows past ``results`` may belong to a batch still committing elsewhere; the count is
        # what the reply promises, so it bounds the read.
        stop = min(window.stop, count)
        return ResultPage(
            count=count,
            headers_json=columns,
            rows=self.rows.read(run_id, window.start, stop),
            page_index=window.page_index,
            page_size=window.size,
        )
