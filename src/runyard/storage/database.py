"""Engine creation and schema migrations: SQLite (embedded) or PostgreSQL (scale-out).

Also where the database's faults are met, once for every caller: a statement that finds the
database locked (or is a deadlock's victim) is retried, bounded and logged; one that finds its
disk full, or the lock held past the retries, leaves as ``StorageFull`` / ``StorageBusy`` —
which the API answers 429 with Retry-After, and a run records as its ``err_msg``.
"""

from __future__ import annotations

import errno
import logging
import os
import random
import shutil
import time
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from sqlalchemy import URL, Engine, create_engine, event, make_url
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
log = logging.getLogger("runyard.storage")
T = TypeVar("T")

# --- when the database cannot take a write: full, or locked -----------------------------------

#: The one bound on waiting for a busy database, whatever layer retries: a statement's own
#: retries, ``Database.retry``'s of a whole transaction (a run's end among them) and
#: PostgreSQL's lock_timeout all stop within it, counted from the first attempt. Past it the
#: caller gets ``StorageBusy``.
BUSY_SECONDS = 30.0
#: How long one SQLite statement waits for a lock (busy_timeout) before it is retried; another
#: try is made only while a whole wait still fits in ``BUSY_SECONDS``.
BUSY_WAIT_SECONDS = 5.0
#: Attempts of a whole transaction (``Database.retry``) at most, within ``BUSY_SECONDS``.
TRANSACTION_ATTEMPTS = 3
#: Disk space an embedded (SQLite) database keeps free from bulk writes (rows, log lines), so
#: that run states, callbacks and API writes can still be recorded once those are refused;
#: at most a sixteenth of the filesystem.
KEEP_FREE_BYTES = 16 << 20
#: Bytes of database file (and as much again of WAL) a byte of row text can take, B-tree
#: pages and WAL frame headers included: a bound, not an estimate.
_STORED_BYTES_PER_BYTE = 1.5

_SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_FULL = 5, 6, 13
#: serialization_failure, deadlock_detected, lock_not_available.
_PG_BUSY = frozenset({"40001", "40P01", "55P03"})
#: Retried in place: a lock wait past lock_timeout already took the whole budget.
_PG_RETRIED = frozenset({"40001", "40P01"})
_PG_FULL = frozenset({"53100"})  # disk_full
_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
#: When ``BUSY_SECONDS`` runs out for the ``Database.retry`` in progress in this thread, so
#: that the statement retries inside it count against the same budget instead of their own.
_busy_deadline: ContextVar[float | None] = ContextVar("runyard_busy_deadline", default=None)


def _another_try_fits(deadline: float, pause: float) -> bool:
    return time.monotonic() + pause + BUSY_WAIT_SECONDS <= deadline


class StorageUnavailable(Exception):
    """The database could not take the work now; the failed transaction kept nothing.

    ``message`` is safe to show to any client. ``str()`` — ``kind: detail`` — tells the
    operator and a run's owner (its ``err_msg``) more. ``retry_after`` is a sensible wait in
    seconds.
    """

    kind = "storage unavailable"
    message = "the server's storage cannot take this now"
    retry_after = 5

    def __init__(self, detail: str) -> None:
        super().__init__(f"{self.kind}: {detail}")
        self.detail = detail


class StorageFull(StorageUnavailable):
    """The database's disk is full, or (SQLite) too full to take a batch of rows safely."""

    kind = "disk full"
    message = "the server's storage is full; try again later"
    retry_after = 60


class StorageBusy(StorageUnavailable):
    """The database stayed locked, or kept failing transactions, past the retry budget."""

    kind = "database busy"
    message = "the database is busy; try again shortly"
    retry_after = 5


