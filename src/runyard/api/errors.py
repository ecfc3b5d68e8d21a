"""Every failure, whatever raised it, leaves as the envelope with the code of spec §1."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from runyard.api.envelope import error
from runyard.services import (
    ConcurrencyLimit,
    ExportFailed,
    InsufficientBalance,
    InvalidInput,
    InvalidToken,
    NotFound,
    ServiceError,
    Unauthenticated,
    UnstorableText,
    VersionNotFound,
    WrongState,
)
from runyard.services.errors import StorageUnavailable

#: Service refusal → (HTTP status, application code).
STATUS: dict[type[ServiceError], tuple[int, int]] = {
    NotFound: (404, 11004),
    InvalidInput: (422, 11000),
    Unauthenticated: (401, 12001),
    InvalidToken: (401, 12002),
    ExportFailed: (500, 10000),
    VersionNotFound: (404, 50003),
    WrongState: (409, 70002),
    InsufficientBalance: (402, 30001),
    ConcurrencyLimit: (429, 30003),
}


def _location(loc: tuple[object, ...]) -> str:
    return ".".join(str(part) for part in loc)


async def _service_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ServiceError)
    status, code = STATUS.get(type(exc), (400, 11000))
    return error(request, status, code, exc.message, exc.details)


async def _unstorable_text(request: Request, exc: Exception) -> Response:
    return error(request, 422, 11000, str(exc))


async def _storage_unavailable(request: Request, exc: Exception) -> Response:
    # A full disk, or a database locked past the retries: nothing of the request was kept
    # and the same request may succeed later. Spec §1's one "try again later" is 429 with
    # Retry-After (13000), which clients already wait out; 500/10000 would say "a bug".
    assert isinstance(exc, StorageUnavailable)
    headers = {"Retry-After": str(exc.retry_after)}
    return error(request, 429, 13000, exc.message, headers=headers)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    if any(e.get("type") == "json_invalid" for e in exc.errors()):
        return error(request, 400, 11000, "malformed request: the body is not valid JSON")
    details = [f"{_location(e['loc'])}: {e['msg']}" for e in exc.errors()]
    return error(request, 422, 11000, "invalid request", details)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code in (404, 405):
        # An unknown route and a known route with the wrong method are the same to a client.
        return error(request, 404, 11004, "not found")
    if exc.status_code == 400:
        return error(request, 400, 11000, "bad request")
    # e.g. 413 or 408 from api/limits.py, whose headers (``Connection: close``) must go out too
    headers = dict(exc.headers) if exc.headers else None
    return error(request, exc.status_code, 11000, str(exc.detail), headers=headers)


def install(app: FastAPI) -> None:
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(UnstorableText, _unstorable_text)
    app.add_exception_handler(StorageUnavailable, _storage_unavailable)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
