"""The console's task pages over real HTTP, signed in like a browser: list, create, edit, run
now, delete, and what they refuse."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import Server, User
from tests.console_helpers import csrf, signed_in

pytestmark = pytest.mark.both_databases

ECHO = """
from runyard import sdk
sdk.push(sdk.input())
"""
PROPERTIES = [
    {"name": "query", "title": "Query", "type": "string", "required": True},
    {"name": "pages", "title": "Pages", "type": "integer", "default": 2, "minimum": 1},
]
TASKS = "/api/v2/worker-tasks"
_TASK_SLUG = re.compile(r"^/tasks/([A-Za-z0-9]+)\?saved=1$")


def submit(client: httpx.Client, page: str, action: str, data: dict[str, Any]) -> httpx.Response:
    """Post ``data`` to ``action`` with the CSRF token of the page the form is on."""
    shown = client.get(page)
    assert shown.status_code == 200, shown.text
    return client.post(action, data={"csrf": csrf(shown.text), **data})


def text(page: httpx.Response) -> str:
    """The page's text with tags dropped and whitespace squeezed, as a reader sees it."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page.text)).split())


def form_of(**overrides: str) -> dict[str, str]:
    data = {
        "title": "Shoes weekly",
        "description": "",
        "custom.query": "shoes",
        "custom.pages": "",
        "schedule_type": "",
        "schedule_time": "",
        "schedule_weekday": "",
        "schedule_day": "",
        "schedule_once_date": "",
    }
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}


def api_task(server: Server, user: User, slug: str) -> dict[str, Any]:
    with server.client(user) as api:
        reply = api.get(f"{TASKS}/{slug}")
    assert reply.status_code == 200, reply.text
    data: dict[str, Any] = reply.json()["data"]
    return data


def api_count(server: Server, user: User) -> int:
    with server.client(user) as api:
        count: int = api.get(TASKS).json()["data"]["count"]
    return count


def api_create(server: Server, user: User, worker: str, **body: Any) -> str:
    body.setdefault("title", "my task")
    body.setdefault("input", {"parameters": {"custom": {"query": "shoes"}}})
    with server.client(user) as api:
        reply = api.post(TASKS, json={"worker_id": worker, **body})
    assert reply.status_code == 200, reply.text
    slug: str = reply.json()["data"]["slug"]
    return slug


def created_slug(reply: httpx.Response) -> str:
    assert reply.status_code == 303, reply.text
    found = _TASK_SLUG.match(reply.headers["location"])
    assert found, reply.headers["location"]
    return found.group(1)


@pytest.fixture
def owner(server: Server) -> User:
    return server.user()


@pytest.fixture
def worker(server: Server, owner: User) -> str:
    return server.worker(owner, ECHO, properties=PROPERTIES)


@pytest.fixture
def web(server: Server, owner: User) -> Iterator[httpx.Client]:
    client = signed_in(server, owner)
    yield client
    client.close()


def test_empty_state_points_to_workers(web: httpx.Client) -> None:
    page = web.get("/tasks")
    assert page.status_code == 200
    assert "No tasks yet" in text(page)
    assert 'href="/workers"' in page.text
    assert 'href="/tasks/new"' in page.text
    picker = web.get("/tasks/new")
    assert picker.status_code == 200
    assert "You have no workers yet" in text(picker)


def test_signed_out_goes_to_sign_in(server: Server) -> None:
    with httpx.Client(base_url=server.url) as client:
        reply = client.get("/tasks", follow_redirects=False)
    assert reply.status_code == 303
    assert reply.headers["location"].startswith("/sign-in?next=")


