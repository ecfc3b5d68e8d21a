"""The API key, taken from ``Authorization: Bearer``, then ``api-key``, then ``?token=``."""

from __future__ import annotations

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, APIKeyQuery, HTTPAuthorizationCredentials, HTTPBearer

from runyard.services import Services, Unauthenticated

# Declared as security schemes so /openapi.json shows the three transports; none of them
# raises on its own, the order of preference is decided below.
_bearer = HTTPBearer(auto_error=False, description="Preferred: `Authorization: Bearer <key>`")
_header = APIKeyHeader(name="api-key", auto_error=False, description="Legacy header")
_query = APIKeyQuery(name="token", auto_error=False, description="Query token")


def services(request: Request) -> Services:
    svc: Services = request.app.state.services
    return svc


async def caller(
    request: Request,
    bearer: HTTPAuthorizationCredentials | None = Depends(_bearer),
    header_key: str | None = Depends(_header),
    query_key: str | None = Depends(_query),
) -> int:
    """The id of the calling user; 401 / 12001 without a key, 401 / 12002 with a bad one.

    ``async`` so that it runs inline: the lookup is one indexed read, far cheaper than the
    thread-pool hop FastAPI makes for a plain ``def`` dependency on every request.
    """
    key = (bearer.credentials if bearer else None) or header_key or query_key
    if not key:
        raise Unauthenticated("authentication required")
    return services(request).accounts.authenticate(key)
