"""How ``runyard serve`` runs uvicorn: connection limits, header size, and deadlines for slow
clients (docs/deploy.md, *Limits*).

uvicorn (0.54, h11) has no deadline for a request's head: a client that connects and sends
half a request line, or a header a byte at a time, holds its connection for ever, and
``timeout_keep_alive`` only starts once a response has gone out. ``Protocol`` adds one: the head
must arrive whole within ``header_timeout_seconds`` of the connection opening (or of its first
byte, on a kept-alive connection); past it the connection gets a 408 and is closed. It also
answers uvicorn's plain-text protocol errors with the envelope, and lets a client whose body
was refused (413) finish sending for a while, so it sees the answer instead of a reset.

It also bounds the connections of one client address (``max_connections_per_address``): past
it a new connection is closed at once, so a single client cannot hold every one of
``max_connections`` and get everyone else a 503. That 503 (past ``max_connections``) is
answered with the envelope too: 13000, with ``Retry-After: 1``.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import sys
from typing import Any, ClassVar

import h11
import uvicorn
from h11._connection import DEFAULT_MAX_INCOMPLETE_EVENT_SIZE
from starlette.types import Receive, Scope, Send
from ulid import ULID
from uvicorn.config import STARTUP_FAILURE
from uvicorn.protocols.http.h11_impl import H11Protocol

from runyard.api.envelope import error_body
from runyard.settings import Settings

#: Connections the kernel queues before ``accept`` (it caps this at ``net.core.somaxconn``).
BACKLOG = 2048
#: On shutdown, how long requests in progress may take to finish before they are cancelled.
GRACEFUL_SHUTDOWN_SECONDS = 20
#: After an answer given before the request body was read whole (413), how long the rest of it
#: is read and dropped before the connection is closed.
LINGER_SECONDS = 10.0


def config(app: Any, settings: Settings, **options: Any) -> uvicorn.Config:
    """The uvicorn configuration of ``runyard serve`` (and of the tests that check it)."""
    timeout = settings.header_timeout_seconds
    per_address = settings.max_connections_per_address

    class ServeProtocol(Protocol):
        header_timeout = timeout
        max_per_address = per_address
        # This server's own: each ``config`` counts its connections apart.
        open_by_address: ClassVar[dict[str, int]] = {}

    values: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "http": ServeProtocol,
        "ws": "none",  # no WebSocket routes: no upgrade to parse
        "server_header": False,
        "access_log": False,  # written by Runyard itself, with the request id
        "backlog": BACKLOG,
        "limit_concurrency": settings.max_connections or None,
        # uvicorn believes X-Forwarded-For from loopback by default; sandboxed workers share
        # loopback, and could then pick any address's rate-limit bucket.
        "proxy_headers": bool(settings.forwarded_allow_ips),
        "forwarded_allow_ips": settings.forwarded_allow_ips or None,
        "timeout_keep_alive": settings.keep_alive_seconds,
        "timeout_graceful_shutdown": GRACEFUL_SHUTDOWN_SECONDS,
        "h11_max_incomplete_event_size": settings.max_header_bytes,
    }
    return uvicorn.Config(app, **{**values, **options})


def raise_open_files_limit() -> int:
    """Raise this process's soft limit on open files to its hard limit: each connection is one
    file, and a shell's default soft limit (often 1024) would cap connections well below
    ``max_connections``. Returns the limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return soft


def _raw_reply(status: int, reason: str, code: int, message: str) -> bytes:
    """A whole HTTP/1.1 reply, envelope body, closing the connection."""
    body = error_body(code, message, None, f"req-{ULID()}")
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + body


