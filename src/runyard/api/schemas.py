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
    code: int = Field(description="Application code: 11000, 11004, 12001, 12002 or 10000")
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


def responses(model: type[BaseModel], *statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for a route: its success envelope and the errors it can answer."""
    described: dict[int | str, dict[str, Any]] = {
        200: {"model": Envelope[model]}  # type: ignore[valid-type]
    }
    meanings = {
        400: "Malformed request: the body is not JSON (11000)",
        401: "API key missing (12001) or invalid (12002)",
        402: "Insufficient balance (30001)",
        404: "Not found for this caller (11004), or no such worker version (50003)",
        409: "Not possible in the run's current state (70002)",
        422: "Invalid parameter (11000)",
        429: "Concurrent-run limit reached (30003)",
        500: "Internal server error (10000)",
    }
    for status in (*statuses, 500):
        described[status] = {"model": ErrorEnvelope, "description": meanings[status]}
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
