from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import openpyxl
import orjson
import pytest

from runyard.formats import get_writer, xlsx

from .samples import COLUMNS, ROWS, assert_sheet_cell, batched, stored

_XSTRING_ESCAPE = re.compile("_x([0-9A-Fa-f]{4})_")


def unescape(value: Any) -> Any:
    """Undo ECMA-376's ``_xHHHH_`` escaping (ST_Xstring), which openpyxl leaves in place."""
    if not isinstance(value, str):
        return value
    return _XSTRING_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), value)


def read(path: Path) -> dict[str, list[list[Any]]]:
    book = openpyxl.load_workbook(path, read_only=True)
    try:
        return {
            sheet.title: [[unescape(v) for v in row] for row in sheet.iter_rows(values_only=True)]
            for sheet in book.worksheets
        }
    finally:
        book.close()


def test_round_trip_cell_by_cell(tmp_path: Path) -> None:
    path = tmp_path / "out.xlsx"
    stats = get_writer("xlsx").write(path, COLUMNS, batched(stored(ROWS)), projected=False)
    assert (stats.rows, stats.truncated_cells) == (len(ROWS), 0)
    sheets = read(path)
    assert list(sheets) == ["Results"]
    table = sheets["Results"]
    assert table[0] == COLUMNS
    assert len(table) == len(ROWS) + 1
    for row, line in zip(ROWS, table[1:], strict=True):
        line += [None] * (len(COLUMNS) - len(line))
        for key, cell in zip(COLUMNS, line, strict=True):
            # XlsxWriter writes numbers with 16 significant digits, as Excel keeps 15.
            assert_sheet_cell(cell, row.get(key), exact_floats=False)


def test_header_is_bold_and_strings_stay_strings(tmp_path: Path) -> None:
    path = tmp_path / "out.xlsx"
    rows = [{"f": "=1+1", "u": "https://example.com/", "num": "007", "x": "_x0041_"}]
    get_writer("xlsx").write(path, ["f", "u", "num", "x"], [stored(rows)], projected=False)
    book = openpyxl.load_workbook(path)
    sheet = book["Results"]
    assert all(cell.font.b for cell in sheet[1])
    assert [(c.value, c.data_type) for c in sheet[2]] == [
        ("=1+1", "s"),
        ("https://example.com/", "s"),
        ("007", "s"),
        ("_x005F_x0041_", "s"),  # escaped, so Excel shows the literal text
    ]
    assert sheet[2][1].hyperlink is None


def test_long_cells_are_truncated_and_counted(tmp_path: Path) -> None:
    path = tmp_path / "out.xlsx"
    rows = [{"a": "x" * 40_000, "b": "ok"}, {"a": ["y" * 40_000]}]
    stats = get_writer("xlsx").write(path, ["a", "b"], [stored(rows)], projected=False)
    assert stats.truncated_cells == 2
    table = read(path)["Results"]
    assert table[1] == ["x" * 32_767, "ok"]
    assert table[2][0] == orjson.dumps(["y" * 40_000]).decode()[:32_767]


def test_empty_run_is_just_the_header(tmp_path: Path) -> None:
    path = tmp_path / "out.xlsx"
    stats = get_writer("xlsx").write(path, ["a", "b"], [], projected=False)
    assert stats.rows == 0
    assert read(path) == {"Results": [["a", "b"]]}


def test_projected_key_no_row_has_is_an_empty_column(tmp_path: Path) -> None:
    path = tmp_path / "out.xlsx"
    get_writer("xlsx").write(path, ["nobody", "n"], batched(stored(ROWS)), projected=True)
    table = read(path)["Results"]
    assert table[0] == ["nobody", "n"]
    assert [line[0] for line in table[1:]] == [None] * len(ROWS)


def test_rows_continue_on_further_sheets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(xlsx, "ROWS_PER_SHEET", 3)
    path = tmp_path / "out.xlsx"
    texts = [orjson.dumps({"i": i, "s": f"row {i}"}).decode() for i in range(8)]
    stats = get_writer("xlsx").write(path, ["i", "s"], batched(texts, 5), projected=False)
    assert stats.rows == 8
    sheets = read(path)
    assert list(sheets) == ["Results", "Results 2", "Results 3"]
    assert all(table[0] == ["i", "s"] for table in sheets.values())
    data = [line for table in sheets.values() for line in table[1:]]
    assert data == [[i, f"row {i}"] for i in range(8)]
    assert [len(table) - 1 for table in sheets.values()] == [3, 3, 2]
