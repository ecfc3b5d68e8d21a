"""The scale-out mode end to end, on one machine: PostgreSQL, Redis, two ``runyard serve`` and
two ``runyard worker`` processes, the bundled ``sample-data`` worker.

One cluster serves the module; a test that stops a node starts a new one when it needs two.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from sqlalchemy import select

from runyard.services import Services
from runyard.services.packages import load_package
from runyard.settings import Settings
from runyard.storage import Node, Run
from tests.conftest import REDIS_URL, SCALE_OUT_PROBLEM, Databases, process_alive
from tests.served import free_port

SAMPLE_DATA = Path(__file__).parents[1] / "examples" / "workers" / "sample-data"
RUNYARD = [sys.executable, "-m", "runyard"]
#: Twelve heartbeats: a node on two loaded cores may miss a few without being reaped alive.
LEASE_SECONDS = 6


pytestmark = pytest.mark.skipif(SCALE_OUT_PROBLEM is not None, reason=str(SCALE_OUT_PROBLEM))


class Cluster:
    def __init__(self, root: Path, database_url: str) -> None:
        self.root = root
        self.queue = f"runyard-test-{uuid.uuid4().hex}"
        self.env = {
            **os.environ,
            "RUNYARD_DATABASE_URL": database_url,
            "RUNYARD_SHARED_DIR": str(root / "shared"),
            "RUNYARD_EXECUTOR": "celery",
            "RUNYARD_BROKER_URL": REDIS_URL,
            "RUNYARD_CELERY_QUEUE": self.queue,
            "RUNYARD_NODE_HEARTBEAT_SECONDS": "0.5",
            "RUNYARD_NODE_LEASE_SECONDS": str(LEASE_SECONDS),
            "RUNYARD_MAX_CONCURRENT_RUNS": "2",
        }
        # The user, key and worker, made here: every server and node sees them.
        self.svc = Services(
            Settings(
                data_dir=root / "setup",
                shared_dir=root / "shared",
                database_url=database_url,
                executor="celery",
                broker_url=REDIS_URL,
                celery_queue=self.queue,
            )
        )
        user_id = self.svc.accounts.create_user("alice")
        self.headers = {"Authorization": f"Bearer {self.svc.accounts.create_key('alice')}"}
        self.svc.workers.register(user_id, load_package(SAMPLE_DATA))
        self.processes: list[subprocess.Popen[bytes]] = []
        self.nodes: dict[str, subprocess.Popen[bytes]] = {}
        self.servers: list[str] = []

    def _spawn(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = open(self.root / f"{name}.log", "wb")  # noqa: SIM115 -- kept for the process
        proc = subprocess.Popen(
            [*RUNYARD, *args, "--data-dir", str(self.root / name)],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            # Its own process group, as on a machine of its own: killing it kills nothing else.
            start_new_session=True,
        )
        log.close()
        self.processes.append(proc)
        return proc

    def start(self, servers: int, nodes: list[str]) -> None:
        ports = [free_port() for _ in range(servers)]
        procs = [self._spawn(f"serve{i}", "serve", "--port", str(p)) for i, p in enumerate(ports)]
        for name in nodes:
            self.nodes[name] = self._spawn(name, "worker", "--name", name)
        deadline = time.monotonic() + 60
        for proc, port in zip(procs, ports, strict=True):
            url = f"http://127.0.0.1:{port}/api/v2"
            while True:
                assert proc.poll() is None, "runyard serve exited"
                assert time.monotonic() < deadline, "runyard serve did not start"
                try:
                    httpx.get(f"{url}/worker-runs", headers=self.headers, timeout=2)
                    break
                except httpx.TransportError:
                    time.sleep(0.2)
            self.servers.append(url)
        for name in nodes:
            self.wait_for_node(name, deadline)

    def start_node(self, name: str) -> None:
        self.nodes[name] = self._spawn(name, "worker", "--name", name)
        self.wait_for_node(name, time.monotonic() + 60)

    def wait_for_node(self, name: str, deadline: float) -> None:
        while name not in self.node_rows():
            assert self.nodes[name].poll() is None, f"node {name} exited"
            assert time.monotonic() < deadline, f"node {name} did not start"
            time.sleep(0.2)

    def node_rows(self) -> list[str]:
        with self.svc.db.session() as s:
            return list(s.scalars(select(Node.name)))

    def live_nodes(self) -> list[str]:
        return [name for name, proc in self.nodes.items() if proc.poll() is None]

    def close(self) -> None:
        for proc in self.processes:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
        for proc in self.processes:
            proc.wait(10)
        self.svc.close()
        queue = self.queue
        redis.Redis.from_url(REDIS_URL).delete(
            queue, f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}"
        )

    # --- the API -------------------------------------------------------------------------

    def start_run(self, server: int, **custom: Any) -> str:
        reply = httpx.post(
            f"{self.servers[server % len(self.servers)]}/workers/sample-data/runs",
            headers=self.headers,
            json={"input": {"parameters": {"custom": custom}}},
            timeout=30,
        )
        assert reply.status_code == 200, reply.text
        slug: str = reply.json()["data"]["run_slug"]
        return slug

    def record(self, slug: str, server: int = 0) -> dict[str, Any]:
        reply = httpx.get(f"{self.servers[server]}/worker-runs/{slug}", headers=self.headers)
        data: dict[str, Any] = reply.json()["data"]
        return data

    def wait_finished(self, slugs: list[str], timeout: float) -> dict[str, dict[str, Any]]:
        done: dict[str, dict[str, Any]] = {}
        deadline = time.monotonic() + timeout
        while len(done) < len(slugs):
            for slug in slugs:
                if slug not in done:
                    record = self.record(slug)
                    if record["status"] in ("succeeded", "failed"):
                        done[slug] = record
            if len(done) < len(slugs):
                assert time.monotonic() < deadline, f"{len(slugs) - len(done)} runs unfinished"
                time.sleep(0.2)
        return done

    def rows(self, slug: str, server: int, page: int) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        while True:
            reply = httpx.get(
                f"{self.servers[server]}/worker-runs/{slug}/result",
                headers=self.headers,
                params={"offset": len(rows), "limit": page},
            )
            batch = reply.json()["data"]["list"]
            if not batch:
                return rows
            rows.extend(batch)

    # --- the database, for what the API does not show --------------------------------------

    def runs(self, slugs: list[str]) -> dict[str, Run]:
        with self.svc.db.session() as s:
            return {run.slug: run for run in s.scalars(select(Run).where(Run.slug.in_(slugs)))}

    def wait_running(self, slugs: list[str], timeout: float = 30) -> dict[str, Run]:
        """Until every run executes (its process started); the runs."""
        deadline = time.monotonic() + timeout
        while True:
            runs = self.runs(slugs)
            if all(r.status == "running" and r.pid is not None for r in runs.values()):
                return runs
            assert time.monotonic() < deadline, {s: r.status for s, r in runs.items()}
            time.sleep(0.1)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, databases: Databases) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("scale-out")
    url = databases.url("postgresql")
    assert url is not None
    made = Cluster(root, url)
    try:
        made.start(servers=2, nodes=["node-a", "node-b"])
        yield made
    finally:
        made.close()


def _nodes(cluster: Cluster, wanted: int = 2) -> list[str]:
    """At least ``wanted`` live nodes (tests before may have stopped some); their names."""
    while len(live := cluster.live_nodes()) < wanted:
        cluster.start_node(f"node-{len(cluster.nodes) + 1}")
    return live


def test_fifty_runs_through_two_servers_on_two_nodes(cluster: Cluster):
    _nodes(cluster)
    count = 25
    slugs = [cluster.start_run(i, count=count, seed=i) for i in range(50)]
    records = cluster.wait_finished(slugs, timeout=120)
    failed = {slug: r["err_msg"] for slug, r in records.items() if r["status"] != "succeeded"}
    assert not failed
    for i, slug in enumerate(slugs):
        assert records[slug]["results"] == count
        # Read through the server that did not start it, ten rows a page.
        ids = [row["id"] for row in cluster.rows(slug, (i + 1) % 2, page=10)]
        assert sorted(ids) == list(range(1, count + 1)), slug
    executors = {run.executor for run in cluster.runs(slugs).values()}
    assert executors == set(cluster.live_nodes())


def test_an_abort_sent_to_the_other_server_stops_the_run(cluster: Cluster):
    slug = cluster.start_run(0, count=100_000, chunk_size=10, delay_ms=100)
    cluster.wait_running([slug])
    reply = httpx.post(f"{cluster.servers[1]}/worker-runs/{slug}/abort", headers=cluster.headers)
    assert reply.status_code == 200, reply.text
    asked = time.monotonic()
    record = cluster.wait_finished([slug], timeout=15)[slug]
    assert (record["status"], record["err_msg"]) == ("failed", "aborted by user")
    assert time.monotonic() - asked < 10
    assert record["results"] > 0


def test_a_killed_node_fails_its_runs_while_the_other_goes_on(cluster: Cluster):
    _nodes(cluster)
    slugs = [cluster.start_run(i, count=100, chunk_size=10, delay_ms=500) for i in range(4)]
    runs = cluster.wait_running(slugs)
    by_node: dict[str, list[str]] = {}
    for slug, run in runs.items():
        assert run.executor is not None
        by_node.setdefault(run.executor, []).append(slug)
    assert len(by_node) == 2, by_node  # two slots each: two runs on each node
    victim, survivor = sorted(by_node)
    pids = [runs[slug].pid for slug in by_node[victim]]

    os.killpg(cluster.nodes[victim].pid, signal.SIGKILL)
    cluster.nodes[victim].wait(10)
    killed = time.monotonic()
    # Its run processes die with it, though they lead sessions of their own.
    while any(pid is not None and process_alive(pid) for pid in pids):
        assert time.monotonic() - killed < 5, "a run's process outlived its node"
        time.sleep(0.1)

    lost = cluster.wait_finished(by_node[victim], timeout=LEASE_SECONDS + 15)
    assert time.monotonic() - killed < LEASE_SECONDS + 10
    for record in lost.values():
        assert record["status"] == "failed"
        assert re.fullmatch(
            rf"execution node {victim} stopped responding \(no heartbeat for \d+ s\)",
            record["err_msg"],
        ), record["err_msg"]
    kept = cluster.wait_finished(by_node[survivor], timeout=60)
    assert [(r["status"], r["results"]) for r in kept.values()] == [("succeeded", 100)] * 2
    # Forgotten by the reaper that failed its runs, in the same transaction.
    deadline = time.monotonic() + LEASE_SECONDS + 10
    while victim in cluster.node_rows():
        assert time.monotonic() < deadline, f"{victim} was never forgotten"
        time.sleep(0.1)

    # The cluster goes on with the node that is left.
    after = cluster.start_run(1, count=10)
    assert cluster.wait_finished([after], timeout=30)[after]["status"] == "succeeded"
    assert cluster.runs([after])[after].executor == survivor


def test_a_stopped_node_fails_its_runs_and_leaves(cluster: Cluster):
    _nodes(cluster, 1)
    slug = cluster.start_run(0, count=100_000, chunk_size=10, delay_ms=100)
    run = cluster.wait_running([slug])[slug]
    assert run.executor is not None
    node = cluster.nodes[run.executor]

    node.send_signal(signal.SIGTERM)
    assert node.wait(20) == 0
    record = cluster.wait_finished([slug], timeout=5)[slug]
    assert (record["status"], record["err_msg"]) == (
        "failed",
        f"execution node {run.executor} stopped",
    )
    assert run.executor not in cluster.node_rows()
    assert run.pid is not None and not process_alive(run.pid)


def test_a_second_node_of_a_live_name_refuses_to_start(cluster: Cluster):
    name = _nodes(cluster, 1)[0]
    second = subprocess.run(
        [*RUNYARD, "worker", "--name", name, "--data-dir", str(cluster.root / "dup")],
        env=cluster.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert second.returncode == 1
    assert f"a live execution node is already named '{name}'" in second.stderr
    shutil.rmtree(cluster.root / "dup", ignore_errors=True)