def _causes(exc: BaseException) -> Iterable[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        if isinstance(current, DBAPIError) and current.orig is not None:
            yield current.orig
        # Explicit causes only (``raise ... from``, as SQLAlchemy wraps driver errors): an
        # unrelated error raised while one was being handled is not that one.
        current = current.__cause__


def storage_problem(exc: BaseException) -> type[StorageUnavailable] | None:
    """``StorageFull`` or ``StorageBusy`` if ``exc`` (or what caused it) means the database
    or its disk could not take the work now, whatever layer raised it; else None."""
    for cause in _causes(exc):
        if isinstance(cause, StorageUnavailable):
            return type(cause)
        code = getattr(cause, "sqlite_errorcode", None)
        if isinstance(code, int):
            if code & 0xFF in (_SQLITE_BUSY, _SQLITE_LOCKED):
                return StorageBusy
            if code & 0xFF == _SQLITE_FULL:
                return StorageFull
        sqlstate = getattr(cause, "sqlstate", None)
        if sqlstate in _PG_BUSY:
            return StorageBusy
        if sqlstate in _PG_FULL:
            return StorageFull
        if _full_errno(cause) is not None:
            return StorageFull
    return None


def _full_errno(exc: BaseException) -> int | None:
    """ENOSPC or EDQUOT if ``exc`` is an OS error saying so — or ``shutil.Error``, which
    gathers the errors of a whole copy as text."""
    if isinstance(exc, shutil.Error):
        entries = exc.args[0] if exc.args and isinstance(exc.args[0], list) else []
        texts = [str(entry[-1]) for entry in entries if isinstance(entry, tuple) and entry]
        for number in _FULL_ERRNOS:
            if any(f"[Errno {number}]" in text for text in texts):
                return number
        return None
    if isinstance(exc, OSError) and exc.errno in _FULL_ERRNOS:
        return exc.errno
    return None


def _first_line(exc: BaseException) -> str:
    for cause in _causes(exc):
        number = _full_errno(cause)
        if number is not None:  # the words alone: the file's path is the server's business
            return os.strerror(number)
    text = str(getattr(exc, "orig", None) or exc).strip()
    return (text.splitlines() or [type(exc).__name__])[0][:300]


def as_storage_error(exc: BaseException) -> StorageUnavailable | None:
    """``exc`` as the ``StorageUnavailable`` it amounts to, or None if it is none."""
    if isinstance(exc, StorageUnavailable):
        return exc
    kind = storage_problem(exc)
    return None if kind is None else kind(_first_line(exc))


def _translate(context: ExceptionContext) -> BaseException | None:
    """SQLAlchemy's ``handle_error``: a full disk or a lock held past the retries leaves the
    engine as ``StorageFull`` / ``StorageBusy``, which the API answers clearly (not a 500)."""
    if context.is_disconnect:
        return None
    return as_storage_error(context.original_exception)


def _in_transaction(dbapi_conn: Any) -> bool:
    status = getattr(getattr(dbapi_conn, "info", None), "transaction_status", None)
    if status is not None:  # psycopg: 0 is IDLE, outside a transaction
        return int(status) != 0
    return bool(dbapi_conn.in_transaction)


def _retry(
    failure: Exception, fresh: bool, dbapi_conn: Any, started: float, run: Callable[[], object]
) -> None:
    """After a statement failed with ``failure``: if it opened its transaction (``fresh``:
    nothing before it to lose) and found the database locked (SQLite, after busy_timeout), or
    was a deadlock victim or a serialization failure (PostgreSQL), roll back and run it again
    while ``BUSY_SECONDS`` (from ``started``, or from the enclosing ``Database.retry``) allows,
    logging each retry. Any other failure, or the one past the budget, is raised."""
    deadline = _busy_deadline.get()
    if deadline is None:
        deadline = started + BUSY_SECONDS
    attempt = 1
    while True:
        sqlstate = getattr(failure, "sqlstate", None)
        busy = storage_problem(failure) is StorageBusy
        if not (fresh and busy and (sqlstate is None or sqlstate in _PG_RETRIED)):
            break
        # SQLite's busy_timeout has waited already; a deadlock's victim must not meet its
        # peer again at once.
        pause = random.uniform(0.05, 0.2) * attempt
        if not _another_try_fits(deadline, pause):
            break
        attempt += 1
        log.warning(
            "database busy (%s): trying the statement again (attempt %d)",
            _first_line(failure),
            attempt,
        )
        dbapi_conn.rollback()
        time.sleep(pause)
        try:
            run()
            return
        except Exception as exc:
            failure = exc
    raise failure


def _retrying(do: Callable[..., None]) -> Callable[..., bool]:
    """A ``do_execute``-style event handler running ``do`` (the dialect's own) through
    ``_retry`` when it fails; costs a look at the connection's transaction state when not."""

    def handler(cursor: Any, *args: Any) -> bool:
        conn = cursor.connection
        fresh = not _in_transaction(conn)
        started = time.monotonic()
        try:
            do(cursor, *args)
        except Exception as exc:
            _retry(exc, fresh, conn, started, partial(do, cursor, *args))
        return True

    return handler


def _listen_for_busy(engine: Engine) -> None:
    """Every statement the engine runs goes through ``_retry`` when it fails."""
    dialect = engine.dialect
    event.listen(engine, "do_execute", _retrying(dialect.do_execute))
    event.listen(engine, "do_executemany", _retrying(dialect.do_executemany))
    event.listen(engine, "do_execute_no_params", _retrying(dialect.do_execute_no_params))
    event.listen(engine, "handle_error", _translate)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # WAL lets readers page results while an ingest or import commits; NORMAL is durable in WAL
    # mode up to the last checkpoint-safe commit, and busy_timeout turns lock contention into a
    # short wait instead of an error (then ``_retry`` tries again, and says so in the log).
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute(f"PRAGMA busy_timeout={int(BUSY_WAIT_SECONDS * 1000)}")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _postgres_lock_timeout(dbapi_conn: Any, _record: Any) -> None:
    # A lock held past this (a stuck session, a long LOCK TABLE) fails the statement with
    # lock_not_available instead of holding a request's thread for as long as it lasts. One
    # wait takes the whole budget: a statement past the first of its transaction cannot be
    # retried alone, and shorter waits would fail those sooner than SQLite's.
    dbapi_conn.autocommit = True
    dbapi_conn.execute(f"SET lock_timeout = {int(BUSY_SECONDS * 1000)}")
    dbapi_conn.autocommit = False


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
        _listen_for_busy(engine)
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
    event.listen(engine, "connect", _postgres_lock_timeout)
    event.listen(engine.pool, "checkout", _ping_if_idle)
    event.listen(engine.pool, "checkin", _mark_used)
    event.listen(engine, "before_cursor_execute", _refuse_nul)
    _listen_for_busy(engine)
    return engine


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision (a no-op when it is already there).

    On PostgreSQL an advisory lock serialises servers starting together on one database.
    """
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            # Another server may migrate for longer than any request should wait.
            conn.exec_driver_sql("SET LOCAL lock_timeout = 0")
            conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7243001)")
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


class Database:
    """The engine and a session factory, shared by every service."""

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        parsed = database_url(url)
        #: The SQLite file, whose disk ``check_room`` watches (None: PostgreSQL or in memory).
        self.path: Path | None = None
        if parsed.get_backend_name() == "sqlite" and parsed.database:
            if parsed.database != ":memory:":
                self.path = Path(parsed.database)
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        self.engine = make_engine(url, pool_size=pool_size)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    def check_room(self, nbytes: int) -> None:
        """``StorageFull`` unless the embedded database's disk can take a bulk write of about
        ``nbytes`` of text and still keep ``KEEP_FREE_BYTES`` free.

        The batch lands in the WAL, and the checkpoint after a commit copies it into the
        database file — which then grows, or fails trying, taking the last free bytes with it.
        So the batch counts twice, and so does what the database file must still grow by for
        pages the WAL holds already. Refusing a batch before it is written keeps room to
        record that the run failed, and for everything else. A no-op on PostgreSQL, whose
        disk is its server's: a full one fails the statement (53100), which leaves as
        ``StorageFull`` too.
        """
        if self.path is None:
            return
        try:
            fs = os.statvfs(self.path.parent)
            on_disk = os.stat(self.path).st_size
        except OSError:
            return  # cannot tell: the write itself will say
        try:
            wal = os.stat(f"{self.path}-wal").st_size
        except OSError:
            wal = 0
        free = fs.f_bavail * fs.f_frsize
        keep = min(KEEP_FREE_BYTES, fs.f_blocks * fs.f_frsize // 16)
        batch = int(2 * nbytes * _STORED_BYTES_PER_BYTE) + keep
        if free >= batch + wal:  # the WAL bounds what the file must grow by: the usual case
            return
        conn = self.engine.raw_connection()  # the ORM's checkout costs 8 times the reads
        try:
            cur = conn.cursor()
            pages = cur.execute("PRAGMA page_count").fetchone()[0]
            page_size = cur.execute("PRAGMA page_size").fetchone()[0]
            cur.close()
        finally:
            conn.close()
        needed = batch + max(0, pages * page_size - on_disk)
        if free < needed:
            raise StorageFull(
                f"{free / 1e6:.1f} MB free on the database's disk, where storing more needs "
                f"{(needed - keep) / 1e6:.1f} MB and {keep / 1e6:.1f} MB is kept free for "
                "run states and the API"
            )

    def retry(
        self,
        work: Callable[[], T],
        what: str,
        attempts: int = TRANSACTION_ATTEMPTS,
        *,
        full_too: bool = False,
    ) -> T:
        """``work()`` — one whole transaction — run again if it failed with the database busy
        (a lock held past the statement retries, a deadlock in its middle) — or, ``full_too``,
        its disk full, which may get room back — up to ``attempts`` times and within
        ``BUSY_SECONDS`` from the first, its statements' own retries included; each retry is
        logged. Other failures, and the one past the budget (as ``StorageUnavailable``), are
        raised."""
        outer = _busy_deadline.get()
        deadline = time.monotonic() + BUSY_SECONDS if outer is None else outer
        token = _busy_deadline.set(deadline)
        try:
            for attempt in range(1, attempts + 1):
                try:
                    return work()
                except Exception as exc:
                    problem = as_storage_error(exc)
                    if problem is None or (isinstance(problem, StorageFull) and not full_too):
                        raise
                    pause = random.uniform(0.5, 1.0) * attempt
                    if attempt == attempts or not _another_try_fits(deadline, pause):
                        if problem is exc:
                            raise
                        raise problem from exc
                    log.warning(
                        "%s: %s; trying the transaction again (attempt %d of %d)",
                        what,
                        problem,
                        attempt + 1,
                        attempts,
                    )
                    time.sleep(pause)
            raise AssertionError("unreachable")  # pragma: no cover
        finally:
            _busy_deadline.reset(token)

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
