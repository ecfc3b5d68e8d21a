"""Runs (spec §3): start, list, detail, log, abort and rerun — each ``last`` form included."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Annotated, Any

import anyio.to_thread
import orjson
from fastapi import APIRouter, Body, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict

from runyard.api.auth import caller, services
from runyard.api.envelope import JSONBytes, ok
from runyard.api.paging import PageWindow, paged
from runyard.api.routes.results import RunId, WorkerId, envelope_bytes, result_page
from runyard.api.schemas import (
    Empty,
    RunList,
    RunLog,
    RunRecord,
    RunStarted,
    SyncRun,
    link,
    responses,
)
from runyard.services.errors import StorageUnavailable
from runyard.services.paging import Window
from runyard.services.runs import LAST

log = logging.getLogger("runyard.api")
router = APIRouter(tags=["runs"])
UserId = Annotated[int, Depends(caller)]
#: How often a synchronous start looks at its run.
SYNC_POLL_SECONDS = 0.25
#: Unix seconds beyond any real date (year 33658) and inside every database's integer.
MAX_TIME = 10**12
#: The status fields of a run no read has seen yet: committed ``ready`` by its start.
JUST_STARTED: dict[str, Any] = {
    "run_status": "ready",
    "error_message": "",
    "execution_start_timestamp": 0,
    "execution_end_timestamp": 0,
    "running_duration": 0,
    "result_message": "",
}


#: Request bodies: unknown fields refused (spec §1), and no coercion — ``false`` or ``"5"``
#: where the schema says integer is a 422, not a silent 0 or 5.
STRICT_BODY = ConfigDict(extra="forbid", strict=True)


class RunWindow(BaseModel):
    model_config = STRICT_BODY

    callback_url: str | None = Field(None, description="POSTed after each status change (§5)")
    is_async: bool = Field(True, description="false: wait for the run (capped, default 300 s)")
    limit: int = Field(20, ge=1, description="Result window of a synchronous reply (max 100)")
    offset: int = Field(0, ge=0, description="Result window of a synchronous reply")


#: A worker input as the README shows it, for the examples of /openapi.json.
INPUT_EXAMPLE: JsonDict = {
    "parameters": {"custom": {"count": 5000}, "system": {"execute_limit_time_seconds": 600}}
}


class StartRun(RunWindow):
    model_config = ConfigDict(
        **STRICT_BODY,
        json_schema_extra={"examples": [{"input": INPUT_EXAMPLE, "version": "latest"}]},
    )

    input: dict[str, Any] = Field(
        default_factory=dict,
        description='{"parameters": {"custom": {...worker fields...}, "system": {...}}}',
    )
    version: str | None = Field(None, description="A registered version, or `latest`")


_NEW_RUN = {"runId": "$response.body#/data/run_slug"}
#: The replies of every route that starts a run (start, rerun, run a task), linked to what
#: can be done with the new run.
STARTED_RESPONSES = responses(
    RunStarted | SyncRun,  # type: ignore[arg-type]
    starts_runs=True,
    links={
        "GetRun": link("/worker-runs/{runId}", "GET", "The new run's record", **_NEW_RUN),
        "ListRunResults": link(
            "/worker-runs/{runId}/result", "GET", "The new run's rows", **_NEW_RUN
        ),
        "ExportRunResults": link(
            "/worker-runs/{runId}/result/export", "GET", "Export the new run's rows", **_NEW_RUN
        ),
        "GetRunLog": link("/worker-runs/{runId}/log", "GET", "The new run's log", **_NEW_RUN),
        "AbortRun": link("/worker-runs/{runId}/abort", "POST", "Abort the new run", **_NEW_RUN),
        "RerunRun": link("/worker-runs/{runId}/rerun", "POST", "Run it again", **_NEW_RUN),
    },
)


async def start_and_reply(
    request: Request, user_id: int, body: RunWindow, start: Callable[[], tuple[int, str]]
) -> Any:
    """Start a run with ``start`` (off the event loop), then reply as spec §3 says: the run's
    slug, or — with ``is_async: false`` — its outcome and a result page once it has finished
    or the wait has run out."""
    run_id, slug = await anyio.to_thread.run_sync(start)
    if body.is_async:
        return ok(request, {"run_slug": slug})
    svc = services(request)
    deadline = time.monotonic() + svc.settings.sync_wait_seconds
    finished, status = False, dict(JUST_STARTED)
    try:
        while True:
            finished, status = await anyio.to_thread.run_sync(svc.launcher.outcome, run_id)
            if finished or time.monotonic() >= deadline:
                break
            await asyncio.sleep(SYNC_POLL_SECONDS)
        page = await anyio.to_thread.run_sync(
            result_page, request, user_id, slug, None, body.offset, body.limit
        )
    except StorageUnavailable as exc:
        # The run is committed: a 429 would have clients (runyard.client included) send the
        # start again and run, and charge, twice. The reply a wait that ran out gets instead,
        # with no rows, and the client looks at the run by its slug.
        log.warning("run %s: its synchronous wait ended early: %s", slug, exc)
        window = Window.from_query(body.offset, body.limit, svc.settings.offset_mode)
        finished = False
        page = orjson.dumps(
            {
                "count": 0,
                "headers": [],
                "list": [],
                "page_index": window.page_index,
                "page_size": window.size,
            }
        )
    head = orjson.dumps({"run_slug": slug, **status, "is_finished": finished})
    return envelope_bytes(request, head[:-1] + b',"results":' + page + b"}")


@router.post(
    "/workers/{workerId}/runs",
    summary="Start a worker run",
    response_class=JSONBytes,
    responses=STARTED_RESPONSES,
)
async def start_run(
    request: Request,
    workerId: WorkerId,
    user_id: UserId,
    body: Annotated[StartRun | None, Body()] = None,
) -> Any:
    body = body or StartRun()
    launcher = services(request).launcher
    return await start_and_reply(
        request,
        user_id,
        body,
        lambda: launcher.start(
            user_id,
            workerId,
            input=body.input,
            version=body.version,
            callback_url=body.callback_url,
        ),
    )


@router.get(
    "/worker-runs",
    summary="List worker runs",
    response_class=JSONBytes,
    responses=responses(RunList),
)
def list_runs(
    request: Request,
    user_id: UserId,
    window: PageWindow,
    worker_id: Annotated[str | None, Query(description="slug or owner~slug")] = None,
    status: Annotated[str | None, Query()] = None,
    start_time: Annotated[
        int | None, Query(ge=0, le=MAX_TIME, description="unix seconds, inclusive")
    ] = None,
    end_time: Annotated[
        int | None, Query(ge=0, le=MAX_TIME, description="unix seconds, inclusive")
    ] = None,
) -> JSONBytes:
    count, records = services(request).runs.list_runs(
        user_id,
        offset=window.start,
        limit=window.size,
        worker_id=worker_id,
        status=status,
        start_time=start_time,
        end_time=end_time,
    )
    return paged(request, window, count, records)


# --- the forms of one operation: by run id (``last`` included), newest overall, newest of a
# worker. Each operation is registered on all three paths by ``_three``.

RUN_PATHS = ("/worker-runs/{runId}", "/workers/{workerId}/runs/last")


def _run_detail(request: Request, user_id: int, run: str, worker: str | None) -> JSONBytes:
    return ok(request, services(request).runs.get(user_id, run, worker))


def _run_log(request: Request, user_id: int, run: str, worker: str | None) -> JSONBytes:
    svc = services(request)
    return ok(request, svc.logs.view(user_id, run, worker, _base_url(request)))


def _abort(request: Request, user_id: int, run: str, worker: str | None) -> JSONBytes:
    services(request).launcher.abort(user_id, run, worker)
    return ok(request, {})


def _base_url(request: Request) -> str:
    return services(request).settings.public_url or str(request.base_url)


Handler = Callable[[Request, int, str, str | None], JSONBytes]


def _three(suffix: str, method: str, handler: Handler, summary: str, model: type) -> None:
    """Register ``handler`` on ``/worker-runs/{runId}``, and ``/workers/{workerId}/runs/last``.

    ``/worker-runs/last...`` is the first form with ``runId=last``.
    """

    def by_run(request: Request, runId: RunId, user_id: UserId) -> JSONBytes:
        return handler(request, user_id, runId, None)

    def by_worker(request: Request, workerId: WorkerId, user_id: UserId) -> JSONBytes:
        return handler(request, user_id, LAST, workerId)

    statuses = (409,) if method == "POST" else ()
    for path, endpoint, what in (
        (RUN_PATHS[0], by_run, summary),
        (RUN_PATHS[1], by_worker, f"{summary} (your newest run of a worker)"),
    ):
        router.add_api_route(
            path + suffix,
            endpoint,
            methods=[method],
            summary=what,
            response_class=JSONBytes,
            responses=responses(model, *statuses),
            name=f"{summary} {path}",
        )


_three("", "GET", _run_detail, "Get worker run", RunRecord)
_three("/log", "GET", _run_log, "Get worker run log", RunLog)
_three("/abort", "POST", _abort, "Abort worker run", Empty)


# Rerun takes an optional body, so it is declared apart from ``_three``.
RerunBody = Annotated[RunWindow | None, Body()]


async def _rerun(
    request: Request, user_id: int, run: str, worker: str | None, body: RunWindow | None
) -> Any:
    body = body or RunWindow()
    launcher = services(request).launcher
    return await start_and_reply(
        request,
        user_id,
        body,
        lambda: launcher.rerun(user_id, run, worker, callback_url=body.callback_url),
    )


RERUN = {"response_class": JSONBytes, "responses": STARTED_RESPONSES}


@router.post("/worker-runs/{runId}/rerun", summary="Rerun a worker run", **RERUN)  # type: ignore[arg-type]
async def rerun(request: Request, runId: RunId, user_id: UserId, body: RerunBody = None) -> Any:
    return await _rerun(request, user_id, runId, None, body)


@router.post(
    "/workers/{workerId}/runs/last/rerun",
    summary="Rerun your newest run of a worker",
    **RERUN,  # type: ignore[arg-type]
)
async def rerun_worker_last(
    request: Request, workerId: WorkerId, user_id: UserId, body: RerunBody = None
) -> Any:
    return await _rerun(request, user_id, LAST, workerId, body)
