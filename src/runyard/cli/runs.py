"""Runs on a server: start one, list, inspect, read the log, abort, rerun, read and export rows."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

import typer

from runyard.cli import render, watch
from runyard.cli.app import (
    app,
    emit,
    emit_json,
    emit_page,
    emit_record,
    err,
    fail,
    out,
    runs_app,
    show,
)
from runyard.cli.inputs import InputFile, Sets, Systems, assignments, read_input
from runyard.cli.remote import (
    ApiKey,
    AsJson,
    BaseUrl,
    ProfileName,
    RunId,
    WorkerId,
    WorkerOfRun,
    connect,
    one_run,
)
from runyard.client import EXPORT_FORMATS

Offset = Annotated[int, typer.Option("--offset", min=0, help="Skip this many items first.")]
Limit = Annotated[int, typer.Option("--limit", min=1, max=100, help="Show at most this many.")]


@app.command("run")
def run_worker(
    worker: WorkerId,
    input_file: InputFile = None,
    sets: Sets = None,
    systems: Systems = None,
    version: Annotated[
        str | None,
        typer.Option("--version", help="A registered version (default: the latest)."),
    ] = None,
    wait: watch.Wait = False,
    follow: watch.Follow = False,
    timeout: watch.Timeout = None,
    base_url: BaseUrl = None,
    api_key: ApiKey = None,
    profile: ProfileName = None,
) -> None:
    """Start a run of WORKER; print its id alone on stdout.

    The input is --input's JSON object of the worker's fields, with each --set on top.
    Fields left out take the defaults of the worker's input schema.
    """
    with connect(base_url, api_key, profile) as client:
        fields = read_input(input_file, sets)
        system = assignments(systems, "--system") or None
        run = client.start_run(worker, fields, system=system, version=version).run_slug
        watch.started(client, run, wait=wait, follow=follow, timeout=timeout)


@runs_app.command("list")
def runs_list(
    worker: Annotated[
        str | None, typer.Option("--worker", "-w", help="Only runs of this worker.")
    ] = None,
    status: Annotated[
        str | None,
        typer.Option("--status", help="Only runs in this status: ready, running, succeeded…"),
    ] = None,
    offset: Offset = 0,
    limit: Limit = 20,
    as_json: AsJson = False,
    base_url: BaseUrl = None,
    api_key: ApiKey = None,
    profile: ProfileName = None,
) -> None:
    """List your runs, newest first."""
    with connect(base_url, api_key, profile) as client:
        page = client.list_runs(worker=worker, status=status, offset=offset, limit=limit)
    emit_page(page, offset, as_json, "runs", render.runs_table)


@runs_app.command("show")
def runs_show(
    run: RunId = "last",
    worker: WorkerOfRun = None,
    as_json: AsJson = False,
    base_url: BaseUrl = None,
    api_key: ApiKey = None,
    profile: ProfileName = None,
) -> None:
    """Show a run's record: status, rows, times, cost and error."""
    one_run(run, worker)
    with connect(base_url, api_key, profile) as client:
        record = client.get_run(run, worker=worker)
    emit_record(record, as_json, render.run_fields)


@runs_app.command("log")
def runs_log(
    run: RunId = "last",
    worker: WorkerOfRun = None,
    follow: Annotated[
        bool,
        typer.Option(
            "--follow", "-f", help="Keep printing new lines until the run ends; exit 1 if failed."
        ),
    ] = False,
    whole: Annotated[
        bool,
        typer.Option("--all", help="The whole log, not only its newest 1,000 lines."),
    ] = False,
    base_url: BaseUrl = None,
    api_key: ApiKey = None,
    profile: ProfileName = None,
) -> None:
    """Print a run's log on stdout: its newest 1,000 lines, the whole log, or as it grows."""
    one_run(run, worker)
    if follow and whole:
        fail("give --follow or --all, not both")
    with connect(base_url, api_key, profile) as client:
        if whole:
            link = client.get_log(run, worker=worker).all_logs_url
            with tempfile.TemporaryDirectory() as tmp:
                path = client.download(link, Path(tmp) / "run.log")
                with open(path, encoding="utf-8", errors="replace") as f:
                    for line in f:
                        typer.echo(line, nl=False)
        elif follow:
            slug = client.get_run(run, worker=worker).slug  # `last` may move on meanwhile
            record = watch.follow_log(client, slug, lambda e: emit(render.log_line(e)))
            watch.conclude(record)
        else:
            for entry in client.get_log(run, worker=worker).entries:
                emit(render.log_line(entry))


