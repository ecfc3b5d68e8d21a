"""Result pages, answered from stored text: no row is decoded or re-encoded on the way out."""

from __future__ import annotations

from dataclasses import dataclass

from runyard.services.paging import Window
from runyard.services.runs import Runs
from runyard.storage import RowStore


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
    def __init__(self, runs: Runs, rows: RowStore) -> None:
        self.runs = runs
        self.rows = rows

    def page(
        self, user_id: int, run_slug: str, window: Window, worker_id: str | None = None
    ) -> ResultPage:
        run_id, count, columns = self.runs.locate(user_id, run_slug, worker_id)
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
