"""Every operation of the API as a ``Call``: the request to send and how to read its ``data``.

Both clients send these, so an operation's path, parameters and reply type are written once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar
from urllib.parse import quote

from runyard.client._models import (
    Account,
    Page,
    ProxyRegion,
    ResultPage,
    Run,
    RunLog,
    RunStarted,
    SyncRun,
    Task,
    TaskInput,
    VersionRegistered,
    WorkerDetail,
    WorkerSummary,
)

T = TypeVar("T")
M = TypeVar("M")

IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE"})
EXPORT_FORMATS = ("csv", "json", "jsonl", "xlsx", "xls", "xml", "html", "rss")
ScheduleType = Literal["daily", "weekly", "monthly", "once"]
SCHEDULE_TYPES: dict[str, int] = {"daily": 1, "weekly": 2, "monthly": 3, "once": 4}


@dataclass(frozen=True)
class Call(Generic[T]):
    method: str
    path: str
    parse: Callable[[Any], T]
    params: dict[str, Any] = field(default_factory=dict)
    json: Any = None
    files: dict[str, tuple[str, bytes, str]] | None = None
    data: dict[str, str] | None = None
    #: The server holds the reply until the run ends (``is_async: false``), bounded by its own
    #: limit (300 s by default): the client's read timeout must not cut that wait short.
    waits: bool = False

    @property
    def idempotent(self) -> bool:
        return self.method in IDEMPOTENT


def _model(cls: type[M]) -> Callable[[Any], M]:
    return cls.model_validate  # type: ignore[attr-defined, no-any-return]


def _nothing(_: Any) -> None:
    return None


def _seg(value: str) -> str:
    if not value or value in (".", ".."):
        # A dot segment would be resolved away by the URL and name another route.
        raise ValueError(f"{value!r} is not an id")
    return quote(value, safe="~")


def _query(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def run_path(run: str, worker: str | None, tail: str = "", last_tail: str | None = None) -> str:
    """The path of a run's sub-resource: ``run`` is a run id or ``last`` (the newest run);
    with ``worker``, the newest run of that worker (``run`` must then be ``last``).

    ``last_tail`` is the sub-path on the two ``last`` forms when it differs (export).
    """
    tail_of_last = tail if last_tail is None else last_tail
    if worker is not None:
        if run != "last":
            raise ValueError("give either a run id or worker=, not both")
        return f"/workers/{_seg(worker)}/runs/last{tail_of_last}"
    if run == "last":
        return f"/worker-runs/last{tail_of_last}"
    return f"/worker-runs/{_seg(run)}{tail}"


def run_input(input: Mapping[str, Any] | None, system: Mapping[str, Any] | None) -> dict[str, Any]:
    """The wire form of a run's input: the worker's fields go under ``parameters.custom``."""
    parameters: dict[str, Any] = {"custom": dict(input or {})}
    if system:
        parameters["system"] = dict(system)
    return {"parameters": parameters}


#: What a start replies: ``RunStarted`` (``is_async``) or ``SyncRun`` (waited for).
Started = TypeVar("Started", RunStarted, SyncRun)


def _start_body(
    reply: type[Started], callback_url: str | None, limit: int | None, offset: int | None
) -> dict[str, Any]:
    if reply is RunStarted:
        return _query(is_async=True, callback_url=callback_url)
    return _query(is_async=False, callback_url=callback_url, limit=limit, offset=offset)


# Results and exports (the seeds)


def get_results(run: str, worker: str | None, offset: int, limit: int) -> Call[ResultPage]:
    path = run_path(run, worker, "/result")
    return Call("GET", path, _model(ResultPage), {"offset": offset, "limit": limit})


def export(
    run: str,
    worker: str | None,
    format: str,
    keys: list[str] | None,
    bom: bool | None,
    delimiter: str | None,
) -> Call[str]:
    params = _query(
        format=format,
        filter_keys=",".join(keys) if keys else None,
        bom=None if bom is None else int(bom),
        delimiter=delimiter,
    )
    path = run_path(run, worker, "/result/export", last_tail="/export")
    return Call("GET", path, lambda data: str(data["download_url"]), params)


# Runs


def start_run(
    worker: str,
    input: Mapping[str, Any] | None,
    system: Mapping[str, Any] | None,
    version: str | None,
    reply: type[Started],
    callback_url: str | None = None,
    limit: int | None = None,
    offset: int | None = None,
) -> Call[Started]:
    body = _start_body(reply, callback_url, limit, offset)
    body["input"] = run_input(input, system)
    if version is not None:
        body["version"] = version
    path = f"/workers/{_seg(worker)}/runs"
    return Call("POST", path, _model(reply), json=body, waits=reply is SyncRun)


def list_runs(
    offset: int,
    limit: int,
    worker: str | None,
    status: str | None,
    start_time: int | None,
    end_time: int | None,
) -> Call[Page[Run]]:
    params = _query(
        offset=offset,
        limit=limit,
        worker_id=worker,
        status=status,
        start_time=start_time,
        end_time=end_time,
    )
    return Call("GET", "/worker-runs", _model(Page[Run]), params)


def get_run(run: str, worker: str | None) -> Call[Run]:
    return Call("GET", run_path(run, worker), _model(Run))


def get_log(run: str, worker: str | None) -> Call[RunLog]:
    return Call("GET", run_path(run, worker, "/log"), _model(RunLog))


def abort_run(run: str, worker: str | None) -> Call[None]:
    return Call("POST", run_path(run, worker, "/abort"), _nothing)


def rerun(
    run: str,
    worker: str | None,
    reply: type[Started],
    callback_url: str | None = None,
    limit: int | None = None,
    offset: int | None = None,
) -> Call[Started]:
    body = _start_body(reply, callback_url, limit, offset)
    path = run_path(run, worker, "/rerun")
    return Call("POST", path, _model(reply), json=body, waits=reply is SyncRun)


# Workers, store, account, proxies


def list_workers(offset: int, limit: int, keyword: str | None) -> Call[Page[WorkerSummary]]:
    params = _query(offset=offset, limit=limit, keyword=keyword)
    return Call("GET", "/workers", _model(Page[WorkerSummary]), params)


def list_store(offset: int, limit: int, keyword: str | None) -> Call[Page[WorkerSummary]]:
    params = _query(offset=offset, limit=limit, keyword=keyword)
    return Call("GET", "/store", _model(Page[WorkerSummary]), params)


def get_worker(worker: str) -> Call[WorkerDetail]:
    return Call("GET", f"/workers/{_seg(worker)}", _model(WorkerDetail))


def get_input_schema(worker: str) -> Call[dict[str, Any]]:
    return Call(
        "GET", f"/workers/{_seg(worker)}/input-schema", lambda data: dict(data["input_schema"])
    )


def push_worker(
    worker: str,
    archive: bytes,
    version: str | None,
    title: str | None,
    description: str | None,
) -> Call[VersionRegistered]:
    return Call(
        "POST",
        f"/workers/{_seg(worker)}/versions",
        _model(VersionRegistered),
        files={"scraper_file": (f"{worker}.zip", archive, "application/zip")},
        data=_query(version=version, title=title, description=description),
    )


def get_account() -> Call[Account]:
    return Call("GET", "/users/account", _model(Account))


def list_proxy_regions(language: str | None) -> Call[list[ProxyRegion]]:
    def parse(data: Any) -> list[ProxyRegion]:
        return [ProxyRegion.model_validate(item) for item in data["list"]]

    return Call("GET", "/proxy/region", parse, _query(language=language))


# Tasks


def schedule_fields(
    *,
    enabled: bool | None = None,
    type: ScheduleType | None = None,
    time: str | None = None,
    weekday: int | None = None,
    day: int | None = None,
    once_date: str | None = None,
) -> dict[str, Any]:
    """The ``schedule_*`` fields of a task body, from their Pythonic names."""
    if type is not None and type not in SCHEDULE_TYPES:
        raise ValueError(f"schedule type must be one of {', '.join(SCHEDULE_TYPES)}")
    return _query(
        schedule_enabled=None if enabled is None else int(enabled),
        schedule_type=None if type is None else SCHEDULE_TYPES[type],
        schedule_time=time,
        schedule_weekday=weekday,
        schedule_day=day,
        schedule_once_date=once_date,
    )


def create_task(
    worker: str,
    title: str,
    input: Mapping[str, Any] | None,
    system: Mapping[str, Any] | None,
    version: str | None,
    description: str | None,
    schedule: dict[str, Any],
) -> Call[str]:
    if "schedule_type" in schedule:
        schedule = {"schedule_enabled": 1, **schedule}  # a schedule given is on unless said
    body = {
        "worker_id": worker,
        "title": title,
        "input": run_input(input, system),
        **_query(version=version, description=description),
        **schedule,
    }
    return Call("POST", "/worker-tasks", lambda data: str(data["slug"]), json=body)


def list_tasks(
    offset: int, limit: int, worker: str | None, keyword: str | None
) -> Call[Page[Task]]:
    params = _query(offset=offset, limit=limit, worker_id=worker, keyword=keyword)
    return Call("GET", "/worker-tasks", _model(Page[Task]), params)


def get_task(task: str) -> Call[Task]:
    return Call("GET", f"/worker-tasks/{_seg(task)}", _model(Task))


def update_task(
    task: str, title: str | None, description: str | None, schedule: dict[str, Any]
) -> Call[None]:
    body = {**_query(title=title, description=description), **schedule}
    return Call("PUT", f"/worker-tasks/{_seg(task)}", _nothing, json=body)


def delete_task(task: str) -> Call[None]:
    return Call("DELETE", f"/worker-tasks/{_seg(task)}", _nothing)


def get_task_input(task: str) -> Call[TaskInput]:
    return Call("GET", f"/worker-tasks/{_seg(task)}/input", _model(TaskInput))


def update_task_input(
    task: str,
    input: Mapping[str, Any] | None,
    system: Mapping[str, Any] | None,
    version: str | None,
) -> Call[None]:
    body = {"input": run_input(input, system), **_query(version=version)}
    return Call("PUT", f"/worker-tasks/{_seg(task)}/input", _nothing, json=body)


def run_task(
    task: str,
    reply: type[Started],
    callback_url: str | None = None,
    limit: int | None = None,
    offset: int | None = None,
) -> Call[Started]:
    body = _start_body(reply, callback_url, limit, offset)
    path = f"/worker-tasks/{_seg(task)}/runs"
    return Call("POST", path, _model(reply), json=body, waits=reply is SyncRun)
