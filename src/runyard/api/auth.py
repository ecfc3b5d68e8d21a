"""The API key, taken from ``Authorization: Bearer``, then ``api-key``, then ``?token=``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from starlette.datastructures import QueryParams
from starlette.types import Scope

from runyard.services import Services, Unauthenticated
from runyard.services.accounts import hash_key

#: The scope state entry naming the key this request proved (``limits.VERIFIED_KEY_HASH``):
#: from then on the key's own rate-limit bucket counts its requests.
VERIFIED_KEY_HASH = "verified_key_hash"
#: The scope state entry holding the hash of the key an API request carries (None: no key),
#: put there by the rate limiter, which has read and hashed it already.
CLAIMED_KEY_HASH = "claimed_key_hash"

#: The three transports, as OpenAPI security schemes (documented, resolved by ``caller``).
SECURITY_SCHEMES: dict[str, dict[str, Any]] = {
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "Preferred: `Authorization: Bearer <key>`",
    },
    "apiKeyHeader": {"type": "apiKey", "in": "header", "name": "api-key"},
    "tokenQuery": {"type": "apiKey", "in": "query", "name": "token"},
}


def services(request: Request) -> Services:
    svc: Services = request.app.state.services
    return svc


def _bearer(value: str | None) -> str | None:
    if value:
        scheme, _, credentials = value.partition(" ")
        if scheme.lower() == "bearer" and credentials.strip():
            return credentials.strip()
    return None


def key_of(request: Request) -> str | None:
    """The key the request carries, if any."""
    return key_in(request.scope)


def key_in(scope: Scope) -> str | None:
    """``key_of`` on the raw ASGI scope: the rate limiter reads it there, before any route,
    on every request — so without building a ``Request``."""
    authorization = api_key = None
    for name, value in scope["headers"]:
        if name == b"authorization":
            authorization = value if authorization is None else authorization
        elif name == b"api-key":
            api_key = value if api_key is None else api_key
    query: bytes = scope["query_string"]
    return (
        _bearer(authorization.decode("latin-1") if authorization is not None else None)
        or (api_key.decode("latin-1") if api_key is not None else None)
        # Parsing the query costs a result page more than the rest of this: only when it may
        # hold a token (QueryParams decodes ``%74oken`` too, hence the ``%``).
        or (QueryParams(query).get("token") if _may_hold_token(query) else None)
    )


def _may_hold_token(query: bytes) -> bool:
    if not query:
        return False
    lowered = query.lower()
    return b"token" in lowered or b"%" in lowered


async def caller(request: Request) -> int:
    """The id of the calling user; 401 / 12001 without a key, 401 / 12002 with a bad one.

    One plain dependency reading the headers itself: FastAPI's security classes cost a nested
    dependency each, a measurable share of a result page. ``async`` so that it runs inline —
    the lookup is one indexed read, far cheaper than the thread-pool hop FastAPI makes for a
    plain ``def`` dependency.
    """
    digest = _claimed(request)
    if digest is None:
        raise Unauthenticated("authentication required")
    return _authenticate(request, digest)


async def optional_caller(request: Request) -> int | None:
    """For public endpoints: the caller when a key is given (a bad key is still refused)."""
    digest = _claimed(request)
    return _authenticate(request, digest) if digest is not None else None


def _claimed(request: Request) -> str | None:
    """The hash of the request's key, if it has one: the rate limiter's, when it ran."""
    state = request.scope.get("state")
    if state is not None and CLAIMED_KEY_HASH in state:
        digest: str | None = state[CLAIMED_KEY_HASH]
        return digest
    key = key_of(request)
    return hash_key(key) if key else None


def _authenticate(request: Request, digest: str) -> int:
    user_id = services(request).accounts.authenticate_hash(digest)
    setattr(request.state, VERIFIED_KEY_HASH, digest)
    return user_id


def document_security(app: FastAPI, is_public: Callable[[str], bool]) -> None:
    """Declare the key transports in /openapi.json for every route but the public ones."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            schema.setdefault("components", {})["securitySchemes"] = SECURITY_SCHEMES
            requirement: list[dict[str, list[str]]] = [{name: []} for name in SECURITY_SCHEMES]
            for path, operations in schema["paths"].items():
                if not is_public(path):
                    for operation in operations.values():
                        operation["security"] = requirement
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