def test_list_shows_schedules_in_words_and_pages(
    server: Server, owner: User, worker: str, web: httpx.Client
) -> None:
    schedules = {
        "daily": dict(schedule_enabled=1, schedule_type=1, schedule_time="09:30"),
        "weekly": dict(
            schedule_enabled=1, schedule_type=2, schedule_time="08:00", schedule_weekday=1
        ),
        "monthly": dict(
            schedule_enabled=1, schedule_type=3, schedule_time="00:00", schedule_day=31
        ),
        "once": dict(
            schedule_enabled=1,
            schedule_type=4,
            schedule_time="10:00",
            schedule_once_date="2099-12-01",
        ),
        "paused": dict(schedule_enabled=0, schedule_type=1, schedule_time="07:00"),
    }
    slugs = {
        title: api_create(server, owner, worker, title=title, **s) for title, s in schedules.items()
    }
    page = web.get("/tasks")
    assert page.status_code == 200
    shown = text(page)
    assert "Daily at 09:30" in shown
    assert "Weekly on Monday at 08:00" in shown
    assert "Monthly on day 31 at 00:00" in shown
    assert "Once on 2099-12-01 at 10:00" in shown
    row = re.search(r"paused\s+\S+\s+(\w+)", shown)
    assert row and row.group(1) == "Off"
    for title, slug in slugs.items():
        assert f'<a href="/tasks/{slug}">{title}</a>' in page.text
    assert "never" in shown  # no run yet
    assert "Run now" in shown

    for n in range(16):
        api_create(server, owner, worker, title=f"filler {n}")
    first = web.get("/tasks")
    assert "21 tasks" in text(first)
    assert 'href="/tasks?offset=20&amp;limit=20"' in first.text
    second = web.get("/tasks?offset=20&limit=20")
    # Newest first: the first task made is alone on the second page.
    assert f'href="/tasks/{slugs["daily"]}"' in second.text
    assert second.text.count('action="/tasks/') - second.text.count('action="/tasks/new') == 1


def test_create_with_a_schedule(
    server: Server, owner: User, worker: str, web: httpx.Client
) -> None:
    picker = web.get("/tasks/new")
    assert f'<option value="{worker}">' in picker.text
    page = web.get(f"/tasks/new?worker={worker}")
    assert page.status_code == 200
    assert 'name="custom.query"' in page.text and 'name="schedule_time"' in page.text
    assert "UTC" in text(page)  # the server's time zone, for the schedule's times

    reply = submit(
        web,
        f"/tasks/new?worker={worker}",
        f"/tasks/new?worker={worker}",
        form_of(
            title="Shoes weekly",
            description="first line\r\nsecond line",
            **{"custom.pages": "5"},
            schedule_enabled="1",
            schedule_type="2",
            schedule_time="08:00",
            schedule_weekday="1",
        ),
    )
    slug = created_slug(reply)
    record = api_task(server, owner, slug)
    assert record["title"] == "Shoes weekly"
    assert record["description"] == "first line\nsecond line"
    assert record["worker_slug"] == worker
    assert record["input"]["parameters"]["custom"] == {"query": "shoes", "pages": 5}
    assert {key: record[key] for key in record if key.startswith("schedule_")} == {
        "schedule_enabled": 1,
        "schedule_type": 2,
        "schedule_time": "08:00",
        "schedule_weekday": 1,
        "schedule_day": 0,
        "schedule_once_date": "",
    }
    shown = web.get(reply.headers["location"])
    assert "Saved." in text(shown)
    assert 'value="Shoes weekly"' in shown.text
    listed = text(web.get("/tasks"))
    assert "Shoes weekly" in listed and "Weekly on Monday at 08:00" in listed


def test_create_refused_shows_every_problem_and_saves_nothing(
    server: Server, owner: User, worker: str, web: httpx.Client
) -> None:
    page = f"/tasks/new?worker={worker}"
    reply = submit(
        web,
        page,
        page,
        form_of(
            title="  ",
            **{"custom.query": "", "custom.pages": "0"},
            schedule_enabled="1",
            schedule_type="1",
            schedule_time="25:00",
        ),
    )
    assert reply.status_code == 422
    assert re.search(r'id="task-title"[^>]*aria-invalid="true"', reply.text)
    assert "must not be empty" in text(reply)
    assert re.search(r'id="schedule-time"[^>]*aria-invalid="true"', reply.text)
    assert "must be HH:mm" in text(reply)
    # The input's own problems, at their fields, in the same answer.
    assert 'id="custom-query-problem"' in reply.text
    assert 'id="custom-pages-problem"' in reply.text
    # What was typed stays in the form.
    assert 'value="25:00"' in reply.text
    assert api_count(server, owner) == 0


