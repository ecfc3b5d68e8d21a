"""Engine creation and schema migrations: SQLite (embedded) or PostgreSQL (scale-out)."""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import URL, Engine, create_engine, event, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # WAL lets readers page results while an ingest or import commits; NORMAL is durable in WAL
    # mode up to the last checkpoint-safe commit, and busy_timeout turns lock contention into a
    # short wait instead of an error.
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _postgres_json_as_text(dbapi_conn: Any, _record: Any) -> None:
    # Result rows are ``json`` columns served by splicing their text into the reply: psycopg
    # would parse every one into Python objects first.
    from psycopg.types.string import TextLoader

    dbapi_conn.adapters.register_loader("json", TextLoader)


class UnstorableText(ValueError):
    """A text value holds a NUL character. PostgreSQL's text cannot store one; SQLite refuses
    it too, so that both backends answer a client alike."""


def refuse_nul(parameters: Any) -> None:
    """``UnstorableText`` if a string among a statement's parameters (one set, or a list of
    sets for executemany) holds NUL. Flat loops: this sees every row of every insert."""
    if parameters is None:
        return
    for one in parameters if isinstance(parameters, list) else (parameters,):
        _refuse_nul_in(one.values() if isinstance(one, dict) else one)


def _refuse_nul_in(values: Iterable[Any]) -> None:
    for value in values:
        if isinstance(value, str):
            if "\x00" in value:
                raise UnstorableText("text must not contain NUL characters (\\u0000)")
        elif isinstance(value, list | tuple):
            _refuse_nul_in(value)
        elif isinstance(value, dict):
            _refuse_nul_in(value.values())


def _refuse_nul(
    _conn: Any, _cursor: Any, _statement: str, parameters: Any, _context: Any, _many: bool
) -> None:
    refuse_nul(parameters)


def database_url(url: str) -> URL:
    """``url`` with its driver made explicit: ``postgresql://`` (and ``postgres://``) means
    psycopg 3, the one PostgreSQL driver Runyard installs."""
    parsed = make_url(url.replace("postgres://", "postgresql://", 1))
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


#: Connections a process may open past its pool at peaks (PostgreSQL).
PG_OVERFLOW = 41
_PG_TIMEOUTS = {
    "connect_timeout": 10,
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
    "tcp_user_timeout": 60_000,
}


#: A pooled connection idle longer than this is pinged before use (PostgreSQL).
PING_AFTER_IDLE_SECONDS = 10.0


def _ping_if_idle(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
    """SQLAlchemy's ``pool_pre_ping``, but only for connections idle a while: a round trip on
    every checkout cost a result page (three checkouts) a third of its time, and a connection
    used a moment ago is as good as a ping. One that fails the ping is replaced."""
    if time.monotonic() - record.info.get("used_at", 0.0) < PING_AFTER_IDLE_SECONDS:
        return
    try:
        # Outside a transaction, as the connection must be handed over.
        dbapi_conn.autocommit = True
        dbapi_conn.execute("SELECT 1")
        dbapi_conn.autocommit = False
    except Exception as exc:
        raise DisconnectionError(f"a pooled connection is gone: {exc}") from exc


def _mark_used(_dbapi_conn: Any, record: Any) -> None:
    record.info["used_at"] = time.monotonic()


def make_engine(url: str, *, pool_size: int = 10) -> Engine:
    parsed = database_url(url)
    if parsed.get_backend_name() == "sqlite":
        # More connections than anyio's 40 worker threads, so that a request on the event
        # loop never waits for a connection held by the thread pool.
        engine = create_engine(
            parsed, connect_args={"check_same_thread": False}, pool_size=48, max_overflow=16
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "before_cursor_execute", _refuse_nul)
        return engine
    if parsed.get_backend_name() != "postgresql":
        raise ValueError(
            f"unsupported database {parsed.get_backend_name()!r}: use sqlite:/// or postgresql://"
        )
    # A server connection costs PostgreSQL a process: keep a small pool, and grow at peaks
    # past anyio's 40 worker threads plus the event loop, so a request never waits for one.
    # A peer that vanishes (a partition, not a refusal) is noticed in about a minute, not
    # after the kernel's quarter of an hour; the URL's own values win.
    timeouts = {k: v for k, v in _PG_TIMEOUTS.items() if k not in parsed.query}
    engine = create_engine(
        parsed,
        pool_size=pool_size,
        max_overflow=PG_OVERFLOW,
        connect_args=timeouts,
    )
    event.listen(engine, "connect", _postgres_json_as_text)
    event.listen(engine.pool, "checkout", _ping_if_idle)
    event.listen(engine.pool, "checkin", _mark_used)
    event.listen(engine, "before_cursor_execute", _refuse_nul)
    return engine


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision (a no-op when it is already there).

    On PostgreSQL an advisory lock serialises servers starting together on one database.
    """
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7243001)")
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


class Database:
    """The engine and a session factory, shared by every service."""

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        parsed = database_url(url)
        if parsed.get_backend_name() == "sqlite" and parsed.database:
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        self.engine = make_engine(url, pool_size=pool_size)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.engine.dialect.name

    def migrate(self) -> None:
        migrate(self.engine)

    def session(self) -> Session:
        return self.sessions()

    def dispose(self) -> None:
        self.engine.dispose()
