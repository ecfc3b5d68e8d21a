from __future__ import annotations

import csv
import io
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runyard.formats import get_writer

from .samples import COLUMNS, ROWS, assert_text_cell, batched, stored


def read_csv(path: Path, *, bom: bool = True, delimiter: str = ",") -> list[list[str]]:
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") is bom
    text = raw.decode("utf-8-sig" if bom else "utf-8")
    return list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True))


def test_round_trip_cell_by_cell(tmp_path: Path) -> None:
    path = tmp_path / "out.csv"
    stats = get_writer("csv").write(path, COLUMNS, batched(stored(ROWS)), projected=False)
    assert stats.rows == len(ROWS)
    table = read_csv(path)
    assert table[0] == COLUMNS
    assert len(table) == len(ROWS) + 1
    for row, line in zip(ROWS, table[1:], strict=True):
        for key, cell in zip(COLUMNS, line, strict=True):
            assert_text_cell(cell, row.get(key))


def test_rfc4180_framing(tmp_path: Path) -> None:
    path = tmp_path / "out.csv"
    rows = ['{"a":"x,y","b":"say \\"hi\\"","c":"l1\\nl2"}']
    get_writer("csv").write(path, ["a", "b", "c"], [rows], projected=False)
    assert path.read_bytes() == b'\xef\xbb\xbfa,b,c\r\n"x,y","say ""hi""","l1\nl2"\r\n'


def test_no_bom_and_another_delimiter(tmp_path: Path) -> None:
    path = tmp_path / "out.csv"
    writer = get_writer("csv", bom=False, delimiter=";")
    writer.write(path, COLUMNS, batched(stored(ROWS)), projected=False)
    table = read_csv(path, bom=False, delimiter=";")
    assert table[0] == COLUMNS
    for row, line in zip(ROWS, table[1:], strict=True):
        for key, cell in zip(COLUMNS, line, strict=True):
            assert_text_cell(cell, row.get(key))


def test_empty_run_is_just_the_header(tmp_path: Path) -> None:
    path = tmp_path / "out.csv"
    stats = get_writer("csv").write(path, ["a", "b"], iter([]), projected=False)
    assert stats.rows == 0
    assert path.read_bytes() == b"\xef\xbb\xbfa,b\r\n"


def test_projected_key_no_row_has_is_an_empty_column(tmp_path: Path) -> None:
    path = tmp_path / "out.csv"
    get_writer("csv").write(path, ["n", "nobody", "title"], batched(stored(ROWS)), projected=True)
    table = read_csv(path)
    assert table[0] == ["n", "nobody", "title"]
    assert [line[1] for line in table[1:]] == [""] * len(ROWS)
    assert [line[2] for line in table[1:]] == [row["title"] for row in ROWS]


safe_text = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\0"))


@settings(max_examples=200, deadline=None)
@given(
    values=st.lists(
        st.lists(
            safe_text | st.sampled_from([",", '"', "\r\n", "\n", "\r"]), min_size=3, max_size=3
        ),
        max_size=8,
    ),
    delimiter=st.sampled_from([",", ";", "\t", "|"]),
)
def test_arbitrary_text_survives_csv_reading(
    tmp_path_factory: pytest.TempPathFactory, values: list[list[str]], delimiter: str
) -> None:
    path = tmp_path_factory.mktemp("csv") / "out.csv"
    keys = ["a", "b,c", 'd"e']
    texts = [orjson.dumps(dict(zip(keys, row, strict=True))).decode() for row in values]
    get_writer("csv", delimiter=delimiter).write(path, keys, batched(texts, 3), projected=False)
    table = read_csv(path, delimiter=delimiter)
    assert table == [keys, *values]
