"""``GET /worker-runs/{runId}/result`` and ``…/result/export`` — the two seed endpoints."""

from __future__ import annotations

import orjson
from fastapi import APIRouter, Depends, Query, Request

from runyard.api.auth import caller, services
from runyard.api.envelope import JSONBytes, ok, request_id
from runyard.api.schemas import ExportLink, ResultPage, responses
from runyard.services import Services, Window
from runyard.services.exports import csv_options

router = APIRouter(tags=["results"])

RUN_ID = "Run slug returned as `data.run_slug` from start or rerun responses."


@router.get(
    "/worker-runs/{runId}/result",
    summary="List worker run results",
    response_class=JSONBytes,
    responses=responses(ResultPage, 401, 404, 422),
)
async def list_results(
    request: Request,
    runId: str,
    offset: int = Query(0, ge=0, description="Zero-based row offset."),
    limit: int = Query(20, ge=1, description="Page size; capped at 100."),
    user_id: int = Depends(caller),
) -> JSONBytes:
    # ``async`` on purpose: the work is two indexed reads of well under a millisecond, cheaper
    # inline than a hop to the thread pool, and the rows are spliced as stored text (DESIGN §2).
    svc: Services = services(request)
    page = svc.results.page(
        user_id, runId, Window.from_query(offset, limit, svc.settings.offset_mode)
    )
    body = b"".join(
        (
            b'{"code":0,"message":"success","data":{"count":',
            str(page.count).encode(),
            b',"headers":',
            page.headers_json.encode(),
            b',"list":[',
            ",".join(page.rows).encode(),
            b'],"page_index":',
            str(page.page_index).encode(),
            b',"page_size":',
            str(page.page_size).encode(),
            b'},"request_id":',
            orjson.dumps(request_id(request)),
            b"}",
        )
    )
    return JSONBytes(body)


@router.get(
    "/worker-runs/{runId}/result/export",
    summary="Export worker run results",
    response_class=JSONBytes,
    responses=responses(ExportLink, 401, 404, 422),
)
def export_results(
    request: Request,
    runId: str,
    format: str = Query(
        "csv", description="csv, json, jsonl, xlsx, xls, xml, html or rss (case-insensitive)."
    ),
    filter_keys: str | None = Query(
        None, description="Comma-separated field keys to export, in this order."
    ),
    bom: bool = Query(True, description="CSV only: start with a UTF-8 byte-order mark."),
    delimiter: str = Query(",", description="CSV only: the one-character field delimiter."),
    user_id: int = Depends(caller),
) -> JSONBytes:
    svc = services(request)
    options = csv_options(bom, delimiter) if format.strip().lower() == "csv" else None
    url = svc.exports.request(
        user_id,
        runId,
        fmt=format,
        filter_keys=filter_keys,
        base_url=svc.settings.public_url or str(request.base_url),
        options=options,
    )
    return ok(request, {"download_url": url})
