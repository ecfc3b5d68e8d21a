"""The one small interface every export format implements."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

#: A batch of result rows, each the JSON object text exactly as stored.
RowBatch = Sequence[str]


@dataclass
class WriteStats:
    """What a writer reports back once the file is complete."""

    rows: int = 0
    #: Cells cut to a format's size limit (XLSX: 32,767 characters).
    truncated_cells: int = 0


class ExportWriter(Protocol):
    """Writes rows to a file without holding them all in memory.

    ``columns`` are the export's keys, in order. ``projected`` is true when the caller chose the
    columns (``filter_keys``); JSON and JSONL then project each row onto them, otherwise they copy
    the stored text untouched.
    """

    extension: str
    media_type: str

    def write(
        self,
        path: Path,
        columns: Sequence[str],
        batches: Iterable[RowBatch],
        *,
        projected: bool,
    ) -> WriteStats: ...
