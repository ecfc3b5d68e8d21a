"""Fires due task schedules: each occurrence exactly once, however many servers share the
database, and never the occurrences missed while no server was up."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import orjson
from sqlalchemy import select, update

from runyard.services.errors import ServiceError
from runyard.services.launcher import Launcher
from runyard.services.schedules import Schedule, next_occurrence
from runyard.services.tasks import Tasks
from runyard.storage import Database, Task

log = logging.getLogger("runyard.scheduler")
#: How late past one poll interval an occurrence may still fire; older ones were missed while
#: the server was down and are skipped, not back-filled.
GRACE_SECONDS = 60.0


class Scheduler:
    def __init__(
        self,
        db: Database,
        launcher: Launcher,
        tasks: Tasks,
        tz: ZoneInfo,
        clock: Callable[[], float] = time.time,
        poll_seconds: float = 5.0,
    ) -> None:
        self.db = db
        self.launcher = launcher
        self.tasks = tasks
        self.tz = tz
        self.clock = clock
        self.poll_seconds = poll_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def fire_due(self) -> int:
        """One pass over the enabled tasks whose occurrence is due; how many runs it started."""
        now = self.clock()
        with self.db.session() as s:
            due = list(
                s.scalars(
                    select(Task).where(
                        Task.schedule_enabled == 1,
                        Task.next_fire_at.is_not(None),
                        Task.next_fire_at <= now,
                    )
                )
            )
        fired = 0
        for task in due:
            if self._fire(task, now):
                fired += 1
        return fired

    def _fire(self, task: Task, now: float) -> bool:
        assert task.next_fire_at is not None
        missed = task.next_fire_at < now - self.poll_seconds - GRACE_SECONDS
        # From ``now`` when missed, so everything up to now is skipped; from the occurrence
        # otherwise, so a late pass never skips the one after it.
        following = self._next(task, now if missed else task.next_fire_at)
        with self.db.session() as s, s.begin():
            claimed = s.execute(
                update(Task)
                .where(Task.id == task.id, Task.next_fire_at == task.next_fire_at)
                .values(next_fire_at=following)
            ).rowcount  # type: ignore[attr-defined]
        if claimed != 1:
            return False  # another scheduler took this occurrence, or the task changed
        if missed:
            log.info("task %s: skipped an occurrence missed while the server was down", task.slug)
            return False
        # Read again: the input or version may have changed since the task was found due.
        with self.db.session() as s:
            fresh = s.get(Task, task.id)
        if fresh is None:
            return False
        task = fresh
        try:
            _, run_slug = self.launcher.start(
                task.user_id,
                self.tasks.worker_path(task),
                input=orjson.loads(task.input),
                version=task.version,
                origin="schedule",
                task_id=task.id,
            )
        except ServiceError as exc:
            # The schedule has already moved on: a broken task must not block the others.
            log.warning(
                "task %s: scheduled run not started: %s %s", task.slug, exc, exc.details or ""
            )
            return False
        except Exception:
            log.exception("task %s: scheduled run not started", task.slug)
            return False
        self.tasks.record_run(task.id, run_slug)
        log.info("task %s: scheduled run %s started", task.slug, run_slug)
        return True

    def _next(self, task: Task, after: float) -> float | None:
        moment = next_occurrence(Schedule.of(task), datetime.fromtimestamp(after, UTC), self.tz)
        return None if moment is None else moment.timestamp()

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="runyard-scheduler", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.fire_due()
            except Exception:
                log.exception("scheduler pass failed")
            self._stop.wait(self.poll_seconds)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
            self._thread = None
