"""``kill -9`` of a real ``runyard serve`` mid-run: on restart the run fails, its rows stay."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import select

from runyard.execution.process import run_processes
from runyard.services import Services
from runyard.services.packages import load_package
from runyard.settings import Settings
from runyard.storage import Run
from tests.conftest import process_alive
from tests.result_helpers import read_all
from tests.served import SERVE, Served, free_port

WORKER = """
import time
from runyard import sdk

n = 0
while True:
    sdk.push_many({"n": n + i} for i in range(100))
    n += 100
    time.sleep(0.01)
"""


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


def test_kill_9_mid_run_keeps_committed_rows_and_fails_the_run(tmp_path: Path) -> None:
    data_dir, key = _install(tmp_path, WORKER)
    port = free_port()
    base = f"http://127.0.0.1:{port}/api/v2"
    headers = {"Authorization": f"Bearer {key}"}
    server = Served(data_dir, port=port)
    try:
        run = httpx.post(f"{base}/workers/pusher/runs", headers=headers, json={}).json()["data"][
            "run_slug"
        ]
        deadline = time.monotonic() + 30
        while True:
            # What a client was told is stored, the moment before the server dies mid-ingest.
            told = httpx.get(f"{base}/worker-runs/{run}", headers=headers).json()["data"]
            if told["results"] >= 3000:
                break
            assert time.monotonic() < deadline
            time.sleep(0.05)
        server.kill()
    finally:
        server.kill()

    svc = Services(Settings(data_dir=data_dir))
    with svc.db.session() as s:
        stuck = s.scalar(select(Run).where(Run.slug == run))
    svc.close()
    assert stuck is not None and stuck.status == "running" and stuck.pid is not None
    committed = stuck.results
    assert committed >= told["results"]

    server = Served(data_dir, port=port)
    try:
        record = httpx.get(f"{base}/worker-runs/{run}", headers=headers).json()["data"]
        assert record["status"] == "failed"
        assert record["err_msg"] == "server restarted"
        assert record["results"] == committed
        # Every row committed before the kill, once each and in order: nothing lost, no gap,
        # no duplicate, no half batch.
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers) as client:
            rows = read_all(client, run, committed)
        assert [row["n"] for row in rows] == list(range(committed))
        # The orphaned worker is gone too (it died on the broken channel, or was killed).
        time.sleep(0.5)
        assert not process_alive(stuck.pid)

        # A second server on the same data directory refuses to start: it would otherwise take
        # the first one's live runs for orphans.
        second = subprocess.run(
            [*SERVE, "--data-dir", str(data_dir), "--port", str(free_port())],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 1
        assert "another runyard serve is already executing runs" in second.stderr
    finally:
        server.stop()


#: Rows of the export test: about 130 bytes of CSV each.
EXPORT_ROWS = 300_000


def _import_rows(data_dir: Path, tmp_path: Path, count: int) -> str:
    """A finished run of ``count`` rows for alice, imported; its slug."""
    source = tmp_path / "big.jsonl"
    with open(source, "w") as f:
        for i in range(count):
            f.write(
                f'{{"id": {i}, "name": "item {i}", "price": {i / 100}, '
                f'"tags": ["a", "b"], "note": "{"x" * 60}"}}\n'
            )
    svc = Services(Settings(data_dir=data_dir))
    try:
        return svc.imports.run(source, user_id=svc.accounts.user_id("alice"), worker_slug="big")
    finally:
        svc.close()


def test_kill_9_while_an_export_is_written_never_serves_a_partial_file(tmp_path: Path) -> None:
    data_dir, key = _install(tmp_path, WORKER)
    run = _import_rows(data_dir, tmp_path, EXPORT_ROWS)
    files = data_dir / "files"
    port = free_port()
    base = f"http://127.0.0.1:{port}/api/v2"
    headers = {"Authorization": f"Bearer {key}"}
    server = Served(data_dir, port=port)
    try:
        reply = httpx.get(
            f"{base}/worker-runs/{run}/result/export", headers=headers, params={"format": "csv"}
        )
        url = reply.json()["data"]["download_url"]
        name = urlsplit(url).path.split("/")[-2]
        deadline = time.monotonic() + 60
        while not any(t.stat().st_size > 1 << 20 for t in files.glob(f".{name}.csv.*.tmp")):
            assert not (files / f"{name}.csv").exists(), "the export was done before the kill"
            assert time.monotonic() < deadline, "the export file was never being written"
            time.sleep(0.01)
        server.kill()  # mid-write
    finally:
        server.kill()
    half = list(files.glob(f".{name}.csv.*.tmp"))
    assert len(half) == 1
    written = half[0].stat().st_size
    assert written > 1 << 20
    # Never published under its name: only a complete file is ever renamed into place.
    assert not (files / f"{name}.csv").exists()

    server = Served(data_dir, port=port)
    try:
        # The half-written file is swept as the server starts.
        deadline = time.monotonic() + 10
        while half[0].exists():
            assert time.monotonic() < deadline, "the half-written export was left behind"
            time.sleep(0.05)
        # The link given before the crash still works, and serves the whole snapshot: the
        # export is written again, in full, before the first byte goes out.
        started = time.monotonic()
        download = httpx.get(url, timeout=120)
        took = time.monotonic() - started
        assert download.status_code == 200
        lines = download.content.decode("utf-8-sig").split("\r\n")
        assert lines[0] == "id,name,price,tags,note" and lines[-1] == ""
        assert len(lines) == EXPORT_ROWS + 2
        assert lines[-2].startswith(f"{EXPORT_ROWS - 1},item {EXPORT_ROWS - 1},")
        assert int(download.headers["Content-Length"]) == len(download.content)
        assert [p.name for p in files.iterdir() if p.name.startswith(".")] == []
        print(
            f"\nexport killed at {written:,} bytes written: the temporary file was swept at "
            f"start; the link then served {len(download.content):,} bytes "
            f"({EXPORT_ROWS:,} rows) after {took:.1f} s"
        )
    finally:
        server.stop()


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
    port = free_port()
    base = f"http://127.0.0.1:{port}/api/v2"
    headers = {"Authorization": f"Bearer {key}"}
    server = Served(data_dir, port=port)
    try:
        run = httpx.post(f"{base}/workers/pusher/runs", headers=headers, json={}).json()["data"][
            "run_slug"
        ]
        deadline = time.monotonic() + 30
        while not _rows(base, headers, run):
            assert time.monotonic() < deadline, "the worker never started its child"
            time.sleep(0.1)
        # As this host numbers them (the pid the sandboxed worker sees is its namespace's).
        processes = run_processes(run)
        assert len(processes) >= 2  # the worker and its child
        server.kill()
    finally:
        server.kill()
    # Sandboxed, the whole tree dies with the server (bwrap --die-with-parent, then its pid
    # namespace; tests/test_sandbox.py). Unsandboxed, the worker's own process does
    # (PR_SET_PDEATHSIG) and its child, handed to init, lives on until the server is back.
    server = Served(data_dir, port=port)
    try:
        record = httpx.get(f"{base}/worker-runs/{run}", headers=headers).json()["data"]
        assert (record["status"], record["err_msg"]) == ("failed", "server restarted")
        # Killed before the server took requests.
        assert not any(process_alive(pid) for pid in processes)
    finally:
        server.stop()
        for pid in processes:
            if process_alive(pid):
                os.kill(pid, signal.SIGKILL)


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
