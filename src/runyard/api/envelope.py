"""The reply envelope ``{code, message, data, request_id}``, written with orjson."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse

SUCCESS = "success"


class JSONBytes(JSONResponse):
    """A reply whose JSON is already encoded (by orjson, or spliced from stored row text).

    A ``JSONResponse`` only so that /openapi.json documents the routes' bodies as JSON rather
    than as a string; the bytes are sent as given.
    """

    def render(self, content: Any) -> bytes:
        assert isinstance(content, bytes)
        return content


def request_id(request: Request) -> str:
    return str(getattr(request.state, "request_id", ""))


def ok(request: Request, data: Any) -> JSONBytes:
    return JSONBytes(
        orjson.dumps(
            {"code": 0, "message": SUCCESS, "data": data, "request_id": request_id(request)}
        )
    )


def error_body(code: int, message: str, details: list[str] | None, rid: str) -> bytes:
    return orjson.dumps(
        {"code": code, "message": message, "data": None, "details": details, "request_id": rid}
    )


def error(
    request: Request,
    status: int,
    code: int,
    message: str,
    details: list[str] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONBytes:
    body = error_body(code, message, details, request_id(request))
    return JSONBytes(body, status_code=status, headers=headers)
