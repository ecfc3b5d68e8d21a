from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
import xlrd

from runyard.formats import get_writer, xls

from .samples import COLUMNS, ROWS, assert_sheet_cell, batched, stored


def read(path: Path) -> dict[str, list[list[Any]]]:
    book = xlrd.open_workbook(str(path))
    return {
        sheet.name: [sheet.row_values(r) for r in range(sheet.nrows)] for sheet in book.sheets()
    }


def write(path: Path, columns: list[str], texts: list[str], *, projected: bool = False) -> Any:
    return get_writer("xls").write(path, columns, batched(texts, 3), projected=projected)


def test_round_trip_cell_by_cell(tmp_path: Path) -> None:
    path = tmp_path / "out.xls"
    stats = write(path, COLUMNS, stored(ROWS))
    assert (stats.rows, stats.truncated_cells) == (len(ROWS), 0)
    sheets = read(path)
    assert list(sheets) == ["Results"]
    table = sheets["Results"]
    assert table[0] == COLUMNS
    assert len(table) == len(ROWS) + 1
    for row, line in zip(ROWS, table[1:], strict=True):
        for key, cell in zip(COLUMNS, line, strict=True):
            assert_sheet_cell(cell, row.get(key))


def test_cell_types_and_bold_header(tmp_path: Path) -> None:
    path = tmp_path / "out.xls"
    rows = [{"f": "=1+1", "u": "https://example.com/", "n": 3, "b": True, "z": None}]
    write(path, ["f", "u", "n", "b", "z"], stored(rows))
    book = xlrd.open_workbook(str(path), formatting_info=True)
    sheet = book.sheet_by_index(0)
    kinds = [cell.ctype for cell in sheet.row(1)]
    text, number, empty = xlrd.XL_CELL_TEXT, xlrd.XL_CELL_NUMBER, xlrd.XL_CELL_EMPTY
    assert kinds == [text, text, number, text, empty]
    header_font = book.font_list[book.xf_list[sheet.cell_xf_index(0, 0)].font_index]
    body_font = book.font_list[book.xf_list[sheet.cell_xf_index(1, 0)].font_index]
    assert header_font.bold and not body_font.bold
    assert (header_font.weight, body_font.weight) == (700, 400)


@pytest.mark.parametrize("char", ["x", "é", "漢", "😀"])
def test_long_strings_span_continue_records(tmp_path: Path, char: str) -> None:
    # Lengths around the 8,224-byte record limit, in one- and two-byte encodings, with
    # surrogate pairs that must not be split between records.
    values = [char * n for n in (1, 4_000, 4_111, 4_112, 8_214, 8_300, 20_000)]
    values += ["ab" + char * 16_000, char * 32_767]
    texts = [orjson.dumps({"v": v, "w": f"after {i}"}).decode() for i, v in enumerate(values)]
    path = tmp_path / "out.xls"
    write(path, ["v", "w"], texts)
    table = read(path)["Results"]
    expected = [v if len(v) <= 32_767 else v[:32_767] for v in values]
    assert [line[0] for line in table[1:]] == expected
    assert [line[1] for line in table[1:]] == [f"after {i}" for i in range(len(values))]


def test_long_cells_are_truncated_and_counted(tmp_path: Path) -> None:
    path = tmp_path / "out.xls"
    stats = write(path, ["a", "b"], stored([{"a": "x" * 40_000, "b": "ok"}, {"a": "漢" * 33_000}]))
    assert stats.truncated_cells == 2
    table = read(path)["Results"]
    assert table[1:] == [["x" * 32_767, "ok"], ["漢" * 32_767, ""]]


def test_many_strings_and_a_multi_megabyte_file(tmp_path: Path) -> None:
    # Enough strings to thin out the EXTSST index, and enough bytes (> 109 FAT sectors) that
    # the compound file needs DIFAT sectors.
    texts = [orjson.dumps({"s": f"s{i}", "big": "y" * 3_000}).decode() for i in range(3_000)]
    path = tmp_path / "out.xls"
    write(path, ["s", "big"], texts)
    assert path.stat().st_size > 109 * 128 * 512
    table = read(path)["Results"]
    assert [line[0] for line in table[1:]] == [f"s{i}" for i in range(3_000)]
    assert all(line[1] == "y" * 3_000 for line in table[1:])


def test_empty_run_is_just_the_header(tmp_path: Path) -> None:
    path = tmp_path / "out.xls"
    assert write(path, ["a", "b"], []).rows == 0
    assert read(path) == {"Results": [["a", "b"]]}


def test_projected_key_no_row_has_is_an_empty_column(tmp_path: Path) -> None:
    path = tmp_path / "out.xls"
    write(path, ["nobody", "n"], stored(ROWS), projected=True)
    table = read(path)["Results"]
    assert table[0] == ["nobody", "n"]
    assert [line[0] for line in table[1:]] == [""] * len(ROWS)


def test_rows_continue_on_further_sheets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(xls, "ROWS_PER_SHEET", 3)
    path = tmp_path / "out.xls"
    texts = [orjson.dumps({"i": i, "s": f"row {i}"}).decode() for i in range(9)]
    assert write(path, ["i", "s"], texts).rows == 9
    sheets = read(path)
    assert list(sheets) == ["Results", "Results 2", "Results 3"]
    assert all(table[0] == ["i", "s"] for table in sheets.values())
    data = [line for table in sheets.values() for line in table[1:]]
    assert data == [[float(i), f"row {i}"] for i in range(9)]


def test_columns_beyond_256_are_left_out(tmp_path: Path) -> None:
    path = tmp_path / "out.xls"
    columns = [f"c{i}" for i in range(300)]
    write(path, columns, [orjson.dumps({c: 1 for c in columns}).decode()])
    table = read(path)["Results"]
    assert table[0] == columns[:256]
    assert table[1] == [1.0] * 256
