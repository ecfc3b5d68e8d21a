"""Typed replies. Fields follow the wire names; a field the server leaves out takes its empty
value, and one it adds is kept (``extra``), so the models also read the hosted service."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

T = TypeVar("T")

#: The statuses after which a run never changes again (``aborting`` still does).
FINISHED = frozenset({"succeeded", "failed"})


class Model(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)


class Page(Model, Generic[T]):
    """One page of a list endpoint: ``items`` is the wire's ``list`` (``scraper`` for workers)."""

    count: int = 0
    items: list[T] = Field(default_factory=list, validation_alias=AliasChoices("list", "scraper"))
    page_index: int = 1
    page_size: int = 0  # 0: the server did not say


class Header(Model):
    key: str
    label: str = ""


class ResultPage(Model):
    """``GET /worker-runs/{runId}/result``: ``rows`` are the wire's ``list``, as pushed."""

    count: int = 0
    headers: list[Header] = Field(default_factory=list)
    rows: list[dict[str, Any]] = Field(default_factory=list, validation_alias="list")
    page_index: int = 1
    page_size: int = 0  # 0: the server did not say

    @property
    def keys(self) -> list[str]:
        return [h.key for h in self.headers]


class Run(Model):
    slug: str
    scraper_slug: str = ""
    scraper_title: str = ""
    version: str = ""
    status: str = ""
    results: int = 0
    usage: str = "0.0000"
    traffic: int = 0
    origin: str = ""
    started_at: int = 0
    finished_at: int = 0
    duration: int = 0
    err_msg: str = ""

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED


class RunStarted(Model):
    run_slug: str


class SyncRun(Model):
    """The reply of a synchronous start: ``is_finished`` false means the wait ran out."""

    run_slug: str
    run_status: str = ""
    error_message: str = ""
    execution_start_timestamp: int = 0
    execution_end_timestamp: int = 0
    running_duration: int = 0
    result_message: str = ""
    is_finished: bool = False
    results: ResultPage = Field(default_factory=ResultPage)


class LogEntry(Model):
    type: int = 2
    group: str = "0"
    content: str = ""
    timestamp: int = 0

    @property
    def level(self) -> str:
        return {1: "DEBUG", 2: "INFO", 3: "WARN", 4: "ERROR"}.get(self.type, str(self.type))


class RunLog(Model):
    all_logs_url: str = ""
    entries: list[LogEntry] = Field(default_factory=list, validation_alias="list")
    result_count: int = 0


class WorkerSummary(Model):
    slug: str
    name: str = ""
    title: str = ""
    description: str = ""
    path: str = ""
    username: str = ""


class WorkerParameters(Model):
    custom: dict[str, Any] = Field(default_factory=dict)
    system: dict[str, Any] = Field(default_factory=dict)


class WorkerDetail(Model):
    slug: str
    name: str = ""
    title: str = ""
    username: str = ""
    version: str = ""
    readme: str = ""
    parameters: WorkerParameters = Field(default_factory=WorkerParameters)


class VersionRegistered(Model):
    slug: str
    version: str


class Account(Model):
    balance: str = "0.00"
    balance_expiration_at: int = 0


class ProxyRegion(Model):
    code: str
    name: str = ""


class Task(Model):
    slug: str
    title: str = ""
    description: str = ""
    worker_slug: str = ""
    worker_title: str = ""
    worker_path: str = ""
    version: str = ""
    input: dict[str, Any] = Field(default_factory=dict)
    run_times: int = 0
    last_run_id: str = ""
    schedule_enabled: int = 0
    schedule_type: int = 0
    schedule_time: str = ""
    schedule_weekday: int = 0
    schedule_day: int = 0
    schedule_once_date: str = ""
    created_at: int = 0
    updated_at: int = 0


class TaskInput(Model):
    input: dict[str, Any] = Field(default_factory=dict)
    version: str = ""
