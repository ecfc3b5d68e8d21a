"""``runyard worker``: an execution node of the scale-out mode (``RUNYARD_EXECUTOR=celery``).

It takes runs from the Celery queue and executes them as ``runyard serve``'s local executor
would, against the shared PostgreSQL database and shared directory.
"""

from __future__ import annotations

import re
import socket
from typing import Annotated, Any

import typer

from runyard.cli.admin import DataDir, open_services, settings_from
from runyard.cli.app import app, err, fail
from runyard.settings import Settings

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


@app.command()
def worker(
    concurrency: Annotated[
        int | None,
        typer.Option(min=1, help="Runs executed at once (default RUNYARD_MAX_CONCURRENT_RUNS)."),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option(
            help="This node's name, unique among live nodes (default RUNYARD_EXECUTOR_NAME, "
            "or one made once and kept in the data directory)."
        ),
    ] = None,
    loglevel: Annotated[str, typer.Option(help="Celery's log level.")] = "INFO",
    data_dir: DataDir = None,
) -> None:
    """Execute runs sent by API servers in the celery mode, until stopped (SIGTERM fails the
    runs still executing, with "execution node NAME stopped")."""
    overrides: dict[str, Any] = {"executor": "celery", "max_concurrent_runs": concurrency}
    settings = settings_from(data_dir, **overrides)
    node_name = name or settings.resolved_node_name()
    if not NAME_RE.match(node_name):
        fail(f"invalid node name {node_name!r}: use up to 100 letters, digits, '.', '_' or '-'")
    _serve(settings, node_name, loglevel)


def _serve(settings: Settings, node_name: str, loglevel: str) -> None:
    # Imported here: Celery is the optional ``scale`` extra, and slow to import.
    from celery import signals

    from runyard.execution.broker import RunQueue
    from runyard.execution.leases import NodeTaken
    from runyard.execution.node import ExecutionNode
    from runyard.execution.sandbox import SandboxUnavailable, unsandboxed_warning

    svc = open_services(settings)
    node = ExecutionNode(
        svc.run_context,
        svc.leases,
        name=node_name,
        slots=settings.max_concurrent_runs,
        heartbeat_seconds=settings.node_heartbeat_seconds,
    )
    try:
        node.start()
    except (NodeTaken, SandboxUnavailable) as exc:
        svc.close()
        fail(str(exc))
    unsandboxed = unsandboxed_warning(settings)
    if unsandboxed:
        err.print(f"[bold red]warning:[/bold red] {unsandboxed}", markup=True)
    # Status callbacks of the runs executed here go out from here, as soon as they happen.
    svc.callbacks.start()
    queue = RunQueue(settings)
    queue.serve(node.execute)
    # Sent by Celery's SIGTERM/SIGINT handler, before it waits for the tasks to end: ending
    # the runs now lets the warm shutdown finish in seconds instead of a run's lifetime.
    signals.worker_shutting_down.connect(lambda **_: node.stopping(), weak=False)
    err.print(
        f"execution node {node_name}: {settings.max_concurrent_runs} slots, queue "
        f"{settings.celery_queue!r}, data: {settings.data_dir.resolve()}"
    )
    code = 0
    try:
        celery_worker = queue.app.Worker(
            hostname=f"{node_name}@{socket.gethostname()}",
            queues=[settings.celery_queue],
            pool_cls="threads",
            concurrency=settings.max_concurrent_runs,
            loglevel=loglevel,
            without_mingle=True,
            without_gossip=True,
            without_heartbeat=True,
        )
        celery_worker.start()
        code = int(celery_worker.exitcode or 0)
    finally:
        node.close()
        queue.close()
        svc.callbacks.close()
        svc.close()
    raise typer.Exit(code)
