"""Response shapes, for /openapi.json only: the hot routes write their bytes directly."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from pydantic import BaseModel, Field

T = TypeVar("T")


class Envelope(BaseModel, Generic[T]):
    code: int = Field(0, description="0 on success")
    message: str = Field("success")
    data: T
    request_id: str = Field(description="Also sent as the X-Request-Id header")


class ErrorEnvelope(BaseModel):
    code: int = Field(
        description="Application code (spec §1): 10000, 11000, 11004, 12001, 12002, 13000, "
        "30001, 30003, 50003 or 70002"
    )
    message: str
    data: None = None
    details: list[str] | None = Field(None, description="One line per problem, when known")
    request_id: str


class Header(BaseModel):
    key: str
    label: str


# Aliases, because inside ResultPage the field ``list`` shadows the builtin.
Headers = list[Header]
Rows = list[dict[str, Any]]


class ResultPage(BaseModel):
    count: int = Field(description="Rows stored for the run so far")
    headers: Headers = Field(description="The run's columns, declared first, then seen")
    list: Rows = Field(description="The rows exactly as the worker pushed them")
    page_index: int
    page_size: int


class ExportLink(BaseModel):
    download_url: str = Field(description="Absolute, signed and expiring; needs no API key")


class RunRecord(BaseModel):
    slug: str
    scraper_slug: str
    scraper_title: str
    version: str
    status: str = Field(description="ready, running, succeeded, failed or aborting")
    results: int
    usage: str
    traffic: int
    origin: str
    started_at: int
    finished_at: int
    duration: int
    err_msg: str


class Empty(BaseModel):
    """``data: {}`` — operations with no payload."""


RunRecords = list[RunRecord]


class RunList(BaseModel):
    count: int
    list: RunRecords
    page_index: int
    page_size: int


class LogEntry(BaseModel):
    type: int = Field(description="1 debug, 2 info, 3 warn, 4 error")
    group: str = Field(description='Sub-task id; "0" when the run is not split')
    content: str
    timestamp: int = Field(description="Unix milliseconds")


LogEntries = list[LogEntry]


class RunLog(BaseModel):
    all_logs_url: str = Field(description="Signed, expiring link to the whole log as text")
    list: LogEntries = Field(description="The newest 1,000 entries, oldest first")
    result_count: int


class RunStarted(BaseModel):
    run_slug: str


class SyncRun(BaseModel):
    run_slug: str
    run_status: str
    error_message: str
    execution_start_timestamp: int
    execution_end_timestamp: int
    running_duration: int
    result_message: str
    is_finished: bool = Field(description="false: the wait ran out and the run goes on")
    results: ResultPage


class WorkerSummary(BaseModel):
    description: str
    name: str
    path: str
    slug: str
    title: str
    username: str


class WorkerList(BaseModel):
    scraper: list[WorkerSummary]
    count: int
    page_index: int
    page_size: int


class WorkerParameters(BaseModel):
    custom: dict[str, Any] = Field(description="{properties: [...]} from input_schema.json")
    system: dict[str, Any] = Field(description="System parameters and their defaults")


class WorkerDetail(BaseModel):
    name: str
    title: str
    slug: str
    username: str
    version: str
    readme: str
    parameters: WorkerParameters


class InputSchema(BaseModel):
    input_schema: dict[str, Any]


class VersionRegistered(BaseModel):
    slug: str
    version: str


API_PREFIX = "/api/v2"


def link(path: str, method: str, description: str, **parameters: str) -> dict[str, Any]:
    """An OpenAPI link to the operation ``method path`` (``path`` under ``/api/v2``), its
    parameters taken from the reply with runtime expressions such as
    ``$response.body#/data/run_slug``."""
    pointer = (API_PREFIX + path).replace("~", "~0").replace("/", "~1")
    return {
        "operationRef": f"#/paths/{pointer}/{method.lower()}",
        "parameters": parameters,
        "description": description,
    }


