"""The two seed endpoints — list and export a run's results — and their ``last`` forms."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, Path, Query, Request

from runyard.api.auth import caller, services
from runyard.api.envelope import JSONBytes, ok, request_id
from runyard.api.schemas import ExportLink, ResultPage, responses
from runyard.services import ResultPage as ResultPageData
from runyard.services import Window
from runyard.services.runs import LAST

router = APIRouter(tags=["results"])

RunId = Annotated[
    str,
    Path(
        description="Run slug returned as `data.run_slug` from start or rerun responses; "
        "`last` is your newest run."
    ),
]
WorkerId = Annotated[str, Path(description="The worker's slug, or its path `owner~name`.")]
Offset = Annotated[int, Query(ge=0, description="Pagination offset, starting from 0.")]
Limit = Annotated[int, Query(ge=1, description="Page size; capped at 100.")]
Format = Annotated[
    str, Query(description="csv, json, jsonl, xlsx, xls, xml, html or rss (any case).")
]
FilterKeys = Annotated[
    str | None,
    Query(description="Comma-separated field keys to export, in this order, e.g. `title,url`."),
]
Bom = Annotated[bool, Query(description="CSV only: start with a UTF-8 byte-order mark.")]
Delimiter = Annotated[str, Query(description="CSV only: the one-character field delimiter.")]
UserId = Annotated[int, Depends(caller)]

PAGE = {
    "response_class": JSONBytes,
    "responses": responses(ResultPage),
    "tags": ["results"],
}
EXPORT = {
    "response_class": JSONBytes,
    "responses": responses(ExportLink),
    "tags": ["results"],
}


def page_bytes(page: ResultPageData) -> bytes:
    """The ``data`` object of a result page, with the rows spliced in as stored text."""
    return b"".join(
        (
            b'{"count":',
            str(page.count).encode(),
            b',"headers":',
            page.headers_json.encode(),
            b',"list":[',
            ",".join(page.rows).encode(),
            b'],"page_index":',
            str(page.page_index).encode(),
            b',"page_size":',
            str(page.page_size).encode(),
            b"}",
        )
    )


def envelope_bytes(request: Request, data: bytes) -> JSONBytes:
    """The success envelope around ``data`` that is already JSON."""
    return JSONBytes(
        b'{"code":0,"message":"success","data":%b,"request_id":%b}'
        % (data, orjson.dumps(request_id(request)))
    )


def result_page(
    request: Request, user_id: int, run: str, worker: str | None, offset: int, limit: int
) -> bytes:
    svc = services(request)
    window = Window.from_query(offset, limit, svc.settings.offset_mode)
    return page_bytes(svc.results.page(user_id, run, window, worker))


def _page(
    request: Request, user_id: int, run: str, worker: str | None, offset: int, limit: int
) -> JSONBytes:
    # Called inline from ``async`` routes on purpose: the work is a few indexed reads of well
    # under a millisecond, cheaper than a hop to the thread pool, and the rows are spliced into
    # the reply as stored text, never decoded (DESIGN §2).
    return envelope_bytes(request, result_page(request, user_id, run, worker, offset, limit))


@dataclass(frozen=True)
class ExportQuery:
    format: str
    filter_keys: str | None
    bom: bool
    delimiter: str


def _export_query(
    format: Format = "csv",
    filter_keys: FilterKeys = None,
    bom: Bom = True,
    delimiter: Delimiter = ",",
) -> ExportQuery:
    return ExportQuery(format, filter_keys, bom, delimiter)


# The three export routes take the same query: one dependency declares it (off the hot path).
ExportParams = Annotated[ExportQuery, Depends(_export_query)]


def _export(
    request: Request, user_id: int, run: str, worker: str | None, query: ExportQuery
) -> JSONBytes:
    svc = services(request)
    url = svc.exports.request(
        user_id,
        run,
        worker_id=worker,
        fmt=query.format,
        filter_keys=query.filter_keys,
        base_url=svc.settings.public_url or str(request.base_url),
        bom=query.bom,
        delimiter=query.delimiter,
    )
    return ok(request, {"download_url": url})


@router.get("/worker-runs/{runId}/result", summary="List worker run results", **PAGE)  # type: ignore[arg-type]
async def list_results(
    request: Request, runId: RunId, user_id: UserId, offset: Offset = 0, limit: Limit = 20
) -> JSONBytes:
    return _page(request, user_id, runId, None, offset, limit)


@router.get(
    "/workers/{workerId}/runs/last/result",
    summary="List the results of your newest run of a worker",
    **PAGE,  # type: ignore[arg-type]
)
async def list_worker_last_results(
    request: Request, workerId: WorkerId, user_id: UserId, offset: Offset = 0, limit: Limit = 20
) -> JSONBytes:
    return _page(request, user_id, LAST, workerId, offset, limit)


@router.get("/worker-runs/{runId}/result/export", summary="Export worker run results", **EXPORT)  # type: ignore[arg-type]
def export_results(
    request: Request, runId: RunId, user_id: UserId, query: ExportParams
) -> JSONBytes:
    return _export(request, user_id, runId, None, query)


@router.get("/worker-runs/last/export", summary="Export your newest run's results", **EXPORT)  # type: ignore[arg-type]
def export_last(request: Request, user_id: UserId, query: ExportParams) -> JSONBytes:
    return _export(request, user_id, LAST, None, query)


@router.get(
    "/workers/{workerId}/runs/last/export",
    summary="Export the results of your newest run of a worker",
    **EXPORT,  # type: ignore[arg-type]
)
def export_worker_last(
    request: Request, workerId: WorkerId, user_id: UserId, query: ExportParams
) -> JSONBytes:
    return _export(request, user_id, LAST, workerId, query)
