"""Faults of the machine under a live server: a full disk, a database held locked.

Each test drives a real server over HTTP while the fault is real — a small tmpfs filled by a
worker, a write lock held by another connection — and checks what a client sees: clear
replies (never a 500), runs that fail saying why, and no committed row lost.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, event, text

from runyard.settings import Settings
from runyard.storage import database
from runyard.storage.database import Database, StorageBusy
from tests.conftest import POSTGRES_PROBLEM, Databases, Server, start, wait_for
from tests.console_helpers import signed_in
from tests.result_helpers import read_all

#: The small filesystem the disk-full test puts a server's whole data directory on.
SMALL_DISK = "16m"

#: Pushes rows of about 420 bytes (4,000 a second) for as long as it is let.
FILLER = """
import time
from runyard import sdk

n = 0
while True:
    sdk.push_many({"n": n + i, "pad": "x" * 400} for i in range(200))
    n += 200
    time.sleep(0.05)
"""

#: Pushes ``count`` numbered rows over a few seconds, then ends.
PUSHER = """
import time
from runyard import sdk

count = sdk.input()["count"]
for start in range(0, count, 500):
    sdk.push_many({"n": n} for n in range(start, min(start + 500, count)))
    time.sleep(0.1)
"""
PUSHER_SCHEMA = [{"name": "count", "type": "integer", "title": "Rows", "editor": "number"}]

QUICK = "from runyard import sdk\nsdk.push({'done': True})\n"

TASK_INPUT: dict[str, Any] = {"parameters": {"custom": {}}}


def assert_not_a_fault(reply: httpx.Response) -> None:
    """A reply a client can act on: success, or 429 / 13000 with a Retry-After to wait out."""
    assert reply.status_code in (200, 429), reply.text
    if reply.status_code == 429:
        body = reply.json()
        assert body["code"] == 13000, body
        assert int(reply.headers["Retry-After"]) >= 1
        assert "try again" in body["message"]


# --- a full disk ---------------------------------------------------------------------------------


def _require_root() -> None:
    if os.geteuid() != 0:
        if os.environ.get("RUNYARD_TEST_REQUIRE_SERVICES"):
            pytest.fail("the disk-full test mounts a tmpfs, which needs root")
        pytest.skip("the disk-full test mounts a tmpfs, which needs root")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs of ``SMALL_DISK``, unmounted at the end."""
    _require_root()
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={SMALL_DISK}", "tmpfs", str(mount)], check=True
    )
    try:
        yield mount
    finally:
        subprocess.run(["umount", "--lazy", str(mount)], check=False)


@pytest.fixture
def full_server(small_disk: Path, venvs_dir: Path) -> Iterator[Server]:
    """A SQLite server whose data directory (database, scratch, files) is on ``small_disk``."""
    server = Server(Settings(data_dir=small_disk / "data", venvs_dir=venvs_dir))
    try:
        yield server
    finally:
        server.stop()


