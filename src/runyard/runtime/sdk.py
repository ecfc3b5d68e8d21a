"""Runyard's worker SDK: ``from runyard import sdk``.

The same channel as CoreClaw's ``CoreSDK``, in Python's idiom::

    params = sdk.input()
    sdk.set_headers([{"key": "title", "label": "Title"}])
    sdk.push({"title": "x"})
    sdk.push_many(rows)
    sdk.upsert({"url": "u", "title": "y"}, key="url")
    sdk.log("hello", level="info")

Runs in the worker's interpreter, so standard library only. Arguments are checked here and a
wrong type is a ``TypeError`` at the call, not a rejected row in the run log later.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

# Imported by full name, never through the package: in a worker's process the bootstrap has
# loaded these modules by path and there may be no ``runyard`` package to import.
from runyard.runtime.channel import (
    HEADERS,
    LEVELS,
    LOG,
    ROW,
    UPSERT,
    dumps,
    encode_row,
    encode_rows,
    get_channel,
    log_payload,
    read_input_text,
)

__all__ = ["flush", "input", "log", "push", "push_many", "set_headers", "upsert"]

_LEVEL_CHOICES = ", ".join(sorted(LEVELS))


def input() -> dict[str, Any]:
    """The run's input (``parameters.custom``); a new dict each call."""
    value = json.loads(read_input_text())
    if not isinstance(value, dict):
        raise TypeError(f"the run's input is not a JSON object but {type(value).__name__}")
    return value


def push(row: dict[str, Any]) -> None:
    """Push one result row (a dict of JSON-serialisable values)."""
    if not isinstance(row, dict):
        raise TypeError(f"a row must be a dict, not {type(row).__name__}")
    get_channel().send(ROW, encode_row(row))


def push_many(rows: Iterable[dict[str, Any]]) -> None:
    """Push every row of ``rows`` (any iterable of dicts), in order; the fast way to push."""
    if isinstance(rows, (dict, str, bytes)):
        raise TypeError(f"rows must be an iterable of dicts, not a {type(rows).__name__}")
    encode_rows(rows)


def upsert(row: dict[str, Any], key: str) -> None:
    """Replace the earlier row whose ``key`` field equals ``row[key]``, in place; else append."""
    if not isinstance(row, dict):
        raise TypeError(f"a row must be a dict, not {type(row).__name__}")
    if not isinstance(key, str) or not key:
        raise TypeError(f"key must be a non-empty str, not {key!r}")
    if key not in row:
        raise ValueError(f"the row has no {key!r} field to upsert on")
    text = '{"key":' + dumps(key) + ',"row":' + encode_row(row) + "}"
    get_channel().send(UPSERT, text)


def set_headers(headers: Sequence[Mapping[str, Any] | str]) -> None:
    """Declare the result table's columns, in order.

    Each is ``{"key": ..., "label": ..., "format": ...}`` (``label`` defaults to the key,
    ``format`` is optional) or just the key as a str.
    """
    if isinstance(headers, (str, bytes, Mapping)) or not isinstance(headers, Sequence):
        raise TypeError(f"headers must be a list, not {type(headers).__name__}")
    items: list[dict[str, Any]] = []
    for header in headers:
        if isinstance(header, str):
            items.append({"key": header, "label": header})
            continue
        if not isinstance(header, Mapping):
            raise TypeError(f"each header must be a dict or a str, not {type(header).__name__}")
        item = dict(header)
        key = item.get("key")
        if not isinstance(key, str) or not key:
            raise TypeError(f"each header needs a non-empty str 'key', got {header!r}")
        for name in ("label", "format"):
            if name in item and not isinstance(item[name], str):
                raise TypeError(f"header {name!r} must be a str, got {item[name]!r}")
        item.setdefault("label", key)
        items.append(item)
    get_channel().send(HEADERS, dumps(items))


def log(msg: object, level: str = "info") -> None:
    """Write a line to the run's log at ``level``: debug, info, warn (or warning), error."""
    if not isinstance(level, str):
        raise TypeError(f"level must be a str, not {type(level).__name__}")
    number = LEVELS.get(level.lower())
    if number is None:
        raise ValueError(f"unknown log level {level!r}; use one of {_LEVEL_CHOICES}")
    get_channel().send(LOG, log_payload(number, msg))


def flush() -> None:
    """Send everything pushed so far now, rather than within 0.2 s."""
    get_channel().flush()
