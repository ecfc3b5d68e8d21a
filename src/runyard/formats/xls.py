"""XLS export (Excel 97-2003, BIFF8) through the streaming writer in :mod:`._biff8`.

Cells follow the XLSX rules (:func:`runyard.formats.cells.sheet_value`). BIFF8 has at most 256
columns; columns past the 256th are left out.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from runyard.formats._biff8 import MAX_COLUMNS, Biff8Book
from runyard.formats.base import RowBatch, WriteStats
from runyard.formats.cells import SheetValue, decode_row, sheet_value, truncate
from runyard.formats.xlsx import sheet_name

#: Data rows per sheet: BIFF8's 65,536 rows less the header row. Tests shrink it.
ROWS_PER_SHEET = 65_535


class XlsWriter:
    extension = "xls"
    media_type = "application/vnd.ms-excel"

    def write(
        self,
        path: Path,
        columns: Sequence[str],
        batches: Iterable[RowBatch],
        *,
        projected: bool,
    ) -> WriteStats:
        stats = WriteStats()
        keys = list(columns)[:MAX_COLUMNS]
        sheets = 0
        # Temporary files sit next to the export: same disk, and its space is already budgeted.
        with Biff8Book(tmp_dir=path.parent) as book:

            def new_sheet() -> None:
                nonlocal sheets
                book.add_sheet(sheet_name(sheets))
                book.add_row(keys, bold=True)
                sheets += 1

            new_sheet()
            for batch in batches:
                for text in batch:
                    if book.rows_in_sheet > ROWS_PER_SHEET:
                        new_sheet()
                    row = decode_row(text)
                    cells: list[SheetValue] = []
                    for key in keys:
                        value = sheet_value(row.get(key))
                        if isinstance(value, str):
                            value, cut = truncate(value)
                            stats.truncated_cells += cut
                        cells.append(value)
                    book.add_row(cells)
                    stats.rows += 1
            book.save(path)
        return stats
