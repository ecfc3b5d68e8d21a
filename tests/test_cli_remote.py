"""``runyard run``, ``runs …``, ``results`` and ``export`` against a real server over HTTP."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from runyard.cli.watch import LogTail
from runyard.client import LogEntry, RunLog
from tests.cli_helpers import ECHO, Outcome, isolate, remote, ry
from tests.conftest import Server, User, wait_for

SLUG = re.compile(r"[0-9A-Z]{26}")
FIELDS = [
    {"name": "count", "title": "Count", "type": "integer", "default": 1},
    {"name": "urls", "title": "URLs", "type": "array", "default": []},
    {"name": "flag", "title": "Flag", "type": "boolean", "default": False},
    {"name": "name", "title": "Name", "type": "string", "default": ""},
    {"name": "code", "title": "Code", "type": "string", "default": ""},
]
CHATTY = """
import time
from runyard import sdk
for n in range(1, 4):
    sdk.log(f"step {n} of 3", level="info")
    sdk.push({"n": n})
    sdk.flush()
    time.sleep(0.4)
"""
HEADED = """
from runyard import sdk
sdk.set_headers([{"key": "title", "label": "Title"}, {"key": "price", "label": "Price (EUR)"}])
sdk.push_many([
    {"title": f"item {i}", "price": i * 1.5, "tags": ["a", "b"], "meta": {"k": [i]}}
    for i in range(1, 6)
])
"""


@pytest.fixture(autouse=True)
def _no_profiles(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate(monkeypatch, tmp_path)


def one_line_error(result: Outcome) -> str:
    """The single line a refusal prints; asserts there is nothing else."""
    assert result.code == 1, result
    assert result.out == ""
    assert "Traceback" not in result.text
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    return lines[0]


def rows_of(server: Server, user: User, run: str) -> list[dict[str, object]]:
    with server.client(user) as api:
        reply = api.get(f"/api/v2/worker-runs/{run}/result", params={"limit": 100})
    rows: list[dict[str, object]] = reply.json()["data"]["list"]
    return rows


# run


def test_run_prints_the_slug_and_wait_reports_success(server: Server, user: User) -> None:
    worker = server.worker(user, ECHO, properties=FIELDS)
    result = remote(server, user, "run", worker, "--set", "count=3", "--wait")
    assert result.code == 0, result
    assert SLUG.fullmatch(result.out.strip())  # the slug alone: RUN=$(runyard run …) works
    run = result.out.strip()
    assert re.search(rf"run {run} succeeded: 1 rows in \d+s", result.err)
    assert rows_of(server, user, run) == [
        {"count": 3, "urls": [], "flag": False, "name": "", "code": ""}
    ]


def test_set_values_are_json_when_they_parse_and_strings_otherwise(
    server: Server, user: User, tmp_path: Path
) -> None:
    worker = server.worker(user, ECHO, properties=FIELDS)
    (tmp_path / "input.json").write_text('{"count": 1, "name": "from file", "code": "x"}')
    args = ["run", worker, "--input", str(tmp_path / "input.json"), "--wait"]
    sets = ["count=5", 'urls=["https://x"]', "flag=true", "code=007x", 'name="5"']
    result = remote(server, user, *args, *(a for s in sets for a in ("--set", s)))
    assert result.code == 0, result
    assert rows_of(server, user, result.out.strip()) == [
        {"count": 5, "name": "5", "code": "007x", "urls": ["https://x"], "flag": True}
    ]

    from_stdin = remote(server, user, "run", worker, "-i", "-", "--wait", input='{"count": 9}')
    assert from_stdin.code == 0, from_stdin
    assert rows_of(server, user, from_stdin.out.strip())[0]["count"] == 9


def test_follow_prints_each_log_line_once_in_order(server: Server, user: User) -> None:
    worker = server.worker(user, CHATTY)
    result = remote(server, user, "run", worker, "--follow")
    assert result.code == 0, result
    assert SLUG.fullmatch(result.out.strip())  # log lines go to stderr, not into $(…)
    steps = [line for line in result.err.splitlines() if "step" in line]
    assert [line.split(" INFO ")[1] for line in steps] == [
        "step 1 of 3",
        "step 2 of 3",
        "step 3 of 3",
    ]
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO step 1 of 3$", steps[0])
    assert "succeeded: 3 rows" in result.err.splitlines()[-1]


def test_a_failing_worker_exits_1_with_its_error(server: Server, user: User) -> None:
    worker = server.worker(user, "import sys\nprint('boom', file=sys.stderr)\nsys.exit(3)\n")
    result = remote(server, user, "run", worker, "--wait")
    assert result.code == 1
    run = result.out.strip()
    assert SLUG.fullmatch(run)
    assert f"run {run} failed: 0 rows" in result.err
    assert "worker exited with code 3: boom" in result.err
    assert "Traceback" not in result.text
    followed = remote(server, user, "runs", "log", run, "--follow")
    assert followed.code == 1 and "ERROR run failed: worker exited with code 3" in followed.out


def test_system_parameters_reach_the_run(server: Server, user: User) -> None:
    worker = server.worker(user, "import time\ntime.sleep(10)\n")
    args = ["run", worker, "--system", "execute_limit_time_seconds=1", "--wait"]
    result = remote(server, user, *args)
    assert result.code == 1
    assert "failed: 0 rows" in result.err and "timed out after 1 s" in result.err


def test_timeout_stops_waiting_and_the_run_goes_on_until_aborted(
    server: Server, user: User
) -> None:
    worker = server.worker(user, "import time\ntime.sleep(30)\n")
    result = remote(server, user, "run", worker, "--wait", "--timeout", "0.5")
    assert result.code == 1
    run = result.out.strip()
    line = result.err.strip().splitlines()[-1]
    assert re.fullmatch(
        rf"error: run {run} still (ready|running) after 0\.5 s; the run goes on.*", line
    )
    with server.client(user) as api:
        assert api.get(f"/api/v2/worker-runs/{run}").json()["data"]["status"] in (
            "ready",
            "running",
        )
        aborted = remote(server, user, "runs", "abort", run)
        assert aborted.code == 0, aborted
        assert f"abort requested: run {run}" in aborted.err
        record = wait_for(api, run, timeout=20)
    assert (record["status"], record["err_msg"]) == ("failed", "aborted by user")
    again = remote(server, user, "runs", "abort", run)
    assert one_line_error(again).startswith("error 70002: ")


def test_invalid_input_is_one_line_with_every_detail(server: Server, user: User) -> None:
    worker = server.worker(user, ECHO, properties=FIELDS)
    result = remote(server, user, "run", worker, "--set", "count=many", "--set", "bogus=1")
    line = one_line_error(result)
    assert line.startswith("error 11000: ")
    assert "count: must be an integer" in line and "; " in line and "bogus" in line
    assert re.search(r"\(request req-[0-9A-Za-z]+\)$", line)
    assert run_count(server, user) == 0


def run_count(server: Server, user: User) -> int:
    with server.client(user) as api:
        count: int = api.get("/api/v2/worker-runs").json()["data"]["count"]
    return count


def test_bad_arguments_are_one_line(server: Server, user: User, tmp_path: Path) -> None:
    worker = server.worker(user, ECHO, properties=FIELDS)
    missing = remote(server, user, "run", worker, "--input", str(tmp_path / "nope.json"))
    assert "nope.json: No such file or directory" in one_line_error(missing)
    (tmp_path / "list.json").write_text("[1]")
    not_object = remote(server, user, "run", worker, "--input", str(tmp_path / "list.json"))
    assert "must be a JSON object" in one_line_error(not_object)
    no_equals = remote(server, user, "run", worker, "--set", "count")
    assert one_line_error(no_equals) == "error: --set takes KEY=VALUE, not 'count'"
    assert run_count(server, user) == 0


# Errors that never reach a command's work


def test_a_bad_key_is_one_line_with_its_code_and_request_id(server: Server) -> None:
    result = ry("runs", "list", "--base-url", server.url, "--api-key", "ry_wrong")
    assert re.fullmatch(r"error 12002: invalid token \(request req-\w+\)", one_line_error(result))


def test_no_key_at_all_is_12001(server: Server) -> None:
    result = ry("results", "--base-url", server.url)
    assert one_line_error(result).startswith("error 12001: ")


def test_an_unreachable_server_is_one_line(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = ry("runs", "show", "--base-url", f"http://127.0.0.1:{port}", "--api-key", "k")
    assert one_line_error(result).startswith(f"error: cannot reach http://127.0.0.1:{port}: ")


def test_a_real_process_prints_no_traceback(server: Server) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNYARD_")}
    proc = subprocess.run(
        [sys.executable, "-m", "runyard", "runs", "show", "01ARZ3NDEKTSV4RRFFQ69G5FAV"],
        env={**env, "RUNYARD_BASE_URL": server.url, "RUNYARD_API_KEY": "ry_nope"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1 and proc.stdout == ""
    assert re.fullmatch(r"error 12002: invalid token \(request req-\w+\)\n", proc.stderr)


# runs list / show / log / rerun


def test_runs_list_show_and_log(server: Server, user: User) -> None:
    worker = server.worker(user, CHATTY)
    first = remote(server, user, "run", worker, "--wait").out.strip()
    other = server.run(user, [{"a": 1}], worker="imported")

    listing = remote(server, user, "runs", "list")
    assert listing.code == 0, listing
    assert listing.out.index(other) < listing.out.index(first)  # newest first
    assert "succeeded" in listing.out and "runs 1–2 of 2" in listing.out
    as_json = json.loads(remote(server, user, "runs", "list", "--json").out)
    assert [r["slug"] for r in as_json] == [other, first]
    only = json.loads(remote(server, user, "runs", "list", "-w", worker, "--json").out)
    assert [r["slug"] for r in only] == [first]

    shown = remote(server, user, "runs", "show", "--worker", worker)
    assert shown.code == 0 and first in shown.out and "succeeded" in shown.out
    record = json.loads(remote(server, user, "runs", "show", first, "--json").out)
    assert (record["slug"], record["results"], record["scraper_slug"]) == (first, 3, worker)
    assert json.loads(remote(server, user, "runs", "show", "--json").out)["slug"] == other

    log = remote(server, user, "runs", "log", first)
    assert log.code == 0
    assert [line.split(" INFO ")[1] for line in log.out.splitlines() if "step" in line] == [
        "step 1 of 3",
        "step 2 of 3",
        "step 3 of 3",
    ]
    whole = remote(server, user, "runs", "log", "--worker", worker, "--all")
    assert whole.code == 0 and whole.out == log.out  # same lines, same format

    missing = remote(server, user, "runs", "show", "01ARZ3NDEKTSV4RRFFQ69G5FAV")
    assert one_line_error(missing).startswith("error 11004: run not found (request req-")


def test_log_follow_prints_until_the_end_and_exits_by_status(server: Server, user: User) -> None:
    worker = server.worker(user, CHATTY)
    run = remote(server, user, "run", worker).out.strip()
    followed = remote(server, user, "runs", "log", run, "--follow")
    assert followed.code == 0, followed
    assert [line for line in followed.out.splitlines() if "step" in line][-1].endswith(
        "step 3 of 3"
    )
    assert len([line for line in followed.out.splitlines() if "step" in line]) == 3
    assert f"run {run} succeeded: 3 rows" in followed.err


def test_rerun_starts_a_new_run_with_the_same_input(server: Server, user: User) -> None:
    worker = server.worker(user, ECHO, properties=FIELDS)
    first = remote(server, user, "run", worker, "--set", "name=again", "--wait").out.strip()
    result = remote(server, user, "runs", "rerun", first, "--wait")
    assert result.code == 0, result
    second = result.out.strip()
    assert SLUG.fullmatch(second) and second != first
    assert rows_of(server, user, second) == rows_of(server, user, first)
    assert rows_of(server, user, second)[0]["name"] == "again"


def test_log_tail_prints_each_entry_once_across_overlapping_windows() -> None:
    """The log endpoint returns only the newest entries (here 7), so replies overlap and then
    slide; identical entries (same time, same text) print as often as they were logged."""
    entries = [LogEntry(content="tick", timestamp=1000) for _ in range(4)]
    entries += [LogEntry(content=f"line {i}", timestamp=1001 + i) for i in range(16)]
    replies = [entries[max(0, n - 7) : n] for n in (3, 5, 5, 9, 12, 20)]

    class Fake:
        def get_log(self, run: str) -> RunLog:
            return RunLog(list=[e.model_dump() for e in replies.pop(0)])

    printed: list[LogEntry] = []
    tail = LogTail(Fake(), "run", printed.append, cap=7)  # type: ignore[arg-type]
    for _ in range(6):
        tail.poll()
    # Entry 12 fell out of the window between the last two polls: it is the only one missed.
    assert printed == entries[:12] + entries[13:]


# results


def test_results_table_follows_the_headers_with_a_caption(server: Server, user: User) -> None:
    worker = server.worker(user, HEADED)
    run = remote(server, user, "run", worker, "--wait").out.strip()
    page = remote(server, user, "results", "--limit", "2")
    assert page.code == 0, page
    header = next(line for line in page.out.splitlines() if "Title" in line)
    titles = [cell.strip() for cell in re.split(r"[┃│]", header) if cell.strip()]
    assert titles == ["Title", "Price (EUR)", "tags", "meta"]  # labels, in the run's order
    assert "item 1" in page.out and "item 2" in page.out and "item 3" not in page.out
    assert '["a","b"]' in page.out and '{"k":[1]}' in page.out  # nested values, compact JSON
    assert "rows 1–2 of 5" in page.out
    later = remote(server, user, "results", run, "--offset", "4", "--limit", "2")
    assert "item 5" in later.out and "rows 5–5 of 5" in later.out
    past = remote(server, user, "results", run, "--offset", "9")
    assert past.code == 0 and "no rows from 10 on (5 in all)" in past.text


def test_results_json_and_all_are_exactly_the_rows(server: Server, user: User) -> None:
    rows = [{"i": i, "text": f"row [{i}] :smile:", "nested": {"x": [i, None]}} for i in range(230)]
    run = server.run(user, rows)
    page = remote(server, user, "results", run, "--offset", "10", "--limit", "3", "--json")
    assert page.code == 0
    assert json.loads(page.out) == rows[10:13]
    every = remote(server, user, "results", run, "--all")
    assert every.code == 0
    assert [json.loads(line) for line in every.out.splitlines()] == rows
    assert remote(server, user, "results", run, "--all", "--limit", "5").code == 1


# export


def test_export_writes_the_same_bytes_as_the_download_link(
    server: Server, user: User, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = [{"title": "Café", "price": 3.5, "tags": ["x"]}, {"title": "b", "url": "https://e"}]
    run = server.run(user, rows, worker="shop")
    target = tmp_path / "rows.xlsx"
    result = remote(server, user, "export", run, "--format", "XLSX", "-o", str(target))
    assert result.code == 0, result
    assert result.out == f"{target}\n"
    with server.client(user) as api:
        link = api.get(f"/api/v2/worker-runs/{run}/result/export", params={"format": "xlsx"})
        direct = httpx.get(link.json()["data"]["download_url"]).content
    assert target.read_bytes() == direct

    monkeypatch.chdir(tmp_path)
    csv = remote(server, user, "export", "--keys", "url,title", "--no-bom", "--delimiter", ";")
    assert csv.code == 0, csv
    written = Path(csv.out.strip())
    assert written == tmp_path / f"shop_{run}.csv"  # the server's file name, here
    assert written.read_bytes() == b"url;title\r\n;Caf\xc3\xa9\r\nhttps://e;b\r\n"

    into_dir = remote(server, user, "export", run, "-F", "json", "-o", str(tmp_path))
    assert json.loads(Path(into_dir.out.strip()).read_text()) == rows


def test_export_refuses_bad_options_before_asking(server: Server, user: User) -> None:
    run = server.run(user, [{"a": 1}])
    assert one_line_error(remote(server, user, "export", run, "--format", "pdf")) == (
        "error: unknown format 'pdf': use one of csv, json, jsonl, xlsx, xls, xml, html, rss"
    )
    assert "csv only" in one_line_error(remote(server, user, "export", "-F", "json", "--no-bom"))
    missing = remote(server, user, "export", "--worker", "never-ran")
    assert one_line_error(missing).startswith("error 11004: ")
    both = remote(server, user, "export", run, "--worker", "test-worker")
    assert one_line_error(both) == "error: give RUN or --worker, not both"
    nowhere = remote(server, user, "export", run, "-o", "/no/such/dir/rows.csv")
    assert one_line_error(nowhere) == "error: /no/such/dir: no such directory"


def test_account_shows_the_balance(server: Server, user: User) -> None:
    assert json.loads(remote(server, user, "account", "--json").out)["balance"] == "0.00"
    server.services.accounts.set_limits(user.name, credit="12.5")
    assert json.loads(remote(server, user, "account", "--json").out)["balance"] == "12.50"
    shown = remote(server, user, "account").out
    assert "balance" in shown and "12.50" in shown
