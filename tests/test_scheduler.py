"""The scheduler on a controllable clock: exactly once per occurrence with two servers on one
database, no back-fill after downtime, once-schedules, and ``origin: "schedule"``."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, cast
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, update

from runyard.services.errors import InvalidInput
from runyard.services.launcher import Launcher
from runyard.services.runs import new_slug
from runyard.services.scheduler import Scheduler
from runyard.services.schedules import Schedule, next_occurrence
from runyard.services.tasks import Tasks
from runyard.storage import Task
from tests.conftest import Server, wait_for

pytestmark = pytest.mark.both_databases

ECHO = """
from runyard import sdk
sdk.push(sdk.input())
"""
PROPERTIES = [{"name": "query", "title": "Query", "type": "string", "required": True}]
INPUT = {"parameters": {"custom": {"query": "shoes"}}}
UTC_ZONE = ZoneInfo("UTC")


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class FakeLauncher:
    """Records starts instead of running anything: the race test starts hundreds."""

    def __init__(self) -> None:
        self.started: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def start(self, user_id: int, worker_id: str, **kwargs: Any) -> tuple[int, str]:
        with self.lock:
            self.started.append({"user_id": user_id, "worker_id": worker_id, **kwargs})
            return len(self.started), new_slug()


@pytest.fixture
def srv(make_server: Callable[..., Server]) -> Server:
    # The server's own scheduler polls once at start and then sleeps: the tests drive theirs.
    return make_server(schedule_poll_seconds=3600)


def tasks_on(srv: Server, clock: Clock) -> Tasks:
    svc = srv.services
    return Tasks(svc.db, svc.settings, svc.workers, svc.launcher, clock=clock)


def scheduler(srv: Server, clock: Clock, launcher: Any, poll_seconds: float = 5) -> Scheduler:
    svc = srv.services
    return Scheduler(
        svc.db,
        cast(Launcher, launcher),
        svc.tasks,
        UTC_ZONE,
        clock=clock,
        poll_seconds=poll_seconds,
    )


def task_row(srv: Server, slug: str) -> Task:
    with srv.services.db.session() as s:
        task = s.scalar(select(Task).where(Task.slug == slug))
    assert task is not None
    return task


def make_task(srv: Server, clock: Clock, **schedule: Any) -> str:
    user = srv.user()
    worker = srv.worker(user, ECHO, properties=PROPERTIES)
    return tasks_on(srv, clock).create(
        user.id, worker_id=worker, title="t", input=INPUT, schedule_enabled=1, **schedule
    )


def test_two_schedulers_fire_each_occurrence_exactly_once(srv: Server) -> None:
    clock = Clock(at("2030-01-01 00:00"))
    specs = [
        {"schedule_type": 1, "schedule_time": "00:05"},
        {"schedule_type": 1, "schedule_time": "13:37"},
        {"schedule_type": 1, "schedule_time": "13:40"},
        {"schedule_type": 2, "schedule_time": "09:00", "schedule_weekday": 3},
        {"schedule_type": 3, "schedule_time": "06:00", "schedule_day": 2},
        {"schedule_type": 4, "schedule_time": "12:00", "schedule_once_date": "2030-01-04"},
    ]
    slugs = [make_task(srv, clock, **spec) for spec in specs]
    launcher = FakeLauncher()
    # A long poll interval, so a step of the clock below is never a missed occurrence.
    pair = [scheduler(srv, clock, launcher, poll_seconds=3600) for _ in range(2)]
    start, end = clock.now, at("2030-01-10 00:00")
    with ThreadPoolExecutor(2) as pool:
        while clock.now < end:
            clock.now += 15 * 60
            barrier = threading.Barrier(2)

            def one_pass(sched: Scheduler, barrier: threading.Barrier = barrier) -> int:
                barrier.wait()  # both look at the same due tasks at the same moment
                return sched.fire_due()

            fired = sum(pool.map(one_pass, pair))
            assert fired <= len(slugs)
    for slug, spec in zip(slugs, specs, strict=True):
        task = task_row(srv, slug)
        expected = 0
        moment: datetime | None = datetime.fromtimestamp(start, UTC)
        while moment is not None:
            moment = next_occurrence(Schedule.of(task), moment, UTC_ZONE)
            if moment is not None and moment.timestamp() <= clock.now:
                expected += 1
            elif moment is not None:
                break
        starts = [s for s in launcher.started if s["task_id"] == task.id]
        assert len(starts) == expected > 0, spec
        assert task.run_times == expected, spec
        assert all(s["origin"] == "schedule" for s in starts)
        assert task.last_run_id is not None
    # Nine days: three dailies, two Wednesdays, the 2nd of the month, the one date.
    assert clock.now == end and len(launcher.started) == 9 + 9 + 9 + 2 + 1 + 1


def test_a_missed_occurrence_is_not_back_filled(srv: Server) -> None:
    clock = Clock(at("2030-01-01 00:00"))
    slug = make_task(srv, clock, schedule_type=1, schedule_time="09:00")
    assert task_row(srv, slug).next_fire_at == at("2030-01-01 09:00")
    launcher = FakeLauncher()
    sched = scheduler(srv, clock, launcher)

    clock.now = at("2030-01-01 08:59:59")
    assert sched.fire_due() == 0
    # The server was down for two days: neither 09:00 is run late.
    clock.now = at("2030-01-03 12:00")
    assert sched.fire_due() == 0
    assert launcher.started == []
    assert task_row(srv, slug).next_fire_at == at("2030-01-04 09:00")
    # A pass a little late (within one poll interval and the grace) still fires.
    clock.now = at("2030-01-04 09:00:50")
    assert sched.fire_due() == 1
    assert sched.fire_due() == 0
    assert task_row(srv, slug).next_fire_at == at("2030-01-05 09:00")
    assert task_row(srv, slug).run_times == 1


def test_a_once_schedule_fires_once(srv: Server) -> None:
    clock = Clock(at("2030-01-01 00:00"))
    slug = make_task(
        srv, clock, schedule_type=4, schedule_time="12:00", schedule_once_date="2030-06-01"
    )
    launcher = FakeLauncher()
    sched = scheduler(srv, clock, launcher)
    for now, fired in (
        ("2030-06-01 11:59", 0),
        ("2030-06-01 12:00", 1),
        ("2030-06-01 12:00:02", 0),
        ("2030-06-02 12:00", 0),
        ("2031-06-01 12:00", 0),
    ):
        clock.now = at(now)
        assert sched.fire_due() == fired, now
    assert task_row(srv, slug).next_fire_at is None
    assert len(launcher.started) == 1

    # A once-schedule whose moment has passed is refused: it could never fire.
    with pytest.raises(InvalidInput) as refused:
        make_task(
            srv, clock, schedule_type=4, schedule_time="12:00", schedule_once_date="2030-01-01"
        )
    assert refused.value.details == ["schedule_once_date: this date and time have already passed"]


def test_changes_move_the_next_firing(srv: Server) -> None:
    clock = Clock(at("2030-01-01 00:00"))
    slug = make_task(srv, clock, schedule_type=1, schedule_time="09:00")
    task = task_row(srv, slug)
    tasks = tasks_on(srv, clock)
    tasks.update(task.user_id, slug, {"title": "renamed"})
    assert task_row(srv, slug).next_fire_at == at("2030-01-01 09:00")
    tasks.update(task.user_id, slug, {"schedule_type": 2, "schedule_weekday": 7})
    assert task_row(srv, slug).next_fire_at == at("2030-01-06 09:00")  # a Sunday
    tasks.update(task.user_id, slug, {"schedule_enabled": 0})
    assert task_row(srv, slug).next_fire_at is None
    clock.now = at("2030-01-06 09:00")
    assert scheduler(srv, clock, FakeLauncher()).fire_due() == 0
    tasks.update(task.user_id, slug, {"schedule_enabled": 1})
    assert task_row(srv, slug).next_fire_at == at("2030-01-13 09:00")


def test_scheduled_runs_are_real_runs_with_origin_schedule(
    srv: Server, caplog: pytest.LogCaptureFixture
) -> None:
    user = srv.user()
    worker = srv.worker(user, ECHO, properties=PROPERTIES)
    with srv.client(user) as api:
        reply = api.post(
            "/api/v2/worker-tasks",
            json={
                "worker_id": worker,
                "title": "nightly",
                "input": INPUT,
                "schedule_enabled": 1,
                "schedule_type": 1,
                "schedule_time": "03:00",
            },
        )
        slug = reply.json()["data"]["slug"]
        due = task_row(srv, slug).next_fire_at
        assert due is not None
        clock = Clock(due + 1)
        svc = srv.services
        sched = Scheduler(svc.db, svc.launcher, svc.tasks, UTC_ZONE, clock=clock)
        assert sched.fire_due() == 1
        task = api.get(f"/api/v2/worker-tasks/{slug}").json()["data"]
        assert task["run_times"] == 1
        run = wait_for(api, task["last_run_id"])
        assert run["origin"] == "schedule" and run["status"] == "succeeded"
        rows = api.get(f"/api/v2/worker-runs/{run['slug']}/result").json()["data"]["list"]
        assert rows == [{"query": "shoes"}]

        # A run that cannot start is logged and the schedule moves on.
        with svc.db.session() as s, s.begin():
            s.execute(update(Task).where(Task.slug == slug).values(input='{"query": "flat"}'))
        clock.now = due + 24 * 3600 + 1
        with caplog.at_level(logging.WARNING, logger="runyard.scheduler"):
            assert sched.fire_due() == 0
        assert any("not started" in r.getMessage() for r in caplog.records)
        assert task_row(srv, slug).next_fire_at == due + 2 * 24 * 3600
        assert api.get(f"/api/v2/worker-tasks/{slug}").json()["data"]["run_times"] == 1


def test_the_thread_starts_and_closes_promptly(srv: Server) -> None:
    clock = Clock(at("2030-01-01 00:00"))
    make_task(srv, clock, schedule_type=1, schedule_time="00:00")
    clock.now = at("2030-01-02 00:00:01")
    launcher = FakeLauncher()
    sched = scheduler(srv, clock, launcher, poll_seconds=3600)
    sched.start()
    deadline = datetime.now(UTC).timestamp() + 10
    while not launcher.started and datetime.now(UTC).timestamp() < deadline:
        threading.Event().wait(0.02)
    started = datetime.now(UTC).timestamp()
    sched.close()
    assert datetime.now(UTC).timestamp() - started < 2
    assert len(launcher.started) == 1