def test_create_refuses_numbers_that_are_not_whole(
    server: Server, owner: User, worker: str, web: httpx.Client
) -> None:
    page = f"/tasks/new?worker={worker}"
    reply = submit(
        web,
        page,
        page,
        form_of(schedule_enabled="1", schedule_type="3", schedule_time="06:00", schedule_day="2.5"),
    )
    assert reply.status_code == 422
    assert re.search(r'id="schedule-day"[^>]*aria-invalid="true"', reply.text)
    assert "must be a whole number" in text(reply)
    assert "is required by a monthly schedule" not in text(reply)
    assert api_count(server, owner) == 0


def test_edit_title_schedule_and_input(
    server: Server, owner: User, worker: str, web: httpx.Client
) -> None:
    slug = api_create(
        server,
        owner,
        worker,
        title="before",
        schedule_enabled=1,
        schedule_type=1,
        schedule_time="09:30",
    )
    page = web.get(f"/tasks/{slug}")
    assert page.status_code == 200
    assert 'value="before"' in page.text and 'value="09:30"' in page.text
    assert re.search(r'name="custom.query"[^>]*value="shoes"', page.text)

    reply = submit(
        web,
        f"/tasks/{slug}",
        f"/tasks/{slug}",
        form_of(
            title="after",
            **{"custom.query": "boots", "custom.pages": "3"},
            schedule_enabled="1",
            schedule_type="4",
            schedule_time="10:00",
            schedule_once_date="2099-12-01",
        ),
    )
    assert reply.status_code == 303, reply.text
    assert reply.headers["location"] == f"/tasks/{slug}?saved=1"
    record = api_task(server, owner, slug)
    assert record["title"] == "after"
    assert record["input"]["parameters"]["custom"] == {"query": "boots", "pages": 3}
    assert (record["schedule_enabled"], record["schedule_type"]) == (1, 4)
    assert (record["schedule_time"], record["schedule_once_date"]) == ("10:00", "2099-12-01")
    assert "Saved." in text(web.get(reply.headers["location"]))

    # Unticking the switch pauses the schedule and keeps its fields.
    paused = submit(
        web,
        f"/tasks/{slug}",
        f"/tasks/{slug}",
        form_of(
            title="after",
            **{"custom.query": "boots"},
            schedule_type="4",
            schedule_time="10:00",
            schedule_once_date="2099-12-01",
        ),
    )
    assert paused.status_code == 303
    record = api_task(server, owner, slug)
    assert record["schedule_enabled"] == 0 and record["schedule_once_date"] == "2099-12-01"
    assert "Off" in text(web.get("/tasks"))


def test_edit_keeps_run_options_the_form_does_not_show(
    server: Server, owner: User, worker: str, web: httpx.Client
) -> None:
    system = {"max_total_charge": 5, "cpus": 2, "max_total_traffic": 1000, "memory": 512}
    slug = api_create(
        server,
        owner,
        worker,
        input={"parameters": {"custom": {"query": "shoes"}, "system": system}},
    )
    reply = submit(
        web,
        f"/tasks/{slug}",
        f"/tasks/{slug}",
        form_of(title="renamed", **{"system.memory": "256"}),
    )
    assert reply.status_code == 303, reply.text
    kept = api_task(server, owner, slug)["input"]["parameters"]["system"]
    assert kept == {**system, "memory": 256}