async def _busy(send: Send) -> None:
    """The reply past ``max_connections``, in place of uvicorn's plain-text one."""
    body = error_body(13000, "server busy, retry", None, f"req-{ULID()}")
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", b"1"),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline on request heads and on lingering bodies."""

    header_timeout: float = 10.0
    #: Open connections one client address may hold (0: any number).
    max_per_address: int = 0
    #: Open connections by client address, shared by the connections of one server.
    open_by_address: ClassVar[dict[str, int]] = {}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._address: str | None = None
        # uvicorn picks its plain-text 503 app before running a request; with its check off,
        # ``_app_or_busy`` makes the same one and answers the envelope instead.
        self._limit = self.limit_concurrency
        self.limit_concurrency = None
        self._app = self.app
        self.app = self._app_or_busy

    async def _app_or_busy(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = self._limit
        # This request's own task is already among ``tasks``; uvicorn counted before adding it.
        if limit is not None and (len(self.connections) >= limit or len(self.tasks) > limit):
            self.logger.warning("Exceeded concurrency limit.")
            await _busy(send)
            return
        await self._app(scope, receive, send)

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._deadline_passed)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if self.max_per_address and self.client:
            address = self._address = self.client[0]
            count = self.open_by_address[address] = self.open_by_address.get(address, 0) + 1
            if count > self.max_per_address:
                self.logger.debug("over %d connections from %s", self.max_per_address, address)
                transport.close()
                return
        self._arm(self.header_timeout)

    def data_received(self, data: bytes) -> None:
        if self._deadline is None and self.conn.their_state is h11.IDLE:
            # The first byte of a head on a kept-alive connection starts its clock.
            self._arm(self.header_timeout)
        super().data_received(data)
        cycle = self.cycle
        if self.conn.their_state is not h11.IDLE and cycle and not cycle.response_complete:
            self._disarm()  # the head is in: the body has the application's deadline

    def on_response_complete(self) -> None:
        self._disarm()
        super().on_response_complete()
        if self.conn.their_state is h11.SEND_BODY and not self.transport.is_closing():
            # Answered before the body was read whole (413): drop the rest, for a while.
            self._arm(LINGER_SECONDS)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        address = self._address
        if address is not None:
            self._address = None
            count = self.open_by_address[address] - 1
            if count:
                self.open_by_address[address] = count
            else:
                del self.open_by_address[address]
        super().connection_lost(exc)

    def _deadline_passed(self) -> None:
        self._deadline = None
        transport = self.transport
        if transport.is_closing() or transport.get_protocol() is not self:
            return
        if self.conn.their_state is h11.IDLE and self.conn.trailing_data[0]:
            self.logger.debug("request head not received within %g s", self.header_timeout)
            transport.write(
                _raw_reply(
                    408,
                    "Request Timeout",
                    11000,
                    f"request timed out: its line and headers took over {self.header_timeout:g} s",
                )
            )
        elif self.conn.their_state is not h11.IDLE and not (
            self.cycle is not None and self.cycle.response_complete
        ):
            return  # a request is being answered: not this deadline's business
        transport.close()

    def send_400_response(self, msg: str) -> None:
        # h11 refused what the client sent: a head too long while still arriving, or anything
        # malformed (the head, or a chunked body while the application reads it).
        cycle = self.cycle
        if cycle is not None and cycle.response_started and not cycle.response_complete:
            self.transport.close()  # mid-reply: no room for another
            return
        limit = self.config.h11_max_incomplete_event_size or DEFAULT_MAX_INCOMPLETE_EVENT_SIZE
        if len(self.conn.trailing_data[0]) > limit:
            reply = _raw_reply(
                431, "Request Header Fields Too Large", 11000, "request header fields too large"
            )
        else:
            reply = _raw_reply(400, "Bad Request", 11000, "malformed request: invalid HTTP")
        self.transport.write(reply)
        self.transport.close()


def run(app: Any, settings: Settings, **options: Any) -> None:
    """Serve ``app`` until interrupted, as ``uvicorn.run`` would, with ``config``."""
    raise_open_files_limit()
    server = uvicorn.Server(config(app, settings, **options))
    with contextlib.suppress(KeyboardInterrupt):
        server.run()
    if not server.started:
        sys.exit(STARTUP_FAILURE)
