"""Saved tasks: the list, the form that creates or edits one (title, input, schedule), run now,
delete.

The form posts the task's own fields under their API names (``title``, ``schedule_time``, ...)
next to the worker's input fields (``custom.*``, ``system.*``), so a refusal's detail lines name
the control they belong to.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import quote

import anyio.to_thread
import orjson
from fastapi import APIRouter, Query, Request
from starlette.datastructures import FormData
from starlette.responses import Response

from runyard.console.inputs import InputForm, input_form, read_input, refused
from runyard.console.web import ConsoleRoute, Limit, Offset, SignedIn, console, redirect, services
from runyard.console.workers import form_context
from runyard.services import InvalidInput, Services
from runyard.services.inputs import validate_run_input
from runyard.services.schedules import DAILY, MONTHLY, ONCE, WEEKLY, problems
from runyard.services.tasks import SCHEDULE_FIELDS, TaskRecord, schedule_of

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)
WorkerId = Annotated[str, Query(max_length=300)]

#: Workers the "new task" picker offers; past that, the Workers page links each one.
PICKER_SIZE = 100
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
SCHEDULE_TYPES = ((DAILY, "Daily"), (WEEKLY, "Weekly"), (MONTHLY, "Monthly"), (ONCE, "Once"))
#: The schedule fields the form posts as whole numbers, and those it posts as text.
NUMBER_FIELDS = ("schedule_type", "schedule_weekday", "schedule_day")
TEXT_FIELDS = ("schedule_time", "schedule_once_date")
#: Fields of the task itself; a detail line starting with one of these is shown at its control.
TASK_FIELDS = frozenset({"title", "description", *SCHEDULE_FIELDS})
_WHOLE = re.compile(r"[+-]?\d+")
#: No schedule number comes near this; int() of a longer paste would only burn CPU.
_MAX_DIGITS = 9


def schedule_words(record: TaskRecord) -> str:
    """The schedule as the list shows it: "Daily at 09:30", ..., or "Off"."""
    if not record.schedule_enabled:
        return "Off"
    at = f"at {record.schedule_time}"
    if record.schedule_type == DAILY:
        return f"Daily {at}"
    if record.schedule_type == WEEKLY and 1 <= record.schedule_weekday <= 7:
        return f"Weekly on {WEEKDAYS[record.schedule_weekday - 1]} {at}"
    if record.schedule_type == MONTHLY:
        return f"Monthly on day {record.schedule_day} {at}"
    if record.schedule_type == ONCE:
        return f"Once on {record.schedule_once_date} {at}"
    return "On"  # not reachable through the service's checks; never claim a wrong schedule


@dataclass
class TaskForm:
    """The task's own fields as the form shows them (texts as posted), and their problems.

    ``problems`` is keyed by field name; ``""`` holds lines about no one field.
    """

    title: str = ""
    description: str = ""
    schedule_enabled: bool = False
    schedule_type: str = ""
    schedule_time: str = ""
    schedule_weekday: str = ""
    schedule_day: str = ""
    schedule_once_date: str = ""
    problems: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def of(cls, record: TaskRecord) -> TaskForm:
        def text(value: int) -> str:
            return str(value) if value else ""

        return cls(
            title=record.title,
            description=record.description,
            schedule_enabled=bool(record.schedule_enabled),
            schedule_type=text(record.schedule_type),
            schedule_time=record.schedule_time,
            schedule_weekday=text(record.schedule_weekday),
            schedule_day=text(record.schedule_day),
            schedule_once_date=record.schedule_once_date,
        )

    def add(self, lines: list[str]) -> None:
        for line in lines:
            name, sep, reason = line.partition(": ")
            if sep and name in TASK_FIELDS:
                self.problems.setdefault(name, []).append(reason)
            else:
                self.problems.setdefault("", []).append(line)


def read_task(form: FormData) -> tuple[dict[str, Any], TaskForm]:
    """The task fields a form posted, as the service takes them, and the form to show again.

    A blank schedule field is None (not set; on an edit, cleared); a number field that is not
    a whole number is a problem at that field and left out. The ranges and the HH:mm and
    YYYY-MM-DD shapes are the service's to check, so its words are the ones shown.
    """

    def posted(name: str) -> str:
        value = form.get(name)
        return value if isinstance(value, str) else ""

    shown = TaskForm(
        title=posted("title").strip(),
        # Browsers post a textarea's line breaks as CRLF; API clients send \n.
        description=posted("description").replace("\r\n", "\n"),
        schedule_enabled=form.get("schedule_enabled") is not None,
        schedule_type=posted("schedule_type").strip(),
        schedule_time=posted("schedule_time").strip(),
        schedule_weekday=posted("schedule_weekday").strip(),
        schedule_day=posted("schedule_day").strip(),
        schedule_once_date=posted("schedule_once_date").strip(),
    )
    fields: dict[str, Any] = {
        "title": shown.title,
        "description": shown.description,
        "schedule_enabled": 1 if shown.schedule_enabled else 0,
    }
    for name in TEXT_FIELDS:
        fields[name] = getattr(shown, name) or None
    for name in NUMBER_FIELDS:
        text = getattr(shown, name)
        if not text:
            fields[name] = None
        elif _WHOLE.fullmatch(text) and len(text) > _MAX_DIGITS:
            shown.problems.setdefault(name, []).append("is far out of range")
        elif _WHOLE.fullmatch(text):
            fields[name] = int(text)
        else:
            shown.problems.setdefault(name, []).append("must be a whole number")
    return fields, shown


def _is_task_line(line: str) -> bool:
    name, sep, _ = line.partition(": ")
    return bool(sep) and name in TASK_FIELDS


def _input_problems(svc: Services, schema: Mapping[str, Any], value: Any) -> list[str]:
    """What the service would say of ``value`` as a run input of ``schema``; [] if it passes.

    The same check ``Tasks.create`` and ``update_input`` make, without writing anything.
    """
    try:
        validate_run_input(
            value,
            schema,
            default_timeout=svc.settings.run_timeout_seconds,
            proxy_regions=svc.settings.proxies.keys(),
        )
        orjson.dumps(value)
    except InvalidInput as exc:
        return list(exc.details or [exc.message])
    except orjson.JSONEncodeError:
        return ["input: holds a number beyond 64 bits"]
    return []


def _schedule_problems(fields: Mapping[str, Any]) -> list[str]:
    """The schedule's own rules (``schedules.problems``, what the service applies first)."""
    return problems(schedule_of(fields))


