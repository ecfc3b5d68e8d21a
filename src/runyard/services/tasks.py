"""Saved tasks (spec §6): a worker, a version and an input kept under a title, optionally on a
schedule. Runs of a task go through the launcher like any other run."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from sqlalchemy import ColumnElement, func, select, update

from runyard.services.errors import InvalidInput, NotFound
from runyard.services.inputs import validate_run_input
from runyard.services.launcher import Launcher
from runyard.services.paging import fetch_page
from runyard.services.runs import new_slug, worker_is
from runyard.services.schedules import Schedule, next_occurrence, problems
from runyard.services.workers import LATEST, Workers
from runyard.settings import Settings
from runyard.storage import Database, Task, User, Worker

log = logging.getLogger("runyard.tasks")
TITLE_CHARS = 256
DESCRIPTION_CHARS = 10_000
#: The fields ``update`` may change; input and version change only through ``update_input``.
UPDATABLE = frozenset(
    {
        "title",
        "description",
        "schedule_enabled",
        "schedule_type",
        "schedule_time",
        "schedule_weekday",
        "schedule_day",
        "schedule_once_date",
    }
)
SCHEDULE_FIELDS = UPDATABLE - {"title", "description"}


@dataclass(frozen=True)
class TaskRecord:
    """The task record of spec §6, field for field. Unset schedule fields are 0 or "", the
    zero values typed clients of the hosted service expect, never null."""

    slug: str
    title: str
    description: str
    worker_slug: str
    worker_title: str
    worker_path: str
    version: str
    input: dict[str, Any]
    run_times: int
    last_run_id: str
    schedule_enabled: int
    schedule_type: int
    schedule_time: str
    schedule_weekday: int
    schedule_day: int
    schedule_once_date: str
    created_at: int
    updated_at: int


def _record(task: Task, worker: Worker, owner: str) -> TaskRecord:
    return TaskRecord(
        slug=task.slug,
        title=task.title,
        description=task.description or "",
        worker_slug=worker.slug,
        worker_title=worker.title,
        worker_path=f"{owner}/{worker.slug}",
        version=task.version or LATEST,
        input=orjson.loads(task.input),
        run_times=task.run_times,
        last_run_id=task.last_run_id or "",
        schedule_enabled=task.schedule_enabled,
        schedule_type=task.schedule_type or 0,
        schedule_time=task.schedule_time or "",
        schedule_weekday=task.schedule_weekday or 0,
        schedule_day=task.schedule_day or 0,
        schedule_once_date=task.schedule_once_date or "",
        created_at=int(task.created_at),
        updated_at=int(task.updated_at),
    )


def _unset_is_none(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Schedule fields as stored: 0 and "" (what a record shows for "unset") become None, so a
    record read and sent back as it is is accepted."""
    return {
        key: None
        if key in SCHEDULE_FIELDS and key != "schedule_enabled" and value in (0, "")
        else value
        for key, value in fields.items()
    }


def schedule_of(fields: Mapping[str, Any]) -> Schedule:
    """The schedule that task fields (``schedule_enabled``, ``schedule_type``, ...) describe."""
    return Schedule(
        enabled=fields.get("schedule_enabled") == 1,
        type=fields.get("schedule_type"),
        time=fields.get("schedule_time"),
        weekday=fields.get("schedule_weekday"),
        day=fields.get("schedule_day"),
        once_date=fields.get("schedule_once_date"),
    )


def _check_text(title: str | None, description: str | None) -> list[str]:
    found: list[str] = []
    if title is not None and not title.strip():
        found.append("title: must not be empty")
    if title is not None and len(title) > TITLE_CHARS:
        found.append(f"title: is longer than {TITLE_CHARS} characters")
    if description is not None and len(description) > DESCRIPTION_CHARS:
        found.append(f"description: is longer than {DESCRIPTION_CHARS} characters")
    return found


