"""``runyard workers list|show|push`` and ``runyard tasks …`` against a real server."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from tests.cli_helpers import ECHO, isolate, package, remote
from tests.conftest import Server, User

SLUG = re.compile(r"[0-9A-Z]{26}")
SCHEMA = json.dumps(
    {
        "properties": [
            {"name": "query", "title": "Search query", "type": "string", "required": True},
            {"name": "pages", "title": "Pages", "type": "integer", "default": 2},
        ]
    }
)


@pytest.fixture(autouse=True)
def _no_profiles(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate(monkeypatch, tmp_path)


def echo_worker(server: Server, user: User) -> str:
    return server.worker(user, ECHO, properties=json.loads(SCHEMA)["properties"])


# workers


def test_push_a_directory_then_run_it(server: Server, user: User, tmp_path: Path) -> None:
    files = {
        "input_schema.json": SCHEMA,
        "worker.json": '{"slug": "cli-pushed", "title": "Pushed", "version": "2.0.0"}',
        "README.md": "# Pushed\n\nEchoes its *input*.\n",
    }
    root = package(tmp_path / "pkg", ECHO, files)
    (root / "__pycache__").mkdir()
    pushed = remote(server, user, "workers", "push", str(root))
    assert pushed.code == 0, pushed
    assert pushed.out == "cli-pushed 2.0.0\n"

    again = remote(server, user, "workers", "push", str(root), "--title", "Echo", "--version", "3")
    assert again.out == "cli-pushed 3\n"
    run = remote(server, user, "run", "cli-pushed", "-s", "query=shoes", "--wait")
    assert run.code == 0, run
    assert "succeeded: 1 rows" in run.err

    shown = remote(server, user, "workers", "show", "cli-pushed")
    assert shown.code == 0
    for text in ("Echo", "3", user.name, "Search query", "query", "pages", "Echoes its input"):
        assert text in shown.out
    detail = json.loads(remote(server, user, "workers", "show", "cli-pushed", "--json").out)
    assert (detail["title"], detail["version"]) == ("Echo", "3")
    names = [p["name"] for p in detail["parameters"]["custom"]["properties"]]
    assert names == ["query", "pages"]


def test_push_a_zip_under_another_slug(server: Server, user: User, tmp_path: Path) -> None:
    root = package(tmp_path / "zipped", ECHO)
    archive = shutil.make_archive(str(tmp_path / "zipped"), "zip", root)
    pushed = remote(server, user, "workers", "push", archive, "--slug", "from-zip")
    assert pushed.code == 0, pushed
    assert pushed.out.split()[0] == "from-zip"
    not_a_package = remote(server, user, "workers", "push", str(tmp_path))
    assert not_a_package.code == 1 and "no main.py" in not_a_package.err
    assert len(not_a_package.err.strip().splitlines()) == 1


def test_workers_list_yours_and_the_store(server: Server, user: User, tmp_path: Path) -> None:
    mine = echo_worker(server, user)
    listing = remote(server, user, "workers", "list")
    assert listing.code == 0 and mine in listing.out and "workers 1–1 of 1" in listing.out
    assert [
        w["slug"] for w in json.loads(remote(server, user, "workers", "list", "--json").out)
    ] == [mine]
    assert json.loads(remote(server, user, "workers", "list", "-k", "zzz", "--json").out) == []

    public = package(
        tmp_path / "pub", ECHO, {"worker.json": '{"slug": "cli-public-one", "public": true}'}
    )
    assert remote(server, user, "workers", "push", str(public)).code == 0
    store = remote(server, user, "workers", "list", "--store", "--keyword", "cli-public", "--json")
    assert [w["slug"] for w in json.loads(store.out)] == ["cli-public-one"]


# tasks


def test_task_lifecycle(server: Server, user: User, tmp_path: Path) -> None:
    worker = echo_worker(server, user)
    created = remote(
        server, user, "tasks", "create", worker, "--title", "Shoes", "-s", "query=shoes",
        "--description", "daily shoes",
    )  # fmt: skip
    assert created.code == 0, created
    task = created.out.strip()
    assert SLUG.fullmatch(task)

    listing = remote(server, user, "tasks", "list")
    assert task in listing.out and "Shoes" in listing.out and "tasks 1–1 of 1" in listing.out
    assert remote(server, user, "tasks", "list", "-w", "nope", "--json").out.strip() == "[]"
    shown = remote(server, user, "tasks", "show", task)
    assert "daily shoes" in shown.out and '"query": "shoes"' in shown.out
    record = json.loads(remote(server, user, "tasks", "show", task, "--json").out)
    assert record["input"]["parameters"]["custom"] == {"query": "shoes"}
    assert record["schedule_enabled"] == 0

    # --set changes one field and keeps the others; the title changes alongside.
    updated = remote(server, user, "tasks", "update", task, "--set", "pages=5", "--title", "Boots")
    assert updated.code == 0, updated
    record = json.loads(remote(server, user, "tasks", "show", task, "--json").out)
    assert record["title"] == "Boots"
    assert record["input"]["parameters"]["custom"] == {"query": "shoes", "pages": 5}

    (tmp_path / "input.json").write_text('{"query": "hats"}')
    replaced = remote(
        server, user, "tasks", "update", task, "--input", str(tmp_path / "input.json"),
        "--version", "1.0.0",
    )  # fmt: skip
    assert replaced.code == 0, replaced
    record = json.loads(remote(server, user, "tasks", "show", task, "--json").out)
    assert record["input"]["parameters"]["custom"] == {"query": "hats"}  # the file replaces
    assert record["version"] == "1.0.0"

    scheduled = remote(
        server, user, "tasks", "update", task, "--schedule", "weekly", "--at", "09:30",
        "--weekday", "2",
    )  # fmt: skip
    assert scheduled.code == 0, scheduled
    record = json.loads(remote(server, user, "tasks", "show", task, "--json").out)
    assert (record["schedule_enabled"], record["schedule_type"]) == (1, 2)
    assert (record["schedule_time"], record["schedule_weekday"]) == ("09:30", 2)
    assert "weekly on Tue at 09:30" in remote(server, user, "tasks", "list").out
    assert remote(server, user, "tasks", "update", task, "--disable").code == 0
    assert (
        json.loads(remote(server, user, "tasks", "show", task, "--json").out)["schedule_enabled"]
        == 0
    )

    ran = remote(server, user, "tasks", "run", task, "--wait")
    assert ran.code == 0, ran
    run = ran.out.strip()
    rows = json.loads(remote(server, user, "results", run, "--json").out)
    assert rows == [{"query": "hats", "pages": 2}]  # the default filled in at the run
    assert (
        json.loads(remote(server, user, "tasks", "show", task, "--json").out)["last_run_id"] == run
    )

    deleted = remote(server, user, "tasks", "delete", task)
    assert deleted.code == 0 and f"deleted task {task}" in deleted.err
    gone = remote(server, user, "tasks", "show", task)
    assert gone.code == 1 and gone.err.startswith("error 11004: ")


def test_task_create_with_a_schedule_and_refusals(server: Server, user: User) -> None:
    worker = echo_worker(server, user)
    created = remote(
        server, user, "tasks", "create", worker, "--title", "Nightly", "--set", "query=q",
        "--schedule", "daily", "--at", "02:00",
    )  # fmt: skip
    assert created.code == 0, created
    record = json.loads(remote(server, user, "tasks", "show", created.out.strip(), "--json").out)
    assert (record["schedule_enabled"], record["schedule_type"], record["schedule_time"]) == (
        1,
        1,
        "02:00",
    )

    no_query = remote(server, user, "tasks", "create", worker, "--title", "T")
    assert no_query.code == 1 and no_query.err.startswith("error 11000: ")
    assert "query" in no_query.err and len(no_query.err.strip().splitlines()) == 1
    at_alone = remote(server, user, "tasks", "create", worker, "--title", "T", "--at", "01:00")
    assert at_alone.err.strip() == "error: --at, --weekday, --day and --date need --schedule"
    nothing = remote(server, user, "tasks", "update", created.out.strip())
    assert nothing.code == 1 and "nothing to change" in nothing.err
    past = remote(
        server, user, "tasks", "update", created.out.strip(), "--schedule", "once",
        "--date", "2001-01-01", "--at", "00:00",
    )  # fmt: skip
    assert past.code == 1 and past.err.startswith("error 11000: ") and "passed" in past.err


def test_tasks_run_follow(server: Server, user: User) -> None:
    worker = server.worker(user, "from runyard import sdk\nsdk.log('hello from the task')\n")
    task = remote(server, user, "tasks", "create", worker, "--title", "Log").out.strip()
    ran = remote(server, user, "tasks", "run", task, "--follow")
    assert ran.code == 0, ran
    assert SLUG.fullmatch(ran.out.strip())
    assert "hello from the task" in ran.err and "succeeded: 0 rows" in ran.err