#: Headers every reply carries.
REQUEST_ID_HEADER = {
    "X-Request-Id": {
        "description": "The reply's `request_id`; a sane incoming `X-Request-Id` is reused",
        "schema": {"type": "string"},
        "required": True,
    }
}
RETRY_AFTER_HEADER = {
    "Retry-After": {
        "description": "Seconds to wait before trying again (13000)",
        "schema": {"type": "integer", "minimum": 0},
    }
}
#: What each error status means (spec §1).
MEANINGS = {
    400: "Malformed request: the body is not JSON, or not the content type declared (11000)",
    401: "API key missing (12001) or invalid (12002)",
    402: "Insufficient balance (30001)",
    404: "Not found for this caller (11004); a named worker version that does not exist (50003)",
    408: "The request body stalled (11000); the connection is closed",
    409: "Not possible in the run's current state (70002)",
    413: "Request body too large (11000)",
    422: "Invalid parameter or body (11000), one `details` line per problem",
    429: "Rate limited, or storage busy: try again after `Retry-After` seconds (13000)",
    431: "Request line and headers too large (11000)",
    500: "Internal server error (10000); the message never leaks internals",
}
#: Statuses any operation can answer (spec §1; 408 and 431 from the request limits).
COMMON_STATUSES = (401, 404, 408, 413, 422, 429, 431, 500)


def responses(
    model: type[BaseModel] | None,
    *extra: int,
    public: bool = False,
    starts_runs: bool = False,
    links: dict[str, Any] | None = None,
) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` of a route: its success envelope (``model`` None: none documented
    here) with ``links`` to the operations its reply feeds, and the error envelope with each
    status it can answer — those of every operation, plus ``extra``. ``public``: no key
    needed, so no 401. ``starts_runs``: the refusals of a run start (400, 402, 429/30003)."""
    meanings = dict(MEANINGS)
    statuses = {*COMMON_STATUSES, *extra}
    if public:
        statuses.discard(401)
    if starts_runs:
        statuses |= {400, 402}
        meanings[429] = (
            "Rate limited, or storage busy: try again after `Retry-After` seconds (13000); "
            "or the concurrent-run limit reached (30003)"
        )
    described: dict[int | str, dict[str, Any]] = {}
    if model is not None:
        described[200] = {
            "model": Envelope[model],  # type: ignore[valid-type]
            "headers": REQUEST_ID_HEADER,
            **({"links": links} if links else {}),
        }
    for status in sorted(statuses):
        headers = {**REQUEST_ID_HEADER, **(RETRY_AFTER_HEADER if status == 429 else {})}
        described[status] = {
            "model": ErrorEnvelope,
            "description": meanings[status],
            "headers": headers,
        }
    return described


class Account(BaseModel):
    balance: str = Field(description='Remaining credit, a decimal string; "0.00" when none is kept')
    balance_expiration_at: int = Field(description="0: the credit does not expire")


class ProxyRegion(BaseModel):
    code: str
    name: str


ProxyRegions = list[ProxyRegion]


class ProxyRegionList(BaseModel):
    list: ProxyRegions


class TaskRecord(BaseModel):
    slug: str
    title: str
    description: str
    worker_slug: str
    worker_title: str
    worker_path: str = Field(description="owner/name")
    version: str = Field(description="A registered version, or `latest` (the newest at each run)")
    input: dict[str, Any] = Field(description="The input as saved")
    run_times: int
    last_run_id: str = Field(description='Slug of the newest run, "" before the first')
    schedule_enabled: int = Field(description="0 or 1")
    schedule_type: int = Field(description="1 daily, 2 weekly, 3 monthly, 4 once; 0 unset")
    schedule_time: str = Field(description='HH:mm in the server\'s time zone; "" unset')
    schedule_weekday: int = Field(description="1 Monday … 7 Sunday; 0 unset")
    schedule_day: int = Field(description="1–31, past a month's end its last day; 0 unset")
    schedule_once_date: str = Field(description='YYYY-MM-DD; "" unset')
    created_at: int = Field(description="unix seconds")
    updated_at: int = Field(description="unix seconds")


TaskRecords = list[TaskRecord]


class TaskList(BaseModel):
    count: int
    list: TaskRecords
    page_index: int
    page_size: int


class TaskCreated(BaseModel):
    slug: str


class TaskInput(BaseModel):
    input: dict[str, Any]
    version: str
