"""The celery executor's parts on real PostgreSQL and Redis: the claim, leases and the reaper,
fencing, duplicate and lost messages (the whole system: tests/test_scale_out.py)."""

from __future__ import annotations

import os
import re
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import delete, func, select, update

from runyard.execution.base import ACTIVE
from runyard.execution.leases import Leases, NodeTaken
from runyard.execution.process import FLUSH_SECONDS, RunProcess, is_run_process
from runyard.services import Services
from runyard.services.packages import load_package
from runyard.settings import Settings
from runyard.storage import Node, Run, result_rows, run_logs
from tests.conftest import REDIS_URL, SCALE_OUT_PROBLEM, Databases, process_alive

#: Pushes 100 rows every 0.1 s until killed.
ENDLESS = """
import time
from runyard import sdk

n = 0
while True:
    sdk.push_many({"n": n + i} for i in range(100))
    n += 100
    time.sleep(0.1)
"""
#: Pushes ``count`` rows numbered from 0, then ends.
COUNTER = """
from runyard import sdk

count = sdk.input().get("count", 10)
sdk.push_many({"n": i} for i in range(count))
"""


def _package(root: Path, name: str, main: str) -> Path:
    path = root / name
    path.mkdir(parents=True)
    (path / "main.py").write_text(main)
    (path / "input_schema.json").write_text(
        '{"properties": [{"name": "count", "type": "integer", "required": false}]}'
    )
    (path / "output_schema.json").write_text("[]")
    return path


class Cluster:
    """Services on a fresh PostgreSQL schema and a queue of their own, with a user and two
    workers (``endless``, ``counter``)."""

    def __init__(self, tmp_path: Path, databases: Databases, **settings: Any) -> None:
        self.settings = Settings(
            data_dir=tmp_path / "data",
            shared_dir=tmp_path / "shared",
            database_url=databases.url("postgresql"),
            executor="celery",
            broker_url=REDIS_URL,
            celery_queue=f"runyard-test-{uuid.uuid4().hex}",
            **settings,
        )
        self.svc = Services(self.settings)
        self.user_id = self.svc.accounts.create_user("alice")
        for name, main in (("endless", ENDLESS), ("counter", COUNTER)):
            package = load_package(_package(tmp_path / "packages", name, main))
            self.svc.workers.register(self.user_id, package)

    def ready_run(self, worker: str = "counter", *, sent: bool = True, count: int = 10) -> int:
        """A ``ready`` run; ``sent``: through the launcher (its message sent), or only made."""
        if sent:
            run_id, _ = self.svc.launcher.start(
                self.user_id, worker, input={"parameters": {"custom": {"count": count}}}
            )
            return run_id
        found = self.svc.workers.version(self.user_id, worker, None)
        run_id, _ = self.svc.runs.create(
            self.user_id,
            found.worker_id,
            version=found.version,
            origin="openapi",
            status="ready",
            input=f'{{"count": {count}}}',
        )
        return run_id

    def run(self, run_id: int) -> Run:
        with self.svc.db.session() as s:
            run = s.get(Run, run_id)
            assert run is not None
            return run

    def wait_finished(self, run_id: int, timeout: float = 30) -> Run:
        deadline = time.monotonic() + timeout
        while (run := self.run(run_id)).status not in ("succeeded", "failed"):
            assert time.monotonic() < deadline, f"run {run_id} still {run.status}"
            time.sleep(0.1)
        return run

    def stored_rows(self, run_id: int) -> int:
        with self.svc.db.session() as s:
            return int(
                s.scalar(
                    select(func.count())
                    .select_from(result_rows)
                    .where(result_rows.c.run_id == run_id)
                )
                or 0
            )

    def log_lines(self, run_id: int) -> list[str]:
        with self.svc.db.session() as s:
            return list(s.scalars(select(run_logs.c.content).where(run_logs.c.run_id == run_id)))

    def silence(self, node: str, seconds: float) -> None:
        """Move the node's last heartbeat ``seconds`` into the past."""
        with self.svc.db.session() as s, s.begin():
            s.execute(
                update(Node)
                .where(Node.name == node)
                .values(heartbeat_at=Node.heartbeat_at - seconds)
            )


