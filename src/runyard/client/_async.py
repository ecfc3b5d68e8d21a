"""``AsyncClient``: the API over httpx, for asyncio. Mirrors ``Client`` method for method."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import httpx

from runyard.client import _calls as calls
from runyard.client import _config, _package
from runyard.client._calls import Call, ScheduleType
from runyard.client._download import (
    CHUNK,
    ProgressCallback,
    part_file,
    progress_reporter,
    target,
    total_of,
)
from runyard.client._envelope import araise_for_error, data_of
from runyard.client._errors import WaitTimeout
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
from runyard.client._paging import OffsetMode, Pager
from runyard.client._retry import Retry, poll_delays

T = TypeVar("T")
Json = Mapping[str, Any]


class AsyncExport:
    """An export's signed ``download_url``, and its download to disk."""

    def __init__(self, client: AsyncClient, download_url: str) -> None:
        self._client = client
        self.download_url = download_url

    def __repr__(self) -> str:
        return f"AsyncExport({self.download_url!r})"

    async def download(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        progress: bool | ProgressCallback = False,
    ) -> Path:
        """Stream the file to ``path`` (a file, or a directory for the server's file name)."""
        return await self._client.download(self.download_url, path, progress=progress)


class AsyncClient:
    """The Runyard (and CoreClaw) API v2.

    ``base_url`` and ``api_key`` default to ``RUNYARD_BASE_URL`` and ``RUNYARD_API_KEY``.
    A run is named by its id or ``"last"`` (your newest run); ``worker=`` instead names the
    newest run of that worker. Every refusal raises ``ApiError``.
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 60.0,
        retry: Retry | None = None,
        offset_mode: OffsetMode = "auto",
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = _config.base_url(base_url)
        self._key = _config.api_key(api_key)
        self.retry = retry or Retry()
        self.offset_mode: OffsetMode = offset_mode
        self._http = httpx.AsyncClient(
            timeout=timeout, transport=transport, headers={"User-Agent": _config.USER_AGENT}
        )
        # A synchronous start's reply comes when the run ends: no read timeout for it.
        self._waiting = httpx.Timeout(timeout, read=None)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def send(self, call: Call[T]) -> T:
        """Send one operation, retrying as ``self.retry`` allows; its parsed ``data``."""
        # The key goes only to the API: download links may point at another host.
        headers = {"Authorization": f"Bearer {self._key}"} if self._key else {}
        attempt = 0
        while True:
            try:
                response = await self._http.request(
                    call.method,
                    self.base_url + call.path,
                    params=call.params,
                    json=call.json,
                    files=call.files,
                    data=call.data,
                    headers=headers,
                    timeout=self._waiting if call.waits else httpx.USE_CLIENT_DEFAULT,
                )
            except httpx.TransportError as error:
                delay = self.retry.after_error(error, attempt, call.idempotent)
                if delay is None:
                    raise
            else:
                delay = self.retry.after_response(response, attempt, call.idempotent)
                if delay is None:
                    return call.parse(data_of(response))
            await asyncio.sleep(delay)
            attempt += 1

    # Results and exports

    async def get_results(
        self, run: str = "last", *, worker: str | None = None, offset: int = 0, limit: int = 20
    ) -> ResultPage:
        """One page of a run's rows, with ``count`` and the run's ``headers``."""
        return await self.send(calls.get_results(run, worker, offset, limit))

    def iter_results(
        self, run: str = "last", *, worker: str | None = None, page_size: int = 100
    ) -> AsyncIterator[dict[str, Any]]:
        """Every row of a run, in order, page after page (the rows stored when each is read).

        ``"last"`` and ``worker=`` name the newest run when the first page is asked for; a run
        started while paging does not take over."""
        target: list[str] = []

        async def fetch(window: dict[str, int]) -> tuple[list[dict[str, Any]], int, int, int]:
            if not target:
                pinned = run
                if run == "last" or worker is not None:
                    pinned = (await self.get_run(run, worker=worker)).slug
                target.append(pinned)
            page = await self.get_results(target[0], worker=None, **window)
            return page.rows, page.page_index, page.page_size, page.count

        return self._iterate(fetch, page_size)

    async def export(
        self,
        run: str = "last",
        format: str = "csv",
        keys: Sequence[str] | None = None,
        *,
        worker: str | None = None,
        bom: bool | None = None,
        delimiter: str | None = None,
    ) -> AsyncExport:
        """Ask for an export file of the run's rows; ``keys`` picks and orders the columns."""
        call = calls.export(run, worker, format, list(keys) if keys else None, bom, delimiter)
        return AsyncExport(self, await self.send(call))

    async def download(
        self,
        url: str,
        path: str | os.PathLike[str] | None = None,
        *,
        progress: bool | ProgressCallback = False,
    ) -> Path:
        """Stream a signed link (export or log) to disk; the path written.

        The request carries no API key (the link is the grant), so redirects, say to a file
        host, are followed."""
        async with self._http.stream("GET", url, follow_redirects=True) as response:
            await araise_for_error(response)
            dest = target(response, path)
            total = total_of(response)
            with part_file(dest) as f, progress_reporter(progress, dest.name, total) as report:
                done = 0
                async for chunk in response.aiter_bytes(CHUNK):
                    f.write(chunk)
                    done += len(chunk)
                    report(done, total)
        return dest

    # Runs

    async def start_run(
        self,
        worker: str,
        input: Json | None = None,
        *,
        system: Json | None = None,
        version: str | None = None,
        callback_url: str | None = None,
    ) -> RunStarted:
        """Start a run; ``input`` is the worker's own fields (sent as ``parameters.custom``)."""
        call = calls.start_run(
            worker, input, system, version, RunStarted, callback_url=callback_url
        )
        return await self.send(call)

    async def start_run_sync(
        self,
        worker: str,
        input: Json | None = None,
        *,
        system: Json | None = None,
        version: str | None = None,
        callback_url: str | None = None,
        offset: int = 0,
        limit: int = 20,
    ) -> SyncRun:
        """Start a run and wait for it on the server (which stops waiting after its limit)."""
        call = calls.start_run(
            worker,
            input,
            system,
            version,
            SyncRun,
            callback_url=callback_url,
            limit=limit,
            offset=offset,
        )
        return await self.send(call)

    async def list_runs(
        self,
        *,
        worker: str | None = None,
        status: str | None = None,
        start_time: int | None = None,
        end_time: int | None = None,
        offset: int = 0,
        limit: int = 20,
    ) -> Page[Run]:
        """Your runs, newest first; ``start_time``/``end_time`` bound the creation time."""
        return await self.send(calls.list_runs(offset, limit, worker, status, start_time, end_time))

    def iter_runs(
        self, *, worker: str | None = None, status: str | None = None, page_size: int = 100
    ) -> AsyncIterator[Run]:
        async def fetch(window: dict[str, int]) -> tuple[list[Run], int, int, int]:
            page = await self.list_runs(worker=worker, status=status, **window)
            return page.items, page.page_index, page.page_size, page.count

        return self._iterate(fetch, page_size)

    async def get_run(self, run: str = "last", *, worker: str | None = None) -> Run:
        return await self.send(calls.get_run(run, worker))

    async def wait(
        self,
        run: str = "last",
        *,
        worker: str | None = None,
        timeout: float | None = None,
        on_poll: Callable[[Run], None] | None = None,
        max_interval: float = 5.0,
    ) -> Run:
        """Poll until the run has succeeded or failed; its record. ``WaitTimeout`` after
        ``timeout`` seconds. ``on_poll`` sees every record read. Polls start 0.2 s apart and
        slow down to one every ``max_interval`` seconds."""
        start = time.monotonic()
        for delay in poll_delays(cap=max_interval):
            record = await self.get_run(run, worker=worker)
            if on_poll is not None:
                on_poll(record)
            if record.is_finished:
                return record
            if run == "last" or worker is not None:
                run, worker = record.slug, None  # keep to this run when a newer one starts
            left = None if timeout is None else timeout - (time.monotonic() - start)
            if left is not None and left <= 0:
                raise WaitTimeout(record, timeout or 0)
            await asyncio.sleep(delay if left is None else min(delay, left))
        raise AssertionError("unreachable")

    async def get_log(self, run: str = "last", *, worker: str | None = None) -> RunLog:
        """The newest 1,000 log entries and a link to the whole log (``all_logs_url``)."""
        return await self.send(calls.get_log(run, worker))

    async def abort_run(self, run: str = "last", *, worker: str | None = None) -> None:
        await self.send(calls.abort_run(run, worker))

    async def rerun(
        self, run: str = "last", *, worker: str | None = None, callback_url: str | None = None
    ) -> RunStarted:
        """A new run of the same worker, version and input."""
        call = calls.rerun(run, worker, RunStarted, callback_url=callback_url)
        return await self.send(call)

    async def rerun_sync(
        self,
        run: str = "last",
        *,
        worker: str | None = None,
        callback_url: str | None = None,
        offset: int = 0,
        limit: int = 20,
    ) -> SyncRun:
        call = calls.rerun(
            run, worker, SyncRun, callback_url=callback_url, limit=limit, offset=offset
        )
        return await self.send(call)

    # Workers, store, account, proxies

    async def list_workers(
        self, *, keyword: str | None = None, offset: int = 0, limit: int = 20
    ) -> Page[WorkerSummary]:
        return await self.send(calls.list_workers(offset, limit, keyword))

    async def list_store(
        self, *, keyword: str | None = None, offset: int = 0, limit: int = 20
    ) -> Page[WorkerSummary]:
        """Workers their owners published (needs no key)."""
        return await self.send(calls.list_store(offset, limit, keyword))

    async def get_worker(self, worker: str) -> WorkerDetail:
        return await self.send(calls.get_worker(worker))

    async def get_input_schema(self, worker: str) -> dict[str, Any]:
        return await self.send(calls.get_input_schema(worker))

    async def push_worker(
        self,
        path: str | os.PathLike[str],
        *,
        worker: str | None = None,
        version: str | None = None,
        title: str | None = None,
        description: str | None = None,
    ) -> VersionRegistered:
        """Upload a worker package (a directory or a ZIP) as a new version (Runyard)."""
        slug = worker or _package.slug_of(path)
        return await self.send(
            # Zipping reads every file: off the event loop.
            calls.push_worker(
                slug, await asyncio.to_thread(_package.archive, path), version, title, description
            )
        )

    async def get_account(self) -> Account:
        return await self.send(calls.get_account())

    async def list_proxy_regions(self, *, language: str | None = None) -> list[ProxyRegion]:
        return await self.send(calls.list_proxy_regions(language))

    # Tasks

    async def create_task(
        self,
        worker: str,
        title: str,
        input: Json | None = None,
        *,
        system: Json | None = None,
        version: str | None = None,
        description: str | None = None,
        schedule: ScheduleType | None = None,
        schedule_enabled: bool | None = None,
        time: str | None = None,
        weekday: int | None = None,
        day: int | None = None,
        once_date: str | None = None,
    ) -> str:
        """Save a run configuration, optionally on a schedule; the task's slug."""
        when = calls.schedule_fields(
            enabled=schedule_enabled,
            type=schedule,
            time=time,
            weekday=weekday,
            day=day,
            once_date=once_date,
        )
        return await self.send(
            calls.create_task(worker, title, input, system, version, description, when)
        )

    async def list_tasks(
        self,
        *,
        worker: str | None = None,
        keyword: str | None = None,
        offset: int = 0,
        limit: int = 20,
    ) -> Page[Task]:
        return await self.send(calls.list_tasks(offset, limit, worker, keyword))

    async def get_task(self, task: str) -> Task:
        return await self.send(calls.get_task(task))

    async def update_task(
        self,
        task: str,
        *,
        title: str | None = None,
        description: str | None = None,
        schedule: ScheduleType | None = None,
        schedule_enabled: bool | None = None,
        time: str | None = None,
        weekday: int | None = None,
        day: int | None = None,
        once_date: str | None = None,
    ) -> None:
        """Change only the fields given."""
        when = calls.schedule_fields(
            enabled=schedule_enabled,
            type=schedule,
            time=time,
            weekday=weekday,
            day=day,
            once_date=once_date,
        )
        await self.send(calls.update_task(task, title, description, when))

    async def delete_task(self, task: str) -> None:
        await self.send(calls.delete_task(task))

    async def get_task_input(self, task: str) -> TaskInput:
        return await self.send(calls.get_task_input(task))

    async def update_task_input(
        self,
        task: str,
        input: Json | None = None,
        *,
        system: Json | None = None,
        version: str | None = None,
    ) -> None:
        await self.send(calls.update_task_input(task, input, system, version))

    async def run_task(self, task: str, *, callback_url: str | None = None) -> RunStarted:
        call = calls.run_task(task, RunStarted, callback_url=callback_url)
        return await self.send(call)

    async def run_task_sync(
        self, task: str, *, callback_url: str | None = None, offset: int = 0, limit: int = 20
    ) -> SyncRun:
        call = calls.run_task(task, SyncRun, callback_url=callback_url, limit=limit, offset=offset)
        return await self.send(call)

    # Paging

    async def _iterate(
        self,
        fetch: Callable[[dict[str, int]], Awaitable[tuple[list[T], int, int, int]]],
        page_size: int,
    ) -> AsyncIterator[T]:
        pager = Pager(page_size, self.offset_mode)
        while not pager.done:
            items = pager.take(*(await fetch(pager.params())))
            if items is not None:
                for item in items:
                    yield item
