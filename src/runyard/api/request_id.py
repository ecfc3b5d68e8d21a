"""Gives every request an id and turns any unexpected failure into the 500 envelope.

Plain ASGI rather than ``BaseHTTPMiddleware``: it sits on the hot path of every result page.
It is also the outermost layer that knows the request id, so an exception nothing else handled
is answered here (500 / 10000, internals only in the log) with the id in body and header.
"""

from __future__ import annotations

import logging
import re

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from ulid import ULID

HEADER = b"x-request-id"
_SANE = re.compile(rb"^[A-Za-z0-9._:-]{1,128}$")
log = logging.getLogger("runyard.api")


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

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", []), (HEADER, rid)]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            if started:
                raise
            body = orjson.dumps(
                {
                    "code": 10000,
                    "message": "internal server error",
                    "data": None,
                    "details": None,
                    "request_id": rid.decode(),
                }
            )
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
