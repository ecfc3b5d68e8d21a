"""A NUL character anywhere a client can put one is a 422, never a 500 — on PostgreSQL, whose
text cannot hold it, and on SQLite alike."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import Server, User

pytestmark = pytest.mark.both_databases

NUL = "a\x00b"


def _requests(worker: str) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        ("GET", "/api/v2/worker-runs/abc%00", {}),
        ("GET", "/api/v2/worker-runs", {"params": {"status": NUL}}),
        ("GET", "/api/v2/worker-runs", {"params": {"worker_id": NUL}}),
        ("GET", "/api/v2/workers", {"params": {"keyword": NUL}}),
        ("GET", "/api/v2/store", {"params": {"keyword": NUL}}),
        ("GET", "/api/v2/worker-tasks", {"params": {"keyword": NUL}}),
        ("GET", "/api/v2/workers/a%00b/input-schema", {}),
        ("POST", "/api/v2/workers/a%00b/runs", {"json": {}}),
        ("POST", f"/api/v2/workers/{worker}/runs", {"json": {"version": NUL}}),
        ("POST", "/api/v2/worker-tasks", {"json": {"worker_id": worker, "title": NUL}}),
        ("POST", "/api/v2/worker-tasks", {"json": {"worker_id": worker, "description": NUL}}),
        ("POST", "/api/v2/worker-tasks", {"json": {"worker_id": worker, "version": NUL}}),
    ]


def test_nul_is_refused_not_a_server_error(server: Server, user: User, api: httpx.Client) -> None:
    worker = server.worker(user, "print('hi')")
    run = server.run(user, [{"i": 1}])
    for method, path, options in _requests(worker):
        reply = api.request(method, path, **options)
        assert reply.status_code < 500, (method, path, options, reply.text)
        body = reply.json()
        assert body["code"] in (11000, 11004, 50003), (method, path, options, body)
    # Nothing half-written: the caller's data is as it was.
    assert api.get("/api/v2/worker-tasks").json()["data"]["count"] == 0
    assert api.get(f"/api/v2/worker-runs/{run}/result").json()["data"]["count"] == 1


def test_a_stored_nul_escape_is_data_and_comes_back(
    server: Server, user: User, api: httpx.Client
) -> None:
    """``\\u0000`` inside JSON (a row, a run's input) is kept as the escape, never refused."""
    run = server.run(user, ['{"s":"a\\u0000b"}'])
    raw = api.get(f"/api/v2/worker-runs/{run}/result").content
    assert b'{"s":"a\\u0000b"}' in raw