@pytest.fixture
def cluster(tmp_path: Path, databases: Databases) -> Iterator[Cluster]:
    if SCALE_OUT_PROBLEM is not None:
        pytest.skip(SCALE_OUT_PROBLEM)
    made = Cluster(tmp_path, databases, node_lease_seconds=5, node_heartbeat_seconds=0.5)
    yield made
    made.svc.close()
    queue = made.settings.celery_queue
    redis.Redis.from_url(REDIS_URL).delete(
        queue, f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}"
    )


@pytest.fixture
def node(cluster: Cluster) -> Iterator[Any]:
    """An execution node consuming the cluster's queue: the real node and a real Celery
    worker, in a thread of this process."""
    from celery.contrib.testing.worker import start_worker

    from runyard.execution.broker import RunQueue
    from runyard.execution.node import ExecutionNode

    execution_node = ExecutionNode(
        cluster.svc.run_context,
        cluster.svc.leases,
        name="node-t",
        slots=2,
        heartbeat_seconds=0.5,
    )
    execution_node.start()
    queue = RunQueue(cluster.settings)
    queue.serve(execution_node.execute)
    with start_worker(
        queue.app,
        pool="threads",
        concurrency=2,
        perform_ping_check=False,
        queues=[cluster.settings.celery_queue],
        shutdown_timeout=30,
    ):
        yield execution_node
    execution_node.close()
    queue.close()


def test_celery_mode_refuses_sqlite(tmp_path: Path):
    with pytest.raises(ValueError, match="needs PostgreSQL"):
        Services(Settings(data_dir=tmp_path, executor="celery"))


