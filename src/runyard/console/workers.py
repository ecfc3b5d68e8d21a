"""Workers: the list, and the start-run form built from a worker's ``input_schema.json``."""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Request
from starlette.responses import Response

from runyard.console.inputs import RUN_OPTIONS, InputForm, input_form, read_input, refused
from runyard.console.web import ConsoleRoute, Offset, SignedIn, console, redirect, services
from runyard.services import InvalidInput

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)


@router.get("/workers")
def workers_page(request: Request, viewer: SignedIn, offset: Offset = 0) -> Response:
    limit = 50
    count, workers = services(request).workers.list_workers(
        viewer.user_id, offset=offset, limit=limit
    )
    return console(request).render(
        request,
        "workers.html",
        {
            "workers": workers,
            "count": count,
            "offset": offset,
            "limit": limit,
            "page_base": "/workers?",
        },
    )


def form_context(request: Request, form: InputForm) -> dict[str, Any]:
    """What ``_input_form.html`` needs besides the form."""
    return {
        "form": form,
        "run_options": RUN_OPTIONS,
        "default_timeout": services(request).settings.run_timeout_seconds,
    }


def _start_page(
    request: Request, user_id: int, worker_id: str, form: InputForm | None, status: int = 200
) -> Response:
    svc = services(request)
    detail = svc.workers.detail(user_id, worker_id)
    schema = svc.workers.input_schema(user_id, worker_id)
    return console(request).render(
        request,
        "start_run.html",
        {
            "worker": detail,
            "worker_id": worker_id,
            "description": schema.get("description") if isinstance(schema, dict) else "",
            **form_context(request, form or input_form(schema)),
        },
        status_code=status,
    )


@router.get("/workers/{worker_id}/run")
def start_form(request: Request, worker_id: str, viewer: SignedIn) -> Response:
    return _start_page(request, viewer.user_id, worker_id, None)


@router.post("/workers/{worker_id}/run")
async def start_run(request: Request, worker_id: str, viewer: SignedIn) -> Response:
    form = await console(request).form(request)
    svc = services(request)

    def start() -> Response:
        schema = svc.workers.input_schema(viewer.user_id, worker_id)
        value, shown = read_input(schema, form)
        if not shown.has_problems:
            try:
                _, slug = svc.launcher.start(
                    viewer.user_id, worker_id, input=value, origin="console"
                )
                return redirect(f"/runs/{slug}")
            except InvalidInput as exc:
                shown = refused(shown, exc)
        return _start_page(request, viewer.user_id, worker_id, shown, status=422)

    return await anyio.to_thread.run_sync(start)