def _precheck(
    svc: Services,
    schema: Mapping[str, Any],
    value: Any,
    fields: Mapping[str, Any],
    task: TaskForm,
    inputs: InputForm,
) -> bool:
    """Every problem found without writing anything, each put at its field; True if none.

    The service stops at the first kind of problem it meets (the task's fields, then the
    input) and an edit takes two calls; checking all here shows every problem at once. The
    service still checks everything again, and what it refuses is shown the same way.
    """
    lines: list[str] = []
    if not task.title:
        lines.append("title: must not be empty")
    lines += [
        line
        for line in _schedule_problems(fields)
        # A field that could not be read is missing from ``fields``: no "is required" for it.
        if line.partition(": ")[0] not in task.problems
    ]
    if not inputs.has_problems:
        lines += _input_problems(svc, schema, value)
    _refusal(task, inputs, lines)
    return not task.problems and not inputs.has_problems


def _refusal(task: TaskForm, shown: InputForm, lines: list[str]) -> None:
    """Each of a refusal's lines at its control: task fields on ``task``, the rest on ``shown``."""
    task.add([line for line in lines if _is_task_line(line)])
    rest = [line for line in lines if not _is_task_line(line)]
    if rest:
        refused(shown, InvalidInput("invalid input", rest))


def _task_schema(svc: Services, user_id: int, record: TaskRecord) -> dict[str, Any]:
    """The input schema of the version the task runs, which its input is checked against."""
    # The path names exactly the task's worker, even a public one of another user.
    worker = record.worker_path.replace("/", "~")
    schema: dict[str, Any] = orjson.loads(
        svc.workers.version(user_id, worker, record.version).input_schema
    )
    return schema


