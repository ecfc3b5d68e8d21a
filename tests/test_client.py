"""``runyard.client.Client`` against a real Runyard server (and, for retries, a scripted one)."""

from __future__ import annotations

import io
import json
import socket
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from runyard.client import (
    NO_RETRY,
    ApiError,
    Client,
    Export,
    Retry,
    RunStarted,
    SyncRun,
    WaitTimeout,
    _package,
    _sync,
)
from runyard.client._paging import Pager
from tests.conftest import Server, User, wait_for

ECHO = """
from runyard import sdk
params = sdk.input()
sdk.log("echo " + params["query"], level="warn")
sdk.push(params)
"""
PROPERTIES = [
    {"name": "query", "title": "Query", "type": "string", "required": True},
    {"name": "pages", "title": "Pages", "type": "integer", "default": 2},
]
SLEEPER = """
import time
time.sleep(60)
"""
#: Finishes after about a second: long enough to be polled a few times.
NAP = """
import time
from runyard import sdk
time.sleep(float(sdk.input().get("seconds", 1)))
sdk.push({"woke": True})
"""
NAP_PROPERTIES = [{"name": "seconds", "title": "Seconds", "type": "number", "default": 1}]
BIG = 10_000


# --- helpers shared with test_client_async ---------------------------------------------------


