"""The cell rules every tabular format shares (spec §2.2, "File content per format")."""

from __future__ import annotations

import json
from typing import Any

import orjson

#: Integers beyond this magnitude lose digits as IEEE doubles, so spreadsheets get them as text.
MAX_EXACT_INT = 2**53

#: Excel's limit on the characters in one cell (XLSX and XLS alike).
MAX_CELL_CHARS = 32_767

#: What a spreadsheet cell holds: text, a number, or nothing.
SheetValue = str | int | float | None


#: orjson decodes an integer beyond 64 bits as a float; no such float is smaller than this.
_BIG = 2.0**63


def decode_row(text: str) -> dict[str, Any]:
    """One stored row, decoded with its top-level integers exact.

    A top-level float this large may have been such an integer, so that rare row is decoded
    again with the standard library, which keeps every integer. (Checking the text up front
    with a regular expression cost four times the decoding itself.)
    """
    row: dict[str, Any] = orjson.loads(text)
    for value in row.values():
        if type(value) is float and not -_BIG < value < _BIG:
            return dict(json.loads(text))
    return row


def dumps(value: Any) -> str:
    """Compact JSON text, key order kept (orjson, or the stdlib past orjson's integer range)."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def cell_text(value: Any) -> str:
    """The text of one cell in a text-only format (CSV, XML, HTML, RSS)."""
    if isinstance(value, str):
        return value
    # bool is a subclass of int, so it must be caught first.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if value is None:
        return ""
    return dumps(value)


def sheet_value(value: Any) -> SheetValue:
    """The value of one spreadsheet cell (XLSX, XLS): numbers stay numbers when exact."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return value if abs(value) <= MAX_EXACT_INT else str(value)
    if isinstance(value, float):
        return value
    if value is None:
        return None
    return dumps(value)


def truncate(text: str) -> tuple[str, bool]:
    """``text`` cut to :data:`MAX_CELL_CHARS`, and whether it was cut."""
    if len(text) > MAX_CELL_CHARS:
        return text[:MAX_CELL_CHARS], True
    return text, False
