"""The FastAPI application: thin routes over ``runyard.services``."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import FastAPI

from runyard import __version__
from runyard.api import errors
from runyard.api.auth import document_security
from runyard.api.limits import LimitsMiddleware
from runyard.api.request_id import RequestIdMiddleware
from runyard.api.routes import account, files, proxy, results, runs, tasks, workers
from runyard.console import mount as mount_console
from runyard.console.web import refusal_page, session_key_hash
from runyard.services import Services

API_PREFIX = "/api/v2"
log = logging.getLogger("runyard.api")


async def _sweep_exports(svc: Services) -> None:
    """Delete export files whose links have all expired, at start and then periodically."""
    while True:
        try:
            removed = await anyio.to_thread.run_sync(svc.exports.sweep)
            if removed:
                log.info("swept %d expired exports", removed)
        except Exception:
            log.exception("sweeping expired exports failed")
        await asyncio.sleep(svc.settings.sweep_interval_seconds)


def create_app(svc: Services) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await anyio.to_thread.run_sync(svc.start)
        sweeper = asyncio.create_task(_sweep_exports(svc))
        yield
        sweeper.cancel()
        await anyio.to_thread.run_sync(svc.close)

    app = FastAPI(
        title="Runyard API",
        version=__version__,
        description="The CoreClaw API v2, self-hosted. Every reply is the envelope "
        "`{code, message, data, request_id}`.",
        lifespan=lifespan,
    )
    app.state.services = svc
    # A trailing slash is an unknown route (404 envelope), not a redirect without an envelope.
    app.router.redirect_slashes = False
    for router in (results.router, runs.router, workers.router, files.router, tasks.router):
        app.include_router(router, prefix=API_PREFIX)
    app.include_router(account.router, prefix=API_PREFIX)
    app.include_router(proxy.router, prefix=API_PREFIX)
    mount_console(app)
    errors.install(app)
    document_security(
        app,
        is_public=lambda path: (
            path.startswith(API_PREFIX + "/files/")
            or path.endswith("/input-schema")
            or path in (API_PREFIX + "/store", API_PREFIX + "/proxy/region")
        ),
    )
    # Inside the request id (refusals carry it, the access log shows them), outside all else.
    app.add_middleware(
        LimitsMiddleware,
        settings=svc.settings,
        session_key_hash=session_key_hash,
        refusal_page=refusal_page,
    )
    app.add_middleware(RequestIdMiddleware)
    return app
