"""Runs executed for real: worker processes, their rows, logs, limits and failures."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from runyard.execution.process import run_processes
from tests.conftest import Server, User, start, wait_for

pytestmark = pytest.mark.both_databases


def _rows(api: httpx.Client, run: str, limit: int = 100) -> list[dict[str, Any]]:
    page = api.get(f"/api/v2/worker-runs/{run}/result", params={"limit": limit}).json()["data"]
    rows: list[dict[str, Any]] = page["list"]
    return rows


def _log(api: httpx.Client, run: str) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = api.get(f"/api/v2/worker-runs/{run}/log").json()["data"]["list"]
    return entries


def test_a_run_pushes_rows_logs_and_succeeds(server: Server, user: User, api: httpx.Client):
    worker = server.worker(
        user,
        """
        from runyard import sdk

        params = sdk.input()
        sdk.set_headers([{"key": "n", "label": "Number"}])
        sdk.log("starting", level="info")
        print("plain stdout line")
        for n in range(params["count"]):
            sdk.push({"n": n, "word": params["word"]})
        sdk.log("careful", level="warn")
        """,
        properties=[
            {"name": "count", "title": "Count", "type": "integer", "default": 3},
            {"name": "word", "title": "Word", "type": "string", "required": True},
        ],
    )
    run = start(api, worker, {"word": "hi"})
    record = wait_for(api, run)
    assert record["status"] == "succeeded", record
    assert record["results"] == 3
    assert record["version"] == "1.0.0"
    assert record["origin"] == "openapi"
    assert record["finished_at"] >= record["started_at"] > 0
    page = api.get(f"/api/v2/worker-runs/{run}/result").json()["data"]
    assert page["list"] == [{"n": n, "word": "hi"} for n in range(3)]
    assert page["headers"][:2] == [
        {"key": "n", "label": "Number"},
        {"key": "word", "label": "word"},
    ]
    entries = _log(api, run)
    by_content = {e["content"]: e for e in entries}
    assert by_content["starting"]["type"] == 2
    assert by_content["careful"]["type"] == 3
    assert by_content["plain stdout line"]["type"] == 2
    assert all(e["group"] == "0" and e["timestamp"] > 1e12 for e in entries)
    log = api.get(f"/api/v2/worker-runs/{run}/log").json()["data"]
    assert log["result_count"] == 3
    text = httpx.get(log["all_logs_url"]).text
    assert "WARN careful" in text and "INFO plain stdout line" in text


def test_rows_are_visible_while_the_run_is_running_and_abort_keeps_them(
    server: Server, user: User, api: httpx.Client
):
    worker = server.worker(
        user,
        """
        import time
        from runyard import sdk

        sdk.push_many({"n": n} for n in range(5))
        time.sleep(120)
        """,
    )
    run = start(api, worker)
    deadline = time.monotonic() + 30
    while api.get(f"/api/v2/worker-runs/{run}/result").json()["data"]["count"] < 5:
        assert time.monotonic() < deadline, "rows never became visible"
        time.sleep(0.1)
    assert api.get(f"/api/v2/worker-runs/{run}").json()["data"]["status"] == "running"

    reply = api.post(f"/api/v2/worker-runs/{run}/abort")
    assert reply.status_code == 200 and reply.json()["data"] == {}
    assert api.get(f"/api/v2/worker-runs/{run}").json()["data"]["status"] in (
        "aborting",
        "failed",
    )
    record = wait_for(api, run, timeout=15)
    assert record["status"] == "failed"
    assert record["err_msg"] == "aborted by user"
    assert _rows(api, run) == [{"n": n} for n in range(5)]

    again = api.post(f"/api/v2/worker-runs/{run}/abort")
    assert again.status_code == 409 and again.json()["code"] == 70002


def test_timeout_kills_the_whole_process_tree(server: Server, user: User, api: httpx.Client):
    worker = server.worker(
        user,
        """
        import subprocess, sys, time
        from runyard import sdk

        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
        sdk.push({"child": child.pid})
        time.sleep(120)
        """,
    )
    run = start(api, worker, system={"execute_limit_time_seconds": 2})
    deadline = time.monotonic() + 30
    while not _rows(api, run):
        assert time.monotonic() < deadline, "the worker never started its child"
        time.sleep(0.05)
    # As this host numbers them (the pid the sandboxed worker sees is its namespace's).
    processes = run_processes(run)
    assert len(processes) >= 2  # the worker and its child
    record = wait_for(api, run, timeout=30)
    assert record["status"] == "failed"
    assert record["err_msg"] == "timed out after 2 s"
    time.sleep(0.5)
    for pid in processes:
        assert not Path(f"/proc/{pid}").exists() or "Z" in _state(pid)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2]
    except OSError:
        return "gone"


def test_a_crashing_worker_fails_with_its_error_and_traceback(
    server: Server, user: User, api: httpx.Client
):
    worker = server.worker(
        user,
        """
        from runyard import sdk

        sdk.push({"before": "crash"})
        raise ValueError("boom")
        """,
    )
    run = start(api, worker)
    record = wait_for(api, run)
    assert record["status"] == "failed"
    assert record["err_msg"] == "worker exited with code 1: ValueError: boom"
    errors = [e["content"] for e in _log(api, run) if e["type"] == 4]
    assert any(line.startswith("Traceback") for line in errors)
    assert _rows(api, run) == [{"before": "crash"}]


def test_bad_rows_are_refused_with_a_log_line_and_the_run_goes_on(
    server: Server, user: User, api: httpx.Client
):
    worker = server.worker(
        user,
        """
        from sdk import CoreSDK

        CoreSDK.Result.push_data({"ok": 1})
        CoreSDK.Result.push_data("[1, 2]")
        CoreSDK.Result.push_data("{not json")
        CoreSDK.Result.push_data({"big": "x" * 2_000_000})
        CoreSDK.Result.push_data('{"ok": 2}')
        """,
    )
    run = start(api, worker)
    record = wait_for(api, run)
    assert record["status"] == "succeeded"
    assert _rows(api, run) == [{"ok": 1}, {"ok": 2}]
    errors = [e["content"] for e in _log(api, run) if e["type"] == 4]
    assert any("a row must be a JSON object, not list" in line for line in errors)
    assert any("row is not valid JSON" in line for line in errors)
    assert any("exceeds the 1048576-byte row limit" in line for line in errors)
    warnings = [e["content"] for e in _log(api, run) if e["type"] == 3]
    assert "3 rows were rejected (see the errors above)" in warnings


def test_upsert_replaces_in_place(server: Server, user: User, api: httpx.Client):
    worker = server.worker(
        user,
        """
        from runyard import sdk
        from sdk import CoreSDK

        sdk.push({"url": "a", "v": 1})
        sdk.push({"url": "b", "v": 1})
        sdk.upsert({"url": "a", "v": 2}, key="url")
        CoreSDK.Result.upsert_data({"url": "c", "v": 1}, "url")
        CoreSDK.Result.upsert_data({"url": "b", "v": 3, "extra": True}, "url")
        """,
    )
    run = start(api, worker)
    assert wait_for(api, run)["status"] == "succeeded"
    assert _rows(api, run) == [
        {"url": "a", "v": 2},
        {"url": "b", "v": 3, "extra": True},
        {"url": "c", "v": 1},
    ]


def test_a_flooding_worker_gets_a_capped_log_and_the_server_answers(
    make_server: Any,
):
    srv: Server = make_server(run_log_max_lines=1000)
    user = srv.user()
    worker = srv.worker(
        user,
        """
        import sys
        for n in range(300_000):
            print("flood line", n)
        """,
    )
    with srv.client(user) as api:
        run = start(api, worker)
        slowest = 0.0
        while True:
            began = time.monotonic()
            record = api.get(f"/api/v2/worker-runs/{run}").json()["data"]
            slowest = max(slowest, time.monotonic() - began)
            if record["status"] in ("succeeded", "failed"):
                break
            time.sleep(0.05)
        assert record["status"] == "succeeded"
        # Generous: the point is "answers while flooded", not a timing target.
        assert slowest < 5
        entries = _log(api, run)
        assert len(entries) == 1000
        assert entries[-1]["content"].startswith("log limit of 1000 lines reached: ")
        assert entries[-1]["type"] == 3


def test_twenty_runs_with_concurrency_four(make_server: Any):
    srv: Server = make_server(max_concurrent_runs=4)
    user = srv.user()
    worker = srv.worker(
        user,
        """
        import time
        from runyard import sdk

        began = time.time()
        time.sleep(0.6)
        sdk.push({"began": began, "ended": time.time()})
        """,
    )
    with srv.client(user) as api:
        runs = [start(api, worker) for _ in range(20)]
        statuses = {api.get(f"/api/v2/worker-runs/{r}").json()["data"]["status"] for r in runs}
        assert "ready" in statuses  # the later ones wait
        spans = []
        for run in runs:
            assert wait_for(api, run, timeout=120)["status"] == "succeeded"
            row = _rows(api, run)[0]
            spans.append((row["began"], row["ended"]))
    events = sorted([(b, 1) for b, _ in spans] + [(e, -1) for _, e in spans])
    running = peak = 0
    for _, delta in events:
        running += delta
        peak = max(peak, running)
    assert peak == 4


def test_a_synchronous_run_returns_its_results(server: Server, user: User, api: httpx.Client):
    worker = server.worker(
        user,
        """
        from runyard import sdk
        sdk.push_many({"n": n} for n in range(30))
        """,
    )
    reply = api.post(
        f"/api/v2/workers/{worker}/runs", json={"is_async": False, "limit": 5, "offset": 10}
    )
    assert reply.status_code == 200, reply.text
    data = reply.json()["data"]
    assert data["is_finished"] is True
    assert data["run_status"] == "succeeded"
    assert data["error_message"] == ""
    assert data["execution_end_timestamp"] >= data["execution_start_timestamp"] > 0
    assert isinstance(data["running_duration"], int)
    assert isinstance(data["result_message"], str)
    results = data["results"]
    assert results["count"] == 30
    assert results["list"] == [{"n": n} for n in range(10, 15)]
    assert results["page_index"] == 3 and results["page_size"] == 5


def test_a_synchronous_run_that_outlives_the_wait_goes_on(make_server: Any):
    srv: Server = make_server(sync_wait_seconds=1)
    user = srv.user()
    worker = srv.worker(
        user,
        """
        import time
        from runyard import sdk
        sdk.push({"early": True})
        time.sleep(3)
        sdk.push({"late": True})
        """,
    )
    with srv.client(user) as api:
        reply = api.post(f"/api/v2/workers/{worker}/runs", json={"is_async": False})
        data = reply.json()["data"]
        assert data["is_finished"] is False
        assert data["run_status"] == "running"
        assert data["execution_end_timestamp"] == 0
        record = wait_for(api, data["run_slug"])
        assert record["status"] == "succeeded" and record["results"] == 2


def test_the_memory_limit_is_enforced(server: Server, user: User, api: httpx.Client):
    worker = server.worker(
        user,
        """
        from runyard import sdk
        sdk.push({"before": "allocating"})
        hog = bytearray(1024 * 1024 * 1024)
        sdk.push({"after": len(hog)})
        """,
    )
    run = start(api, worker, system={"memory": 256})
    record = wait_for(api, run)
    assert record["status"] == "failed"
    assert record["err_msg"] == "worker ran out of memory (limit 256 MB)"
    assert _rows(api, run) == [{"before": "allocating"}]


def test_a_worker_that_closes_its_streams_still_times_out(
    server: Server, user: User, api: httpx.Client
):
    worker = server.worker(
        user,
        """
        import os, time
        os.closerange(0, 1024)
        time.sleep(120)
        """,
    )
    run = start(api, worker, system={"execute_limit_time_seconds": 2})
    record = wait_for(api, run, timeout=20)
    assert (record["status"], record["err_msg"]) == ("failed", "timed out after 2 s")


def test_endless_lines_are_cut_without_filling_the_server(
    server: Server, user: User, api: httpx.Client
):
    worker = server.worker(
        user,
        """
        import os, sys
        from runyard import sdk

        chunk = "x" * 1_000_000
        for _ in range(100):
            sys.stdout.write(chunk)
        print()
        fd = int(os.environ["RUNYARD_CHANNEL_FD"])
        os.write(fd, b'R {"a": "' + b"y" * 5_000_000 + b'"}\\n')
        sdk.push({"after": "the long ones"})
        """,
    )
    run = start(api, worker)
    record = wait_for(api, run)
    assert record["status"] == "succeeded"
    assert _rows(api, run) == [{"after": "the long ones"}]
    entries = _log(api, run)
    cut = [e["content"] for e in entries if e["content"].endswith(" … [line cut]")]
    assert len(cut) == 1 and cut[0].startswith("xxxx")
    assert any(
        "row exceeds the 1048576-byte row limit" in e["content"] for e in entries if e["type"] == 4
    )


def test_nul_characters_in_output_fail_the_run_readably(
    server: Server, user: User, api: httpx.Client
):
    # PostgreSQL text cannot hold NUL: neither the log nor err_msg may sink the run's end.
    worker = server.worker(
        user,
        """
        import sys

        print("hello\\x00world")
        print("hello\\x00world", file=sys.stderr)
        sys.exit(1)
        """,
    )
    run = start(api, worker)
    record = wait_for(api, run)
    assert (record["status"], record["err_msg"]) == (
        "failed",
        "worker exited with code 1: hello\ufffdworld",
    )
    entries = [(e["type"], e["content"]) for e in _log(api, run)]
    assert (2, "hello\ufffdworld") in entries
    assert (4, "hello\ufffdworld") in entries
    assert (4, "run failed: worker exited with code 1: hello\ufffdworld") in entries


def test_a_run_whose_log_cannot_be_written_still_finishes(
    server: Server, user: User, api: httpx.Client, monkeypatch: pytest.MonkeyPatch
):
    from runyard.storage.runlog import LogWriter

    def refused(self: LogWriter) -> None:
        raise RuntimeError("the database refused the batch")

    monkeypatch.setattr(LogWriter, "close", refused)
    worker = server.worker(
        user,
        """
        from runyard import sdk
        sdk.push({"n": 1})
        """,
    )
    run = start(api, worker)
    record = wait_for(api, run)
    assert (record["status"], record["results"]) == ("succeeded", 1)
    assert _rows(api, run) == [{"n": 1}]
