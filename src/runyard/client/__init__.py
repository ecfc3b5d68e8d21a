"""A client for the Runyard API — and the CoreClaw API v2 it speaks.

    from runyard.client import Client

    with Client("http://127.0.0.1:8000", api_key="...") as client:
        run = client.start_run("sample-data", {"count": 500})
        client.wait(run.run_slug, timeout=300)
        for row in client.iter_results(run.run_slug):
            ...
        client.export(run.run_slug, "xlsx").download("rows.xlsx", progress=True)

See docs/client.md.
"""

from runyard.client._async import AsyncClient, AsyncExport
from runyard.client._calls import EXPORT_FORMATS, ScheduleType
from runyard.client._errors import ApiError, WaitTimeout
from runyard.client._models import (
    Account,
    Header,
    LogEntry,
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
from runyard.client._paging import OffsetMode
from runyard.client._retry import NO_RETRY, Retry
from runyard.client._sync import Client, Export

__all__ = [
    "EXPORT_FORMATS",
    "NO_RETRY",
    "Account",
    "ApiError",
    "AsyncClient",
    "AsyncExport",
    "Client",
    "Export",
    "Header",
    "LogEntry",
    "OffsetMode",
    "Page",
    "ProxyRegion",
    "ResultPage",
    "Retry",
    "Run",
    "RunLog",
    "RunStarted",
    "ScheduleType",
    "SyncRun",
    "Task",
    "TaskInput",
    "VersionRegistered",
    "WaitTimeout",
    "WorkerDetail",
    "WorkerSummary",
]
