"""A real Runyard server on loopback for the API tests, and helpers to fill it."""

from __future__ import annotations

import itertools
import socket
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import uvicorn

from runyard.api import create_app
from runyard.services import Services
from runyard.services.packages import load_package
from runyard.settings import Settings

_names = itertools.count()


@dataclass
class User:
    name: str
    id: int
    key: str


class Server:
    """``runyard serve``'s app under uvicorn in a thread, reachable over real HTTP."""

    def __init__(self, settings: Settings) -> None:
        self.services = Services(settings)
        # IPPROTO_TCP: asyncio sets TCP_NODELAY only on sockets that say they are TCP; without
        # it every reply (headers, then body) waits out a delayed ACK, about 40 ms.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            create_app(self.services), log_level="warning", lifespan="on", access_log=False
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]})
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("test server did not start")
            time.sleep(0.01)
        self.tmp = settings.data_dir / "inputs"
        self.tmp.mkdir(exist_ok=True)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)

    def user(self) -> User:
        name = f"user{next(_names)}"
        uid = self.services.accounts.create_user(name)
        return User(name, uid, self.services.accounts.create_key(name))

    def run(self, user: User, rows: list[Any], worker: str = "test-worker") -> str:
        """A succeeded run holding ``rows`` (dicts, or JSON texts kept verbatim)."""
        path = self.tmp / f"rows{next(_names)}.jsonl"
        with open(path, "w", encoding="utf-8") as f:
            for row in rows:
                f.write((row if isinstance(row, str) else orjson.dumps(row).decode()) + "\n")
        return self.services.imports.run(path, user_id=user.id, worker_slug=worker)

    def worker(
        self,
        user: User,
        main: str,
        *,
        properties: list[dict[str, Any]] | None = None,
        files: dict[str, str] | None = None,
        slug: str | None = None,
    ) -> str:
        """Register a worker whose ``main.py`` is ``main``; its slug."""
        slug = slug or f"w{next(_names)}"
        root = self.tmp / f"pkg-{slug}-{next(_names)}"
        root.mkdir()
        (root / "main.py").write_text(textwrap.dedent(main))
        schema = {"properties": properties or []}
        (root / "input_schema.json").write_text(orjson.dumps(schema).decode())
        (root / "output_schema.json").write_text("[]")
        for name, text in (files or {}).items():
            (root / name).write_text(textwrap.dedent(text))
        self.services.workers.register(user.id, load_package(root), slug=slug)
        return slug

    def client(self, user: User | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {user.key}"} if user else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)


@pytest.fixture(scope="session")
def venvs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One virtualenv cache for the session: a worker's requirements are installed once."""
    return tmp_path_factory.mktemp("venvs")


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory, venvs_dir: Path) -> Iterator[Server]:
    srv = Server(Settings(data_dir=tmp_path_factory.mktemp("runyard"), venvs_dir=venvs_dir))
    yield srv
    srv.stop()


@pytest.fixture
def make_server(tmp_path: Path, venvs_dir: Path) -> Iterator[Callable[..., Server]]:
    """For tests that need other settings than the shared server's."""
    started: list[Server] = []

    def make(**settings: Any) -> Server:
        settings.setdefault("venvs_dir", venvs_dir)
        srv = Server(Settings(data_dir=tmp_path / f"srv{len(started)}", **settings))
        started.append(srv)
        return srv

    yield make
    for srv in started:
        srv.stop()


@pytest.fixture
def user(server: Server) -> User:
    return server.user()


@pytest.fixture
def api(server: Server, user: User) -> Iterator[httpx.Client]:
    with server.client(user) as client:
        yield client


def wait_for(client: httpx.Client, run: str, *, timeout: float = 60) -> dict[str, Any]:
    """Poll a run until it has finished; its record."""
    deadline = time.monotonic() + timeout
    while True:
        record: dict[str, Any] = client.get(f"/api/v2/worker-runs/{run}").json()["data"]
        if record["status"] in ("succeeded", "failed"):
            return record
        if time.monotonic() > deadline:
            raise AssertionError(f"run {run} still {record['status']} after {timeout} s")
        time.sleep(0.1)


def start(
    client: httpx.Client,
    worker: str,
    custom: dict[str, Any] | None = None,
    system: dict[str, Any] | None = None,
    **body: Any,
) -> str:
    """Start a run over the API; its slug."""
    parameters: dict[str, Any] = {}
    if custom is not None:
        parameters["custom"] = custom
    if system is not None:
        parameters["system"] = system
    if parameters:
        body["input"] = {"parameters": parameters}
    reply = client.post(f"/api/v2/workers/{worker}/runs", json=body)
    assert reply.status_code == 200, reply.text
    slug: str = reply.json()["data"]["run_slug"]
    return slug