def fill(directory: Path) -> Path:
    """A file taking every free byte of ``directory``'s filesystem."""
    ballast = directory / "ballast"
    with open(ballast, "wb", buffering=0) as f:
        for chunk in (1 << 20, 1 << 12):
            try:
                while True:
                    f.write(b"\0" * chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
    return ballast


def free_bytes(directory: Path) -> int:
    fs = os.statvfs(directory)
    return fs.f_bavail * fs.f_frsize


def test_disk_full_during_ingestion_fails_the_run_clearly_and_the_server_keeps_serving(
    full_server: Server, small_disk: Path
) -> None:
    server = full_server
    user = server.user()
    api = server.client(user)
    filler = server.worker(user, FILLER)
    done = server.worker(user, QUICK)

    started = time.monotonic()
    run = start(api, filler)
    record = wait_for(api, run, timeout=120)
    took = time.monotonic() - started

    # Failed, saying why — not "internal error: OperationalError" — with its rows kept.
    assert record["status"] == "failed"
    assert record["err_msg"].startswith("disk full: "), record["err_msg"]
    committed = record["results"]
    assert committed > 0
    rows = read_all(api, run, committed)
    assert [row["n"] for row in rows] == list(range(committed))  # contiguous, no duplicates
    log = api.get(f"/api/v2/worker-runs/{run}/log").json()["data"]["list"]
    assert log[-1]["content"] == f"run failed: {record['err_msg']}"
    # The worker's scratch directory is gone with it.
    assert not (small_disk / "data" / "runs" / run).exists()
    print(
        f"\ndisk full: {committed} rows ({committed * 420 / 1e6:.1f} MB of text) stored on a "
        f"{SMALL_DISK} tmpfs before the run failed after {took:.1f} s, "
        f"{free_bytes(small_disk) / 1e6:.2f} MB left free; err_msg: {record['err_msg']}"
    )

    # The server keeps serving, writes included, in the room kept free.
    assert api.get("/api/v2/worker-runs").json()["data"]["count"] == 1
    assert api.get("/api/v2/users/account").status_code == 200
    task = {"worker_id": done, "title": "after the disk filled", "input": TASK_INPUT}
    assert_not_a_fault(api.post("/api/v2/worker-tasks", json=task))

    # Now not one byte free: reads still answer, and a start is refused clearly or, taken,
    # fails saying why once it can be written down.
    ballast = fill(small_disk)
    assert free_bytes(small_disk) == 0
    assert len(read_all(api, run, committed)) == committed
    assert api.get(f"/api/v2/worker-runs/{run}").json()["data"]["status"] == "failed"
    refused = api.post(f"/api/v2/workers/{filler}/runs", json={})
    assert_not_a_fault(refused)
    export = api.get(
        f"/api/v2/worker-runs/{run}/result/export", params={"format": "csv", "filter_keys": "n"}
    )
    assert_not_a_fault(export)
    if export.status_code == 200:  # recorded; the file cannot be written, and is not served
        url = export.json()["data"]["download_url"]
        assert_not_a_fault(unwritten := httpx.get(url))
        assert unwritten.status_code == 429
    ballast.unlink()
    if export.status_code == 200:  # written once there is room, in full
        lines = httpx.get(url).content.decode("utf-8-sig").split("\r\n")
        assert lines == ["n", *map(str, range(committed)), ""]
        print("with no byte free, an export was recorded; its download answered 429 until room")
    else:
        print(f"with no byte free, an export was refused: {export.status_code}")
    if refused.status_code == 200:
        second = refused.json()["data"]["run_slug"]
        failed = wait_for(api, second, timeout=120)
        assert failed["status"] == "failed"
        assert failed["err_msg"].startswith("disk full: "), failed["err_msg"]
        print(f"with no byte free, a start was taken; its run failed: {failed['err_msg']}")
    else:
        print(f"with no byte free, a start was refused: {refused.status_code} {refused.text}")

    # Room again (what a worker needs, not what the first run filled): runs work as before.
    last = wait_for(api, start(api, done), timeout=60)
    assert (last["status"], last["results"]) == ("succeeded", 1)


#: Pushes a row, then fills its disk through its own temporary directory, then pushes more.
HOG = """
import os, tempfile, time
from runyard import sdk

sdk.push({"n": 0})
sdk.flush()
time.sleep(1)
with open(os.path.join(tempfile.gettempdir(), "hog"), "wb", buffering=0) as f:
    try:
        while True:
            f.write(bytes(1 << 16))
    except OSError:
        pass
n = 1
while True:
    sdk.push_many({"n": n + i} for i in range(100))
    n += 100
    time.sleep(0.05)
"""


def test_a_worker_filling_the_disk_itself_fails_saying_so_and_its_files_go(
    full_server: Server, small_disk: Path
) -> None:
    api = full_server.client(user := full_server.user())
    run = start(api, full_server.worker(user, HOG))
    record = wait_for(api, run, timeout=120)
    assert record["status"] == "failed"
    assert record["err_msg"].startswith("disk full: "), record["err_msg"]
    assert [row["n"] for row in read_all(api, run, record["results"])] == [0]
    log = api.get(f"/api/v2/worker-runs/{run}/log").json()["data"]["list"]
    assert log[-1]["content"] == f"run failed: {record['err_msg']}"
    # Its scratch directory, and the file that filled the disk, went before the end was
    # written; the room is back.
    assert free_bytes(small_disk) > 8 << 20


def _limit_growth(engine: Engine) -> Callable[[], None]:
    """Make the SQLite database unable to grow past its size (SQLite's own 'database or disk
    is full'), as its disk would; returns the undo."""

    def cap(dbapi_conn: Any, _record: Any) -> None:
        pages = dbapi_conn.execute("PRAGMA page_count").fetchone()[0]
        dbapi_conn.execute(f"PRAGMA max_page_count = {pages}")

    event.listen(engine, "connect", cap)
    engine.dispose()

    def undo() -> None:
        event.remove(engine, "connect", cap)
        engine.dispose()

    return undo


def test_a_database_that_cannot_grow_answers_429_with_retry_after(
    make_server: Callable[..., Server],
) -> None:
    server = make_server()
    user = server.user()
    api = server.client(user)
    run = server.run(user, [{"n": n} for n in range(50)])
    worker = server.worker(
        user, QUICK, properties=[{"name": "note", "type": "string", "editor": "textarea"}]
    )
    big = {"input": {"parameters": {"custom": {"note": "x" * 200_000}}}}

    undo = _limit_growth(server.services.db.engine)
    try:
        refused = api.post(f"/api/v2/workers/{worker}/runs", json=big)
        assert refused.status_code == 429, refused.text
        body = refused.json()
        assert body["code"] == 13000 and body["data"] is None
        assert body["message"] == "the server's storage is full; try again later"
        assert refused.headers["Retry-After"] == "60"
        # Nothing of it was kept, and reads go on.
        assert api.get("/api/v2/worker-runs").json()["data"]["count"] == 1
        page = api.get(f"/api/v2/worker-runs/{run}/result", params={"limit": 100})
        assert len(page.json()["data"]["list"]) == 50
    finally:
        undo()
    assert api.post(f"/api/v2/workers/{worker}/runs", json=big).status_code == 200


def test_a_database_that_cannot_grow_fails_the_ingesting_run_saying_so(
    make_server: Callable[..., Server],
) -> None:
    # Past the room check: the write itself finds the database full (SQLITE_FULL).
    server = make_server()
    api = server.client(user := server.user())
    run = start(api, server.worker(user, FILLER))
    deadline = time.monotonic() + 30
    while api.get(f"/api/v2/worker-runs/{run}").json()["data"]["results"] < 1000:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    undo = _limit_growth(server.services.db.engine)
    try:
        record = wait_for(api, run, timeout=60)
    finally:
        undo()
    assert record["status"] == "failed"
    assert record["err_msg"] == "disk full: database or disk is full"
    committed = record["results"]
    assert [row["n"] for row in read_all(api, run, committed)] == list(range(committed))


# --- a database held locked -------------------------------------------------------------------


@contextmanager
def locked(server: Server, seconds: float) -> Iterator[None]:
    """Another connection holds the server's database locked against writers (SQLite) or
    against everyone (PostgreSQL: ``ACCESS EXCLUSIVE`` on the busiest tables) for
    ``seconds``, from a thread; the block runs once the lock is taken."""
    url = server.services.settings.resolved_database_url
    taken = threading.Event()

    def hold() -> None:
        if url.startswith("sqlite"):
            conn = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
            conn.execute("BEGIN EXCLUSIVE")
            conn.execute("UPDATE users SET name = name")
        else:
            import psycopg

            conn = psycopg.connect(url)  # type: ignore[assignment]
            conn.execute("LOCK TABLE runs, result_rows, tasks IN ACCESS EXCLUSIVE MODE")
        taken.set()
        time.sleep(seconds)
        conn.rollback()
        conn.close()

    holder = threading.Thread(target=hold)
    holder.start()
    assert taken.wait(10)
    try:
        yield
    finally:
        holder.join()


@pytest.mark.both_databases
def test_a_database_locked_for_seconds_is_waited_out(
    make_server: Callable[..., Server],
    backend: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # SQLite waits 1 s at a time, so that the 3 s lock is retried (and logged); PostgreSQL
    # waits in one go.
    monkeypatch.setattr(database, "BUSY_WAIT_SECONDS", 1.0)
    server = make_server()
    user = server.user()
    api = server.client(user)
    imported = server.run(user, [{"n": n} for n in range(300)])
    pusher = server.worker(user, PUSHER, properties=PUSHER_SCHEMA)
    quick = server.worker(user, QUICK)
    ingesting = start(api, pusher, {"count": 30_000})
    deadline = time.monotonic() + 30
    while api.get(f"/api/v2/worker-runs/{ingesting}").json()["data"]["results"] == 0:
        assert time.monotonic() < deadline
        time.sleep(0.05)

    calls: dict[str, Callable[[], httpx.Response]] = {
        "page": lambda: api.get(f"/api/v2/worker-runs/{imported}/result?offset=200&limit=100"),
        "run": lambda: api.get(f"/api/v2/worker-runs/{imported}"),
        "runs": lambda: api.get("/api/v2/worker-runs"),
        "start": lambda: api.post(f"/api/v2/workers/{quick}/runs", json={}),
        "task": lambda: api.post(
            "/api/v2/worker-tasks",
            json={"worker_id": quick, "title": "locked", "input": TASK_INPUT},
        ),
    }
    with caplog.at_level(logging.WARNING, logger="runyard.storage"):
        started = time.monotonic()
        with locked(server, seconds=3), ThreadPoolExecutor(len(calls)) as pool:
            futures = {name: pool.submit(call) for name, call in calls.items()}
            replies = {name: future.result() for name, future in futures.items()}
        waited = time.monotonic() - started

    for name, reply in replies.items():
        assert reply.status_code == 200, (name, reply.text)
    assert len(replies["page"].json()["data"]["list"]) == 100
    # The run started during the lock ran, and the worker ingesting through it kept every row.
    assert wait_for(api, replies["start"].json()["data"]["run_slug"])["status"] == "succeeded"
    record = wait_for(api, ingesting, timeout=120)
    assert (record["status"], record["results"]) == ("succeeded", 30_000)
    assert [row["n"] for row in read_all(api, ingesting, 30_000)] == list(range(30_000))
    retries = [r for r in caplog.records if "database busy" in r.getMessage()]
    if backend == "sqlite":
        assert retries, "SQLite's retries are logged"
    print(
        f"\n{backend}: lock held 3 s, every call answered within {waited:.1f} s, "
        f"{len(retries)} retries logged"
    )


@pytest.mark.both_databases
def test_a_lock_held_past_the_retries_answers_429_not_500(
    make_server: Callable[..., Server], backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A budget of half a second (SQLite: 2 waits of 0.25 s; PostgreSQL: lock_timeout).
    monkeypatch.setattr(database, "BUSY_WAIT_SECONDS", 0.25)
    monkeypatch.setattr(database, "BUSY_SECONDS", 0.5)
    server = make_server()
    user = server.user()
    api = server.client(user)
    imported = server.run(user, [{"n": n} for n in range(300)])
    quick = server.worker(user, QUICK)

    with locked(server, seconds=4):
        refused = api.post(f"/api/v2/workers/{quick}/runs", json={})
        page = api.get(f"/api/v2/worker-runs/{imported}/result", params={"limit": 100})
        task = api.post(
            "/api/v2/worker-tasks",
            json={"worker_id": quick, "title": "locked", "input": TASK_INPUT},
        )
    assert refused.status_code == 429, refused.text
    assert refused.json()["code"] == 13000
    assert refused.json()["message"] == "the database is busy; try again shortly"
    assert refused.headers["Retry-After"] == "5"
    assert_not_a_fault(task)
    # SQLite readers never wait for a writer (WAL); PostgreSQL's wait behind ACCESS
    # EXCLUSIVE, and are answered alike once it outlasts the budget.
    if backend == "sqlite":
        assert page.status_code == 200
    assert_not_a_fault(page)
    # Nothing was half-made, and once the lock is gone the same call goes through.
    assert api.get("/api/v2/worker-runs").json()["data"]["count"] == 1
    again = api.post(f"/api/v2/workers/{quick}/runs", json={})
    assert again.status_code == 200, again.text
    assert wait_for(api, again.json()["data"]["run_slug"])["status"] == "succeeded"


def test_a_synchronous_start_whose_wait_finds_the_database_busy_answers_the_run_it_started(
    make_server: Callable[..., Server], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The run is committed before the wait: a 429 there would have a client that waits out
    # Retry-After and sends the POST again (runyard.client does) start, and pay for, two.
    server = make_server()
    user = server.user()
    api = server.client(user)
    quick = server.worker(user, QUICK)

    def busy(_run_id: int) -> Any:
        raise StorageBusy("locked past the retries (test)")

    monkeypatch.setattr(server.services.launcher, "outcome", busy)
    reply = api.post(f"/api/v2/workers/{quick}/runs", json={"is_async": False})
    assert reply.status_code == 200, reply.text
    data = reply.json()["data"]
    assert data["is_finished"] is False and data["results"]["list"] == []
    listing = api.get("/api/v2/worker-runs").json()["data"]
    assert [run["slug"] for run in listing["list"]] == [data["run_slug"]]
    monkeypatch.undo()
    assert wait_for(api, data["run_slug"])["status"] == "succeeded"


def test_the_console_answers_a_busy_database_with_a_page_not_json(
    make_server: Callable[..., Server], monkeypatch: pytest.MonkeyPatch
) -> None:
    server = make_server()
    browser = signed_in(server, server.user())

    def busy(*_args: Any, **_kwargs: Any) -> Any:
        raise StorageBusy("locked past the retries (test)")

    monkeypatch.setattr(server.services.runs, "list_runs", busy)
    page = browser.get("/runs")
    assert page.status_code == 429
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["Retry-After"] == "5"
    assert "the database is busy; try again shortly" in page.text


# --- PostgreSQL's transient failures, at the storage layer ------------------------------------

#: Fails with deadlock_detected (40P01) until called for the ``n``-th time (a sequence counts
#: calls: it is not rolled back with the failed transaction).
FLAKY = """
CREATE SEQUENCE calls;
CREATE TABLE t (x int);
CREATE FUNCTION flaky(n int) RETURNS int LANGUAGE plpgsql AS $$
BEGIN
    IF nextval('calls') < n THEN
        RAISE EXCEPTION 'deadlock detected (test)' USING ERRCODE = '40P01';
    END IF;
    RETURN n;
END $$;
"""


@pytest.fixture
def postgres(databases: Databases) -> Iterator[Database]:
    if POSTGRES_PROBLEM is not None:
        pytest.skip(POSTGRES_PROBLEM)
    url = databases.url("postgresql")
    assert url is not None
    db = Database(url)
    with db.engine.begin() as conn:
        conn.exec_driver_sql(FLAKY)
    yield db
    db.dispose()


def test_postgres_deadlock_victim_is_retried_where_it_began_its_transaction(
    postgres: Database, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Room for the few retries below, and a budget that a victim every time outlasts soon.
    monkeypatch.setattr(database, "BUSY_WAIT_SECONDS", 0.1)
    monkeypatch.setattr(database, "BUSY_SECONDS", 2.0)
    with (
        caplog.at_level(logging.WARNING, logger="runyard.storage"),
        postgres.engine.begin() as conn,
    ):
        assert conn.execute(text("SELECT flaky(3)")).scalar() == 3
        conn.execute(text("INSERT INTO t VALUES (1)"))
    retries = [r.getMessage() for r in caplog.records]
    assert len(retries) == 2 and all("deadlock detected" in m for m in retries), retries

    # Past its first statement, a transaction cannot be retried statement by statement: the
    # whole of it is, by Database.retry.
    def work() -> None:
        with postgres.engine.begin() as conn:
            conn.execute(text("INSERT INTO t VALUES (2)"))
            conn.execute(text("SELECT flaky(6)"))

    with pytest.raises(StorageBusy):
        work()
    postgres.retry(work, "test transaction")
    with postgres.engine.connect() as conn:
        assert conn.execute(text("SELECT array_agg(x ORDER BY x) FROM t")).scalar() == [1, 2]

    # And past its budget, StorageBusy.
    with postgres.engine.connect() as conn, pytest.raises(StorageBusy):
        conn.execute(text("SELECT flaky(100)"))


def test_storage_problems_are_told_apart() -> None:
    from runyard.storage.database import StorageFull, as_storage_error, storage_problem

    full = sqlite3.connect(":memory:")
    full.execute("PRAGMA max_page_count = 1")
    with pytest.raises(sqlite3.OperationalError) as raised:
        full.execute("CREATE TABLE t (x)")
        full.execute("INSERT INTO t VALUES (randomblob(10000))")
    assert storage_problem(raised.value) is StorageFull
    assert storage_problem(OSError(errno.ENOSPC, "No space left on device")) is StorageFull
    # What copying a worker's package into its scratch directory raises on a full disk.
    copy = shutil.Error([("a", "b", "[Errno 28] No space left on device: 'a' -> 'b'")])
    assert str(as_storage_error(copy)) == "disk full: No space left on device"
    assert storage_problem(shutil.Error([("a", "b", "[Errno 13] Permission denied")])) is None
    assert storage_problem(sqlite3.OperationalError("no such table: t")) is None
    assert storage_problem(ValueError("database is locked")) is None
