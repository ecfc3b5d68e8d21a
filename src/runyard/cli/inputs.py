"""A run's input from the command line: a JSON file (``--input``) and ``--set key=value``."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer

InputFile = Annotated[
    str | None,
    typer.Option(
        "--input",
        "-i",
        metavar="FILE",
        help="The worker's input fields as a JSON object; - reads stdin.",
        show_default=False,
    ),
]
Sets = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        "-s",
        metavar="KEY=VALUE",
        help="Set one input field (repeatable); VALUE is read as JSON if it parses, "
        "else as a string.",
        show_default=False,
    ),
]
Systems = Annotated[
    list[str] | None,
    typer.Option(
        "--system",
        metavar="KEY=VALUE",
        help="Set one system parameter (repeatable), e.g. execute_limit_time_seconds=60.",
        show_default=False,
    ),
]


def read_input(
    path: str | None, sets: Sequence[str] | None, base: Mapping[str, Any] | None = None
) -> dict[str, Any] | None:
    """The worker's fields: ``base``, replaced by the file's object, then each ``--set`` over
    them. None when nothing was given (and there is no ``base``)."""
    fields = None if base is None else dict(base)
    if path is not None:
        fields = _load_object(path)
    if sets:
        fields = {**(fields or {}), **assignments(sets, "--set")}
    return fields


def assignments(items: Sequence[str] | None, option: str) -> dict[str, Any]:
    """``key=value`` items as a dict, each value parsed by ``parse_value``."""
    parsed: dict[str, Any] = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{option} takes KEY=VALUE, not {item!r}")
        parsed[key.strip()] = parse_value(value)
    return parsed


def parse_value(text: str) -> Any:
    """JSON when the text is JSON (``5``, ``true``, ``["a"]``, ``"5"``), else the text itself."""
    try:
        return json.loads(text, parse_constant=_not_json)
    except ValueError:
        return text


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not standard JSON")  # so --set x=NaN stays the string "NaN"


def _load_object(path: str) -> dict[str, Any]:
    name = "stdin" if path == "-" else path
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{name}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"{name}: not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise ValueError(f"{name}: the input must be a JSON object of the worker's fields")
    return value