def _timezone(request: Request) -> str:
    return services(request).settings.timezone


def _form_page(
    request: Request,
    *,
    task: TaskForm,
    inputs: InputForm,
    worker_title: str,
    worker_path: str,
    action: str,
    record: TaskRecord | None = None,
    saved: bool = False,
    status: int = 200,
) -> Response:
    return console(request).render(
        request,
        "task_form.html",
        {
            "task": task,
            "record": record,
            "worker_title": worker_title,
            "worker_path": worker_path,
            "action": action,
            "saved": saved,
            "weekdays": WEEKDAYS,
            "schedule_types": SCHEDULE_TYPES,
            "timezone": _timezone(request),
            **form_context(request, inputs),
        },
        status_code=status,
    )


# --- list ----------------------------------------------------------------------------------


@router.get("/tasks")
def tasks_page(
    request: Request,
    viewer: SignedIn,
    offset: Offset = 0,
    limit: Limit = 20,
    deleted: Annotated[str, Query(max_length=5)] = "",
) -> Response:
    count, records = services(request).tasks.list_tasks(viewer.user_id, offset=offset, limit=limit)
    return console(request).render(
        request,
        "tasks.html",
        {
            "tasks": [(record, schedule_words(record)) for record in records],
            "count": count,
            "offset": offset,
            "limit": limit,
            "page_base": "/tasks?",
            "timezone": _timezone(request),
            "deleted": deleted == "1",
        },
    )


# --- new -----------------------------------------------------------------------------------


def _new_page(
    request: Request,
    user_id: int,
    worker: str,
    task: TaskForm | None = None,
    inputs: InputForm | None = None,
    status: int = 200,
) -> Response:
    svc = services(request)
    detail = svc.workers.detail(user_id, worker)
    if inputs is None:
        inputs = input_form(svc.workers.input_schema(user_id, worker))
    return _form_page(
        request,
        task=task or TaskForm(),
        inputs=inputs,
        worker_title=detail.title,
        worker_path=f"{detail.username}/{detail.slug}",
        action=f"/tasks/new?worker={quote(worker, safe='')}",
        status=status,
    )


@router.get("/tasks/new")
def new_task_form(request: Request, viewer: SignedIn, worker: WorkerId = "") -> Response:
    if worker:
        return _new_page(request, viewer.user_id, worker)
    count, workers = services(request).workers.list_workers(
        viewer.user_id, offset=0, limit=PICKER_SIZE
    )
    return console(request).render(
        request, "task_pick_worker.html", {"workers": workers, "count": count}
    )


@router.post("/tasks/new")
async def create_task(request: Request, viewer: SignedIn, worker: WorkerId = "") -> Response:
    form = await console(request).form(request)
    svc = services(request)
    if not worker:
        return redirect("/tasks/new")

    def create() -> Response:
        schema = svc.workers.input_schema(viewer.user_id, worker)
        value, inputs = read_input(schema, form)
        fields, task = read_task(form)
        if _precheck(svc, schema, value, fields, task, inputs):
            try:
                slug = svc.tasks.create(
                    viewer.user_id,
                    worker_id=worker,
                    title=fields.pop("title"),
                    description=fields.pop("description"),
                    input=value,
                    **fields,
                )
                return redirect(f"/tasks/{slug}?saved=1")
            except InvalidInput as exc:
                _refusal(task, inputs, list(exc.details or [exc.message]))
        return _new_page(request, viewer.user_id, worker, task, inputs, status=422)

    return await anyio.to_thread.run_sync(create)


