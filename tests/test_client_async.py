"""``runyard.client.AsyncClient``: the same operations as ``Client``, awaited.

Each test runs its coroutine with ``asyncio.run``; the server is the real one of conftest.
"""

from __future__ import annotations

import asyncio
import json
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from runyard.client import (
    NO_RETRY,
    ApiError,
    AsyncClient,
    AsyncExport,
    Retry,
    RunStarted,
    SyncRun,
    WaitTimeout,
    _async,
)
from tests.conftest import Server, User, wait_for
from tests.test_client import (
    ACCOUNT,
    BIG,
    ECHO,
    NAP,
    NAP_PROPERTIES,
    PROPERTIES,
    PUSHED,
    SLEEPER,
    Scripted,
    big_rows,
    envelope,
    make_package,
    tampered,
)


class AsyncRecording(httpx.AsyncHTTPTransport):
    """An ``httpx.AsyncHTTPTransport`` that keeps every request it sends."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return await super().handle_async_request(request)


class AsyncSleeps:
    """Stands in for the ``asyncio`` module of ``runyard.client._async``: records each sleep,
    sleeping for real only when ``real``; ``then`` runs after each one."""

    def __init__(self, *, real: bool = False, then: Callable[[int], None] | None = None) -> None:
        self.delays: list[float] = []
        self.real = real
        self.then = then

    async def sleep(self, seconds: float) -> None:
        self.delays.append(seconds)
        if self.real:
            await asyncio.sleep(seconds)
        if self.then is not None:
            self.then(len(self.delays))


def patch_sleep(monkeypatch: pytest.MonkeyPatch, sleeps: AsyncSleeps) -> None:
    monkeypatch.setattr(_async, "asyncio", SimpleNamespace(sleep=sleeps.sleep))


@pytest.fixture
def fake_server() -> Iterator[Callable[..., Scripted]]:
    started: list[Scripted] = []

    def make(*replies: Any) -> Scripted:
        srv = Scripted(*replies)
        started.append(srv)
        return srv

    yield make
    for srv in started:
        srv.close()


def results_requests(transport: AsyncRecording) -> int:
    return sum(1 for r in transport.requests if r.url.path.endswith("/result"))


# --- runs ---------------------------------------------------------------------------------


def test_runs_results_logs_and_reruns(server: Server, user: User, tmp_path: Path) -> None:
    worker = server.worker(user, ECHO, properties=PROPERTIES)

    async def main() -> None:
        async with AsyncClient(server.url, user.key) as client:
            started = await client.start_run(worker, {"query": "shoes"})
            assert isinstance(started, RunStarted)
            record = await client.wait(started.run_slug, timeout=30)
            assert (record.status, record.results) == ("succeeded", 1)
            run = started.run_slug
            for page in (
                await client.get_results(run),
                await client.get_results("last"),
                await client.get_results(worker=worker),
            ):
                assert page.rows == [{"query": "shoes", "pages": 2}]
                assert page.keys == ["query", "pages"]
            assert [r async for r in client.iter_results(run)] == [{"query": "shoes", "pages": 2}]
            assert (await client.get_run("last")).slug == run
            assert (await client.get_run(worker=worker)).slug == run

            synced = await client.start_run_sync(worker, {"query": "hats", "pages": 5})
            assert isinstance(synced, SyncRun) and synced.is_finished
            assert synced.results.rows == [{"query": "hats", "pages": 5}]

            log = await client.get_log(synced.run_slug)
            assert [e.level for e in log.entries if e.content == "echo hats"] == ["WARN"]
            path = await client.download(log.all_logs_url, tmp_path)
            assert "echo hats" in path.read_text()

            again = await client.rerun(run)
            assert (await client.wait(again.run_slug, timeout=30)).status == "succeeded"
            assert (await client.get_results(again.run_slug)).rows[0]["query"] == "shoes"
            resynced = await client.rerun_sync(worker=worker)
            assert resynced.is_finished and resynced.results.rows[0]["query"] == "shoes"

            listing = await client.list_runs(worker=worker)
            assert listing.count == 4
            assert [r.slug for r in listing.items][-1] == run  # newest first
            assert (await client.list_runs(worker=worker, status="failed")).count == 0
            slugs = [r.slug async for r in client.iter_runs(worker=worker, page_size=3)]
            assert slugs == [r.slug for r in listing.items]

            with pytest.raises(ApiError) as invalid:
                await client.start_run(worker, {"pages": "two"})
            assert (invalid.value.status_code, invalid.value.code) == (422, 11000)
            assert len(invalid.value.details) == 2

    asyncio.run(main())


def test_wait_timeout_abort_and_a_long_synchronous_start(server: Server, user: User) -> None:
    sleeper = server.worker(user, SLEEPER)
    napper = server.worker(user, NAP, properties=NAP_PROPERTIES)

    async def main() -> None:
        async with AsyncClient(server.url, user.key) as client:
            run = (await client.start_run(sleeper)).run_slug
            with pytest.raises(WaitTimeout) as caught:
                await client.wait(run, timeout=0.5)
            assert caught.value.run.slug == run
            assert (await client.get_run(run)).status in ("ready", "running")
            await client.abort_run(run)
            record = await client.wait(run, timeout=30)
            assert (record.status, record.err_msg) == ("failed", "aborted by user")
            with pytest.raises(ApiError) as finished:
                await client.abort_run(run)
            assert (finished.value.status_code, finished.value.code) == (409, 70002)
        # The server holds a synchronous start's reply past the client's read timeout.
        async with AsyncClient(server.url, user.key, timeout=0.3) as quick:
            synced = await quick.start_run_sync(napper, {"seconds": 1.0})
            assert synced.is_finished and synced.results.rows == [{"woke": True}]

    asyncio.run(main())


# --- exports and downloads ------------------------------------------------------------------


def test_export_download_matches_the_file_endpoint(
    server: Server, user: User, tmp_path: Path
) -> None:
    rows = [{"title": f"Café {i}", "n": i} for i in range(3000)]
    run = server.run(user, rows, worker="shop")
    transport = AsyncRecording()

    async def main() -> None:
        async with AsyncClient(server.url, user.key, transport=transport) as client:
            for fmt in ("csv", "xlsx"):
                export = await client.export(run, fmt)
                assert isinstance(export, AsyncExport)
                seen: list[tuple[int, int | None]] = []
                path = await export.download(
                    tmp_path / f"rows.{fmt}", progress=lambda d, t: seen.append((d, t))
                )
                direct = httpx.get(export.download_url)
                assert path.read_bytes() == direct.content
                assert seen[-1] == (len(direct.content), len(direct.content))
                assert [d for d, _ in seen] == sorted({d for d, _ in seen})
            into = tmp_path / "into"
            into.mkdir()
            named = await (await client.export(run, "json", ["n"])).download(into)
            assert named == into / f"shop_{run}.json"
            assert json.loads(named.read_text())[:2] == [{"n": 0}, {"n": 1}]
            assert [p.name for p in into.iterdir()] == [named.name]  # no .part left
            last = await client.export(worker="shop", format="csv", bom=False)
            assert (await last.download(tmp_path / "last.csv")).read_bytes().startswith(b"title,n")

            url = (await client.export(run)).download_url
            signer = server.services.signer
            name, filename = urlsplit(url).path.rsplit("/", 2)[1:]
            expired = signer.url(
                server.url, name, filename, expires=signer.expiry() - signer.ttl - 5
            )
            for bad in (tampered(url), expired):
                with pytest.raises(ApiError) as caught:
                    await AsyncExport(client, bad).download(tmp_path / "bad.csv")
                assert (caught.value.status_code, caught.value.code) == (404, 11004)
            assert not (tmp_path / "bad.csv").exists()
            assert not list(tmp_path.glob("*.part"))

    asyncio.run(main())
    files = [r for r in transport.requests if "/files/" in r.url.path]
    api = [r for r in transport.requests if "/files/" not in r.url.path]
    assert files and api
    assert all("authorization" not in r.headers for r in files)
    assert all(r.headers["authorization"] == f"Bearer {user.key}" for r in api)


# --- paging --------------------------------------------------------------------------------


def test_iter_results_over_10000_rows_in_both_offset_modes(
    server: Server, user: User, make_server: Callable[..., Server]
) -> None:
    rows = big_rows()
    run = server.run(user, rows)
    page_server = make_server(offset_mode="page")
    page_user = page_server.user()
    page_run = page_server.run(page_user, rows)

    async def read(url: str, key: str, slug: str, mode: str) -> int:
        transport = AsyncRecording()
        async with AsyncClient(url, key, transport=transport, offset_mode=mode) as client:  # type: ignore[arg-type]
            assert [row async for row in client.iter_results(slug)] == rows
        return results_requests(transport)

    async def main() -> None:
        assert await read(server.url, user.key, run, "auto") == BIG // 100
        assert await read(server.url, user.key, run, "row") == BIG // 100
        assert await read(page_server.url, page_user.key, page_run, "auto") == BIG // 100 + 1
        assert await read(page_server.url, page_user.key, page_run, "page") == BIG // 100
        async with AsyncClient(page_server.url, page_user.key) as client:
            small = page_server.run(page_user, rows[:7])
            assert [r async for r in client.iter_results(small, page_size=2)] == rows[:7]

        async with AsyncClient(server.url, user.key) as client:
            reading = client.iter_results(page_size=2)
            seen = [await anext(reading)]
            server.run(user, [{"newer": True}] * 5)
            seen.extend([row async for row in reading])
            assert seen == rows_of_last

    rows_of_last = [{"last": i} for i in range(5)]
    server.run(user, rows_of_last)
    asyncio.run(main())


# --- workers, store, account, proxies, tasks --------------------------------------------------


def test_workers_push_account_and_proxies(
    server: Server, user: User, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    public = server.worker(
        user, ECHO, properties=PROPERTIES, files={"worker.json": '{"public": true}'}
    )
    root = make_package(tmp_path / "dir", PUSHED, {"slug": "pushed-async", "version": "3.0.0"})
    zipped = make_package(tmp_path / "z", PUSHED, {"slug": "zipped-async"})
    archive = tmp_path / "something-else.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for file in sorted(zipped.iterdir()):
            zf.write(file, file.name)
    monkeypatch.delenv("RUNYARD_API_KEY", raising=False)

    async def main() -> None:
        async with AsyncClient(server.url, user.key) as client:
            assert [w.slug for w in (await client.list_workers(keyword=public)).items] == [public]
            assert [w.slug for w in (await client.list_store(keyword=public)).items] == [public]
            detail = await client.get_worker(public)
            assert [p["name"] for p in detail.parameters.custom["properties"]] == [
                "query",
                "pages",
            ]
            assert await client.get_input_schema(public) == {"properties": PROPERTIES}

            done = await client.push_worker(root)
            assert (done.slug, done.version) == ("pushed-async", "3.0.0")
            synced = await client.start_run_sync("pushed-async", {"n": 1})
            assert synced.results.rows == [{"from": "pushed", "n": 1}]
            assert (await client.push_worker(archive)).slug == "zipped-async"
            assert (await client.start_run_sync("zipped-async")).results.rows[0]["n"] == 7

            account = await client.get_account()
            assert (account.balance, account.balance_expiration_at) == ("0.00", 0)
            assert await client.list_proxy_regions() == []
        async with AsyncClient(server.url) as anonymous:
            assert await anonymous.get_input_schema(public) == {"properties": PROPERTIES}
            with pytest.raises(ApiError) as missing:
                await anonymous.get_account()
            assert (missing.value.status_code, missing.value.code) == (401, 12001)

    asyncio.run(main())


def test_every_task_operation(server: Server, user: User) -> None:
    worker = server.worker(user, ECHO, properties=PROPERTIES)

    async def main() -> None:
        async with AsyncClient(server.url, user.key) as client:
            task = await client.create_task(
                worker, "Monthly", {"query": "shoes"}, schedule="monthly", day=31, time="23:59"
            )
            record = await client.get_task(task)
            assert (record.schedule_type, record.schedule_day, record.schedule_time) == (
                3,
                31,
                "23:59",
            )
            assert record.schedule_enabled == 1 and record.worker_slug == worker
            assert [t.slug for t in (await client.list_tasks(worker=worker)).items] == [task]
            await client.update_task(task, title="Renamed", description="d")
            renamed = await client.get_task(task)
            assert (renamed.title, renamed.description, renamed.schedule_day) == (
                "Renamed",
                "d",
                31,
            )
            assert (await client.get_task_input(task)).input["parameters"]["custom"] == {
                "query": "shoes"
            }
            await client.update_task_input(task, {"query": "boots"})
            assert (await client.get_task_input(task)).input == {
                "parameters": {"custom": {"query": "boots"}}
            }
            started = await client.run_task(task)
            assert (await client.wait(started.run_slug, timeout=30)).status == "succeeded"
            synced = await client.run_task_sync(task)
            assert synced.results.rows == [{"query": "boots", "pages": 2}]
            assert (await client.get_task(task)).run_times == 2
            await client.delete_task(task)
            with pytest.raises(ApiError) as gone:
                await client.get_task(task)
            assert (gone.value.status_code, gone.value.code) == (404, 11004)

    asyncio.run(main())


# --- errors ----------------------------------------------------------------------------------


def test_api_errors_and_tenant_isolation(server: Server, user: User) -> None:
    run = server.run(user, [{"a": 1}], worker="mine")
    stranger = server.user()

    async def main() -> None:
        async with AsyncClient(server.url, user.key) as client:
            with pytest.raises(ApiError) as unknown:
                await client.get_results("01ARZ3NDEKTSV4RRFFQ69G5FAV")
            error = unknown.value
            assert (error.status_code, error.code) == (404, 11004)
            assert error.request_id and error.request_id.startswith("req-") and error.message
            with pytest.raises(ApiError) as fmt:
                await client.export(run, "pdf")
            assert (fmt.value.status_code, fmt.value.code) == (422, 11000)
            assert any("xlsx" in line for line in fmt.value.details)
        async with AsyncClient(server.url, "ry_nope") as bad:
            with pytest.raises(ApiError) as invalid:
                await bad.list_runs()
            assert (invalid.value.status_code, invalid.value.code) == (401, 12002)
        async with AsyncClient(server.url, stranger.key) as theirs:
            for call in (theirs.get_run(run), theirs.get_results(run), theirs.export(run)):
                with pytest.raises(ApiError) as hidden:
                    await call
                assert (hidden.value.status_code, hidden.value.code) == (404, 11004)

    asyncio.run(main())


# --- retries --------------------------------------------------------------------------------


def test_retries_on_429_and_5xx(
    fake_server: Callable[..., Scripted], monkeypatch: pytest.MonkeyPatch
) -> None:
    sleeps = AsyncSleeps()
    patch_sleep(monkeypatch, sleeps)
    limited = fake_server(
        envelope(status=429, code=13000, headers={"Retry-After": "1"}), envelope(ACCOUNT)
    )
    too_long = fake_server(envelope(status=429, code=13000, headers={"Retry-After": "90"}))
    failing = fake_server(envelope(status=502, code=10000), envelope(ACCOUNT))
    html = fake_server((502, {"Content-Type": "text/html"}, b"<html>Bad Gateway</html>"))

    async def main() -> None:
        async with AsyncClient(limited.url, "ry_key") as client:
            assert (await client.get_account()).balance == "1.00"
        assert sleeps.delays == [1.0] and len(limited.requests) == 2

        async with AsyncClient(too_long.url, "ry_key", retry=Retry(max_delay=60)) as client:
            with pytest.raises(ApiError) as caught:
                await client.get_account()
        assert (caught.value.status_code, caught.value.code) == (429, 13000)
        assert len(too_long.requests) == 1 and sleeps.delays == [1.0]

        async with AsyncClient(failing.url, "ry_key") as client:
            assert (await client.get_account()).balance == "1.00"  # GET: retried
            assert len(failing.requests) == 2 and len(sleeps.delays) == 2
        failing.replies[:] = [envelope(status=502, code=10000)]
        async with AsyncClient(failing.url, "ry_key") as client:
            with pytest.raises(ApiError) as post:
                await client.rerun("01ARZ3NDEKTSV4RRFFQ69G5FAV")  # POST: never sent twice
        assert (post.value.status_code, post.value.code) == (502, 10000)
        assert len(failing.requests) == 3 and len(sleeps.delays) == 2

        async with AsyncClient(html.url, "ry_key", retry=NO_RETRY) as client:
            with pytest.raises(ApiError) as page:
                await client.get_run()
        assert (page.value.status_code, page.value.code) == (502, 0)
        assert page.value.details == ["<html>Bad Gateway</html>"]

    asyncio.run(main())


def test_a_start_over_the_concurrent_limit_is_retried_until_a_slot_frees(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = server.user()
    server.services.accounts.set_limits(user.name, max_concurrent_runs=1)
    sleeper = server.worker(user, SLEEPER)
    busy: list[str] = []

    def free_the_slot(n: int) -> None:
        if n == 1:
            with server.client(user) as api:
                api.post(f"/api/v2/worker-runs/{busy[0]}/abort")
                wait_for(api, busy[0])

    sleeps = AsyncSleeps(then=free_the_slot)

    async def main() -> str:
        async with AsyncClient(server.url, user.key, retry=NO_RETRY) as strict:
            busy.append((await strict.start_run(sleeper)).run_slug)
            with pytest.raises(ApiError) as refused:
                await strict.start_run(sleeper)
            assert (refused.value.status_code, refused.value.code) == (429, 30003)
        patch_sleep(monkeypatch, sleeps)
        async with AsyncClient(
            server.url, user.key, retry=Retry(attempts=3, backoff=0.05)
        ) as patient:
            second = (await patient.start_run(sleeper)).run_slug
            assert len(sleeps.delays) == 1
            await patient.abort_run(second)
            return second

    second = asyncio.run(main())
    monkeypatch.undo()
    with server.client(user) as api:
        assert wait_for(api, second)["status"] == "failed"


# --- configuration ---------------------------------------------------------------------------


def test_base_url_and_key_from_arguments_or_the_environment(
    server: Server, user: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = server.run(user, [{"a": 1}])

    async def main() -> None:
        for given in (server.url, server.url + "/api/v2"):
            async with AsyncClient(given, user.key) as client:
                assert (await client.get_run()).slug == run
        monkeypatch.setenv("RUNYARD_BASE_URL", server.url)
        monkeypatch.setenv("RUNYARD_API_KEY", user.key)
        async with AsyncClient() as client:
            assert client.base_url == server.url + "/api/v2"
            assert (await client.get_run()).slug == run

    asyncio.run(main())
