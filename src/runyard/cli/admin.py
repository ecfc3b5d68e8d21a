"""Commands on a local data directory: serve the API, and administer users, keys, imports and
worker registrations without going through the API.

Every refusal is one line on stderr and exit code 1 — never a traceback.
"""

from __future__ import annotations

import shlex
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from runyard.cli.app import app, err, fail, keys_app, out, runs_app, users_app, workers_app
from runyard.execution.local import ExecutorBusy
from runyard.execution.sandbox import SandboxUnavailable, unsandboxed_warning
from runyard.services import ServiceError, Services
from runyard.services.accounts import UNSET, Unset
from runyard.services.errors import InvalidInput
from runyard.services.packages import load_package
from runyard.settings import Settings

DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Data directory (default ./.runyard, or RUNYARD_DATA_DIR)."),
]
LOCAL_USER = "local"


def settings_from(data_dir: Path | None, **overrides: Any) -> Settings:
    """The environment's settings, with the options given on the command line."""
    values = {k: v for k, v in overrides.items() if v is not None}
    if data_dir is not None:
        values["data_dir"] = data_dir
    return Settings(**values)


def open_services(settings: Settings) -> Services:
    """Every service on ``settings``; a setting that cannot work ends the command."""
    try:
        return Services(settings)
    except ValueError as exc:  # a setting that cannot work, such as a weak secret key
        fail(str(exc))


@contextmanager
def _services(data_dir: Path | None) -> Iterator[Services]:
    svc = open_services(settings_from(data_dir))
    try:
        yield svc
    except ServiceError as exc:
        fail(_explain(exc))
    finally:
        svc.close()


