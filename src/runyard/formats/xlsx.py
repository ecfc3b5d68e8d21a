"""XLSX export through XlsxWriter in constant-memory mode (each row is flushed once written)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import xlsxwriter

from runyard.formats.base import RowBatch, WriteStats
from runyard.formats.cells import decode_row, sheet_value, truncate

#: Data rows per sheet: Excel's 1,048,576 rows less the header row. Tests shrink it.
ROWS_PER_SHEET = 1_048_575

_OPTIONS = {
    "constant_memory": True,
    # A scraped "=1+1" or "http://…" is data; it must never become a formula or a hyperlink.
    "strings_to_formulas": False,
    "strings_to_urls": False,
    "strings_to_numbers": False,
}


def sheet_name(index: int) -> str:
    """ "Results", "Results 2", … for the zero-based ``index``."""
    return "Results" if index == 0 else f"Results {index + 1}"


class XlsxWriter:
    extension = "xlsx"
    media_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

    def write(
        self,
        path: Path,
        columns: Sequence[str],
        batches: Iterable[RowBatch],
        *,
        projected: bool,
    ) -> WriteStats:
        stats = WriteStats()
        keys = list(columns)
        book = xlsxwriter.Workbook(str(path), _OPTIONS)
        try:
            bold = book.add_format({"bold": True})

            def new_sheet() -> Any:
                sheet = book.add_worksheet(sheet_name(len(book.worksheets())))
                for col, key in enumerate(keys):
                    sheet.write_string(0, col, key, bold)
                return sheet

            sheet = new_sheet()
            row_in_sheet = 0
            for batch in batches:
                for text in batch:
                    if row_in_sheet == ROWS_PER_SHEET:
                        sheet = new_sheet()
                        row_in_sheet = 0
                    row_in_sheet += 1
                    row = decode_row(text)
                    for col, key in enumerate(keys):
                        value = sheet_value(row.get(key))
                        if isinstance(value, str):
                            value, cut = truncate(value)
                            stats.truncated_cells += cut
                            sheet.write_string(row_in_sheet, col, value)
                        elif value is not None:
                            sheet.write_number(row_in_sheet, col, value)
                    stats.rows += 1
        finally:
            book.close()
        return stats
