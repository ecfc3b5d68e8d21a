"""``GET /worker-runs/{runId}`` — the run record a client checks before exporting."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from runyard.api.auth import caller, services
from runyard.api.envelope import JSONBytes, ok
from runyard.api.schemas import RunRecord, responses

router = APIRouter(tags=["runs"])


@router.get(
    "/worker-runs/{runId}",
    summary="Get worker run",
    response_class=JSONBytes,
    responses=responses(RunRecord, 401, 404),
)
def get_run(
    request: Request,
    runId: str,
    user_id: int = Depends(caller),
) -> JSONBytes:
    return ok(request, services(request).runs.get(user_id, runId))