def _first_user(svc: Services) -> int | None:
    """On the first start of the first server, the user ``local``'s id; else None (another
    server starting on the same database at the same moment may be the first)."""
    if svc.accounts.has_users():
        return None
    try:
        return svc.accounts.create_user(LOCAL_USER)
    except InvalidInput:
        return None


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
    workers: Annotated[
        Path | None,
        typer.Option(
            "--workers",
            help="On the first start, register every worker package in this directory "
            f"for user {LOCAL_USER!r}.",
        ),
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Serve the API until interrupted: embedded (SQLite, local executor, local files) unless
    settings say otherwise (docs/deploy.md)."""
    from runyard.api import create_app, serving
    from runyard.api.logs import log_config

    settings = settings_from(data_dir, host=host, port=port)
    svc = open_services(settings)
    for slug in svc.imports.clean_abandoned():
        err.print(f"removed run {slug}: its import was interrupted")
    # Before the first key is made and shown: a server refused here (its sandbox cannot run
    # a worker, or another server executes from this data directory) must not spend it.
    try:
        svc.start()
    except (ExecutorBusy, SandboxUnavailable) as exc:
        svc.close()
        fail(str(exc))
    base = settings.public_url or f"http://{settings.host}:{settings.port}"
    user_id = _first_user(svc)
    if user_id is not None:
        key = svc.accounts.create_key(LOCAL_USER)
        registered = _register_all(svc, user_id, workers) if workers else []
        auth = shlex.quote("Authorization: Bearer " + key)
        err.print(
            f"\n[bold]First start:[/bold] created user [cyan]{LOCAL_USER}[/cyan] and an API key "
            "(shown only now; it is stored hashed):\n\n"
            f"  {key}\n\n"
            f"Sign in to the console at {base}/ with it, or try the API:\n",
            markup=True,
        )
        if "web-scraper" in registered:
            body = shlex.quote(
                '{"input": {"parameters": {"custom": {"start_urls": ["' + base + '/docs"]}}},'
                ' "is_async": false}'
            )
            err.print(
                "Try it: scrape this server's own /docs page and read the rows:\n\n"
                f"  curl -H {auth} -H 'Content-Type: application/json' -d {body} "
                f"{base}/api/v2/workers/web-scraper/runs\n"
                f"  curl -H {auth} {base}/api/v2/worker-runs/last/result\n\n"
                "Or from the command line, once the key is saved (docs/cli.md):\n\n"
                f"  .venv/bin/runyard login --base-url {base}\n"
                "  .venv/bin/runyard run sample-data --set count=1000 --follow\n"
            )
        else:
            err.print(
                "Try it: import a dataset, then read your newest run's first page:\n\n"
                f"  .venv/bin/runyard runs import FILE.jsonl --user {LOCAL_USER} --worker my-data\n"
                f"  curl -H {auth} {base}/api/v2/worker-runs/last/result\n"
            )
    # Workers run sandboxed (as nobody when serving as root) unless the operator opted out.
    unsandboxed = unsandboxed_warning(settings)
    if unsandboxed and settings.executor == "local":
        err.print(f"[bold red]warning:[/bold red] {unsandboxed}", markup=True)
    err.print(
        f"Runyard serving at {base}  (console: {base}/; data: {settings.data_dir.resolve()}; "
        f"database: {svc.db.dialect}; executor: {settings.executor})"
    )
    # Connection limits, header size and slow-client deadlines: api/serving.py.
    serving.run(create_app(svc), settings, log_config=log_config())


def _register_all(svc: Services, user_id: int, directory: Path) -> list[str]:
    """Register every package under ``directory``; one that fails is reported and skipped."""
    done = []
    for package_dir in sorted(p for p in directory.iterdir() if (p / "main.py").is_file()):
        try:
            with err.status(f"registering {package_dir.name}…") as status:
                reg = svc.workers.register(
                    user_id, load_package(package_dir), on_progress=status.update
                )
        except ServiceError as exc:
            err.print(f"[red]could not register {package_dir.name}:[/red] {_explain(exc)}")
            continue
        err.print(f"registered worker {reg.slug} {reg.version}")
        done.append(reg.slug)
    return done


def _explain(exc: ServiceError) -> str:
    return "\n  ".join([exc.message, *(exc.details or [])])


@workers_app.command("add")
def workers_add(
    directory: Annotated[Path, typer.Argument(help="The worker package (directory or .zip).")],
    user: Annotated[str, typer.Option("--user", help="The worker's owner.")] = LOCAL_USER,
    version: Annotated[
        str | None, typer.Option("--version", help="Default: worker.json's, else the next one.")
    ] = None,
    slug: Annotated[
        str | None, typer.Option("--slug", help="Default: worker.json's, else the name.")
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Register a worker package as a new version; prints `slug version` on stdout."""
    with (
        _services(data_dir) as svc,
        tempfile.TemporaryDirectory() as tmp,
        err.status(f"registering {directory.name}…") as status,
    ):
        # A ZIP is unpacked into a directory named after it (unless it holds one directory).
        package = load_package(directory, extract_to=Path(tmp) / directory.stem)
        reg = svc.workers.register(
            svc.accounts.user_id(user),
            package,
            slug=slug,
            version=version,
            on_progress=status.update,
        )
    err.print(f"registered worker {reg.slug} {reg.version} for {user}")
    out.print(f"{reg.slug} {reg.version}")


@users_app.command("webhook-secret")
def users_webhook_secret(name: str, data_dir: DataDir = None) -> None:
    """Print the secret that signs the user's callbacks (X-Runyard-Signature)."""
    with _services(data_dir) as svc:
        secret = svc.callbacks.webhook_secret(svc.accounts.user_id(name))
    out.print(secret)


@users_app.command("create")
def users_create(name: str, data_dir: DataDir = None) -> None:
    """Create a user."""
    with _services(data_dir) as svc:
        svc.accounts.create_user(name)
    err.print(f"created user {name}")


def _clearable(value: str | None) -> str | Unset | None:
    """An option that sets a value, clears it (``none``) or, left out, keeps it."""
    if value is None:
        return UNSET
    return None if value.strip().lower() == "none" else value


def _count_or_none(option: str, value: str | None) -> int | Unset | None:
    given = _clearable(value)
    if not isinstance(given, str):
        return given
    try:
        return int(given)
    except ValueError:
        fail(f"{option} must be a whole number or none, not {given!r}")


@users_app.command("set")
def users_set(
    name: str,
    credit: Annotated[
        str | None,
        typer.Option("--credit", help="Remaining credit (decimal), or none: runs are not refused."),
    ] = None,
    price: Annotated[
        str | None,
        typer.Option(
            "--price-per-cpu-second",
            help="Price of a CPU-second (decimal), or none: runs cost nothing.",
        ),
    ] = None,
    max_runs: Annotated[
        str | None,
        typer.Option(
            "--max-concurrent-runs",
            help="Runs that may be ready or running at once, or none: no limit.",
        ),
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Set a user's credit, price per CPU-second and concurrent-run limit (others unchanged)."""
    if credit is None and price is None and max_runs is None:
        fail("nothing to set: give --credit, --price-per-cpu-second or --max-concurrent-runs")
    max_concurrent = _count_or_none("--max-concurrent-runs", max_runs)
    with _services(data_dir) as svc:
        limits = svc.accounts.set_limits(
            name,
            credit=_clearable(credit),
            price_per_cpu_second=_clearable(price),
            max_concurrent_runs=max_concurrent,
        )
    err.print(
        f"user {name}: credit {limits.credit or 'none'}, "
        f"price per CPU-second {limits.price_per_cpu_second or 'none'}, "
        f"max concurrent runs {limits.max_concurrent_runs or 'none'}"
    )


@keys_app.command("create")
def keys_create(
    user: Annotated[str, typer.Option("--user", help="The key's owner.")],
    data_dir: DataDir = None,
) -> None:
    """Create an API key and print it alone on stdout (it is not shown again)."""
    with _services(data_dir) as svc:
        key = svc.accounts.create_key(user)
    out.print(key)


def _when(ts: float | None) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S") if ts else ""


@keys_app.command("list")
def keys_list(
    user: Annotated[str | None, typer.Option("--user", help="Only this user's keys.")] = None,
    data_dir: DataDir = None,
) -> None:
    """List API keys (their first characters only)."""
    with _services(data_dir) as svc:
        keys = svc.accounts.list_keys(user)
    table = Table("id", "user", "key", "created (UTC)", "revoked (UTC)")
    for k in keys:
        table.add_row(str(k.id), k.user, k.prefix + "…", _when(k.created_at), _when(k.revoked_at))
    out.print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: int, data_dir: DataDir = None) -> None:
    """Revoke an API key by its id (see `runyard keys list`)."""
    with _services(data_dir) as svc:
        svc.accounts.revoke_key(key_id)
    err.print(f"revoked key {key_id}")


@runs_app.command("import")
def runs_import(
    file: Annotated[Path, typer.Argument(help="A JSON array, JSON Lines or CSV file.")],
    user: Annotated[str, typer.Option("--user", help="The run's owner.")],
    worker: Annotated[str, typer.Option("--worker", help="Worker slug the run belongs to.")],
    fmt: Annotated[
        str | None,
        typer.Option("--format", help="json, jsonl or csv (default: from the file's extension)."),
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Import a dataset as a succeeded run and print the run's slug alone on stdout."""
    if fmt is not None and fmt not in ("json", "jsonl", "csv"):
        fail(f"unknown format {fmt!r}: use json, jsonl or csv")
    with _services(data_dir) as svc:
        user_id = svc.accounts.user_id(user)
        with err.status("importing…") as status:
            slug = svc.imports.run(
                file,
                user_id=user_id,
                worker_slug=worker,
                fmt=fmt,  # type: ignore[arg-type]
                progress=lambda n: status.update(f"importing… {n:,} rows"),
            )
        count = svc.runs.get(user_id, slug).results
    err.print(f"imported {count:,} rows")
    out.print(slug)
