"""Saved tasks through the real API (spec §6): every field, every rule, every refusal."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from tests.conftest import Server, User, wait_for

pytestmark = pytest.mark.both_databases

ECHO = """
from runyard import sdk
sdk.push(sdk.input())
"""
PROPERTIES = [
    {"name": "query", "title": "Query", "type": "string", "required": True},
    {"name": "pages", "title": "Pages", "type": "integer", "default": 2},
]
TASKS = "/api/v2/worker-tasks"


def custom(**fields: Any) -> dict[str, Any]:
    return {"parameters": {"custom": fields}}


def create(api: httpx.Client, worker: str, **body: Any) -> str:
    body.setdefault("title", "my task")
    body.setdefault("input", custom(query="shoes"))
    reply = api.post(TASKS, json={"worker_id": worker, **body})
    assert reply.status_code == 200, reply.text
    slug: str = reply.json()["data"]["slug"]
    return slug


def get(api: httpx.Client, task: str) -> dict[str, Any]:
    reply = api.get(f"{TASKS}/{task}")
    assert reply.status_code == 200, reply.text
    data: dict[str, Any] = reply.json()["data"]
    return data


def refused(reply: httpx.Response, status: int, code: int) -> list[str]:
    assert reply.status_code == status, reply.text
    body = reply.json()
    assert body["code"] == code and body["data"] is None, body
    details: list[str] = body.get("details") or []
    return details


def test_create_and_read_every_field(server: Server, user: User, api: httpx.Client) -> None:
    worker = server.worker(user, ECHO, properties=PROPERTIES)
    before = int(time.time())
    task = create(
        api,
        worker,
        title="Shoes daily",
        description="every morning",
        version="1.0.0",
        schedule_enabled=1,
        schedule_type=1,
        schedule_time="09:30",
    )
    assert len(task) == 26
    record = get(api, task)
    assert record == {
        "slug": task,
        "title": "Shoes daily",
        "description": "every morning",
        "worker_slug": worker,
        "worker_title": worker,
        "worker_path": f"{user.name}/{worker}",
        "version": "1.0.0",
        # As given: the default of ``pages`` is filled in at each run, not saved.
        "input": {"parameters": {"custom": {"query": "shoes"}}},
        "run_times": 0,
        "last_run_id": "",
        "schedule_enabled": 1,
        "schedule_type": 1,
        "schedule_time": "09:30",
        "schedule_weekday": 0,
        "schedule_day": 0,
        "schedule_once_date": "",
        "created_at": record["created_at"],
        "updated_at": record["created_at"],
    }
    assert isinstance(record["created_at"], int) and before <= record["created_at"] <= time.time()

    bare = get(api, create(api, f"{user.name}~{worker}"))
    assert bare["version"] == "latest" and bare["description"] == ""
    assert bare["schedule_enabled"] == 0 and bare["schedule_type"] == 0


def test_create_refusals(server: Server, user: User, api: httpx.Client) -> None:
    worker = server.worker(user, ECHO, properties=PROPERTIES)
    ok_body = {"worker_id": worker, "title": "t", "input": custom(query="x")}
    for missing in ("worker_id", "title", "input"):
        body = {k: v for k, v in ok_body.items() if k != missing}
        details = refused(api.post(TASKS, json=body), 422, 11000)
        assert any(missing in line for line in details), details
    details = refused(api.post(TASKS, json={**ok_body, "colour": "red"}), 422, 11000)
    assert any("colour" in line for line in details)
    # Fields only ``PUT .../input`` or the server sets.
    for field, value in (("run_times", 3), ("slug", "x"), ("last_run_id", "x")):
        refused(api.post(TASKS, json={**ok_body, field: value}), 422, 11000)

    details = refused(api.post(TASKS, json={**ok_body, "input": custom(pages="two")}), 422, 11000)
    assert len(details) == 2 and any("query" in d for d in details), details
    assert any("pages" in d for d in details)
    details = refused(api.post(TASKS, json={**ok_body, "input": {"query": "x"}}), 422, 11000)
    assert any("parameters" in d for d in details)
    refused(api.post(TASKS, json={**ok_body, "title": "  "}), 422, 11000)

    refused(api.post(TASKS, json={**ok_body, "worker_id": "no-such-worker"}), 404, 11004)
    refused(api.post(TASKS, json={**ok_body, "version": "9.9.9"}), 404, 50003)
    other = server.user()
    theirs = server.worker(other, ECHO, properties=PROPERTIES)
    refused(api.post(TASKS, json={**ok_body, "worker_id": theirs}), 404, 11004)
    refused(api.post(TASKS, json={**ok_body, "worker_id": f"{other.name}~{theirs}"}), 404, 11004)
    assert api.get(TASKS, params={"worker_id": worker}).json()["data"]["count"] == 0


def test_a_public_worker_of_another_user(server: Server, user: User, api: httpx.Client) -> None:
    other = server.user()
    public = server.worker(
        other, ECHO, properties=PROPERTIES, files={"worker.json": '{"public": true}'}
    )
    task = create(api, f"{other.name}~{public}")
    record = get(api, task)
    assert record["worker_path"] == f"{other.name}/{public}"
    run = api.post(f"{TASKS}/{task}/runs", json={}).json()["data"]["run_slug"]
    assert wait_for(api, run)["status"] == "succeeded"
    # The owner does not see the caller's task.
    with server.client(other) as owner:
        refused(owner.get(f"{TASKS}/{task}"), 404, 11004)


def test_schedule_fields_are_checked(server: Server, user: User, api: httpx.Client) -> None:
    worker = server.worker(user, ECHO, properties=PROPERTIES)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"schedule_type": 5}, "schedule_type"),
        ({"schedule_time": "9:00"}, "schedule_time"),
        ({"schedule_time": "24:00"}, "schedule_time"),
        ({"schedule_weekday": 8}, "schedule_weekday"),
        ({"schedule_day": 32}, "schedule_day"),
        ({"schedule_once_date": "2024-02-30"}, "schedule_once_date"),
        ({"schedule_time": "09:30\n"}, "schedule_time"),
        ({"schedule_once_date": "2024-02-03\n"}, "schedule_once_date"),
        ({"schedule_once_date": "9999-12-31"}, "schedule_once_date"),
        ({"schedule_once_date": "0001-01-01"}, "schedule_once_date"),
        (
            {
                "schedule_enabled": 1,
                "schedule_type": 4,
                "schedule_time": "09:00",
                "schedule_once_date": "2001-01-01",
            },
            "already passed",
        ),
        ({"schedule_enabled": 2}, "schedule_enabled"),
        ({"schedule_enabled": 1}, "schedule_type"),
        ({"schedule_enabled": 1, "schedule_type": 1}, "schedule_time"),
        ({"schedule_enabled": 1, "schedule_type": 2, "schedule_time": "09:00"}, "weekday"),
        ({"schedule_enabled": 1, "schedule_type": 3, "schedule_time": "09:00"}, "schedule_day"),
        ({"schedule_enabled": 1, "schedule_type": 4, "schedule_time": "09:00"}, "once_date"),
    ]
    for fields, named in cases:
        body = {"worker_id": worker, "title": "t", "input": custom(query="x"), **fields}
        details = refused(api.post(TASKS, json=body), 422, 11000)
        assert len(details) == 1 and named in details[0], (fields, details)
    # Each type with what it needs; a disabled schedule may be incomplete.
    for fields in (
        {"schedule_type": 2, "schedule_time": "23:59", "schedule_weekday": 7},
        {"schedule_type": 3, "schedule_time": "00:00", "schedule_day": 31},
        {"schedule_type": 4, "schedule_time": "12:00", "schedule_once_date": "2099-02-28"},
    ):
        task = create(api, worker, schedule_enabled=1, **fields)
        assert {k: get(api, task)[k] for k in fields} == fields
    create(api, worker, schedule_enabled=0, schedule_type=2)


def test_update_is_partial(server: Server, user: User, api: httpx.Client) -> None:
    worker = server.worker(user, ECHO, properties=PROPERTIES)
    task = create(api, worker, title="old", description="d", schedule_type=3, schedule_day=5)
    before = get(api, task)
    time.sleep(1.1)  # updated_at is in whole seconds

    reply = api.put(f"{TASKS}/{task}", json={"title": "new"})
    assert reply.status_code == 200 and reply.json()["data"] == {}
    after = get(api, task)
    assert after["title"] == "new" and after["updated_at"] > before["updated_at"]
    assert {k: v for k, v in after.items() if k not in ("title", "updated_at")} == {
        k: v for k, v in before.items() if k not in ("title", "updated_at")
    }

    # Enabling needs only the fields still missing: the stored day counts.
    details = refused(api.put(f"{TASKS}/{task}", json={"schedule_enabled": 1}), 422, 11000)
    assert len(details) == 1 and "schedule_time" in details[0], details
    reply = api.put(f"{TASKS}/{task}", json={"schedule_enabled": 1, "schedule_time": "06:15"})
    assert reply.status_code == 200, reply.text
    record = get(api, task)
    assert (record["schedule_enabled"], record["schedule_day"], record["schedule_time"]) == (
        1,
        5,
        "06:15",
    )
    # A record sent back as it is (0 and "" for unset fields) is accepted.
    same = {
        k: record[k] for k in record if k.startswith("schedule_") or k in ("title", "description")
    }
    assert api.put(f"{TASKS}/{task}", json=same).status_code == 200
    assert get(api, task)["schedule_weekday"] == 0
    # Disabling and clearing.
    reply = api.put(f"{TASKS}/{task}", json={"schedule_enabled": 0, "schedule_type": None})
    assert reply.status_code == 200
    assert get(api, task)["schedule_type"] == 0

    for body in ({"input": custom(query="y")}, {"version": "1.0.0"}, {"worker_id": worker}):
        details = refused(api.put(f"{TASKS}/{task}", json=body), 422, 11000)
        assert any(next(iter(body)) in line for line in details)
    refused(api.put(f"{TASKS}/{task}", json={"title": None}), 422, 11000)
    refused(
        api.put(f"{TASKS}/{task}", json={"schedule_type": 0, "schedule_weekday": 9}), 422, 11000
    )
    assert get(api, task)["title"] == "new"


def test_input_read_and_replace(server: Server, user: User, api: httpx.Client) -> None:
    worker = server.worker(user, ECHO, properties=PROPERTIES)
    task = create(api, worker)
    reply = api.get(f"{TASKS}/{task}/input")
    assert reply.json()["data"] == {"input": custom(query="shoes"), "version": "latest"}

    new_input = custom(query="boots", pages=5)
    reply = api.put(f"{TASKS}/{task}/input", json={"input": new_input, "version": "1.0.0"})
    assert reply.status_code == 200 and reply.json()["data"] == {}
    assert api.get(f"{TASKS}/{task}/input").json()["data"] == {
        "input": new_input,
        "version": "1.0.0",
    }
    # The version stays as it is when not given.
    assert api.put(f"{TASKS}/{task}/input", json={"input": custom(query="hats")}).status_code == 200
    assert get(api, task)["version"] == "1.0.0"
    assert get(api, task)["input"] == custom(query="hats")

    details = refused(api.put(f"{TASKS}/{task}/input", json={"input": custom()}), 422, 11000)
    assert any("query" in d for d in details)
    refused(api.put(f"{TASKS}/{task}/input", json={"version": "1.0.0"}), 422, 11000)
    refused(
        api.put(f"{TASKS}/{task}/input", json={"input": custom(query="x"), "title": "t"}),
        422,
        11000,
    )
    refused(
        api.put(f"{TASKS}/{task}/input", json={"input": custom(query="x"), "version": "9.9"}),
        404,
        50003,
    )
    assert get(api, task)["input"] == custom(query="hats")


def test_list_filters_and_pages(server: Server, user: User, api: httpx.Client) -> None:
    first = server.worker(user, ECHO, properties=PROPERTIES)
    second = server.worker(user, ECHO, properties=PROPERTIES)
    made = [create(api, first, title=f"Alpha {i}") for i in range(3)]
    made.append(create(api, second, title="Beta 100%"))
    server.user()  # another user's tasks are never listed
    listing = api.get(TASKS).json()["data"]
    assert listing["count"] == 4 and listing["page_index"] == 1 and listing["page_size"] == 20
    assert [t["slug"] for t in listing["list"]] == made[::-1]  # newest first
    assert listing["list"][0] == get(api, made[-1])

    page = api.get(TASKS, params={"offset": 2, "limit": 2}).json()["data"]
    assert [t["slug"] for t in page["list"]] == [made[1], made[0]]
    assert (page["count"], page["page_index"], page["page_size"]) == (4, 2, 2)
    assert api.get(TASKS, params={"limit": 500}).json()["data"]["page_size"] == 100
    refused(api.get(TASKS, params={"limit": 0}), 422, 11000)
    refused(api.get(TASKS, params={"offset": -1}), 422, 11000)

    by_worker = api.get(TASKS, params={"worker_id": f"{user.name}~{second}"}).json()["data"]
    assert [t["slug"] for t in by_worker["list"]] == [made[3]]
    assert api.get(TASKS, params={"worker_id": first}).json()["data"]["count"] == 3
    assert api.get(TASKS, params={"keyword": "alpha"}).json()["data"]["count"] == 3
    assert api.get(TASKS, params={"keyword": "100%"}).json()["data"]["count"] == 1
    assert api.get(TASKS, params={"keyword": "a%"}).json()["data"]["count"] == 0

    other = server.user()
    with server.client(other) as theirs:
        assert theirs.get(TASKS).json()["data"] == {
            "count": 0,
            "list": [],
            "page_index": 1,
            "page_size": 20,
        }


def test_run_a_task(server: Server, user: User, api: httpx.Client) -> None:
    worker = server.worker(user, ECHO, properties=PROPERTIES)
    task = create(api, worker)
    reply = api.post(f"{TASKS}/{task}/runs")
    assert reply.status_code == 200, reply.text
    run = reply.json()["data"]["run_slug"]
    record = wait_for(api, run)
    assert record["status"] == "succeeded" and record["origin"] == "openapi"
    rows = api.get(f"/api/v2/worker-runs/{run}/result").json()["data"]["list"]
    assert rows == [{"query": "shoes", "pages": 2}]
    after = get(api, task)
    assert (after["run_times"], after["last_run_id"]) == (1, run)

    sync = api.post(f"{TASKS}/{task}/runs", json={"is_async": False, "limit": 5})
    data = sync.json()["data"]
    assert data["is_finished"] is True and data["run_status"] == "succeeded"
    assert data["results"]["list"] == rows and data["results"]["page_size"] == 5
    assert set(data) == {
        "run_slug",
        "run_status",
        "error_message",
        "execution_start_timestamp",
        "execution_end_timestamp",
        "running_duration",
        "result_message",
        "is_finished",
        "results",
    }
    after = get(api, task)
    assert (after["run_times"], after["last_run_id"]) == (2, data["run_slug"])

    refused(api.post(f"{TASKS}/{task}/runs", json={"input": {}}), 422, 11000)
    refused(api.post(f"{TASKS}/{task}/runs", json={"limit": 0}), 422, 11000)
    assert get(api, task)["run_times"] == 2


def test_delete(server: Server, user: User, api: httpx.Client) -> None:
    worker = server.worker(user, ECHO, properties=PROPERTIES)
    task = create(api, worker)
    run = api.post(f"{TASKS}/{task}/runs").json()["data"]["run_slug"]
    wait_for(api, run)
    reply = api.delete(f"{TASKS}/{task}")
    assert reply.status_code == 200 and reply.json()["data"] == {}
    refused(api.get(f"{TASKS}/{task}"), 404, 11004)
    refused(api.delete(f"{TASKS}/{task}"), 404, 11004)
    # Its runs stay.
    assert api.get(f"/api/v2/worker-runs/{run}").status_code == 200


def test_another_users_task_is_404(server: Server, user: User, api: httpx.Client) -> None:
    worker = server.worker(user, ECHO, properties=PROPERTIES)
    task = create(api, worker)
    other = server.user()
    with server.client(other) as theirs:
        for method, path, body in (
            ("GET", f"{TASKS}/{task}", None),
            ("PUT", f"{TASKS}/{task}", {"title": "mine"}),
            ("DELETE", f"{TASKS}/{task}", None),
            ("GET", f"{TASKS}/{task}/input", None),
            ("PUT", f"{TASKS}/{task}/input", {"input": custom(query="x")}),
            ("POST", f"{TASKS}/{task}/runs", {}),
            ("GET", f"{TASKS}/01KKDXV2G26BT7NH4ZQR2R4NPZ", None),
        ):
            refused(theirs.request(method, path, json=body), 404, 11004)
    record = get(api, task)
    assert record["title"] == "my task" and record["run_times"] == 0
    anonymous = httpx.get(f"{server.url}{TASKS}/{task}")
    assert anonymous.status_code == 401 and anonymous.json()["code"] == 12001