class Tasks:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        workers: Workers,
        launcher: Launcher,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.settings = settings
        self.workers = workers
        self.launcher = launcher
        self.clock = clock
        self.tz = ZoneInfo(settings.timezone)

    # --- schedule ----------------------------------------------------------------------------

    def next_fire_at(self, schedule: Schedule, after: float) -> float | None:
        """Unix seconds of the schedule's first occurrence after ``after``; None if none."""
        moment = next_occurrence(schedule, datetime.fromtimestamp(after, UTC), self.tz)
        return None if moment is None else moment.timestamp()

    def _check_schedule(self, schedule: Schedule, enabled: Any) -> list[str]:
        if enabled not in (0, 1):
            return ["schedule_enabled: must be 0 or 1"]
        found = problems(schedule)
        if not found and enabled and self.next_fire_at(schedule, self.clock()) is None:
            # An enabled schedule that can never fire is a mistake the caller should hear of.
            found.append("schedule_once_date: this date and time have already passed")
        return found

    # --- input ---------------------------------------------------------------------------------

    def _checked_version(
        self, user_id: int, worker_id: str, version: str | None, input: Any
    ) -> tuple[int, str | None]:
        """The worker's id and the version to keep (None: the newest at each run), after
        ``input`` passed that version's schema."""
        found = self.workers.version(user_id, worker_id, version)
        validate_run_input(
            input,
            orjson.loads(found.input_schema),
            default_timeout=self.settings.run_timeout_seconds,
            proxy_regions=self.settings.proxies.keys(),
        )
        return found.worker_id, None if version in (None, LATEST) else version

    @staticmethod
    def _input_text(input: Any) -> str:
        try:
            return orjson.dumps(input).decode()
        except orjson.JSONEncodeError:
            raise InvalidInput("invalid input", ["input: holds a number beyond 64 bits"]) from None

    # --- use cases -----------------------------------------------------------------------------

    def create(
        self,
        user_id: int,
        *,
        worker_id: str,
        title: str,
        input: dict[str, Any],
        description: str | None = None,
        version: str | None = None,
        **schedule_fields: Any,
    ) -> str:
        """Save a task of ``worker_id`` (the caller's or a public worker); its slug."""
        fields = _unset_is_none(schedule_fields)
        unknown = set(fields) - SCHEDULE_FIELDS
        if unknown:
            raise InvalidInput("invalid task", [f"{name}: unknown field" for name in unknown])
        enabled = fields.get("schedule_enabled") or 0
        schedule = schedule_of({**fields, "schedule_enabled": enabled})
        found = _check_text(title, description) + self._check_schedule(schedule, enabled)
        if found:
            raise InvalidInput("invalid task", found)
        worker_db_id, kept_version = self._checked_version(user_id, worker_id, version, input)
        now = self.clock()
        task = Task(
            slug=new_slug(),
            user_id=user_id,
            worker_id=worker_db_id,
            title=title,
            description=description or "",
            version=kept_version,
            input=self._input_text(input),
            run_times=0,
            last_run_id=None,
            schedule_enabled=enabled,
            schedule_type=schedule.type,
            schedule_time=schedule.time,
            schedule_weekday=schedule.weekday,
            schedule_day=schedule.day,
            schedule_once_date=schedule.once_date,
            next_fire_at=self.next_fire_at(schedule, now),
            created_at=now,
            updated_at=now,
        )
        with self.db.session() as s, s.begin():
            s.add(task)
        return task.slug

    def _find(self, user_id: int, slug: str) -> tuple[Task, Worker, str]:
        """The caller's task; another user's is NotFound, exactly like a missing one."""
        with self.db.session() as s:
            row = s.execute(
                select(Task, Worker, User.name)
                .join(Worker, Worker.id == Task.worker_id)
                .join(User, User.id == Worker.user_id)
                .where(Task.slug == slug, Task.user_id == user_id)
            ).first()
        if row is None:
            raise NotFound("task not found")
        return row[0], row[1], row[2]

    def get(self, user_id: int, slug: str) -> TaskRecord:
        return _record(*self._find(user_id, slug))

    def list_tasks(
        self,
        user_id: int,
        *,
        offset: int,
        limit: int,
        worker_id: str | None = None,
        keyword: str | None = None,
    ) -> tuple[int, list[TaskRecord]]:
        """The caller's tasks, newest first; ``keyword`` matches the title."""
        where: list[ColumnElement[bool]] = [Task.user_id == user_id]
        if worker_id is not None:
            where.append(worker_is(worker_id))
        if keyword:
            where.append(func.lower(Task.title).contains(keyword.lower(), autoescape=True))
        base = (
            select(Task, Worker, User.name)
            .join(Worker, Worker.id == Task.worker_id)
            .join(User, User.id == Worker.user_id)
            .where(*where)
        )
        with self.db.session() as s:
            count, rows = fetch_page(
                s, base, (Task.created_at.desc(), Task.id.desc()), offset, limit
            )
        return count, [_record(task, worker, owner) for task, worker, owner in rows]

    def update(self, user_id: int, slug: str, changes: Mapping[str, Any]) -> None:
        """Change some of title, description and the schedule fields; the rest stay."""
        unknown = set(changes) - UPDATABLE
        if unknown:
            raise InvalidInput(
                "invalid task", [f"{name}: cannot be changed here" for name in unknown]
            )
        task, _, _ = self._find(user_id, slug)
        changes = _unset_is_none(changes)
        merged = {name: getattr(task, name) for name in SCHEDULE_FIELDS} | {
            name: value for name, value in changes.items() if name in SCHEDULE_FIELDS
        }
        if merged["schedule_enabled"] is None:
            merged["schedule_enabled"] = 0
        schedule = schedule_of(merged)
        found = _check_text(changes.get("title"), changes.get("description"))
        if "title" in changes and changes["title"] is None:
            found.append("title: must not be null")
        found += self._check_schedule(schedule, merged["schedule_enabled"])
        if found:
            raise InvalidInput("invalid task", found)
        values: dict[str, Any] = {"updated_at": self.clock()}
        if "title" in changes:
            values["title"] = changes["title"]
        if "description" in changes:
            values["description"] = changes["description"] or ""
        if SCHEDULE_FIELDS & set(changes):
            values |= {name: merged[name] for name in SCHEDULE_FIELDS}
            # Only a schedule change moves the next firing: recomputing it on a title edit
            # could skip an occurrence that is due but not yet picked up.
            values["next_fire_at"] = self.next_fire_at(schedule, self.clock())
        self._set(task.id, values)

    def delete(self, user_id: int, slug: str) -> None:
        task, _, _ = self._find(user_id, slug)
        with self.db.session() as s, s.begin():
            row = s.get(Task, task.id)
            if row is not None:
                s.delete(row)

    def get_input(self, user_id: int, slug: str) -> dict[str, Any]:
        record = self.get(user_id, slug)
        return {"input": record.input, "version": record.version}

    def update_input(
        self, user_id: int, slug: str, input: dict[str, Any], version: str | None = None
    ) -> None:
        """Replace the input (checked against ``version``'s schema) and, if given, the version."""
        task, worker, owner = self._find(user_id, slug)
        if version is None:
            version = task.version
        # Through the path, so a public worker of another user resolves to that very worker.
        _, kept = self._checked_version(user_id, f"{owner}~{worker.slug}", version, input)
        self._set(
            task.id, {"input": self._input_text(input), "version": kept, "updated_at": self.clock()}
        )

    def _set(self, task_id: int, values: Mapping[str, Any]) -> None:
        with self.db.session() as s, s.begin():
            s.execute(update(Task).where(Task.id == task_id).values(**values))

    # --- running -------------------------------------------------------------------------------

    def run(
        self,
        user_id: int,
        slug: str,
        *,
        callback_url: str | None = None,
        origin: str = "openapi",
    ) -> tuple[int, str]:
        """Start a run of the caller's task (from the API, or ``origin``); ``(run id, slug)``."""
        task, worker, owner = self._find(user_id, slug)
        run_id, run_slug = self.launcher.start(
            user_id,
            f"{owner}~{worker.slug}",
            input=orjson.loads(task.input),
            version=task.version,
            callback_url=callback_url,
            origin=origin,
            task_id=task.id,
        )
        self.record_run(task.id, run_slug)
        return run_id, run_slug

    def record_run(self, task_id: int, run_slug: str) -> None:
        """Count a started run in the task's ``run_times`` and ``last_run_id``: best effort,
        as the run is committed already and failing its start would have it started again."""
        try:
            with self.db.session() as s, s.begin():
                s.execute(
                    update(Task)
                    .where(Task.id == task_id)
                    .values(run_times=Task.run_times + 1, last_run_id=run_slug)
                )
        except Exception:
            log.exception(
                "run %s of task %d: the task's run count was not updated", run_slug, task_id
            )

    def worker_path(self, task: Task) -> str:
        """``owner~slug`` of the task's worker, the form that names exactly that worker."""
        with self.db.session() as s:
            row = s.execute(
                select(Worker.slug, User.name)
                .join(User, User.id == Worker.user_id)
                .where(Worker.id == task.worker_id)
            ).first()
        if row is None:
            raise NotFound("worker not found")
        return f"{row[1]}~{row[0]}"
