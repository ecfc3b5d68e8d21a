"""Callbacks under test: real HTTP receivers on loopback, a database, senders, and the runs
and deliveries the tests look at. Shared by ``test_callbacks.py`` and
``test_security_callbacks.py``, which import the fixtures (``*_fixture``, named without the
suffix so that a test's parameter does not shadow the import)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from ulid import ULID

from runyard.services.callbacks import Callbacks
from runyard.storage import Database, Run, User, Worker
from runyard.storage.models import CallbackDelivery

#: A reply the receiver gives: an HTTP status, a status with headers, or HANG (no answer).
HANG = "hang"
Reply = int | tuple[int, dict[str, str]] | str


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class Receiver:
    """A real HTTP server on 127.0.0.1 answering POSTs from a script; the last reply repeats."""

    replies: list[Reply]
    requests: list[Received] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook?token=abc"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver.lock:
                    receiver.requests.append(Received(dict(self.headers), body, time.time()))
                    index = len(receiver.requests) - 1
                    reply = receiver.replies[min(index, len(receiver.replies) - 1)]
                if reply == HANG:
                    receiver.release.wait(30)
                    return
                status, headers = reply if isinstance(reply, tuple) else (reply, {})
                self.send_response(int(status))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.release.set()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


@pytest.fixture(name="receivers")
def receivers_fixture() -> Iterator[Callable[..., Receiver]]:
    started: list[Receiver] = []

    def make(*replies: Reply) -> Receiver:
        receiver = Receiver(list(replies)).start()
        started.append(receiver)
        return receiver

    yield make
    for receiver in started:
        receiver.stop()


@pytest.fixture(name="db")
def db_fixture(tmp_path: Path, database_url: str | None) -> Iterator[Database]:
    database = Database(database_url or f"sqlite:///{tmp_path}/db.sqlite")
    database.migrate()
    yield database
    database.dispose()


@pytest.fixture(name="senders")
def senders_fixture(db: Database) -> Iterator[Callable[..., Callbacks]]:
    made: list[Callbacks] = []

    def make(**options: Any) -> Callbacks:
        settings: dict[str, Any] = {
            "allow_private": True,
            "max_attempts": 5,
            "backoff_seconds": 0.05,
            "timeout_seconds": 2.0,
        }
        settings.update(options)
        callbacks = Callbacks(db, **settings)
        made.append(callbacks)
        return callbacks

    yield make
    for callbacks in made:
        callbacks.close()


def make_run(db: Database, **values: Any) -> Run:
    now = time.time()
    with db.session() as s, s.begin():
        user = User(name=f"u{time.monotonic_ns()}", created_at=now)
        s.add(user)
        s.flush()
        worker = Worker(user_id=user.id, slug="w", title="W", description="", created_at=now)
        s.add(worker)
        s.flush()
        fields: dict[str, Any] = {
            "slug": str(ULID()),
            "version": "1.0.0",
            "status": "running",
            "origin": "openapi",
            "results": 0,
            "created_at": now,
            "started_at": int(now),
            "finished_at": 0,
        }
        fields.update(values)
        run = Run(user_id=user.id, worker_id=worker.id, **fields)
        s.add(run)
    return run


def delivery(db: Database, delivery_id: str) -> CallbackDelivery:
    with db.session() as s:
        found = s.scalar(
            select(CallbackDelivery).where(CallbackDelivery.delivery_id == delivery_id)
        )
    assert found is not None
    return found


PAYLOAD = {"run_slug": "01KKDXV2G26BT7NH4ZQR2R4NPZ", "run_status": "succeeded"}
