"""CoreClaw's Python SDK, ``from sdk import CoreSDK``, spoken over Runyard's channel.

CoreClaw ships ``sdk.py`` as a gRPC client of a fixed local port. This module keeps its surface
(as of its public ``sdk.py``) so a CoreClaw worker runs unmodified: ``Parameter``, ``Result`` and
``Log`` are instances of nested service classes, argument names match (``dict_obj``,
``unique_key``, ``log``) and every call that CoreClaw answers with a gRPC ``Response`` returns an
object with ``code`` 0 and a ``message``. Standard library only: it runs in the worker's Python.
"""

from __future__ import annotations

import json
from typing import Any, TypedDict

from runyard.runtime.channel import (
    DEBUG,
    ERROR,
    HEADERS,
    INFO,
    LOG,
    ROW,
    UPSERT,
    WARN,
    dumps,
    encode_row,
    get_channel,
    log_payload,
    one_line,
    read_input_text,
)

__all__ = ["SDK", "CoreSDK", "Response"]


class Response:
    """What CoreClaw's calls return: ``code`` 0 means accepted."""

    __slots__ = ("code", "message")

    def __init__(self, code: int = 0, message: str = "success") -> None:
        self.code = code
        self.message = message

    def __repr__(self) -> str:
        return f"Response(code={self.code}, message={self.message!r})"


def _ok() -> Response:
    # A fresh object each time: a worker may set attributes on what it got back.
    return Response()


def _row_text(dict_obj: Any) -> str:
    if isinstance(dict_obj, dict):
        return encode_row(dict_obj)
    if isinstance(dict_obj, str):
        # CoreClaw takes a JSON object as text too; the parent validates it and keeps it verbatim.
        return one_line(dict_obj)
    raise TypeError(f"data must be a dict or a JSON object str, not {type(dict_obj).__name__}")


class CoreSDK:
    """``CoreSDK.Parameter``, ``CoreSDK.Result`` and ``CoreSDK.Log``, as CoreClaw names them."""

    class _ParameterService:
        def get_input_json_str(self) -> str:
            """The run's input (``parameters.custom``) as JSON text."""
            return read_input_text()

        def get_input_json_dict(self) -> dict[str, Any]:
            """The run's input parsed (``{}`` when there is none)."""
            text = read_input_text()
            value: dict[str, Any] = json.loads(text) if text else {}
            return value

    class _ResultService:
        class TableHeader(TypedDict):
            label: str
            key: str
            format: str

        def set_table_header(self, headers: list[CoreSDK._ResultService.TableHeader]) -> Response:
            """Declare the result table's columns: ``[{"label", "key", "format"}]``."""
            if isinstance(headers, (str, bytes)) or not isinstance(headers, (list, tuple)):
                raise TypeError(f"headers must be a list of dicts, not {type(headers).__name__}")
            items: list[dict[str, Any]] = []
            for header in headers:
                if not isinstance(header, dict):
                    raise TypeError(f"each header must be a dict, not {type(header).__name__}")
                items.append(dict(header))
            get_channel().send(HEADERS, dumps(items))
            return _ok()

        def push_data(self, dict_obj: dict[str, Any] | str) -> Response:
            """Push one result row: a dict, or a JSON object as a str."""
            get_channel().send(ROW, _row_text(dict_obj))
            return _ok()

        def upsert_data(self, dict_obj: dict[str, Any] | str, unique_key: str) -> Response:
            """Replace the row whose ``unique_key`` field equals this one's, in place; else push."""
            if not unique_key:
                raise ValueError("unique_key is required")
            if not isinstance(unique_key, str):
                raise TypeError(f"unique_key must be a str, not {type(unique_key).__name__}")
            fields = json.loads(dict_obj) if isinstance(dict_obj, str) else dict_obj
            if not isinstance(fields, dict):
                raise TypeError(
                    f"data must be a dict or a JSON object str, not {type(fields).__name__}"
                )
            if unique_key not in fields:
                raise ValueError(f"unique_key [{unique_key}] not found in data")
            row = _row_text(dict_obj)
            get_channel().send(UPSERT, '{"key":' + dumps(unique_key) + ',"row":' + row + "}")
            return _ok()

    class _LogService:
        def _send(self, level: int, log: Any) -> Response:
            get_channel().send(LOG, log_payload(level, log))
            return _ok()

        def debug(self, log: str) -> Response:
            return self._send(DEBUG, log)

        def info(self, log: str) -> Response:
            return self._send(INFO, log)

        def warn(self, log: str) -> Response:
            return self._send(WARN, log)

        def warning(self, log: str) -> Response:
            """Not in CoreClaw's SDK; Python's ``logging`` habit, so it does not crash a run."""
            return self._send(WARN, log)

        def error(self, log: str) -> Response:
            return self._send(ERROR, log)

    Parameter = _ParameterService()
    Result = _ResultService()
    Log = _LogService()


#: CoreClaw's guide calls it ``SDK`` in places (``SDK.Log.info(...)``).
SDK = CoreSDK
