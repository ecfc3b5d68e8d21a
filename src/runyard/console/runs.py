"""Runs: the list, a run's page (status, live log, results table, export panel), abort."""

from __future__ import annotations

import time
from typing import Annotated, Any
from urllib.parse import urlencode

import anyio.to_thread
from fastapi import APIRouter, Query, Request
from starlette.responses import JSONResponse, Response

from runyard.console.forms import small_whole
from runyard.console.table import table
from runyard.console.web import (
    ConsoleRoute,
    Limit,
    Offset,
    SignedIn,
    console,
    fragment,
    redirect,
    services,
)
from runyard.formats import FORMATS
from runyard.services import InvalidInput, Window
from runyard.services.runs import FINISHED
from runyard.storage.runlog import LEVEL_NAMES, LogEntry

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)

STATUSES = ("ready", "running", "aborting", "succeeded", "failed")
PAGE_SIZES = (20, 50, 100)
#: Log lines on a run's page; the whole log is a download.
LOG_LINES = 200
DELIMITERS = ((",", "comma"), (";", "semicolon"), ("\t", "tab"), ("|", "pipe"))


@router.get("/runs")
def runs_page(
    request: Request,
    viewer: SignedIn,
    status: str = "",
    worker: Annotated[str, Query(max_length=300)] = "",
    offset: Offset = 0,
    limit: Limit = 20,
) -> Response:
    status = status if status in STATUSES else ""
    count, runs = services(request).runs.list_runs(
        viewer.user_id, offset=offset, limit=limit, status=status or None, worker_id=worker or None
    )
    query = {key: value for key, value in (("status", status), ("worker", worker)) if value}
    context = {
        "runs": runs,
        "count": count,
        "status": status,
        "worker": worker,
        "statuses": STATUSES,
        "offset": offset,
        "limit": limit,
        "page_base": "/runs?" + urlencode(query) + ("&" if query else ""),
        "refresh_url": "/runs?" + urlencode({**query, "offset": offset, "limit": limit}),
    }
    template = "_runs_table.html" if fragment(request) else "runs.html"
    return console(request).render(request, template, context)


def _log_lines(entries: list[LogEntry]) -> list[str]:
    return [
        f"{time.strftime('%H:%M:%S', time.gmtime(e.timestamp / 1000))} "
        f"{LEVEL_NAMES.get(e.type, 'INFO'):5} {e.content}"
        for e in entries
    ]


def _window(offset: int, limit: int, row: str) -> tuple[int, int]:
    """The page to show: ``row`` (1-based, from "Go to row"; blank when not asked) wins."""
    limit = min(PAGE_SIZES, key=lambda size: abs(size - limit))
    number = small_whole(row.strip(), digits=12)
    if number is not None:
        offset = (max(number, 1) - 1) // limit * limit
    return offset, limit


def _run_context(
    request: Request,
    user_id: int,
    slug: str,
    offset: int,
    limit: int,
    parts: frozenset[str],
) -> dict[str, Any]:
    """What the run page (or the ``parts`` of it a script asks for) shows."""
    svc = services(request)
    record = svc.runs.get(user_id, slug)
    context: dict[str, Any] = {
        "run": record,
        "finished": record.status in FINISHED,
        "offset": offset,
        "limit": limit,
    }
    if "log" in parts:
        view = svc.logs.view(
            user_id, slug, None, svc.settings.public_url or str(request.base_url), count=LOG_LINES
        )
        context.update(log=_log_lines(view.list), log_url=view.all_logs_url, log_limit=LOG_LINES)
    if "results" in parts or "export" in parts:
        page = svc.results.page(user_id, slug, Window.from_query(offset, limit))
        if offset and offset >= page.count:
            # Past the end (a stale link, a row number too large): the last page instead.
            offset = max(page.count - 1, 0) // limit * limit
            page = svc.results.page(user_id, slug, Window.from_query(offset, limit))
        columns, rows = table(page.headers_json, page.rows)
        context.update(
            offset=offset,
            count=page.count,
            columns=columns,
            table=rows,
            page_sizes=PAGE_SIZES,
            page_base=f"/runs/{slug}?",
            formats=FORMATS,
            delimiters=DELIMITERS,
            export={
                "format": "csv",
                "keys": [c["key"] for c in columns],
                "bom": True,
                "delimiter": ",",
                "url": "",
                "problem": "",
            },
        )
    return context


ALL_PARTS = frozenset({"summary", "log", "results", "export"})
FRAGMENTS = {"summary": "_run_summary.html", "log": "_run_log.html", "results": "_results.html"}


@router.get("/runs/{slug}")
def run_page(
    request: Request,
    slug: str,
    viewer: SignedIn,
    offset: Offset = 0,
    limit: Limit = 20,
    row: Annotated[str, Query(max_length=20)] = "",
) -> Response:
    offset, limit = _window(offset, limit, row)
    part = fragment(request) or ""
    template = FRAGMENTS.get(part, "run.html")
    parts = ALL_PARTS if template == "run.html" else frozenset({part})
    context = _run_context(request, viewer.user_id, slug, offset, limit, parts)
    return console(request).render(request, template, context)


@router.post("/runs/{slug}/abort")
async def abort_run(request: Request, slug: str, viewer: SignedIn) -> Response:
    await console(request).form(request)
    await anyio.to_thread.run_sync(services(request).launcher.abort, viewer.user_id, slug)
    return redirect(f"/runs/{slug}")


@router.post("/runs/{slug}/export")
async def export_run(request: Request, slug: str, viewer: SignedIn) -> Response:
    cons = console(request)
    form = await cons.form(request)
    svc = services(request)
    fmt = form.get("format")
    fmt = fmt if isinstance(fmt, str) and fmt else "csv"
    keys = [k for k in form.getlist("keys") if isinstance(k, str)]
    bom = form.get("bom") is not None
    delimiter = form.get("delimiter")
    delimiter = delimiter if isinstance(delimiter, str) and delimiter else ","
    wants_json = "application/json" in request.headers.get("accept", "")

    def make() -> dict[str, Any]:
        # A script only needs the link: the page's other parts are read for a page reply only.
        parts = frozenset({"export"}) if wants_json else ALL_PARTS
        context = _run_context(request, viewer.user_id, slug, 0, 20, parts)
        all_keys = [c["key"] for c in context["columns"]]
        export = {"format": fmt, "keys": keys, "bom": bom, "delimiter": delimiter}
        problem, url = "", ""
        if all_keys and not keys:
            problem = "Tick at least one field to export."
        else:
            try:
                url = svc.exports.request(
                    viewer.user_id,
                    slug,
                    fmt=fmt,
                    # Every field ticked: the export follows the run's columns, as the API does.
                    filter_keys=None if keys == all_keys else keys,
                    base_url=svc.settings.public_url or str(request.base_url),
                    bom=bom,
                    delimiter=delimiter,
                )
            except InvalidInput as exc:
                problem = "; ".join([exc.message, *(exc.details or ())])
        context["export"] = {**export, "url": url, "problem": problem}
        return context

    context = await anyio.to_thread.run_sync(make)
    export = context["export"]
    if wants_json:
        status = 422 if export["problem"] else 200
        return JSONResponse(
            {"download_url": export["url"], "problem": export["problem"]}, status_code=status
        )
    return cons.render(request, "run.html", context, status_code=422 if export["problem"] else 200)
