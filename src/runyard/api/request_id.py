"""Gives every request an id, logs it, and turns any unexpected failure into the 500 envelope.

Plain ASGI rather than ``BaseHTTPMiddleware``: it sits on the hot path of every result page.
It is the outermost layer that knows the request id, so the access log line carries it (and
replaces uvicorn's, which costs several times as much per request), and an exception nothing
else handled is answered here (500 / 10000, internals only in the log) with the id in body and
header.
"""

from __future__ import annotations

import logging
import re
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send
from ulid import ULID

from runyard.api.envelope import error_body
from runyard.api.logs import redact_query

HEADER = b"x-request-id"
_SANE = re.compile(rb"^[A-Za-z0-9._:-]{1,128}$")
log = logging.getLogger("runyard.api")
access = logging.getLogger("runyard.access")


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = b""
        for name, value in scope["headers"]:
            if name == HEADER and _SANE.match(value):
                rid = value
                break
        if not rid:
            rid = f"req-{ULID()}".encode()
        scope.setdefault("state", {})["request_id"] = rid.decode()
        started = False
        status = 0
        began = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal started, status
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (HEADER, rid)]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            status = 500
            log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            if started:
                raise
            body = error_body(10000, "internal server error", None, rid.decode())
            await send_with_id(
                {
                    "type": "http.response.start",
                    "status": 500,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
        finally:
            if access.isEnabledFor(logging.INFO):
                _log_access(scope, status, time.perf_counter() - began, rid)


def _log_access(scope: Scope, status: int, seconds: float, rid: bytes) -> None:
    # Query strings are logged only redacted: they may hold an API key (``token=``) or a
    # download link's signature.
    target = scope["path"]
    if scope["query_string"]:
        target += "?" + redact_query(scope["query_string"].decode("latin-1"))
    client = scope.get("client")
    access.info(
        '%s "%s %s" %d %.1fms %s',
        f"{client[0]}:{client[1]}" if client else "-",
        scope["method"],
        target,
        status,
        seconds * 1000,
        rid.decode(),
    )
