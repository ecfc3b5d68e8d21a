"""``kill -9`` of a real ``runyard serve`` mid-run: on restart the run fails, its rows stay."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from runyard.services import Services
from runyard.services.packages import load_package
from runyard.settings import Settings
from runyard.storage import Run
from tests.conftest import process_alive

WORKER = """
import time
from runyard import sdk

n = 0
while True:
    sdk.push_many({"n": n + i} for i in range(100))
    n += 100
    time.sleep(0.1)
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


SERVE = [sys.executable, "-m", "runyard", "serve"]


def _serve(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [*SERVE, "--data-dir", str(data_dir), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/api/v2/worker-runs", timeout=1)
            return proc
        except httpx.TransportError:
            assert proc.poll() is None, "runyard serve exited"
            assert time.monotonic() < deadline, "runyard serve did not start"
            time.sleep(0.1)


def _install(tmp_path: Path, main: str) -> tuple[Path, str]:
    """A data directory with a user and the worker ``pusher`` running ``main``; the directory
    and the user's key."""
    data_dir = tmp_path / "data"
    package = tmp_path / "pusher"
    package.mkdir()
    (package / "main.py").write_text(main)
    (package / "input_schema.json").write_text('{"properties": []}')
    (package / "output_schema.json").write_text("[]")
    svc = Services(Settings(data_dir=data_dir))
    user_id = svc.accounts.create_user("alice")
    key = svc.accounts.create_key("alice")
    svc.workers.register(user_id, load_package(package))
    svc.close()
    return data_dir, key


def test_kill_9_mid_run_keeps_committed_rows_and_fails_the_run(tmp_path: Path):
    data_dir, key = _install(tmp_path, WORKER)
    port = _free_port()
    base = f"http://127.0.0.1:{port}/api/v2"
    headers = {"Authorization": f"Bearer {key}"}
    server = _serve(data_dir, port)
    try:
        run = httpx.post(f"{base}/workers/pusher/runs", headers=headers, json={}).json()["data"][
            "run_slug"
        ]
        deadline = time.monotonic() + 30
        while (
            httpx.get(f"{base}/worker-runs/{run}", headers=headers).json()["data"]["results"] < 500
        ):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        server.send_signal(signal.SIGKILL)
        server.wait()
    finally:
        if server.poll() is None:
            server.kill()

    svc = Services(Settings(data_dir=data_dir))
    with svc.db.session() as s:
        stuck = s.scalar(select(Run).where(Run.slug == run))
    svc.close()
    assert stuck is not None and stuck.status == "running" and stuck.pid is not None
    committed = stuck.results
    assert committed >= 500

    server = _serve(data_dir, port)
    try:
        record = httpx.get(f"{base}/worker-runs/{run}", headers=headers).json()["data"]
        assert record["status"] == "failed"
        assert record["err_msg"] == "server restarted"
        assert record["results"] == committed
        last = httpx.get(
            f"{base}/worker-runs/{run}/result",
            headers=headers,
            params={"offset": committed - 100, "limit": 100},
        ).json()["data"]["list"]
        assert [row["n"] for row in last] == list(range(committed - 100, committed))
        # The orphaned worker is gone too (it died on the broken channel, or was killed).
        time.sleep(0.5)
        assert not process_alive(stuck.pid)

        # A second server on the same data directory refuses to start: it would otherwise take
        # the first one's live runs for orphans.
        second = subprocess.run(
            [*SERVE, "--data-dir", str(data_dir), "--port", str(_free_port())],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 1
        assert "another runyard serve is already executing runs" in second.stderr
    finally:
        server.terminate()
        server.wait(10)


#: Starts a child that outlives it unless killed, says its pid, and waits.
SPAWNER = """
import subprocess, time
from runyard import sdk

child = subprocess.Popen(["sleep", "300"])
sdk.push({"child": child.pid})
sdk.flush()
time.sleep(300)
"""


def test_kill_9_leaves_no_grandchild_once_the_server_is_back(tmp_path: Path):
    data_dir, key = _install(tmp_path, SPAWNER)
    port = _free_port()
    base = f"http://127.0.0.1:{port}/api/v2"
    headers = {"Authorization": f"Bearer {key}"}
    server = _serve(data_dir, port)
    try:
        run = httpx.post(f"{base}/workers/pusher/runs", headers=headers, json={}).json()["data"][
            "run_slug"
        ]
        deadline = time.monotonic() + 30
        while not (rows := _rows(base, headers, run)):
            assert time.monotonic() < deadline, "the worker never started its child"
            time.sleep(0.1)
        child = rows[0]["child"]
        assert process_alive(child)
        server.send_signal(signal.SIGKILL)
        server.wait()
    finally:
        if server.poll() is None:
            server.kill()
    # The worker's own process dies with the server (PR_SET_PDEATHSIG); its child, handed to
    # init, lives on until the server is back: a service manager would kill it at once (a
    # systemd unit's cgroup).
    server = _serve(data_dir, port)
    try:
        record = httpx.get(f"{base}/worker-runs/{run}", headers=headers).json()["data"]
        assert (record["status"], record["err_msg"]) == ("failed", "server restarted")
        # Killed before the server took requests.
        assert not process_alive(child)
    finally:
        server.terminate()
        server.wait(10)
        if process_alive(child):
            os.kill(child, signal.SIGKILL)


def _rows(base: str, headers: dict[str, str], run: str) -> list[dict[str, Any]]:
    reply = httpx.get(f"{base}/worker-runs/{run}/result", headers=headers)
    rows: list[dict[str, Any]] = reply.json()["data"]["list"]
    return rows


def test_what_is_left_of_a_run_is_killed_though_its_leader_is_gone():
    from runyard.execution.process import kill_runs

    slug = "01LEFTOVERRUN0000000000000"
    # A run's process that died, leaving a child in its group: the group has no leader, and
    # the child's parent is init.
    leader = subprocess.Popen(
        ["sh", "-c", "sleep 300 & echo $!"],
        env={**os.environ, "RUNYARD_RUN_ID": slug},
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    assert leader.stdout is not None
    child = int(leader.stdout.readline())
    leader.wait(10)
    try:
        assert process_alive(child)
        kill_runs(["01SOMEOTHERRUN000000000000"])
        assert process_alive(child)
        kill_runs([slug])
        deadline = time.monotonic() + 5
        while process_alive(child):
            assert time.monotonic() < deadline, "the leftover lives on"
            time.sleep(0.05)
    finally:
        if process_alive(child):
            os.kill(child, signal.SIGKILL)


def test_orphans_are_found_by_their_run_id_when_no_pid_was_stored():
    from runyard.execution.process import kill_group, run_processes

    orphan = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"],
        env={**os.environ, "RUNYARD_RUN_ID": "01ORPHANRUN0000000000000000"},
        start_new_session=True,
    )
    try:
        assert run_processes("01ORPHANRUN0000000000000000") == [orphan.pid]
        assert run_processes("01SOMEOTHERRUN000000000000") == []
        kill_group(orphan.pid)
        assert orphan.wait(10) == -9
    finally:
        orphan.kill()