@runs_app.command("abort")
def runs_abort(
    run: RunId = "last",
    worker: WorkerOfRun = None,
    base_url: BaseUrl = None,
    api_key: ApiKey = None,
    profile: ProfileName = None,
) -> None:
    """Abort a ready or running run; it ends as failed, "aborted by user"."""
    one_run(run, worker)
    with connect(base_url, api_key, profile) as client:
        record = client.get_run(run, worker=worker)
        client.abort_run(record.slug)
    err.print(f"abort requested: run {record.slug} was {record.status}", markup=False)


@runs_app.command("rerun")
def runs_rerun(
    run: RunId = "last",
    worker: WorkerOfRun = None,
    wait: watch.Wait = False,
    follow: watch.Follow = False,
    timeout: watch.Timeout = None,
    base_url: BaseUrl = None,
    api_key: ApiKey = None,
    profile: ProfileName = None,
) -> None:
    """Start a new run with the same worker, version and input; print its id on stdout."""
    one_run(run, worker)
    with connect(base_url, api_key, profile) as client:
        new = client.rerun(run, worker=worker).run_slug
        watch.started(client, new, wait=wait, follow=follow, timeout=timeout)


@app.command("results")
def results(
    run: RunId = "last",
    worker: WorkerOfRun = None,
    offset: Annotated[
        int | None,
        typer.Option("--offset", min=0, help="Skip this many rows first (default 0)."),
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option("--limit", min=1, max=100, help="Show at most this many rows (default 20)."),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the page's rows as a JSON array.")
    ] = False,
    every: Annotated[
        bool,
        typer.Option("--all", help="Print every row of the run as JSON Lines, page after page."),
    ] = False,
    base_url: BaseUrl = None,
    api_key: ApiKey = None,
    profile: ProfileName = None,
) -> None:
    """Show a page of a run's rows as a table whose columns are the run's headers."""
    one_run(run, worker)
    if every and (offset is not None or limit is not None):
        fail("--all reads every row: leave out --offset and --limit")
    offset = offset or 0
    limit = limit or 20
    with connect(base_url, api_key, profile) as client:
        if every:
            slug = client.get_run(run, worker=worker).slug  # `last` may move on meanwhile
            for row in client.iter_results(slug):
                emit_json(row, lines=True)
            return
        page = client.get_results(run, worker=worker, offset=offset, limit=limit)
    if as_json:
        emit_json(page.rows)
    elif page.headers:
        show(render.results_table(page, offset, out.width if out.is_terminal else None))
    else:
        err.print(render.window("rows", offset, 0, page.count))


@app.command("export")
def export(
    run: RunId = "last",
    worker: WorkerOfRun = None,
    fmt: Annotated[
        str,
        typer.Option("--format", "-F", help=f"One of {', '.join(EXPORT_FORMATS)}."),
    ] = "csv",
    keys: Annotated[
        str | None,
        typer.Option("--keys", metavar="A,B", help="Only these columns, in this order."),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            metavar="FILE|DIR",
            help="Where to write (default: the server's file name, in the current directory).",
            show_default=False,
        ),
    ] = None,
    no_bom: Annotated[
        bool, typer.Option("--no-bom", help="CSV: leave out the byte-order mark.")
    ] = False,
    delimiter: Annotated[
        str | None, typer.Option("--delimiter", metavar="C", help="CSV: another delimiter.")
    ] = None,
    base_url: BaseUrl = None,
    api_key: ApiKey = None,
    profile: ProfileName = None,
) -> None:
    """Export a run's rows to a file (with a progress bar); print its path on stdout."""
    one_run(run, worker)
    fmt = fmt.lower()
    if fmt not in EXPORT_FORMATS:
        fail(f"unknown format {fmt!r}: use one of {', '.join(EXPORT_FORMATS)}")
    if fmt != "csv" and (no_bom or delimiter is not None):
        fail("--no-bom and --delimiter apply to csv only")
    if output is not None and not output.is_dir() and not output.parent.is_dir():
        fail(f"{output.parent}: no such directory")
    columns = [k.strip() for k in keys.split(",") if k.strip()] if keys else None
    with connect(base_url, api_key, profile) as client:
        link = client.export(
            run,
            fmt,
            columns,
            worker=worker,
            bom=False if no_bom else None,
            delimiter=delimiter,
        )
        path = link.download(output, progress=True)
    emit(str(path))
