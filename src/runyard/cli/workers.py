"""Workers on a server: list yours or the store's, show one, upload a new version."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from runyard.cli import render
from runyard.cli.app import emit, emit_page, emit_record, err, workers_app
from runyard.cli.remote import ApiKey, AsJson, BaseUrl, ProfileName, WorkerId, connect
from runyard.cli.runs import Limit, Offset


@workers_app.command("list")
def workers_list(
    keyword: Annotated[
        str | None, typer.Option("--keyword", "-k", help="Match title, slug or path.")
    ] = None,
    store: Annotated[
        bool, typer.Option("--store", help="Workers their owners published, not yours.")
    ] = False,
    offset: Offset = 0,
    limit: Limit = 20,
    as_json: AsJson = False,
    base_url: BaseUrl = None,
    api_key: ApiKey = None,
    profile: ProfileName = None,
) -> None:
    """List your workers, or with --store the published ones."""
    with connect(base_url, api_key, profile) as client:
        lister = client.list_store if store else client.list_workers
        page = lister(keyword=keyword, offset=offset, limit=limit)
    emit_page(page, offset, as_json, "workers", render.workers_table)


@workers_app.command("show")
def workers_show(
    worker: WorkerId,
    as_json: AsJson = False,
    base_url: BaseUrl = None,
    api_key: ApiKey = None,
    profile: ProfileName = None,
) -> None:
    """Show a worker: title, version, owner, its input fields and its readme."""
    with connect(base_url, api_key, profile) as client:
        detail = client.get_worker(worker)
    emit_record(detail, as_json, render.worker_detail)


@workers_app.command("push")
def workers_push(
    package: Annotated[
        Path,
        typer.Argument(
            metavar="DIR|ZIP", help="The worker package: a directory with main.py, or a .zip."
        ),
    ],
    slug: Annotated[
        str | None,
        typer.Option("--slug", help="Default: worker.json's slug, else the directory's name."),
    ] = None,
    version: Annotated[
        str | None,
        typer.Option("--version", help="Default: worker.json's, else the next one."),
    ] = None,
    title: Annotated[str | None, typer.Option("--title", help="The worker's title.")] = None,
    description: Annotated[
        str | None, typer.Option("--description", help="The worker's description.")
    ] = None,
    base_url: BaseUrl = None,
    api_key: ApiKey = None,
    profile: ProfileName = None,
) -> None:
    """Upload a worker package as a new version; print `slug version` on stdout."""
    with (
        connect(base_url, api_key, profile) as client,
        err.status(f"uploading {package.name}…"),
    ):
        done = client.push_worker(
            package, worker=slug, version=version, title=title, description=description
        )
    err.print(f"pushed worker {done.slug} {done.version}", markup=False)
    emit(f"{done.slug} {done.version}")
