"""Saved tasks (spec §6): create, list, read, change, delete, their input, and running one."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from runyard.api.auth import caller, services
from runyard.api.envelope import JSONBytes, ok
from runyard.api.paging import PageWindow, paged
from runyard.api.routes.runs import (
    INPUT_EXAMPLE,
    STARTED_RESPONSES,
    STRICT_BODY,
    RunWindow,
    start_and_reply,
)
from runyard.api.schemas import (
    Empty,
    TaskCreated,
    TaskInput,
    TaskList,
    TaskRecord,
    link,
    responses,
)

router = APIRouter(tags=["tasks"])
UserId = Annotated[int, Depends(caller)]
TaskId = Annotated[str, Path(description="The task slug returned by create.")]


class _TaskFields(BaseModel):
    model_config = STRICT_BODY

    description: str | None = None
    schedule_enabled: int | None = Field(None, description="0 or 1")
    schedule_type: int | None = Field(None, description="1 daily, 2 weekly, 3 monthly, 4 once")
    schedule_time: str | None = Field(None, description="HH:mm, in the server's time zone")
    schedule_weekday: int | None = Field(None, description="1 Monday … 7 Sunday")
    schedule_day: int | None = Field(None, description="1–31; past a month's end, its last day")
    schedule_once_date: str | None = Field(None, description="YYYY-MM-DD")


class TaskChange(_TaskFields):
    """The fields an update may change; every one is optional."""

    title: str | None = None


class TaskCreate(_TaskFields):
    model_config = ConfigDict(
        **STRICT_BODY,
        json_schema_extra={
            "examples": [
                {
                    "worker_id": "sample-data",
                    "title": "Weekly sample",
                    "input": INPUT_EXAMPLE,
                    "schedule_enabled": 1,
                    "schedule_type": 2,
                    "schedule_weekday": 1,
                    "schedule_time": "06:30",
                }
            ]
        },
    )

    worker_id: str = Field(description="The worker's slug or path owner~name")
    title: str
    input: dict[str, Any] = Field(description='{"parameters": {"custom": {...}, "system": {...}}}')
    version: str | None = Field(None, description="A registered version, or `latest`")


class TaskInputChange(BaseModel):
    model_config = ConfigDict(
        **STRICT_BODY,
        json_schema_extra={"examples": [{"input": INPUT_EXAMPLE, "version": "latest"}]},
    )

    input: dict[str, Any]
    version: str | None = Field(None, description="Default: the task's version as it is")


_NEW_TASK = {"workerTaskId": "$response.body#/data/slug"}
TASK_PATH = "/worker-tasks/{workerTaskId}"
#: What can be done with a task just created.
TASK_LINKS = {
    "GetTask": link(TASK_PATH, "GET", "The new task", **_NEW_TASK),
    "UpdateTask": link(TASK_PATH, "PUT", "Change the new task", **_NEW_TASK),
    "DeleteTask": link(TASK_PATH, "DELETE", "Delete the new task", **_NEW_TASK),
    "GetTaskInput": link(TASK_PATH + "/input", "GET", "The new task's input", **_NEW_TASK),
    "UpdateTaskInput": link(TASK_PATH + "/input", "PUT", "Change its input", **_NEW_TASK),
    "RunTask": link(TASK_PATH + "/runs", "POST", "Run the new task", **_NEW_TASK),
}


@router.post(
    "/worker-tasks",
    summary="Create a worker task",
    response_class=JSONBytes,
    responses=responses(TaskCreated, 400, links=TASK_LINKS),
)
def create_task(request: Request, user_id: UserId, body: TaskCreate) -> JSONBytes:
    fields = body.model_dump(exclude_unset=True)
    slug = services(request).tasks.create(
        user_id,
        worker_id=fields.pop("worker_id"),
        title=fields.pop("title"),
        input=fields.pop("input"),
        description=fields.pop("description", None),
        version=fields.pop("version", None),
        **fields,
    )
    return ok(request, {"slug": slug})


@router.get(
    "/worker-tasks",
    summary="List worker tasks",
    response_class=JSONBytes,
    responses=responses(TaskList),
)
def list_tasks(
    request: Request,
    user_id: UserId,
    window: PageWindow,
    worker_id: Annotated[str | None, Query(description="slug or owner~slug")] = None,
    keyword: Annotated[str | None, Query(description="matches the title")] = None,
) -> JSONBytes:
    count, records = services(request).tasks.list_tasks(
        user_id, offset=window.start, limit=window.size, worker_id=worker_id, keyword=keyword
    )
    return paged(request, window, count, [asdict(r) for r in records])


@router.get(
    "/worker-tasks/{workerTaskId}",
    summary="Get worker task",
    response_class=JSONBytes,
    responses=responses(TaskRecord),
)
def get_task(request: Request, workerTaskId: TaskId, user_id: UserId) -> JSONBytes:
    return ok(request, asdict(services(request).tasks.get(user_id, workerTaskId)))


@router.put(
    "/worker-tasks/{workerTaskId}",
    summary="Update worker task",
    response_class=JSONBytes,
    responses=responses(Empty, 400),
)
def update_task(
    request: Request, workerTaskId: TaskId, user_id: UserId, body: TaskChange
) -> JSONBytes:
    services(request).tasks.update(user_id, workerTaskId, body.model_dump(exclude_unset=True))
    return ok(request, {})


@router.delete(
    "/worker-tasks/{workerTaskId}",
    summary="Delete worker task",
    response_class=JSONBytes,
    responses=responses(Empty),
)
def delete_task(request: Request, workerTaskId: TaskId, user_id: UserId) -> JSONBytes:
    services(request).tasks.delete(user_id, workerTaskId)
    return ok(request, {})


@router.get(
    "/worker-tasks/{workerTaskId}/input",
    summary="Get worker task input",
    response_class=JSONBytes,
    responses=responses(TaskInput),
)
def get_task_input(request: Request, workerTaskId: TaskId, user_id: UserId) -> JSONBytes:
    return ok(request, services(request).tasks.get_input(user_id, workerTaskId))


@router.put(
    "/worker-tasks/{workerTaskId}/input",
    summary="Update worker task input",
    response_class=JSONBytes,
    responses=responses(Empty, 400),
)
def update_task_input(
    request: Request, workerTaskId: TaskId, user_id: UserId, body: TaskInputChange
) -> JSONBytes:
    services(request).tasks.update_input(user_id, workerTaskId, body.input, body.version)
    return ok(request, {})


@router.post(
    "/worker-tasks/{workerTaskId}/runs",
    summary="Run worker task",
    response_class=JSONBytes,
    responses=STARTED_RESPONSES,
)
async def run_task(
    request: Request,
    workerTaskId: TaskId,
    user_id: UserId,
    body: Annotated[RunWindow | None, Body()] = None,
) -> Any:
    body = body or RunWindow()
    tasks = services(request).tasks
    return await start_and_reply(
        request,
        user_id,
        body,
        lambda: tasks.run(user_id, workerTaskId, callback_url=body.callback_url),
    )
