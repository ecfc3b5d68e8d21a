"""Mount the console on the API's application: pages at ``/``, static files at ``/-/static``."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles

from runyard.console import runs, signin, tasks, workers
from runyard.console.web import Console


def mount(app: FastAPI) -> None:
    app.state.console = Console(app.state.services)
    for module in (signin, runs, workers, tasks):
        app.include_router(module.router)
    app.mount(
        "/-/static",
        StaticFiles(directory=Path(__file__).parent / "static"),
        name="console-static",
    )
