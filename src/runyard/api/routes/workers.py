"""Workers (spec §4): list, the public store, detail, input schema, new versions (Ext)."""

from __future__ import annotations

from typing import Annotated

import anyio.to_thread
from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile

from runyard.api.auth import caller, optional_caller, services
from runyard.api.envelope import JSONBytes, ok
from runyard.api.paging import PageWindow, paged
from runyard.api.routes.results import WorkerId
from runyard.api.schemas import InputSchema, VersionRegistered, WorkerDetail, WorkerList, responses

router = APIRouter(tags=["workers"])
UserId = Annotated[int, Depends(caller)]


@router.get(
    "/workers",
    summary="List your workers",
    response_class=JSONBytes,
    responses=responses(WorkerList),
)
def list_workers(
    request: Request,
    user_id: UserId,
    window: PageWindow,
    keyword: Annotated[str | None, Query(description="matches title, slug or path")] = None,
) -> JSONBytes:
    count, workers = services(request).workers.list_workers(
        user_id, offset=window.start, limit=window.size, keyword=keyword
    )
    return paged(request, window, count, workers, key="scraper")


@router.get(
    "/store",
    summary="List published workers (public)",
    response_class=JSONBytes,
    responses=responses(WorkerList, public=True),
)
def list_store(
    request: Request,
    window: PageWindow,
    keyword: Annotated[str | None, Query(description="matches title, slug or path")] = None,
) -> JSONBytes:
    count, workers = services(request).workers.list_public(
        offset=window.start, limit=window.size, keyword=keyword
    )
    return paged(request, window, count, workers, key="scraper")


@router.get(
    "/workers/{workerId}",
    summary="Get worker",
    response_class=JSONBytes,
    responses=responses(WorkerDetail),
)
def get_worker(request: Request, workerId: WorkerId, user_id: UserId) -> JSONBytes:
    return ok(request, services(request).workers.detail(user_id, workerId))


@router.get(
    "/workers/{workerId}/input-schema",
    summary="Get worker input schema (public)",
    response_class=JSONBytes,
    responses=responses(InputSchema),
)
def get_input_schema(
    request: Request,
    workerId: WorkerId,
    user_id: Annotated[int | None, Depends(optional_caller)],
) -> JSONBytes:
    schema = services(request).workers.input_schema(user_id, workerId)
    return ok(request, {"input_schema": schema})


@router.post(
    "/workers/{workerId}/versions",
    summary="Upload a new worker version (ZIP)",
    response_class=JSONBytes,
    responses=responses(VersionRegistered, 400),
)
async def upload_version(
    request: Request,
    workerId: WorkerId,
    user_id: UserId,
    scraper_file: Annotated[UploadFile, File(description="The worker directory as a ZIP")],
    title: Annotated[str | None, Form()] = None,
    description: Annotated[str | None, Form()] = None,
    version: Annotated[str | None, Form(description="Default: worker.json, else next")] = None,
) -> JSONBytes:
    svc = services(request)
    done = await anyio.to_thread.run_sync(
        lambda: svc.workers.register_upload(
            user_id,
            workerId,
            scraper_file.file,
            version=version,
            title=title,
            description=description,
        )
    )
    return ok(request, {"slug": done.slug, "version": done.version})
