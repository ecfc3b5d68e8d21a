"""A real Runyard server on loopback for the API tests, and helpers to fill it."""

from __future__ import annotations

import itertools
import os
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
from sqlalchemy import make_url

from runyard.api import create_app, serving
from runyard.services import Services
from runyard.services.packages import load_package
from runyard.settings import Settings

_names = itertools.count()
# Servers under test, in this process or spawned by it, do not rate-limit: a test that wants
# a limit passes ``rate_limit`` (tests/test_limits.py). Set once here, for every test.
os.environ.setdefault("RUNYARD_RATE_LIMIT", "0")
# Tests hold a client's connection across slow steps (a browser's, a run's): a server closing
# it as idle just as the next request arrives resets that request (keep-alive's own race, which
# Runyard's client retries but a bare httpx client does not), and a whole session's clients all
# come from 127.0.0.1. tests/test_limits.py sets both where it tests them.
os.environ.setdefault("RUNYARD_KEEP_ALIVE_SECONDS", "60")
os.environ.setdefault("RUNYARD_MAX_CONNECTIONS_PER_ADDRESS", "0")

#: A PostgreSQL server for the second pass of the suites marked ``both_databases``, e.g.
#: ``postgresql://127.0.0.1:5432/test``; without one (or unreachable) that pass is skipped.
POSTGRES_URL = os.environ.get("RUNYARD_TEST_POSTGRES_URL", "")


def _postgres_dsn(**query: str) -> str:
    """``POSTGRES_URL`` as psycopg takes it (no SQLAlchemy driver name), with ``query`` added."""
    url = make_url(POSTGRES_URL).set(drivername="postgresql").update_query_dict(query)
    return url.render_as_string(hide_password=False)


def _postgres_problem() -> str | None:
    if not POSTGRES_URL:
        return "RUNYARD_TEST_POSTGRES_URL is not set"
    import psycopg

    try:
        psycopg.connect(_postgres_dsn(), connect_timeout=3).close()
    except psycopg.Error as exc:
        shown = make_url(POSTGRES_URL).render_as_string()  # password hidden
        return f"PostgreSQL at {shown} is unreachable: {exc}"
    return None


#: The Celery broker of the scale-out tests.
REDIS_URL = os.environ.get("RUNYARD_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _redis_problem() -> str | None:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3).ping()
    except redis.RedisError as exc:
        return f"Redis at {REDIS_URL} is unreachable: {exc}"
    return None


POSTGRES_PROBLEM = _postgres_problem()
#: Why the scale-out tests (PostgreSQL and a Celery broker) cannot run, if they cannot.
SCALE_OUT_PROBLEM = POSTGRES_PROBLEM or _redis_problem()
if SCALE_OUT_PROBLEM and os.environ.get("RUNYARD_TEST_REQUIRE_SERVICES"):
    # CI sets this: a skipped PostgreSQL pass must not look like a green one.
    raise pytest.UsageError(SCALE_OUT_PROBLEM)
BACKENDS = [
    "sqlite",
    pytest.param(
        "postgresql",
        marks=pytest.mark.skipif(POSTGRES_PROBLEM is not None, reason=str(POSTGRES_PROBLEM)),
    ),
]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Tests marked ``both_databases`` run once on SQLite and once on PostgreSQL; every other
    test that uses a server runs on SQLite."""
    if "backend" in metafunc.fixturenames:
        both = metafunc.definition.get_closest_marker("both_databases") is not None
        metafunc.parametrize(
            "backend", BACKENDS if both else ["sqlite"], indirect=True, scope="session"
        )


def process_alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie awaiting its parent counts as dead)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


class Databases:
    """A fresh, empty database per server: SQLite in its data directory, or a PostgreSQL
    schema of its own (so servers under test never claim each other's runs)."""

    def __init__(self) -> None:
        self.schemas: list[str] = []

    def url(self, backend: str) -> str | None:
        if backend == "sqlite":
            return None
        import psycopg

        schema = f"rt_{os.getpid()}_{next(_names)}"
        with psycopg.connect(_postgres_dsn(), autocommit=True) as c:
            c.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            c.execute(f'CREATE SCHEMA "{schema}"')
        self.schemas.append(schema)
        return _postgres_dsn(options=f"-csearch_path={schema}")

    def drop_all(self) -> None:
        if not self.schemas:
            return
        import psycopg

        with psycopg.connect(_postgres_dsn(), autocommit=True) as c:
            for schema in self.schemas:
                c.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(scope="session")
def databases() -> Iterator[Databases]:
    made = Databases()
    yield made
    made.drop_all()


@pytest.fixture(scope="session")
def backend(request: pytest.FixtureRequest) -> str:
    """``sqlite`` or ``postgresql``: the database of the servers this test gets."""
    return str(getattr(request, "param", "sqlite"))


@pytest.fixture
def database_url(backend: str, databases: Databases) -> str | None:
    """A fresh database of this test's backend (None: SQLite in the data directory)."""
    return databases.url(backend)


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
        # ``runyard serve``'s own configuration (its protocol, deadlines and limits), so the
        # suite runs through what is deployed.
        config = serving.config(
            create_app(self.services), settings, log_level="warning", lifespan="on"
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
def server(
    tmp_path_factory: pytest.TempPathFactory, venvs_dir: Path, backend: str, databases: Databases
) -> Iterator[Server]:
    srv = Server(
        Settings(
            data_dir=tmp_path_factory.mktemp("runyard"),
            venvs_dir=venvs_dir,
            database_url=databases.url(backend),
        )
    )
    yield srv
    srv.stop()


@pytest.fixture
def make_server(
    tmp_path: Path, venvs_dir: Path, backend: str, databases: Databases
) -> Iterator[Callable[..., Server]]:
    """For tests that need other settings than the shared server's (same database backend)."""
    started: list[Server] = []

    def make(**settings: Any) -> Server:
        settings.setdefault("venvs_dir", venvs_dir)
        settings.setdefault("database_url", databases.url(backend))
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
