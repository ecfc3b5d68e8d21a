"""Two tenants on one server for the security tests: A owns things, B goes after them."""

from __future__ import annotations

import io
import json
import time
import zipfile
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from tests.conftest import Server, User

#: A's long run: logs a line, pushes a row, then waits to be aborted.
SLEEPER = """
import time
from runyard import sdk
sdk.log("sleeper started")
sdk.push({"n": 1})
while True:
    time.sleep(1)
"""
#: Every private worker but the sleeper: done at once.
QUICK = """
from runyard import sdk
sdk.push({"ok": True})
"""
PUBLIC = {"worker.json": '{"public": true}'}
PROPERTIES = [{"name": "query", "title": "Query", "type": "string", "editor": "input"}]
ROWS = [{"title": "secret row", "price": 1}, {"title": "another", "price": 2}]


def worker_zip(main: str = QUICK) -> bytes:
    """A worker package as the upload route takes it."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("main.py", main)
        zf.writestr("input_schema.json", json.dumps({"properties": PROPERTIES}))
        zf.writestr("output_schema.json", "[]")
    return buffer.getvalue()


@dataclass(frozen=True)
class Tenant:
    """One user's objects: every kind of id a route takes."""

    user: User
    worker: str  #: a private worker
    run: str  #: a finished run with rows, of ``worker``
    task: str
    spare_task: str  #: a second task: there are two ways to delete one
    export_url: str
    log_url: str
    public_worker: str | None = None
    sleeper: str | None = None  #: a private worker whose run is still running
    running: str | None = None  #: that run (the owner's newest)

    @property
    def path(self) -> str:
        """``worker`` as ``owner~slug``."""
        return f"{self.user.name}~{self.worker}"

    @property
    def public_path(self) -> str:
        return f"{self.user.name}~{self.public_worker}"

    @property
    def export_name(self) -> str:
        return urlsplit(self.export_url).path.rsplit("/", 2)[1]

    @property
    def export_filename(self) -> str:
        return urlsplit(self.export_url).path.rsplit("/", 2)[2]


def _ok(reply: httpx.Response) -> Any:
    assert reply.status_code == 200, reply.text
    return reply.json()["data"]


def wait_status(api: httpx.Client, run: str, status: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while _ok(api.get(f"/api/v2/worker-runs/{run}"))["status"] != status:
        assert time.monotonic() < deadline, f"run {run} never became {status}"
        time.sleep(0.1)


def tenant(server: Server, *, owner: bool) -> Tenant:
    """A user with a private worker, a finished run of it with rows, a task, an export and a
    log link; the ``owner`` (A) also gets a public worker with a run, and a second private
    worker whose run is still running (A's newest)."""
    user = server.user()
    slug = server.worker(user, QUICK, properties=PROPERTIES, slug=f"{user.name}-private")
    with server.client(user) as api:
        run = _ok(api.post(f"/api/v2/workers/{slug}/runs", json={}))["run_slug"]
        wait_status(api, run, "succeeded")
        task, spare_task = (
            _ok(
                api.post(
                    "/api/v2/worker-tasks",
                    json={
                        "worker_id": slug,
                        "title": title,
                        "input": {"parameters": {"custom": {"query": "q"}}},
                    },
                )
            )["slug"]
            for title in ("nightly", "weekly")
        )
        export_url = _ok(api.get(f"/api/v2/worker-runs/{run}/result/export"))["download_url"]
        log_url = _ok(api.get(f"/api/v2/worker-runs/{run}/log"))["all_logs_url"]
        if not owner:
            return Tenant(user, slug, run, task, spare_task, export_url, log_url)
        public = server.worker(
            user, QUICK, properties=PROPERTIES, files=PUBLIC, slug=f"{user.name}-public"
        )
        server.run(user, ROWS, worker=public)
        sleeper = server.worker(user, SLEEPER, slug=f"{user.name}-sleeper")
        running = _ok(api.post(f"/api/v2/workers/{sleeper}/runs", json={}))["run_slug"]
        wait_status(api, running, "running")
        # Its row is in, so it shows the same from now on until it is aborted.
        deadline = time.monotonic() + 30
        while _ok(api.get(f"/api/v2/worker-runs/{running}"))["results"] < 1:
            assert time.monotonic() < deadline, "the sleeper pushed no row"
            time.sleep(0.05)
    return Tenant(user, slug, run, task, spare_task, export_url, log_url, public, sleeper, running)
