from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runyard.formats import get_writer
from runyard.formats.jsonl import JsonlWriter

from .samples import COLUMNS, ROWS, batched, stored


def write(fmt: str, path: Path, texts: list[str], columns: list[str], projected: bool) -> str:
    stats = get_writer(fmt).write(path, columns, batched(texts, 2), projected=projected)
    assert stats.rows == len(texts)
    return path.read_text(encoding="utf-8")


def test_json_splices_stored_text_untouched(tmp_path: Path) -> None:
    texts = stored(ROWS)
    out = write("json", tmp_path / "out.json", texts, COLUMNS, False)
    assert json.loads(out) == ROWS
    for text in texts:
        assert text in out  # not re-encoded: "1e-07" and the stored spacing survive


def test_jsonl_one_stored_text_per_line(tmp_path: Path) -> None:
    texts = stored(ROWS)
    out = write("jsonl", tmp_path / "out.jsonl", texts, COLUMNS, False)
    assert out.endswith("\n")
    assert out.split("\n")[:-1] == texts
    assert [json.loads(line) for line in out.splitlines()] == ROWS


@pytest.mark.parametrize("fmt", ["json", "jsonl"])
def test_projection_keeps_exactly_the_columns_in_order(tmp_path: Path, fmt: str) -> None:
    columns = ["note", "nobody", "title", "only_last"]
    out = write(fmt, tmp_path / f"out.{fmt}", stored(ROWS), columns, True)
    rows = json.loads(out) if fmt == "json" else [json.loads(x) for x in out.splitlines()]
    assert [list(row) for row in rows] == [columns] * len(ROWS)
    assert rows == [{key: row.get(key) for key in columns} for row in ROWS]


def test_empty_runs(tmp_path: Path) -> None:
    assert write("json", tmp_path / "a.json", [], COLUMNS, False) == "[]"
    assert write("json", tmp_path / "b.json", [], COLUMNS, True) == "[]"
    assert write("jsonl", tmp_path / "c.jsonl", [], COLUMNS, False) == ""


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(exclude_categories=("Cs",))),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
json_rows = st.lists(st.dictionaries(st.text(max_size=8), json_values, max_size=5), max_size=7)


@settings(max_examples=150, deadline=None)
@given(rows=json_rows, indent=st.sampled_from([None, 1]), batch=st.integers(1, 4))
def test_splice_equals_decoding_each_stored_row(
    tmp_path_factory: pytest.TempPathFactory,
    rows: list[dict[str, object]],
    indent: int | None,
    batch: int,
) -> None:
    directory = tmp_path_factory.mktemp("splice")
    # Any valid stored spelling (here also pretty-printed ones) must come through for JSON.
    texts = [json.dumps(row, indent=indent) for row in rows]
    json_path, jsonl_path = directory / "out.json", directory / "out.jsonl"
    get_writer("json").write(json_path, [], batched(texts, batch), projected=False)
    assert json.loads(json_path.read_text(encoding="utf-8")) == [json.loads(t) for t in texts]
    flat = [json.dumps(row) for row in rows]
    get_writer("jsonl").write(jsonl_path, [], batched(flat, batch), projected=False)
    lines = jsonl_path.read_text(encoding="utf-8").splitlines()
    assert lines == flat
    assert [json.loads(line) for line in lines] == rows


def test_jsonl_puts_multi_line_stored_rows_on_one_line(tmp_path: Path) -> None:
    stored = ['{\n  "a": 1,\n  "b": "x\\ny"\n}', '{"c":2}']
    path = tmp_path / "out.jsonl"
    JsonlWriter().write(path, ["a", "b", "c"], [stored], projected=False)
    lines = path.read_text().splitlines()
    assert [json.loads(line) for line in lines] == [{"a": 1, "b": "x\ny"}, {"c": 2}]