def test_edit_refused_changes_nothing(
    server: Server, owner: User, worker: str, web: httpx.Client
) -> None:
    slug = api_create(server, owner, worker, title="kept")
    before = api_task(server, owner, slug)
    # A good title and schedule with a bad input: neither half is saved.
    reply = submit(
        web,
        f"/tasks/{slug}",
        f"/tasks/{slug}",
        form_of(
            title="changed",
            **{"custom.query": ""},
            schedule_enabled="1",
            schedule_type="1",
            schedule_time="06:00",
        ),
    )
    assert reply.status_code == 422
    assert 'id="custom-query-problem"' in reply.text
    # A past once-date is only the service's to find; the input is fine this time.
    late = submit(
        web,
        f"/tasks/{slug}",
        f"/tasks/{slug}",
        form_of(
            title="changed",
            **{"custom.query": "boots"},
            schedule_enabled="1",
            schedule_type="4",
            schedule_time="06:00",
            schedule_once_date="2001-01-01",
        ),
    )
    assert late.status_code == 422
    assert re.search(r'id="schedule-once-date"[^>]*aria-invalid="true"', late.text)
    assert "already passed" in text(late)
    assert api_task(server, owner, slug) == before


def test_run_now_starts_a_run(server: Server, owner: User, worker: str, web: httpx.Client) -> None:
    slug = api_create(server, owner, worker)
    reply = submit(web, "/tasks", f"/tasks/{slug}/run", {})
    assert reply.status_code == 303
    location = reply.headers["location"]
    assert location.startswith("/runs/")
    run = location.removeprefix("/runs/")
    assert web.get(location).status_code == 200
    record = api_task(server, owner, slug)
    assert record["run_times"] == 1 and record["last_run_id"] == run
    with server.client(owner) as api:
        assert api.get(f"/api/v2/worker-runs/{run}").json()["data"]["origin"] == "console"
    listed = web.get("/tasks")
    assert f'href="/runs/{run}"' in listed.text
    # From the task's own page too.
    again = submit(web, f"/tasks/{slug}", f"/tasks/{slug}/run", {})
    assert again.status_code == 303 and again.headers["location"].startswith("/runs/")


def test_delete_asks_then_deletes(
    server: Server, owner: User, worker: str, web: httpx.Client
) -> None:
    slug = api_create(server, owner, worker, title="doomed")
    asked = submit(web, f"/tasks/{slug}", f"/tasks/{slug}/delete", {})
    assert asked.status_code == 200
    assert "Delete the task “doomed”?" in text(asked)
    assert api_count(server, owner) == 1
    reply = web.post(f"/tasks/{slug}/delete", data={"csrf": csrf(asked.text), "confirm": "yes"})
    assert reply.status_code == 303
    assert reply.headers["location"].startswith("/tasks")
    assert api_count(server, owner) == 0
    assert web.get(f"/tasks/{slug}").status_code == 404


def test_another_users_task_is_not_found(
    server: Server, owner: User, worker: str, web: httpx.Client
) -> None:
    other = server.user()
    theirs = api_create(server, other, server.worker(other, ECHO, properties=PROPERTIES))
    before = api_task(server, other, theirs)
    assert web.get(f"/tasks/{theirs}").status_code == 404
    assert web.get(f"/tasks/{theirs}/delete").status_code == 404
    token = csrf(web.get("/tasks").text)
    for action, data in (
        (f"/tasks/{theirs}", form_of(title="mine now")),
        (f"/tasks/{theirs}/run", {}),
        (f"/tasks/{theirs}/delete", {"confirm": "yes"}),
    ):
        reply = web.post(action, data={"csrf": token, **data})
        assert reply.status_code == 404, action
        assert "Not found" in text(reply)
    assert api_task(server, other, theirs) == before


def test_post_without_csrf_token_is_refused(
    server: Server, owner: User, worker: str, web: httpx.Client
) -> None:
    slug = api_create(server, owner, worker, title="kept")
    before = api_task(server, owner, slug)
    for action, data in (
        (f"/tasks/new?worker={worker}", form_of(title="sneaky")),
        (f"/tasks/{slug}", form_of(title="sneaky")),
        (f"/tasks/{slug}/run", {}),
        (f"/tasks/{slug}/delete", {"confirm": "yes"}),
    ):
        reply = web.post(action, data=data)
        assert reply.status_code == 403, action
    assert api_task(server, owner, slug) == before
    assert api_count(server, owner) == 1
