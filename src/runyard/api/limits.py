"""Request limits at the door: per-key rate limiting, request head and body size, body pace.

Plain ASGI, like ``request_id``: it sits on the hot path of every result page, and costs one
hash and a few dictionary operations there, never a database query.

- **Rate.** A token bucket per API key, named by the key's hash (never the key). A key gets
  its bucket once it has been *proven*: the authentication of the API (``auth.caller``) or of
  the console (``web.signed_in``) marks the scope state with ``verified_key_hash``. Until then,
  and for requests with no key at all, the bucket is the client address's — so guessing keys
  is slowed like any other anonymous traffic, and made-up keys cannot mint fresh buckets.
  Over the limit: 429 / 13000 with ``Retry-After`` (the console answers a page). The buckets
  are this process's own: N API servers allow N times the rate.
- **Size.** A request line plus headers over ``max_header_bytes``: 431 / 11000 (uvicorn's h11
  bounds a head still arriving; this bounds one that arrived whole). A body over
  ``max_body_bytes`` (the worker upload has its own ceiling): 413 / 11000 — at once when
  ``Content-Length`` says so, else as soon as the streamed body passes it; nothing is buffered
  here and the route never runs.
- **Pace.** A body that stalls ``body_timeout_seconds`` with no byte arriving: 408 / 11000,
  and the connection is closed.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from runyard.api.auth import CLAIMED_KEY_HASH, VERIFIED_KEY_HASH, key_in
from runyard.api.buckets import TokenBuckets, whole_seconds
from runyard.api.envelope import error_body
from runyard.services.accounts import hash_key
from runyard.services.packages import MAX_ZIP_BYTES
from runyard.settings import Settings

#: A proven key's bucket is kept this long idle: past it, its next request proves it again
#: on its address's bucket.
KEY_IDLE_SECONDS = 15 * 60
#: Buckets kept per kind (keys, addresses): about 300 bytes each, 19 MB for 65,536 keys.
MAX_BUCKETS = 65_536
#: The ZIP upload of a worker version: the package limit, plus its form fields and multipart
#: framing (Starlette caps a field at 1 MiB).
UPLOAD_PATH = re.compile(r"/api/v2/workers/[^/]+/versions")
UPLOAD_MAX_BYTES = MAX_ZIP_BYTES + 4 * 1024 * 1024
#: Cheap to serve and loaded with every console page: not counted.
STATIC_PREFIX = "/-/static/"
#: Pages whose refusals are the envelope; every other path is the console's, answered a page.
_ENVELOPE_PATHS = ("/api/", "/openapi.json")

#: ``refusal_page(request, status, title, message)``: the console's page for a refusal.
RefusalPage = Callable[[Request, int, str, str], Response]
#: The console session's key hash, if the request has a valid session cookie.
SessionKeyHash = Callable[[Request], str | None]


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body too large: at most {limit} bytes are accepted")


class BodyTimeout(HTTPException):
    def __init__(self, seconds: float) -> None:
        super().__init__(
            408,
            f"request body timed out: no data for {seconds:g} s",
            headers={"Connection": "close"},
        )


#: ``_head``'s body length of a request without a body, and of one sent in chunks.
NO_BODY, CHUNKED = -1, -2


def _head(scope: Scope) -> tuple[int, int]:
    """The size of the request line and headers as sent (give or take the line ends), and the
    body's length as declared: ``Content-Length`` (h11 has checked it), or ``NO_BODY`` or
    ``CHUNKED``. One pass over the headers: this runs for every request."""
    size = len(scope["method"]) + len(scope["raw_path"]) + len(scope["query_string"]) + 12
    length = NO_BODY
    for name, value in scope["headers"]:
        size += len(name) + len(value) + 4
        if name == b"content-length" and value.isdigit():
            length = int(value)
        elif name == b"transfer-encoding" and length == NO_BODY:
            length = CHUNKED
    return size, length


class LimitsMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        settings: Settings,
        session_key_hash: SessionKeyHash,
        refusal_page: RefusalPage,
    ) -> None:
        self.app = app
        self.max_header_bytes = settings.max_header_bytes
        self.max_body_bytes = settings.max_body_bytes
        self.upload_max_bytes = max(settings.max_body_bytes, UPLOAD_MAX_BYTES)
        self.body_timeout = settings.body_timeout_seconds
        self.session_key_hash = session_key_hash
        self.refusal_page = refusal_page
        self.rate = settings.rate_limit
        self.burst = settings.rate_burst
        self.keys: TokenBuckets | None = None
        self.addresses: TokenBuckets | None = None
        if settings.rate_limit > 0:
            refill = settings.rate_burst / settings.rate_limit
            self.keys = TokenBuckets(
                settings.rate_limit, settings.rate_burst, max(refill, KEY_IDLE_SECONDS), MAX_BUCKETS
            )
            # An address bucket idle until full again says nothing a new one would not.
            self.addresses = TokenBuckets(
                settings.rate_limit, settings.rate_burst, refill, MAX_BUCKETS
            )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        size, length = _head(scope)
        if size > self.max_header_bytes:
            await self._refuse(
                scope,
                send,
                431,
                "request header fields too large",
                f"the request line and headers may take at most {self.max_header_bytes} bytes",
            )
            return
        unproven: str | None = None
        if self.keys is not None and not scope["path"].startswith(STATIC_PREFIX):
            claimed = self._claimed_key_hash(scope)
            now = time.monotonic()
            if claimed is not None and claimed in self.keys:
                wait = self.keys.take(claimed, now)
                per = "API key"
            else:
                assert self.addresses is not None
                client = scope.get("client")
                wait = self.addresses.take(client[0] if client else "-", now)
                unproven = claimed
                per = "client address"
            if wait:
                await self._too_many(scope, send, wait, per)
                return
        try:
            if length == NO_BODY:
                await self.app(scope, receive, send)
            else:
                await self._limited_body(scope, receive, send, length)
        finally:
            state = scope.get("state") or {}
            if unproven is not None and state.get(VERIFIED_KEY_HASH) == unproven:
                assert self.keys is not None
                # This request was charged to the address.
                self.keys.add(unproven, time.monotonic(), self.burst - 1)

    def _claimed_key_hash(self, scope: Scope) -> str | None:
        if _wants_envelope(scope):
            key = key_in(scope)
            digest = hash_key(key) if key else None
            # ``auth.caller`` takes it from here rather than reading and hashing the key again.
            scope.setdefault("state", {})[CLAIMED_KEY_HASH] = digest
            return digest
        return self.session_key_hash(Request(scope))

    async def _limited_body(self, scope: Scope, receive: Receive, send: Send, length: int) -> None:
        limit = self.max_body_bytes
        if scope["method"] == "POST" and UPLOAD_PATH.fullmatch(scope["path"]):
            limit = self.upload_max_bytes
        if length > limit:
            # Refused before a byte of the body is read (a client waiting for
            # ``100 Continue`` never sends it).
            await self._refuse(scope, send, 413, BodyTooLarge(limit).detail)
            return
        received = 0
        complete = False
        timeout = self.body_timeout

        async def limited_receive() -> Message:
            nonlocal received, complete
            if complete:
                return await receive()
            try:
                async with asyncio.timeout(timeout):
                    message = await receive()
            except TimeoutError:
                raise BodyTimeout(timeout) from None
            if message["type"] != "http.request":
                complete = True
                return message
            received += len(message.get("body", b""))
            if received > limit:
                raise BodyTooLarge(limit)
            complete = not message.get("more_body", False)
            return message

        await self.app(scope, limited_receive, send)

    async def _too_many(self, scope: Scope, send: Send, wait: float, per: str) -> None:
        seconds = whole_seconds(wait)
        await self._refuse(
            scope,
            send,
            429,
            "too many requests",
            f"at most {self.rate:g} requests a second ({self.burst} at once) per {per}; "
            f"retry in {seconds} s",
            code=13000,
            headers={"Retry-After": str(seconds)},
        )

    async def _refuse(
        self,
        scope: Scope,
        send: Send,
        status: int,
        message: str,
        detail: str | None = None,
        *,
        code: int = 11000,
        headers: dict[str, str] | None = None,
    ) -> None:
        request = Request(scope)
        response: Response
        if _wants_envelope(scope):
            rid = str(scope.get("state", {}).get("request_id", ""))
            details = [detail] if detail else None
            response = Response(
                error_body(code, message, details, rid),
                status_code=status,
                headers=headers,
                media_type="application/json",
            )
        else:
            title = message[:1].upper() + message[1:]
            response = self.refusal_page(request, status, title, detail or message)
            response.headers.update(headers or {})
        await response(scope, _no_body, send)


def _wants_envelope(scope: Scope) -> bool:
    path: str = scope["path"]
    return path.startswith(_ENVELOPE_PATHS)


async def _no_body() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}