# --- edit ----------------------------------------------------------------------------------


def _edit_page(
    request: Request,
    user_id: int,
    record: TaskRecord,
    task: TaskForm | None = None,
    inputs: InputForm | None = None,
    *,
    saved: bool = False,
    status: int = 200,
) -> Response:
    if inputs is None:
        inputs = input_form(_task_schema(services(request), user_id, record), record.input)
    return _form_page(
        request,
        task=task or TaskForm.of(record),
        inputs=inputs,
        worker_title=record.worker_title,
        worker_path=record.worker_path,
        action=f"/tasks/{record.slug}",
        record=record,
        saved=saved,
        status=status,
    )


@router.get("/tasks/{slug}")
def edit_task_form(
    request: Request, slug: str, viewer: SignedIn, saved: Annotated[str, Query(max_length=5)] = ""
) -> Response:
    record = services(request).tasks.get(viewer.user_id, slug)
    return _edit_page(request, viewer.user_id, record, saved=saved == "1")


@router.post("/tasks/{slug}")
async def update_task(request: Request, slug: str, viewer: SignedIn) -> Response:
    form = await console(request).form(request)
    svc = services(request)

    def save() -> Response:
        record = svc.tasks.get(viewer.user_id, slug)
        schema = _task_schema(svc, viewer.user_id, record)
        saved_system = (record.input.get("parameters") or {}).get("system")
        value, inputs = read_input(schema, form, saved_system)
        fields, task = read_task(form)
        # The service has no dry run: everything is checked here first, so a refused input
        # never follows a saved title and schedule.
        if not _precheck(svc, schema, value, fields, task, inputs):
            return _edit_page(request, viewer.user_id, record, task, inputs, status=422)
        try:
            svc.tasks.update(viewer.user_id, slug, fields)
        except InvalidInput as exc:
            _refusal(task, inputs, list(exc.details or [exc.message]))
            return _edit_page(request, viewer.user_id, record, task, inputs, status=422)
        try:
            svc.tasks.update_input(viewer.user_id, slug, value)
        except InvalidInput as exc:
            # Only a change between the check above and here (a worker version gone) gets
            # here; say plainly what was kept.
            task.problems.setdefault("", []).append(
                "The title, description and schedule were saved; the input was not."
            )
            _refusal(task, inputs, list(exc.details or [exc.message]))
            record = svc.tasks.get(viewer.user_id, slug)
            return _edit_page(request, viewer.user_id, record, task, inputs, status=422)
        return redirect(f"/tasks/{slug}?saved=1")

    return await anyio.to_thread.run_sync(save)


# --- run, delete ---------------------------------------------------------------------------


@router.post("/tasks/{slug}/run")
async def run_task(request: Request, slug: str, viewer: SignedIn) -> Response:
    await console(request).form(request)
    _, run_slug = await anyio.to_thread.run_sync(
        functools.partial(services(request).tasks.run, viewer.user_id, slug, origin="console")
    )
    return redirect(f"/runs/{run_slug}")


def _delete_page(request: Request, user_id: int, slug: str) -> Response:
    record = services(request).tasks.get(user_id, slug)
    return console(request).render(request, "task_delete.html", {"record": record})


@router.get("/tasks/{slug}/delete")
def delete_task_form(request: Request, slug: str, viewer: SignedIn) -> Response:
    return _delete_page(request, viewer.user_id, slug)


@router.post("/tasks/{slug}/delete")
async def delete_task(request: Request, slug: str, viewer: SignedIn) -> Response:
    form = await console(request).form(request)
    svc = services(request)
    if form.get("confirm") != "yes":
        # The edit page's Delete button: ask first, on a page of its own (no script needed).
        return await anyio.to_thread.run_sync(_delete_page, request, viewer.user_id, slug)
    await anyio.to_thread.run_sync(svc.tasks.delete, viewer.user_id, slug)
    return redirect("/tasks?deleted=1")
