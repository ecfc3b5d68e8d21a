"""Shared rows and independent expectations for the format tests."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from typing import Any

ROWS: list[dict[str, Any]] = [
    {
        "title": "Plain",
        "n": 1,
        "price": 9.99,
        "ok": True,
        "tags": ["a", "b,c"],
        "meta": {"z": 1, "a": [1, {"k": None}]},
        "note": None,
    },
    {
        "title": "Emoji 😀 CJK 漢字 RTL עברית مرحبا",
        "n": -42,
        "price": 1e-7,
        "ok": False,
        "note": 'quote " and , comma; semi',
    },
    {"title": "Line\r\nbreak\nand\rCR", "n": 2**60, "price": 1.5e300, "note": "=1+1"},
    {
        "title": "http://example.com/?a=1&b=2",
        "n": 0,
        "price": 0.1,
        "url": "https://example.com/x",
        "note": "<b>tag</b> & 'single' ]]>",
    },
    {"title": "  spaces  ", "n": 2**53, "price": 2.5, "note": "", "only_last": "late key"},
]

COLUMNS: list[str] = list(dict.fromkeys(key for row in ROWS for key in row))


def stored(rows: Sequence[dict[str, Any]]) -> list[str]:
    """Rows as the store keeps them. Deliberately not orjson's spelling (``1e-07``, spaces), so a
    writer that re-encodes instead of splicing is caught."""
    return [json.dumps(row, ensure_ascii=False) for row in rows]


def batched(texts: Sequence[str], size: int = 2) -> Iterator[list[str]]:
    for start in range(0, len(texts), size):
        yield list(texts[start : start + size])


def compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def assert_text_cell(cell: str, value: Any) -> None:
    """``cell`` is the spec's text for ``value`` (§2.2 "File content per format")."""
    if value is None:
        assert cell == ""
    elif value is True or value is False:
        assert cell == ("true" if value else "false")
    elif isinstance(value, int):
        assert cell == str(value)
    elif isinstance(value, float):
        assert json.loads(cell) == value
    elif isinstance(value, str):
        assert cell == value
    else:
        assert cell == compact(value)


def assert_sheet_cell(cell: Any, value: Any, *, exact_floats: bool = True) -> None:
    """``cell`` (as a spreadsheet reader returns it, blank → None or "") matches ``value``."""
    if value is None or value == "":
        assert cell in (None, "")
    elif value is True or value is False:
        assert cell == ("true" if value else "false")
    elif isinstance(value, int) and abs(value) > 2**53:
        assert cell == str(value)
    elif isinstance(value, int | float):
        assert isinstance(cell, int | float) and not isinstance(cell, bool)
        if exact_floats:
            assert cell == value
        else:
            assert math.isclose(cell, value, rel_tol=1e-15)
    elif isinstance(value, str):
        assert cell == value
    else:
        assert cell == compact(value)
