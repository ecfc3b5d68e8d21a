"""Saved tasks on a server: a worker, a version and an input under a title, on a schedule."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

import typer

from runyard.cli import render, watch
from runyard.cli.app import emit, emit_page, emit_record, err, fail, tasks_app
from runyard.cli.inputs import InputFile, Sets, Systems, assignments, read_input
from runyard.cli.remote import ApiKey, AsJson, BaseUrl, ProfileName, WorkerId, connect
from runyard.cli.runs import Limit, Offset
from runyard.client import ApiError

TaskId = Annotated[
    str, typer.Argument(metavar="TASK", help="The task's id (see `runyard tasks list`).")
]
SCHEDULE = "Schedule"


class Kind(StrEnum):
    daily = "daily"
    weekly = "weekly"
    monthly = "monthly"
    once = "once"


ScheduleKind = Annotated[
    Kind | None,
    typer.Option("--schedule", help="How often the task runs.", rich_help_panel=SCHEDULE),
]
At = Annotated[
    str | None,
    typer.Option(
        "--at", metavar="HH:MM", help="Time of day (server's time zone).", rich_help_panel=SCHEDULE
    ),
]
Weekday = Annotated[
    int | None,
    typer.Option(
        "--weekday", min=1, max=7, help="weekly: 1 Monday … 7 Sunday.", rich_help_panel=SCHEDULE
    ),
]
Day = Annotated[
    int | None,
    typer.Option(
        "--day", min=1, max=31, help="monthly: day of the month.", rich_help_panel=SCHEDULE
    ),
]
OnceDate = Annotated[
    str | None,
    typer.Option("--date", metavar="YYYY-MM-DD", help="once: the date.", rich_help_panel=SCHEDULE),
]
Version = Annotated[
    str | None,
    typer.Option("--version", help="The worker version to run (default: the latest at each run)."),
]


def _when(
    kind: Kind | None, at: str | None, weekday: int | None, day: int | None, date: str | None
) -> dict[str, Any]:
    """The schedule keyword arguments of ``create_task``/``update_task`` that were given."""
    given = {
        "schedule": kind.value if kind else None,
        "time": at,
        "weekday": weekday,
        "day": day,
        "once_date": date,
    }
    return {k: v for k, v in given.items() if v is not None}


@tasks_app.command("list")
def tasks_list(
    worker: Annotated[
        str | None, typer.Option("--worker", "-w", help="Only tasks of this worker.")
    ] = None,
    keyword: Annotated[str | None, typer.Option("--keyword", "-k", help="Match the title.")] = None,
    offset: Offset = 0,
    limit: Limit = 20,
    as_json: AsJson = False,
    base_url: BaseUrl = None,
    api_key: ApiKey = None,
    profile: ProfileName = None,
) -> None:
    """List your tasks, newest first."""
    with connect(base_url, api_key, profile) as client:
        page = client.list_tasks(worker=worker, keyword=keyword, offset=offset, limit=limit)
    emit_page(page, offset, as_json, "tasks", render.tasks_table)


@tasks_app.command("show")
def tasks_show(
    task: TaskId,
    as_json: AsJson = False,
    base_url: BaseUrl = None,
    api_key: ApiKey = None,
    profile: ProfileName = None,
) -> None:
    """Show a task: its record, schedule and input."""
    with connect(base_url, api_key, profile) as client:
        record = client.get_task(task)
    emit_record(record, as_json, render.task_detail)


@tasks_app.command("create")
def tasks_create(
    worker: WorkerId,
    title: Annotated[str, typer.Option("--title", help="The task's title.")],
    input_file: InputFile = None,
    sets: Sets = None,
    systems: Systems = None,
    version: Version = None,
    description: Annotated[
        str | None, typer.Option("--description", help="What the task is for.")
    ] = None,
    schedule: ScheduleKind = None,
    at: At = None,
    weekday: Weekday = None,
    day: Day = None,
    date: OnceDate = None,
    base_url: BaseUrl = None,
    api_key: ApiKey = None,
    profile: ProfileName = None,
) -> None:
    """Save a task (with a schedule if --schedule is given); print its id on stdout."""
    when = _when(schedule, at, weekday, day, date)
    if schedule is None and when:
        fail("--at, --weekday, --day and --date need --schedule")
    with connect(base_url, api_key, profile) as client:
        slug = client.create_task(
            worker,
            title,
            read_input(input_file, sets) or {},
            system=assignments(systems, "--system") or None,
            version=version,
            description=description,
            **when,
        )
    err.print(f"created task {slug}", markup=False)
    emit(slug)


@tasks_app.command("update")
def tasks_update(
    task: TaskId,
    title: Annotated[str | None, typer.Option("--title", help="A new title.")] = None,
    description: Annotated[
        str | None, typer.Option("--description", help="A new description.")
    ] = None,
    schedule: ScheduleKind = None,
    at: At = None,
    weekday: Weekday = None,
    day: Day = None,
    date: OnceDate = None,
    enabled: Annotated[
        bool | None,
        typer.Option(
            "--enable/--disable",
            help="Turn the schedule on or off (--schedule alone turns it on).",
            rich_help_panel=SCHEDULE,
            show_default=False,
        ),
    ] = None,
    input_file: Annotated[
        str | None,
        typer.Option(
            "--input",
            "-i",
            metavar="FILE",
            help="Replace the input's fields with this JSON object; - reads stdin.",
            show_default=False,
        ),
    ] = None,
    sets: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            "-s",
            metavar="KEY=VALUE",
            help="Change one input field, keeping the others (repeatable).",
            show_default=False,
        ),
    ] = None,
    systems: Systems = None,
    version: Version = None,
    base_url: BaseUrl = None,
    api_key: ApiKey = None,
    profile: ProfileName = None,
) -> None:
    """Change a task: only what is given changes."""
    when = _when(schedule, at, weekday, day, date)
    if enabled is None and schedule is not None:
        enabled = True
    record_changes = title is not None or description is not None or when or enabled is not None
    input_changes = input_file is not None or sets or systems or version is not None
    if not record_changes and not input_changes:
        fail("nothing to change: give --title, --description, a schedule option or input")
    with connect(base_url, api_key, profile) as client:
        # The record and the input are two requests: everything that can be checked here is
        # checked before the first, and a refusal of the second says what did change.
        if input_changes:
            current = client.get_task_input(task).input.get("parameters") or {}
            custom = read_input(input_file, sets, base=current.get("custom") or {})
            system = {**(current.get("system") or {}), **assignments(systems, "--system")}
        if record_changes:
            client.update_task(
                task,
                title=title,
                description=description,
                schedule_enabled=enabled,
                **when,
            )
        if input_changes:
            try:
                client.update_task_input(task, custom, system=system or None, version=version)
            except ApiError:
                if record_changes:
                    err.print("the title, description and schedule were updated; the input was not")
                raise
    err.print(f"updated task {task}", markup=False)


@tasks_app.command("delete")
def tasks_delete(
    task: TaskId,
    base_url: BaseUrl = None,
    api_key: ApiKey = None,
    profile: ProfileName = None,
) -> None:
    """Delete a task."""
    with connect(base_url, api_key, profile) as client:
        client.delete_task(task)
    err.print(f"deleted task {task}", markup=False)


@tasks_app.command("run")
def tasks_run(
    task: TaskId,
    wait: watch.Wait = False,
    follow: watch.Follow = False,
    timeout: watch.Timeout = None,
    base_url: BaseUrl = None,
    api_key: ApiKey = None,
    profile: ProfileName = None,
) -> None:
    """Run a task now; print the run's id on stdout."""
    with connect(base_url, api_key, profile) as client:
        run = client.run_task(task).run_slug
        watch.started(client, run, wait=wait, follow=follow, timeout=timeout)