def test_racing_claimers_claim_a_run_once(cluster: Cluster):
    runs = [cluster.ready_run(sent=False) for _ in range(20)]
    for run_id in runs:
        barrier = threading.Barrier(2)
        won: dict[str, bool] = {}

        def claim(name: str, run_id: int = run_id, barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            won[name] = cluster.svc.runs.claim(run_id, name)

        threads = [threading.Thread(target=claim, args=(name,)) for name in ("a", "b")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(won.values()) == [False, True]
        winner = next(name for name, ok in won.items() if ok)
        assert cluster.run(run_id).executor == winner
        # Nothing moves a run back to ready: a late claimer never gets it either.
        assert not cluster.svc.runs.claim(run_id, "c")


def test_the_reaper_fails_a_silent_nodes_runs_and_spares_a_live_ones(cluster: Cluster):
    leases = cluster.svc.leases
    leases.join("dead", 1)
    leases.join("live", 1)
    dead_running, dead_aborting, live_running, waiting = (
        cluster.ready_run(sent=False) for _ in range(4)
    )
    for run_id, owner in ((dead_running, "dead"), (dead_aborting, "dead"), (live_running, "live")):
        assert cluster.svc.runs.claim(run_id, owner)
    cluster.svc.runs.transition(dead_aborting, "aborting", only_from=("running",))
    cluster.silence("dead", 100)

    reported: list[int] = []
    notify = cluster.svc.runs.on_change

    def count(run: Run, **kwargs: Any) -> object:
        reported.append(run.id)
        return notify(run, **kwargs) if notify else None

    cluster.svc.runs.on_change = count
    # Several reapers at once (every API server and node runs one): each run fails once.
    reapers = [Leases(cluster.svc.db, cluster.svc.runs, lease_seconds=5) for _ in range(3)]
    barrier = threading.Barrier(len(reapers))

    def reap(leases: Leases) -> None:
        barrier.wait()
        leases.reap()

    threads = [threading.Thread(target=reap, args=(r,)) for r in reapers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    failed = cluster.run(dead_running)
    assert failed.status == "failed"
    assert failed.err_msg is not None
    assert re.fullmatch(
        r"execution node dead stopped responding \(no heartbeat for 10\d s\)", failed.err_msg
    ), failed.err_msg
    assert (cluster.run(dead_aborting).status, cluster.run(dead_aborting).err_msg) == (
        "failed",
        "aborted by user",
    )
    assert cluster.run(live_running).status == "running"
    assert cluster.run(waiting).status == "ready"
    assert sorted(reported) == sorted([dead_running, dead_aborting])
    with cluster.svc.db.session() as s:
        assert list(s.scalars(select(Node.name))) == ["live"]


def test_a_node_name_is_taken_while_its_node_lives(cluster: Cluster):
    leases = cluster.svc.leases
    _other_process(cluster).join("elsewhere", 1)
    with cluster.svc.db.session() as s, s.begin():  # as if it ran on another host
        s.execute(update(Node).where(Node.name == "elsewhere").values(hostname="other-host"))
    run_id = cluster.ready_run(sent=False)
    assert cluster.svc.runs.claim(run_id, "elsewhere")
    with pytest.raises(NodeTaken, match="already named 'elsewhere'"):
        leases.join("elsewhere", 1)
    assert cluster.run(run_id).status == "running"

    cluster.silence("elsewhere", 60)  # its lease ran out: the name is free, its runs failed
    leases.join("elsewhere", 1)
    assert cluster.run(run_id).status == "failed"
    assert "execution node elsewhere stopped responding" in (cluster.run(run_id).err_msg or "")


def _other_process(cluster: Cluster) -> Leases:
    """The leases of another process on this host (another container, say)."""
    return Leases(cluster.svc.db, cluster.svc.runs, lease_seconds=5)


def test_a_node_restarted_on_its_host_fails_what_its_previous_life_left(cluster: Cluster):
    leases = cluster.svc.leases
    first = _other_process(cluster).join("again", 1)
    run_id = cluster.ready_run(sent=False)
    assert cluster.svc.runs.claim(run_id, "again")
    gone = subprocess.Popen(["true"])
    gone.wait()
    with cluster.svc.db.session() as s, s.begin():  # its process has ended
        s.execute(update(Node).where(Node.name == "again").values(pid=gone.pid))
    # The same name from the same host, its old process gone: no need to wait for the lease.
    second = leases.join("again", 1)
    assert second != first
    assert (cluster.run(run_id).status, cluster.run(run_id).err_msg) == (
        "failed",
        "execution node again restarted",
    )
    assert not leases.beat(first)
    assert leases.beat(second)
    # A life this very process registered (and lost track of) is over too.
    third = leases.join("again", 1)
    assert not leases.beat(second)
    assert leases.beat(third)


def test_the_same_host_and_pid_is_no_restart(cluster: Cluster):
    # Containers with a fixed host name run every node as pid 1: a second node of the same
    # name must not take the first one's runs for a dead life's.
    _other_process(cluster).join("twin", 1)
    run_id = cluster.ready_run(sent=False)
    assert cluster.svc.runs.claim(run_id, "twin")
    with pytest.raises(NodeTaken, match="already named 'twin'"):
        cluster.svc.leases.join("twin", 1)
    assert cluster.run(run_id).status == "running"


def test_a_reaped_node_claims_nothing(cluster: Cluster):
    leases, runs = cluster.svc.leases, cluster.svc.runs
    member = leases.join("reaped", 1)
    run_id = cluster.ready_run(sent=False)
    cluster.silence("reaped", 100)
    assert leases.reap() == ["reaped"]
    assert not runs.claim(run_id, "reaped", only_if=leases.holds(member))
    assert cluster.run(run_id).status == "ready"
    again = leases.join("reaped", 1)
    assert not runs.claim(run_id, "reaped", only_if=leases.holds(member))
    assert runs.claim(run_id, "reaped", only_if=leases.holds(again))


def test_a_claim_committed_while_its_node_is_reaped_is_failed(cluster: Cluster):
    leases = cluster.svc.leases
    member = leases.join("racer", 1)
    run_id = cluster.ready_run(sent=False)
    cluster.silence("racer", 100)
    with cluster.svc.db.engine.connect() as conn:
        # The node's claim, not committed yet: it holds the node's row...
        claimed = conn.execute(
            update(Run)
            .where(Run.id == run_id, Run.status == "ready", leases.holds(member))
            .values(status="running", executor="racer")
        )
        assert claimed.rowcount == 1
        reaper = threading.Thread(target=leases.reap)
        reaper.start()
        reaper.join(1)
        assert reaper.is_alive(), "the reaper did not wait for the claim"  # ...so it waits
        conn.commit()
    reaper.join(10)
    # ...and then fails the run claimed meanwhile: none is left to a node nobody watches.
    run = cluster.run(run_id)
    assert run.status == "failed"
    assert "execution node racer stopped responding" in (run.err_msg or "")


def test_a_run_failed_under_its_process_is_fenced(cluster: Cluster):
    run_id = cluster.ready_run("endless", sent=False)
    assert cluster.svc.runs.claim(run_id, "cut-off")
    proc = RunProcess(cluster.svc.run_context, run_id)
    thread = threading.Thread(target=proc.execute)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while cluster.run(run_id).results < 300:
            assert time.monotonic() < deadline, "the run pushed no rows"
            time.sleep(0.05)
        # What a reaper does to a node it thinks is dead, while the node still runs the run.
        why = "execution node cut-off stopped responding (no heartbeat for 31 s)"
        assert cluster.svc.runs.fail_owned("cut-off", ACTIVE, why) == [run_id]
        results = cluster.run(run_id).results
        thread.join(5)
        assert not thread.is_alive(), "the run's thread went on"
    finally:
        proc.abort()
        thread.join(10)
    time.sleep(0.5)
    run = cluster.run(run_id)
    assert (run.status, run.err_msg) == ("failed", why)
    # Not one row more after the run was failed, and every counted row is there.
    assert run.results == results == cluster.stored_rows(run_id)
    assert proc.pid is not None and not is_run_process(proc.pid, run.slug)


def test_duplicate_messages_execute_a_run_once(cluster: Cluster, node: Any):
    run_id = cluster.ready_run(count=500)  # sent once by the launcher...
    queue = cluster.svc.executor.queue  # type: ignore[attr-defined]
    for _ in range(3):  # ...and three more times, as redeliveries would
        queue.send(run_id)
    run = cluster.wait_finished(run_id)
    assert (run.status, run.results, run.executor) == ("succeeded", 500, "node-t")
    deadline = time.monotonic() + 10
    while queue.waiting() or node.running():
        assert time.monotonic() < deadline, "the duplicates were not consumed"
        time.sleep(0.1)
    time.sleep(0.5)
    assert cluster.stored_rows(run_id) == 500
    started = [line for line in cluster.log_lines(run_id) if line.startswith("started ")]
    assert len(started) == 1, started
    assert cluster.run(run_id).finished_at == run.finished_at


def test_a_lost_message_is_sent_again_once(cluster: Cluster):
    from runyard.execution.celery import CeleryExecutor

    executor = cluster.svc.executor
    assert isinstance(executor, CeleryExecutor)
    lost = cluster.ready_run(sent=False)  # made, never sent: its message is lost
    fresh = cluster.ready_run(sent=False)
    now = time.time()
    with cluster.svc.db.session() as s, s.begin():
        s.execute(update(Run).where(Run.id == lost).values(created_at=now - 600))
        s.execute(update(Run).where(Run.id == fresh).values(queued_at=now))

    # While other messages wait in the queue, nothing is sent again.
    executor.queue.send(-1)
    assert executor.queue.waiting() == 1
    assert executor.requeue_lost() == []
    redis.Redis.from_url(REDIS_URL).delete(cluster.settings.celery_queue)

    # Several API servers notice together: one of them sends it.
    others = [
        CeleryExecutor(
            cluster.svc.runs,
            cluster.svc.leases,
            executor.queue,
            watch_seconds=1,
            requeue_seconds=cluster.settings.run_requeue_seconds,
        )
        for _ in range(3)
    ]
    results: list[list[int]] = []
    barrier = threading.Barrier(len(others))

    def requeue(ex: CeleryExecutor) -> None:
        barrier.wait()
        results.append(ex.requeue_lost())

    threads = [threading.Thread(target=requeue, args=(ex,)) for ex in others]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [[], [], [lost]]
    assert executor.queue.waiting() == 1
    assert cluster.run(lost).queued_at is not None
    assert executor.requeue_lost() == []  # just sent: not stale any more


def test_a_resent_run_is_executed(cluster: Cluster, node: Any):
    lost = cluster.ready_run(sent=False, count=7)
    with cluster.svc.db.session() as s, s.begin():
        s.execute(update(Run).where(Run.id == lost).values(created_at=time.time() - 600))
    cluster.svc.start()  # the executor's watcher finds the run and sends it
    run = cluster.wait_finished(lost)
    assert (run.status, run.results) == ("succeeded", 7)


def test_a_node_declared_dead_stops_its_runs_and_comes_back(cluster: Cluster, node: Any):
    run_id = cluster.ready_run("endless")
    deadline = time.monotonic() + 30
    while (run := cluster.run(run_id)).pid is None or run.results == 0:
        assert time.monotonic() < deadline, "the run did not start"
        time.sleep(0.05)
    first_life = _life(cluster, "node-t")
    # As if the node had stalled past its lease: another party reaps it while it still runs.
    while cluster.run(run_id).status == "running":
        assert time.monotonic() < deadline, "the node was never reaped"
        cluster.silence("node-t", 100)
        cluster.svc.leases.reap()
    run = cluster.run(run_id)
    assert run.status == "failed"
    assert "execution node node-t stopped responding" in (run.err_msg or "")
    assert run.pid is None  # cleared by the reaper
    deadline = time.monotonic() + 10
    while node.running():
        assert time.monotonic() < deadline, "the node went on executing a failed run"
        time.sleep(0.1)
    assert cluster.run(run_id).err_msg == run.err_msg
    # It registered again, as a new life, and takes runs again.
    while _life(cluster, "node-t") in (None, first_life):
        assert time.monotonic() < deadline, "the node did not come back"
        time.sleep(0.1)
    after = cluster.wait_finished(cluster.ready_run(count=3))
    assert (after.status, after.executor) == ("succeeded", "node-t")


def _life(cluster: Cluster, name: str) -> float | None:
    with cluster.svc.db.session() as s:
        return s.scalar(select(Node.started_at).where(Node.name == name))


def _bare_node(cluster: Cluster, name: str, heartbeat_seconds: float = 60) -> Any:
    """An execution node without a Celery worker: its task body is called directly."""
    from runyard.execution.node import ExecutionNode

    return ExecutionNode(
        cluster.svc.run_context,
        cluster.svc.leases,
        name=name,
        slots=2,
        heartbeat_seconds=heartbeat_seconds,
    )


def _orphan(slug: str) -> subprocess.Popen[bytes]:
    """What a run's process leaves when it dies with its executor: a child of its, handed to
    init, in a group whose leader is gone. The child's pid is the process's one output line."""
    leader = subprocess.Popen(
        ["sh", "-c", "sleep 300 & echo $!"],
        env={**os.environ, "RUNYARD_RUN_ID": slug},
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    return leader


def _orphan_pid(leader: subprocess.Popen[bytes]) -> int:
    assert leader.stdout is not None
    pid = int(leader.stdout.readline())
    leader.wait(10)
    return pid


def test_a_node_fails_and_kills_what_its_previous_life_left(cluster: Cluster):
    # Its previous life was reaped (or left) while a run of it was still claimed: no row of
    # it is left for ``join`` to find, so the node itself must fail the run.
    run_id = cluster.ready_run(sent=False)
    assert cluster.svc.runs.claim(run_id, "node-r")
    orphan = _orphan_pid(_orphan(cluster.run(run_id).slug))
    assert process_alive(orphan)
    node = _bare_node(cluster, "node-r")
    node.start()
    try:
        run = cluster.run(run_id)
        assert (run.status, run.err_msg) == ("failed", "execution node node-r restarted")
        deadline = time.monotonic() + 5
        while process_alive(orphan):
            assert time.monotonic() < deadline, "the run's leftover process lives on"
            time.sleep(0.05)
    finally:
        node.close()


def test_a_run_whose_thread_failed_is_failed_by_its_node(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
):
    node = _bare_node(cluster, "node-x")
    node.start()
    try:
        run_id = cluster.ready_run(sent=False)

        def outage(self: RunProcess) -> None:
            raise OSError("the database went away")

        monkeypatch.setattr(RunProcess, "execute", outage)
        with pytest.raises(OSError):
            node.execute(run_id)
        run = cluster.run(run_id)
        assert (run.status, run.err_msg) == (
            "failed",
            "execution node node-x lost track of the run",
        )
        assert node.running() == []
    finally:
        node.close()


def test_the_heartbeat_fails_runs_its_node_owns_but_does_not_execute(cluster: Cluster):
    node = _bare_node(cluster, "node-h", heartbeat_seconds=0.2)
    node.start()
    try:
        # As if its thread had ended without finishing it, and could not fail it then.
        lost = cluster.ready_run(sent=False)
        assert cluster.svc.runs.claim(lost, "node-h")
        cluster.wait_finished(lost, timeout=10)
        run = cluster.run(lost)
        assert (run.status, run.err_msg) == (
            "failed",
            "execution node node-h lost track of the run",
        )
    finally:
        node.close()


def test_a_reaped_node_hands_a_run_back_to_the_queue(cluster: Cluster):
    from runyard.execution.broker import NodeUnavailable

    node = _bare_node(cluster, "node-g")
    node.start()
    try:
        with cluster.svc.db.session() as s, s.begin():  # reaped, not knowing it yet
            s.execute(delete(Node).where(Node.name == "node-g"))
        run_id = cluster.ready_run(sent=False)
        with pytest.raises(NodeUnavailable):
            node.execute(run_id)
        assert cluster.run(run_id).status == "ready"
        assert node.running() == []
    finally:
        node.close()


def test_stopping_a_run_kills_it_while_its_thread_is_stuck(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
):
    from runyard.execution.process import FencedRows

    run_id = cluster.ready_run("endless", sent=False)
    assert cluster.svc.runs.claim(run_id, "stuck")
    partition = threading.Event()
    released = threading.Event()
    append = FencedRows.append

    def blocked(self: FencedRows, *args: Any) -> None:
        if partition.is_set():
            released.wait(60)  # a database call that does not return
        append(self, *args)

    monkeypatch.setattr(FencedRows, "append", blocked)
    proc = RunProcess(cluster.svc.run_context, run_id)
    thread = threading.Thread(target=proc.execute)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while cluster.run(run_id).results < 200:
            assert time.monotonic() < deadline, "the run pushed no rows"
            time.sleep(0.05)
        partition.set()
        time.sleep(FLUSH_SECONDS * 3)  # the thread is stuck in a flush by now
        assert proc.pid is not None
        proc.abort("execution node stuck stopped")
        deadline = time.monotonic() + 5
        while process_alive(proc.pid):
            assert time.monotonic() < deadline, "the worker outlived its stop"
            time.sleep(0.05)
        assert thread.is_alive()
    finally:
        released.set()
        thread.join(30)
    run = cluster.run(run_id)
    assert (run.status, run.err_msg) == ("failed", "execution node stuck stopped")
