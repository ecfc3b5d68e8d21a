from __future__ import annotations

from typing import Any

import pytest

from runyard.formats import FORMATS, cell_text, get_writer
from runyard.formats.cells import sheet_value, truncate

MEDIA_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "json": "application/json",
    "jsonl": "application/x-ndjson",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "xls": "application/vnd.ms-excel",
    "xml": "application/xml; charset=utf-8",
    "html": "text/html; charset=utf-8",
    "rss": "application/rss+xml; charset=utf-8",
}


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_has_a_writer_with_extension_and_media_type(fmt: str) -> None:
    writer = get_writer(fmt.upper())
    assert writer.extension == fmt
    assert writer.media_type == MEDIA_TYPES[fmt]


def test_unknown_format_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="parquet"):
        get_writer("parquet")


def test_options_reach_the_writer() -> None:
    assert get_writer("csv", bom=False, delimiter=";").delimiter == ";"  # type: ignore[attr-defined]
    with pytest.raises(ValueError):
        get_writer("csv", delimiter=";;")


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("x", "x"),
        ("", ""),
        (True, "true"),
        (False, "false"),
        (0, "0"),
        (2**64, "18446744073709551616"),
        (1.5, "1.5"),
        (1e-7, "1e-7"),
        (None, ""),
        ([1, "a", None], '[1,"a",null]'),
        ({"b": 1, "a": {"c": []}}, '{"b":1,"a":{"c":[]}}'),
    ],
)
def test_cell_text(value: Any, text: str) -> None:
    assert cell_text(value) == text


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        (True, "true"),
        (3, 3),
        (2**53, 2**53),
        (-(2**53) - 1, str(-(2**53) - 1)),
        (0.25, 0.25),
        ("=1+1", "=1+1"),
        (None, None),
        ({"a": [1]}, '{"a":[1]}'),
    ],
)
def test_sheet_value(value: Any, cell: Any) -> None:
    assert sheet_value(value) == cell
    assert type(sheet_value(value)) is type(cell)


def test_truncate_counts_only_long_text() -> None:
    assert truncate("x" * 32_767) == ("x" * 32_767, False)
    assert truncate("x" * 32_768) == ("x" * 32_767, True)
