"""A result page as table cells: the run's columns, each stored row decoded once."""

from __future__ import annotations

from typing import Any

import orjson

#: Longer cell text is cut on screen; the export has it whole.
MAX_CELL_CHARS = 300


def columns(headers_json: str, rows: list[dict[str, Any]]) -> list[dict[str, str]]:
    """The run's ``[{key, label}]``; without headers, the keys of the rows shown, in order."""
    headers = orjson.loads(headers_json)
    if headers:
        return [{"key": str(h["key"]), "label": str(h.get("label") or h["key"])} for h in headers]
    keys = dict.fromkeys(key for row in rows for key in row)
    return [{"key": key, "label": key} for key in keys]


def cell(value: Any) -> tuple[str, bool]:
    """``(text, is_link)`` of one value: text as is, nested values as compact JSON."""
    if value is None:
        return "", False
    if isinstance(value, str):
        text = value
    elif isinstance(value, bool):
        return ("true" if value else "false"), False
    elif isinstance(value, int | float):
        return str(value), False
    else:
        text = orjson.dumps(value).decode()
    if len(text) > MAX_CELL_CHARS:
        return text[:MAX_CELL_CHARS] + "…", False
    return text, text.startswith(("https://", "http://")) and " " not in text


def table(
    headers_json: str, stored: list[str]
) -> tuple[list[dict[str, str]], list[list[tuple[str, bool]]]]:
    rows = [orjson.loads(text) for text in stored]
    cols = columns(headers_json, rows)
    keys = [c["key"] for c in cols]
    return cols, [[cell(row.get(key)) for key in keys] for row in rows]