class Recording(httpx.HTTPTransport):
    """An ``httpx.HTTPTransport`` that keeps every request it sends."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return super().handle_request(request)


class Sleeps:
    """Stands in for the ``time`` module of ``runyard.client._sync``: records every sleep, and
    sleeps for real only when asked to (``real``). ``then`` runs after each recorded sleep."""

    monotonic = staticmethod(time.monotonic)

    def __init__(self, *, real: bool = False, then: Callable[[int], None] | None = None) -> None:
        self.delays: list[float] = []
        self.real = real
        self.then = then

    def sleep(self, seconds: float) -> None:
        self.delays.append(seconds)
        if self.real:
            time.sleep(seconds)
        if self.then is not None:
            self.then(len(self.delays))


Reply = tuple[int, dict[str, str], bytes]


def envelope(
    data: Any = None,
    *,
    status: int = 200,
    code: int = 0,
    message: str = "success",
    headers: dict[str, str] | None = None,
) -> Reply:
    body: dict[str, Any] = {"code": code, "message": message, "data": data}
    if code:
        body["details"] = [f"detail of {code}"]
    body["request_id"] = f"req-scripted-{status}"
    return (
        status,
        {"Content-Type": "application/json", **(headers or {})},
        json.dumps(body).encode(),
    )


class Scripted:
    """A tiny HTTP server on loopback: each request gets the next reply of the script (the last
    one is repeated). ``requests`` holds (method, path, headers) of every request received."""

    def __init__(self, *replies: Reply) -> None:
        self.replies = list(replies)
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                outer.requests.append((self.command, self.path, headers))
                status, extra, body = (
                    outer.replies.pop(0) if len(outer.replies) > 1 else outer.replies[0]
                )
                self.send_response(status)
                for name, value in extra.items():
                    self.send_header(name, value)
                if "Content-Length" not in extra:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_DELETE = answer

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def scripted() -> Iterator[Callable[..., Scripted]]:
    started: list[Scripted] = []

    def make(*replies: Reply) -> Scripted:
        srv = Scripted(*replies)
        started.append(srv)
        return srv

    yield make
    for srv in started:
        srv.close()


def make_package(root: Path, main: str, meta: dict[str, Any] | None = None) -> Path:
    """A worker package directory: ``main.py``, schemas and an optional ``worker.json``."""
    root.mkdir(parents=True)
    (root / "main.py").write_text(main)
    schema = {"properties": [{"name": "n", "title": "N", "type": "integer", "default": 7}]}
    (root / "input_schema.json").write_text(json.dumps(schema))
    (root / "output_schema.json").write_text("[]")
    if meta is not None:
        (root / "worker.json").write_text(json.dumps(meta))
    return root


PUSHED = "from runyard import sdk\nsdk.push({'from': 'pushed', **sdk.input()})\n"


def tampered(url: str) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    query["signature"] = query["signature"][:-1] + ("0" if query["signature"][-1] != "0" else "1")
    return parts._replace(query=urlencode(query)).geturl()


def big_rows() -> list[dict[str, Any]]:
    return [{"i": i, "name": f"row {i}"} for i in range(BIG)]


def result_requests(transport: Recording) -> int:
    return sum(1 for r in transport.requests if r.url.path.endswith("/result"))


@pytest.fixture
def client(server: Server, user: User) -> Iterator[Client]:
    with Client(server.url, user.key) as c:
        yield c


# --- runs ---------------------------------------------------------------------------------


def test_start_run_sends_input_as_custom_and_the_schema_fills_defaults(
    server: Server, user: User, client: Client
) -> None:
    worker = server.worker(user, ECHO, properties=PROPERTIES)
    started = client.start_run(worker, {"query": "shoes"})
    assert isinstance(started, RunStarted) and len(started.run_slug) == 26
    record = client.wait(started.run_slug, timeout=30)
    assert (record.status, record.results, record.scraper_slug) == ("succeeded", 1, worker)
    assert client.get_results(started.run_slug).rows == [{"query": "shoes", "pages": 2}]

    synced = client.start_run_sync(worker, {"query": "hats", "pages": 5}, limit=1)
    assert isinstance(synced, SyncRun)
    assert synced.is_finished and synced.run_status == "succeeded"
    assert synced.results.rows == [{"query": "hats", "pages": 5}]
    assert synced.results.keys == ["query", "pages"]


def test_invalid_input_is_a_422_with_one_detail_per_problem(
    server: Server, user: User, client: Client
) -> None:
    worker = server.worker(user, ECHO, properties=PROPERTIES)
    with pytest.raises(ApiError) as caught:
        client.start_run(worker, {"pages": "two"}, system={"nope": 1})
    error = caught.value
    assert (error.status_code, error.code) == (422, 11000)
    assert len(error.details) == 3, error.details
    for word in ("query", "pages", "nope"):
        assert any(word in line for line in error.details), (word, error.details)
    assert error.request_id and error.request_id.startswith("req-")
    with pytest.raises(ApiError) as version:
        client.start_run(worker, {"query": "x"}, version="9.9.9")
    assert (version.value.status_code, version.value.code) == (404, 50003)
    assert client.list_runs(worker=worker).count == 0  # nothing was started


def test_a_synchronous_start_outlasts_the_client_timeout(server: Server, user: User) -> None:
    # The server holds the reply until the run ends; the client's read timeout must not cut it.
    worker = server.worker(user, NAP, properties=NAP_PROPERTIES)
    with Client(server.url, user.key, timeout=0.3) as quick:
        synced = quick.start_run_sync(worker, {"seconds": 1.0})
        assert synced.is_finished and synced.results.rows == [{"woke": True}]


def test_get_run_by_id_last_and_worker(server: Server, user: User, client: Client) -> None:
    alpha = server.run(user, [{"a": 1}], worker="alpha")
    beta = server.run(user, [{"b": 1}, {"b": 2}], worker="beta")
    assert client.get_run(alpha).slug == alpha
    assert client.get_run(alpha).scraper_slug == "alpha"
    last = client.get_run("last")
    assert (last.slug, last.results, last.status) == (beta, 2, "succeeded")
    assert last.is_finished
    assert client.get_run(worker="alpha").slug == alpha
    assert client.get_run(worker=f"{user.name}~alpha").slug == alpha
    with pytest.raises(ValueError):
        client.get_run(alpha, worker="alpha")


def test_list_runs_filters_and_iter_runs(server: Server, user: User, client: Client) -> None:
    alphas = [server.run(user, [{"n": n}], worker="alpha") for n in range(5)]
    beta = server.run(user, [], worker="beta")
    everything = client.list_runs()
    assert everything.count == 6
    assert [r.slug for r in everything.items] == [beta, *reversed(alphas)]  # newest first
    assert [r.slug for r in client.list_runs(worker="beta").items] == [beta]
    assert client.list_runs(status="succeeded").count == 6
    assert client.list_runs(status="running").count == 0
    now = int(time.time())
    assert client.list_runs(start_time=now - 3600, end_time=now + 3600).count == 6
    assert client.list_runs(start_time=now + 3600).count == 0
    page = client.list_runs(worker="alpha", offset=2, limit=2)
    assert [r.slug for r in page.items] == [alphas[2], alphas[1]]
    assert (page.page_index, page.page_size) == (2, 2)
    # Paging through every run, two at a time.
    assert [r.slug for r in client.iter_runs(worker="alpha", page_size=2)] == alphas[::-1]
    assert len(list(client.iter_runs())) == 6


def test_wait_polls_with_backoff_until_the_run_ends(
    server: Server, user: User, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    worker = server.worker(user, NAP, properties=NAP_PROPERTIES)
    run = client.start_run(worker, {"seconds": 1}).run_slug
    sleeps = Sleeps(real=True)
    monkeypatch.setattr(_sync, "time", sleeps)
    seen: list[str] = []
    record = client.wait(worker=worker, timeout=30, on_poll=lambda r: seen.append(r.status))
    assert record.slug == run and record.status == "succeeded" and record.results == 1
    assert seen[-1] == "succeeded" and len(seen) == len(sleeps.delays) + 1
    # Quick at first, then slower and slower (capped at 5 s).
    assert sleeps.delays[0] == pytest.approx(0.2)
    assert all(b > a for a, b in zip(sleeps.delays, sleeps.delays[1:], strict=False))
    assert len(sleeps.delays) >= 2


def test_wait_times_out_and_the_run_goes_on_then_abort(
    server: Server, user: User, client: Client
) -> None:
    worker = server.worker(user, SLEEPER)
    run = client.start_run(worker).run_slug
    started = time.monotonic()
    with pytest.raises(WaitTimeout) as caught:
        client.wait(run, timeout=0.6)
    assert 0.5 < time.monotonic() - started < 5
    assert caught.value.run.slug == run
    assert caught.value.run.status in ("ready", "running")
    assert client.get_run(run).status in ("ready", "running")  # still going

    client.abort_run(run)
    record = client.wait(run, timeout=30)
    assert (record.status, record.err_msg) == ("failed", "aborted by user")
    with pytest.raises(ApiError) as finished:
        client.abort_run(run)
    assert (finished.value.status_code, finished.value.code) == (409, 70002)


def test_get_log_and_its_download(
    server: Server, user: User, client: Client, tmp_path: Path
) -> None:
    worker = server.worker(user, ECHO, properties=PROPERTIES)
    run = client.start_run_sync(worker, {"query": "lamps"}).run_slug
    for log in (client.get_log(run), client.get_log(), client.get_log(worker=worker)):
        assert log.result_count == 1
        warned = [e for e in log.entries if e.content == "echo lamps"]
        assert len(warned) == 1 and warned[0].level == "WARN" and warned[0].timestamp > 0
    log = client.get_log(run)
    seen: list[tuple[int, int | None]] = []
    path = client.download(log.all_logs_url, tmp_path, progress=lambda d, t: seen.append((d, t)))
    assert seen[-1] == (path.stat().st_size, None)  # streamed: no length known up front
    assert path.parent == tmp_path and path.name.endswith(".log")
    assert "echo lamps" in path.read_text()
    assert list(tmp_path.iterdir()) == [path]


def test_rerun_and_rerun_sync(server: Server, user: User, client: Client) -> None:
    worker = server.worker(user, ECHO, properties=PROPERTIES)
    first = client.start_run_sync(worker, {"query": "socks"}).run_slug
    again = client.rerun(first)
    assert again.run_slug != first
    assert client.wait(again.run_slug, timeout=30).status == "succeeded"
    assert client.get_results(again.run_slug).rows == [{"query": "socks", "pages": 2}]
    synced = client.rerun_sync(worker=worker)
    assert synced.is_finished and synced.results.rows == [{"query": "socks", "pages": 2}]
    assert synced.run_slug not in (first, again.run_slug)
    last = client.rerun("last")
    assert client.wait(last.run_slug, timeout=30).status == "succeeded"
    assert client.list_runs(worker=worker).count == 4


# --- results, exports, downloads ---------------------------------------------------------


def test_get_results_in_every_run_form(server: Server, user: User, client: Client) -> None:
    rows = [{"i": i, "name": f"n{i}"} for i in range(30)]
    run = server.run(user, rows, worker="results-form")
    for page in (
        client.get_results(run, offset=10, limit=5),
        client.get_results("last", offset=10, limit=5),
        client.get_results(worker="results-form", offset=10, limit=5),
    ):
        assert page.count == 30 and page.rows == rows[10:15]
        assert page.keys == ["i", "name"]
        assert (page.page_index, page.page_size) == (3, 5)
    assert client.get_results(run).rows == rows[:20]  # default page: 20 rows
    assert client.get_results(run, offset=100).rows == []
    assert list(client.iter_results(run, page_size=7)) == rows
    assert list(client.iter_results(worker="results-form")) == rows


def test_iter_results_of_last_keeps_to_that_run_when_a_newer_one_starts(
    server: Server, user: User, client: Client
) -> None:
    first = [{"run": "first", "i": i} for i in range(6)]
    server.run(user, first, worker="pinned")
    for kwargs in ({}, {"worker": "pinned"}):
        rows = client.iter_results(page_size=2, **kwargs)  # type: ignore[arg-type]
        seen = [next(rows)]
        server.run(user, [{"run": "newer", "i": i} for i in range(6)], worker="pinned")
        seen.extend(rows)
        assert seen == first, kwargs
        first = [{"run": "newer", "i": i} for i in range(6)]


def test_export_download_matches_the_file_endpoint_byte_for_byte(
    server: Server, user: User, client: Client, tmp_path: Path
) -> None:
    rows = [
        {"title": f"Café ☕ {i}", "url": f"https://example.com/{i}", "n": i} for i in range(3000)
    ]
    run = server.run(user, rows, worker="shop")
    for fmt in ("csv", "xlsx", "json"):
        export = client.export(run, fmt)
        assert isinstance(export, Export) and export.download_url.startswith(server.url)
        direct = httpx.get(export.download_url, timeout=60)
        assert direct.status_code == 200
        seen: list[tuple[int, int | None]] = []
        path = export.download(tmp_path / f"rows.{fmt}", progress=lambda d, t: seen.append((d, t)))
        assert path == tmp_path / f"rows.{fmt}"
        assert path.read_bytes() == direct.content
        size = len(direct.content)
        assert seen[-1] == (size, size)
        counts = [d for d, _ in seen]
        assert counts == sorted(counts) and len(set(counts)) == len(counts)
        if fmt == "csv":
            assert len(seen) > 1  # a large file is reported chunk by chunk
    # A directory: the file is named by the server.
    into = tmp_path / "into"
    into.mkdir()
    path = client.export(run, "xlsx").download(into)
    assert path == into / f"shop_{run}.xlsx"
    assert path.read_bytes()[:2] == b"PK"
    assert [p.name for p in into.iterdir()] == [path.name]  # no .part file left
    assert not list(tmp_path.glob("*.part"))


def test_export_keys_options_and_last_forms(
    server: Server, user: User, client: Client, tmp_path: Path
) -> None:
    run = server.run(user, [{"a": 1, "b": 2, "c": 3}], worker="keys")
    path = client.export(run, "json", ["c", "a"]).download(tmp_path / "picked.json")
    assert json.loads(path.read_text()) == [{"c": 3, "a": 1}]
    plain = client.export(run, "csv", bom=False, delimiter=";").download(tmp_path / "plain.csv")
    assert plain.read_bytes() == b"a;b;c\r\n1;2;3\r\n"
    for export in (client.export("last", "jsonl"), client.export(worker="keys", format="jsonl")):
        assert f"keys_{run}.jsonl" in export.download_url


def test_progress_bar_download(
    server: Server, user: User, client: Client, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = server.run(user, [{"a": 1}], worker="bar")
    path = client.export(run, "csv").download(tmp_path / "bar.csv", progress=True)
    assert path.read_bytes().startswith(b"\xef\xbb\xbfa\r\n")
    drawn = capsys.readouterr()
    # The bar goes to stderr, named after the file, with the size downloaded; stdout stays clean.
    assert drawn.out == ""
    assert (
        "bar.csv" in drawn.err and f"{path.stat().st_size}/{path.stat().st_size} bytes" in drawn.err
    )


def test_a_tampered_or_expired_link_is_404_and_writes_nothing(
    server: Server, user: User, client: Client, tmp_path: Path
) -> None:
    run = server.run(user, [{"a": 1}])
    url = client.export(run, "csv").download_url
    signer = server.services.signer
    name, filename = urlsplit(url).path.rsplit("/", 2)[1:]
    expired = signer.url(server.url, name, filename, expires=signer.expiry() - signer.ttl - 5)
    for bad in (tampered(url), expired):
        with pytest.raises(ApiError) as caught:
            Export(client, bad).download(tmp_path)
        assert (caught.value.status_code, caught.value.code) == (404, 11004)
    assert list(tmp_path.iterdir()) == []


def test_a_download_cut_short_leaves_no_file_behind(
    client: Client, scripted: Callable[..., Scripted], tmp_path: Path
) -> None:
    # Says 100,000 bytes, sends 10 and hangs up.
    cut = scripted((200, {"Content-Length": "100000"}, b"0123456789"))
    with pytest.raises(httpx.RemoteProtocolError):
        client.download(f"{cut.url}/rows.csv", tmp_path / "rows.csv")
    assert list(tmp_path.iterdir()) == []


def test_the_api_key_is_never_sent_to_the_download_host(server: Server, user: User) -> None:
    run = server.run(user, [{"a": 1}])
    transport = Recording()
    with Client(server.url, user.key, transport=transport) as client:
        client.export(run, "csv").download(server.tmp / f"{run}.csv")
        log_url = client.get_log(run).all_logs_url
        client.download(log_url, server.tmp / f"{run}.log")
    api = [r for r in transport.requests if "/files/" not in r.url.path]
    files = [r for r in transport.requests if "/files/" in r.url.path]
    assert len(api) == 2 and len(files) == 2
    assert all(r.headers["authorization"] == f"Bearer {user.key}" for r in api)
    for request in files:
        assert "authorization" not in request.headers
        assert user.key not in str(request.url)


def test_a_redirected_download_is_followed_without_the_key(
    server: Server, user: User, client: Client, scripted: Callable[..., Scripted], tmp_path: Path
) -> None:
    run = server.run(user, [{"a": 1}])
    real = client.export(run, "csv").download_url
    hop = scripted((302, {"Location": real}, b""))
    path = client.download(f"{hop.url}/file.csv", tmp_path)
    assert path.read_bytes() == httpx.get(real).content
    assert path.name == f"test-worker_{run}.csv"
    assert "authorization" not in hop.requests[0][2]


# --- paging ------------------------------------------------------------------------------


def test_iter_results_reads_10000_rows_in_100_row_pages(server: Server, user: User) -> None:
    rows = big_rows()
    run = server.run(user, rows)
    for mode in ("auto", "row"):
        transport = Recording()
        with Client(server.url, user.key, transport=transport, offset_mode=mode) as client:  # type: ignore[arg-type]
            assert list(client.iter_results(run)) == rows
        assert result_requests(transport) == BIG // 100, mode


def test_iter_results_on_a_page_mode_server(make_server: Callable[..., Server]) -> None:
    srv = make_server(offset_mode="page")
    user = srv.user()
    rows = big_rows()
    run = srv.run(user, rows)
    transport = Recording()
    with Client(srv.url, user.key, transport=transport) as client:
        assert list(client.iter_results(run)) == rows
        # One extra request: the second page shows the server numbers pages.
        assert result_requests(transport) == BIG // 100 + 1
        small = srv.run(user, rows[:7])
        assert list(client.iter_results(small, page_size=2)) == rows[:7]
    with Client(srv.url, user.key, transport=transport, offset_mode="page") as told:
        transport.requests.clear()
        assert list(told.iter_results(run)) == rows
        assert result_requests(transport) == BIG // 100
        assert list(told.iter_results(small, page_size=2)) == rows[:7]
        # Lists page the same way.
        for n in range(3):
            srv.run(user, [{"n": n}], worker="few")
        assert len(list(told.iter_runs(worker="few", page_size=2))) == 3


# --- workers, store, account, proxies -----------------------------------------------------


def test_workers_store_and_input_schema(
    server: Server, user: User, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    private = server.worker(user, ECHO, properties=PROPERTIES, files={"README.md": "# Echo\n"})
    public = server.worker(
        user, ECHO, properties=PROPERTIES, files={"worker.json": '{"public": true}'}
    )
    listing = client.list_workers(keyword=private)
    assert listing.count == 1 and listing.items[0].slug == private
    assert listing.items[0].path == f"{user.name}/{private}"
    assert {w.slug for w in client.list_workers().items} >= {private, public}
    store = client.list_store(keyword=public)
    assert [w.slug for w in store.items] == [public]
    assert client.list_store(keyword=private).count == 0

    detail = client.get_worker(private)
    assert (detail.slug, detail.version, detail.readme) == (private, "1.0.0", "# Echo\n")
    assert [p["name"] for p in detail.parameters.custom["properties"]] == ["query", "pages"]
    assert detail.parameters.system["execute_limit_time_seconds"] == 1800
    assert client.get_worker(f"{user.name}~{private}").slug == private
    assert client.get_input_schema(private) == {"properties": PROPERTIES}

    # No key: the store and a published worker's schema are public, a private one is not.
    monkeypatch.delenv("RUNYARD_API_KEY", raising=False)
    with Client(server.url) as anonymous:
        assert anonymous.get_input_schema(public) == {"properties": PROPERTIES}
        assert anonymous.list_store(keyword=public).count == 1
        with pytest.raises(ApiError) as hidden:
            anonymous.get_input_schema(f"{user.name}~{private}")
        assert (hidden.value.status_code, hidden.value.code) == (404, 11004)


def test_push_worker_from_a_directory_and_a_zip_then_run_it(
    user: User, client: Client, tmp_path: Path
) -> None:
    root = make_package(
        tmp_path / "src-dir", PUSHED, {"slug": "pushed", "title": "Pushed", "version": "2.0.0"}
    )
    (root / "__pycache__").mkdir()
    (root / "__pycache__" / "junk.pyc").write_bytes(b"junk")
    names = zipfile.ZipFile(io.BytesIO(_package.archive(root))).namelist()
    assert sorted(names) == ["input_schema.json", "main.py", "output_schema.json", "worker.json"]
    done = client.push_worker(root)
    assert (done.slug, done.version) == ("pushed", "2.0.0")
    assert client.get_worker("pushed").title == "Pushed"
    synced = client.start_run_sync("pushed", {"n": 3})
    assert synced.results.rows == [{"from": "pushed", "n": 3}]

    # The next version, without worker.json: the slug is given, the version counts on.
    bare = make_package(tmp_path / "bare", PUSHED.replace("pushed", "bare"))
    again = client.push_worker(bare, worker="pushed", description="second")
    assert (again.slug, again.version) == ("pushed", "2.0.1")
    assert client.start_run_sync("pushed").results.rows == [{"from": "bare", "n": 7}]

    # A ZIP whose file name is not the worker's slug: worker.json names it.
    zipped = make_package(tmp_path / "z" / "pkg", PUSHED, {"slug": "zipped", "version": "1.2.0"})
    archive = tmp_path / "release-1.2.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for file in sorted(zipped.iterdir()):
            zf.write(file, f"pkg/{file.name}")
    done = client.push_worker(archive)
    assert (done.slug, done.version) == ("zipped", "1.2.0")
    assert client.start_run_sync("zipped").results.rows == [{"from": "pushed", "n": 7}]

    # A ZIP without worker.json is named after its file.
    plain = tmp_path / "plain-worker.zip"
    with zipfile.ZipFile(plain, "w") as zf:
        for file in sorted(bare.iterdir()):
            zf.write(file, file.name)
    done = client.push_worker(plain, version="5.0.0", title="Plain")
    assert (done.slug, done.version) == ("plain-worker", "5.0.0")
    assert client.get_worker("plain-worker").title == "Plain"

    not_a_package = tmp_path / "notes.txt"
    not_a_package.write_text("hello")
    with pytest.raises(ValueError, match="neither a directory nor a ZIP"):
        client.push_worker(not_a_package)
    with pytest.raises(ApiError) as invalid:
        client.push_worker(make_package(tmp_path / "bad", ""), worker="Bad Slug!")
    assert (invalid.value.status_code, invalid.value.code) == (422, 11000)


def test_account_and_proxy_regions(
    server: Server, user: User, client: Client, make_server: Callable[..., Server]
) -> None:
    account = client.get_account()
    assert (account.balance, account.balance_expiration_at) == ("0.00", 0)
    server.services.accounts.set_limits(user.name, credit="5")
    assert client.get_account().balance == "5.00"
    assert client.list_proxy_regions() == []

    srv = make_server(
        proxies={
            "US": {
                "name": {"en": "United States", "de": "Vereinigte Staaten"},
                "urls": ["http://p:1"],
            }
        }
    )
    with Client(srv.url) as anonymous:  # public: no key needed
        [region] = anonymous.list_proxy_regions()
        assert (region.code, region.name) == ("US", "United States")
        [german] = anonymous.list_proxy_regions(language="de")
        assert german.name == "Vereinigte Staaten"


# --- tasks -------------------------------------------------------------------------------


def test_every_task_operation(server: Server, user: User, client: Client) -> None:
    worker = server.worker(user, ECHO, properties=PROPERTIES)
    task = client.create_task(
        worker,
        "Weekly shoes",
        {"query": "shoes"},
        description="every Monday",
        schedule="weekly",
        weekday=1,
        time="06:30",
    )
    record = client.get_task(task)
    assert (record.slug, record.title, record.description) == (task, "Weekly shoes", "every Monday")
    assert (record.schedule_enabled, record.schedule_type, record.schedule_weekday) == (1, 2, 1)
    assert (record.schedule_time, record.worker_slug, record.version) == ("06:30", worker, "latest")
    assert record.input == {"parameters": {"custom": {"query": "shoes"}}}
    assert (record.run_times, record.last_run_id) == (0, "")
    unscheduled = client.create_task(worker, "By hand", {"query": "x"})
    assert client.get_task(unscheduled).schedule_enabled == 0

    listing = client.list_tasks(worker=worker)
    assert listing.count == 2 and {t.slug for t in listing.items} == {task, unscheduled}
    assert [t.slug for t in client.list_tasks(keyword="Weekly").items] == [task]

    client.update_task(task, title="Monday shoes", schedule_enabled=False)
    changed = client.get_task(task)
    assert (changed.title, changed.schedule_enabled, changed.schedule_weekday) == (
        "Monday shoes",
        0,
        1,
    )
    client.update_task(task, schedule="daily", schedule_enabled=True, time="07:00")
    daily = client.get_task(task)
    assert (daily.schedule_type, daily.schedule_time, daily.schedule_enabled) == (1, "07:00", 1)

    assert client.get_task_input(task).input == {"parameters": {"custom": {"query": "shoes"}}}
    client.update_task_input(task, {"query": "boots"}, system={"execute_limit_time_seconds": 60})
    saved = client.get_task_input(task)
    assert saved.input["parameters"]["custom"] == {"query": "boots"}
    assert saved.input["parameters"]["system"] == {"execute_limit_time_seconds": 60}
    assert saved.version == "latest"

    started = client.run_task(task)
    assert client.wait(started.run_slug, timeout=30).status == "succeeded"
    assert client.get_results(started.run_slug).rows == [{"query": "boots", "pages": 2}]
    synced = client.run_task_sync(task)
    assert synced.is_finished and synced.results.rows == [{"query": "boots", "pages": 2}]
    after = client.get_task(task)
    assert (after.run_times, after.last_run_id) == (2, synced.run_slug)

    client.delete_task(task)
    with pytest.raises(ApiError) as gone:
        client.get_task(task)
    assert (gone.value.status_code, gone.value.code) == (404, 11004)
    with pytest.raises(ValueError):
        client.create_task(worker, "bad", schedule="hourly")  # type: ignore[arg-type]


# --- errors --------------------------------------------------------------------------------


def test_api_errors_carry_status_code_message_details_and_request_id(
    server: Server, user: User, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ApiError) as unknown:
        client.get_run("01ARZ3NDEKTSV4RRFFQ69G5FAV")
    error = unknown.value
    assert (error.status_code, error.code, error.details) == (404, 11004, [])
    assert error.message and error.request_id and error.request_id.startswith("req-")
    assert str(error).startswith("11004 ") and error.request_id in str(error)

    with Client(server.url, "ry_not-a-key") as bad, pytest.raises(ApiError) as invalid:
        bad.get_account()
    assert (invalid.value.status_code, invalid.value.code) == (401, 12002)
    monkeypatch.delenv("RUNYARD_API_KEY", raising=False)
    with Client(server.url) as nobody, pytest.raises(ApiError) as missing:
        nobody.list_runs()
    assert (missing.value.status_code, missing.value.code) == (401, 12001)

    run = server.run(user, [{"a": 1}])
    with pytest.raises(ApiError) as fmt:
        client.export(run, "pdf")
    assert (fmt.value.status_code, fmt.value.code) == (422, 11000)
    assert any("csv" in line and "xlsx" in line for line in fmt.value.details)
    with pytest.raises(ApiError) as limit:
        client.get_results(run, limit=0)
    assert (limit.value.status_code, limit.value.code) == (422, 11000) and limit.value.details


def test_another_users_run_and_worker_are_not_found(
    server: Server, user: User, client: Client
) -> None:
    worker = server.worker(user, ECHO, properties=PROPERTIES)
    run = server.run(user, [{"mine": True}], worker=worker)
    stranger = server.user()
    with Client(server.url, stranger.key) as theirs:
        for attempt in (
            lambda: theirs.get_run(run),
            lambda: theirs.get_results(run),
            lambda: theirs.export(run),
            lambda: theirs.get_log(run),
            lambda: theirs.abort_run(run),
            lambda: theirs.rerun(run),
            lambda: theirs.get_worker(worker),
            lambda: theirs.start_run(worker),
            lambda: theirs.get_run(worker=f"{user.name}~{worker}"),
        ):
            with pytest.raises(ApiError) as caught:
                attempt()
            assert (caught.value.status_code, caught.value.code) == (404, 11004)
        assert theirs.list_runs().count == 0
    assert client.get_run(run).status == "succeeded"  # untouched


# --- retries -------------------------------------------------------------------------------


ACCOUNT = {"balance": "1.00", "balance_expiration_at": 0}


def test_429_is_retried_after_what_retry_after_asks(
    scripted: Callable[..., Scripted], monkeypatch: pytest.MonkeyPatch
) -> None:
    srv = scripted(
        envelope(status=429, code=13000, message="rate limited", headers={"Retry-After": "1"}),
        envelope(ACCOUNT),
    )
    sleeps = Sleeps()
    monkeypatch.setattr(_sync, "time", sleeps)
    with Client(srv.url, "ry_key") as client:
        assert client.get_account().balance == "1.00"
    assert sleeps.delays == [1.0]
    assert [(m, p) for m, p, _ in srv.requests] == [("GET", "/api/v2/users/account")] * 2
    assert all(h["authorization"] == "Bearer ry_key" for _, _, h in srv.requests)

    # A 429 is retried for a POST too: the server refused it before doing anything.
    srv = scripted(
        envelope(status=429, code=13000, headers={"Retry-After": "2"}),
        envelope({"run_slug": "01ARZ3NDEKTSV4RRFFQ69G5FAV"}),
    )
    with Client(srv.url, "ry_key") as client:
        assert client.start_run("w").run_slug == "01ARZ3NDEKTSV4RRFFQ69G5FAV"
    assert sleeps.delays == [1.0, 2.0]
    assert [m for m, _, _ in srv.requests] == ["POST", "POST"]

    # Retry-After as an HTTP date.
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    srv = scripted(
        envelope(status=429, code=13000, headers={"Retry-After": when}), envelope(ACCOUNT)
    )
    with Client(srv.url, "ry_key") as client:
        assert client.get_account().balance == "1.00"
    assert 25 < sleeps.delays[-1] <= 30


def test_429_without_retry_after_backs_off_and_gives_up(
    scripted: Callable[..., Scripted], monkeypatch: pytest.MonkeyPatch
) -> None:
    srv = scripted(envelope(status=429, code=13000, message="rate limited"))
    sleeps = Sleeps()
    monkeypatch.setattr(_sync, "time", sleeps)
    patient = Client(srv.url, "ry_key", retry=Retry(attempts=3, backoff=0.5))
    with patient, pytest.raises(ApiError) as caught:
        patient.get_account()
    assert (caught.value.status_code, caught.value.code) == (429, 13000)
    assert caught.value.message == "rate limited"
    assert caught.value.details == ["detail of 13000"]
    assert caught.value.request_id == "req-scripted-429"
    assert len(srv.requests) == 3 and len(sleeps.delays) == 2
    assert 0.25 <= sleeps.delays[0] <= 0.5 and 0.5 <= sleeps.delays[1] <= 1.0


def test_a_retry_after_beyond_max_delay_is_raised_at_once(
    scripted: Callable[..., Scripted], monkeypatch: pytest.MonkeyPatch
) -> None:
    srv = scripted(envelope(status=429, code=13000, headers={"Retry-After": "120"}))
    sleeps = Sleeps()
    monkeypatch.setattr(_sync, "time", sleeps)
    impatient = Client(srv.url, "ry_key", retry=Retry(max_delay=30))
    with impatient, pytest.raises(ApiError) as caught:
        impatient.get_account()
    assert caught.value.status_code == 429
    assert len(srv.requests) == 1 and sleeps.delays == []


def test_5xx_is_retried_for_get_but_not_for_post(
    scripted: Callable[..., Scripted], monkeypatch: pytest.MonkeyPatch
) -> None:
    sleeps = Sleeps()
    monkeypatch.setattr(_sync, "time", sleeps)
    srv = scripted(
        envelope(status=503, code=10000, message="internal server error"),
        envelope(status=500, code=10000, message="internal server error"),
        envelope(ACCOUNT),
    )
    with Client(srv.url, "ry_key") as client:
        assert client.get_account().balance == "1.00"
    assert len(srv.requests) == 3 and len(sleeps.delays) == 2

    srv = scripted(envelope(status=503, code=10000, message="internal server error"))
    with Client(srv.url, "ry_key") as client:
        with pytest.raises(ApiError) as caught:
            client.start_run("w", {"q": 1})
        assert (caught.value.status_code, caught.value.code) == (503, 10000)
        assert len(srv.requests) == 1  # a POST may have taken effect: never sent twice
        with pytest.raises(ApiError):
            client.abort_run("01ARZ3NDEKTSV4RRFFQ69G5FAV")
        assert len(srv.requests) == 2
        # PUT and DELETE are idempotent: retried.
        with pytest.raises(ApiError):
            client.delete_task("01ARZ3NDEKTSV4RRFFQ69G5FAV")
        assert len(srv.requests) == 2 + 4
    assert len(sleeps.delays) == 2 + 3


def test_a_page_that_is_not_the_envelope_is_an_api_error_with_code_0(
    scripted: Callable[..., Scripted], monkeypatch: pytest.MonkeyPatch
) -> None:
    html = b"<html>\n<head><title>502 Bad Gateway</title></head>\n<body>nginx</body></html>\n"
    srv = scripted((502, {"Content-Type": "text/html"}, html))
    with Client(srv.url, "ry_key", retry=NO_RETRY) as client, pytest.raises(ApiError) as caught:
        client.get_run("last")
    error = caught.value
    assert (error.status_code, error.code, error.message) == (502, 0, "Bad Gateway")
    assert error.details == ["<html>"]
    assert len(srv.requests) == 1
    # Retried like any 5xx of a GET, then raised the same way.
    monkeypatch.setattr(_sync, "time", Sleeps())
    with Client(srv.url, "ry_key") as client, pytest.raises(ApiError) as again:
        client.get_run("last")
    assert (again.value.status_code, again.value.code) == (502, 0)
    assert len(srv.requests) == 1 + 4


def test_a_refused_connection_is_retried_then_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sleeps = Sleeps()
    monkeypatch.setattr(_sync, "time", sleeps)
    # Nothing reached the server, so even a POST is tried again.
    client = Client(f"http://127.0.0.1:{port}", "ry_key", retry=Retry(attempts=3))
    with client, pytest.raises(httpx.ConnectError):
        client.start_run("w")
    assert len(sleeps.delays) == 2


def test_a_start_over_the_concurrent_limit_is_retried_until_a_slot_frees(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = server.user()
    server.services.accounts.set_limits(user.name, max_concurrent_runs=1)
    sleeper = server.worker(user, SLEEPER)
    with Client(server.url, user.key, retry=NO_RETRY) as strict:
        busy = strict.start_run(sleeper).run_slug
        with pytest.raises(ApiError) as refused:
            strict.start_run(sleeper)
        assert (refused.value.status_code, refused.value.code) == (429, 30003)

    def free_the_slot(n: int) -> None:
        # While the client backs off, the first run is aborted from another thread.
        if n == 1:
            with server.client(user) as api:
                worker = threading.Thread(
                    target=lambda: (
                        api.post(f"/api/v2/worker-runs/{busy}/abort"),
                        wait_for(api, busy),
                    )
                )
                worker.start()
                worker.join(30)

    sleeps = Sleeps(then=free_the_slot)
    monkeypatch.setattr(_sync, "time", sleeps)
    with Client(server.url, user.key, retry=Retry(attempts=3, backoff=0.05)) as patient:
        second = patient.start_run(sleeper).run_slug
        assert len(sleeps.delays) == 1 and 0.025 <= sleeps.delays[0] <= 0.05
        assert patient.get_run(busy).status == "failed"
        assert patient.get_run(second).status in ("ready", "running")
        patient.abort_run(second)
    monkeypatch.undo()
    with server.client(user) as api:
        assert wait_for(api, second)["status"] == "failed"


# --- configuration ---------------------------------------------------------------------------


def test_base_url_with_or_without_the_api_prefix(server: Server, user: User) -> None:
    for given in (server.url, server.url + "/", server.url + "/api/v2", server.url + "/api/v2/"):
        with Client(given, user.key) as client:
            assert client.base_url == server.url + "/api/v2"
            assert client.get_account().balance == "0.00"
    with pytest.raises(ValueError, match="http"):
        Client("127.0.0.1:8000")


def test_base_url_and_key_from_the_environment(
    server: Server, user: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = server.run(user, [{"a": 1}])
    monkeypatch.setenv("RUNYARD_BASE_URL", server.url + "/api/v2")
    monkeypatch.setenv("RUNYARD_API_KEY", user.key)
    with Client() as client:
        assert client.get_run().slug == run
    # Arguments win over the environment.
    with Client(api_key="ry_wrong") as wrong, pytest.raises(ApiError) as caught:
        wrong.get_run()
    assert caught.value.code == 12002
    monkeypatch.setenv("RUNYARD_BASE_URL", "http://127.0.0.1:9")  # nothing listens there
    with Client(server.url) as client:
        assert client.get_run().slug == run


# --- the pager, on its own ------------------------------------------------------------------


def fake_list(
    total: int, mode: str, cap: int = 100
) -> Callable[..., tuple[list[int], int, int, int]]:
    """A list endpoint over ``range(total)`` reading ``offset`` as ``mode`` says."""

    def fetch(offset: int, limit: int) -> tuple[list[int], int, int, int]:
        size = min(limit, cap)
        if mode == "page":
            page = max(offset, 1)
            start, index = (page - 1) * size, page
        else:
            start, index = offset, offset // size + 1
        return list(range(total))[start : start + size], index, size, total

    return fetch


def drain(pager: Pager, fetch: Callable[..., Any], sent: list[dict[str, int]]) -> list[int]:
    out: list[int] = []
    for _ in range(10_000):
        if pager.done:
            return out
        params = pager.params()
        sent.append(params)
        items = pager.take(*fetch(**params))
        if items is not None:
            out.extend(items)
    raise AssertionError("the pager never finished")


def test_pager_row_mode() -> None:
    sent: list[dict[str, int]] = []
    assert drain(Pager(100), fake_list(250, "row"), sent) == list(range(250))
    assert sent == [
        {"offset": 0, "limit": 100},
        {"offset": 100, "limit": 100},
        {"offset": 200, "limit": 100},
    ]
    sent.clear()
    # A full last page: the count says there is nothing more to ask for.
    assert drain(Pager(100), fake_list(300, "row"), sent) == list(range(300))
    assert len(sent) == 3


def test_pager_detects_page_numbers_on_the_second_page() -> None:
    sent: list[dict[str, int]] = []
    pager = Pager(100)
    assert drain(pager, fake_list(250, "page"), sent) == list(range(250))
    assert pager.mode == "page"
    assert [p["offset"] for p in sent] == [0, 100, 2, 3]  # offset 100 was page 100: asked again


def test_pager_follows_a_server_that_caps_the_page_size_lower() -> None:
    for mode in ("row", "page"):
        sent: list[dict[str, int]] = []
        pager = Pager(100)
        assert drain(pager, fake_list(95, mode, cap=30), sent) == list(range(95))
        assert pager.limit == 30 and all(p["limit"] == 30 for p in sent[1:])


def test_pager_with_two_rows_a_page() -> None:
    # Offset 2 with limit 2 is page 2 under both readings: the pager must not decide there.
    for mode in ("row", "page"):
        sent: list[dict[str, int]] = []
        pager = Pager(2)
        assert drain(pager, fake_list(7, mode), sent) == list(range(7)), mode
        assert pager.mode == mode


def test_pager_on_every_size_and_mode() -> None:
    for total in (0, 1, 2, 3, 5, 99, 100, 101, 250):
        for limit in (1, 2, 3, 7, 50, 100):
            for cap in (100, 30, 2, 1):
                for mode in ("row", "page"):
                    fetch = fake_list(total, mode, cap)
                    for told in ("auto", mode):
                        got = drain(Pager(limit, told), fetch, [])  # type: ignore[arg-type]
                        assert got == list(range(total)), (total, limit, cap, mode, told)


def test_pager_without_a_count_reads_to_the_short_page() -> None:
    def no_count(offset: int, limit: int) -> tuple[list[int], int, int, int]:
        items, index, size, _ = fake_list(200, "row")(offset, limit)
        return items, index, size, 0

    sent: list[dict[str, int]] = []
    assert drain(Pager(100), no_count, sent) == list(range(200))
    assert len(sent) == 3


def test_pager_rejects_bad_arguments() -> None:
    for limit in (0, 101):
        with pytest.raises(ValueError):
            Pager(limit)
    with pytest.raises(ValueError):
        Pager(10, "pages")  # type: ignore[arg-type]
    assert Pager(10, "page").params() == {"offset": 1, "limit": 10}
