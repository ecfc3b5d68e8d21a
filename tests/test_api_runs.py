"""The run and worker endpoints' wire shapes: every form, every refusal."""

from __future__ import annotations

import io
import json
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import httpx
import pytest

from runyard.services.callbacks import verify_signature
from tests.conftest import Server, User, start, wait_for

pytestmark = pytest.mark.both_databases

ECHO = """
from runyard import sdk
sdk.push(sdk.input())
"""
PROPERTIES = [
    {"name": "query", "title": "Query", "type": "string", "required": True},
    {"name": "pages", "title": "Pages", "type": "integer", "default": 2},
]


def test_input_is_validated_and_defaults_are_filled(server: Server, user: User, api: httpx.Client):
    worker = server.worker(user, ECHO, properties=PROPERTIES)
    run = start(api, worker, {"query": "shoes"})
    assert wait_for(api, run)["status"] == "succeeded"
    rows = api.get(f"/api/v2/worker-runs/{run}/result").json()["data"]["list"]
    assert rows == [{"query": "shoes", "pages": 2}]

    flat = api.post(f"/api/v2/workers/{worker}/runs", json={"input": {"query": "shoes"}})
    assert flat.status_code == 422 and flat.json()["code"] == 11000
    assert any("parameters" in line for line in flat.json()["details"])

    bad = api.post(
        f"/api/v2/workers/{worker}/runs",
        json={"input": {"parameters": {"custom": {"pages": "two"}, "system": {"nope": 1}}}},
    )
    assert bad.status_code == 422
    details = bad.json()["details"]
    assert len(details) == 3, details
    assert any("query" in line for line in details)
    assert any("pages" in line for line in details)
    assert any("nope" in line for line in details)

    unknown_field = api.post(f"/api/v2/workers/{worker}/runs", json={"inputs": {}})
    assert unknown_field.status_code == 422

    not_json = api.post(
        f"/api/v2/workers/{worker}/runs",
        content=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    assert not_json.status_code == 400 and not_json.json()["code"] == 11000


def test_unknown_worker_and_version(server: Server, user: User, api: httpx.Client):
    worker = server.worker(user, ECHO, properties=PROPERTIES)
    missing = api.post("/api/v2/workers/no-such-worker/runs", json={})
    assert missing.status_code == 404 and missing.json()["code"] == 11004
    version = api.post(f"/api/v2/workers/{worker}/runs", json={"version": "9.9.9"})
    assert version.status_code == 404 and version.json()["code"] == 50003
    imported = server.run(user, [{"a": 1}], worker="imported-only")
    assert imported
    no_version = api.post("/api/v2/workers/imported-only/runs", json={})
    assert no_version.status_code == 404 and no_version.json()["code"] == 50003


def test_another_users_worker_and_runs_are_404(server: Server, user: User, api: httpx.Client):
    worker = server.worker(user, ECHO, properties=PROPERTIES)
    run = start(api, worker, {"query": "x"})
    wait_for(api, run)
    other = server.user()
    with server.client(other) as theirs:
        for method, path in (
            ("GET", f"/api/v2/workers/{worker}"),
            ("POST", f"/api/v2/workers/{worker}/runs"),
            ("GET", f"/api/v2/worker-runs/{run}"),
            ("GET", f"/api/v2/worker-runs/{run}/log"),
            ("POST", f"/api/v2/worker-runs/{run}/abort"),
            ("POST", f"/api/v2/worker-runs/{run}/rerun"),
            ("GET", f"/api/v2/workers/{user.name}~{worker}/runs/last"),
        ):
            reply = theirs.request(method, path, json={} if method == "POST" else None)
            assert reply.status_code == 404, (path, reply.text)
            assert reply.json()["code"] == 11004


def test_list_detail_and_public_input_schema(server: Server, user: User, api: httpx.Client):
    worker = server.worker(user, ECHO, properties=PROPERTIES, files={"README.md": "# Echo\n"})
    listing = api.get("/api/v2/workers", params={"keyword": worker}).json()["data"]
    assert listing["count"] == 1
    for wildcard in ("%", "_"):
        assert api.get("/api/v2/workers", params={"keyword": wildcard}).json()["data"]["count"] == 0
    assert listing["scraper"] == [
        {
            "description": "",
            "name": worker,
            "path": f"{user.name}/{worker}",
            "slug": worker,
            "title": worker,
            "username": user.name,
        }
    ]
    detail = api.get(f"/api/v2/workers/{user.name}~{worker}").json()["data"]
    assert detail["version"] == "1.0.0"
    assert detail["readme"] == "# Echo\n"
    assert [p["name"] for p in detail["parameters"]["custom"]["properties"]] == ["query", "pages"]
    assert detail["parameters"]["system"]["execute_limit_time_seconds"] == 1800

    # Public: no key needed for a public worker, a private one is not shown to strangers.
    schema = api.get(f"/api/v2/workers/{worker}/input-schema").json()["data"]
    assert schema == {"input_schema": {"properties": PROPERTIES}}
    anonymous = httpx.get(f"{server.url}/api/v2/workers/{user.name}~{worker}/input-schema")
    assert anonymous.status_code == 404


def _zip(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for name, text in files.items():
            z.writestr(f"pkg/{name}", text)
    return buffer.getvalue()


def test_upload_a_version_as_zip(server: Server, user: User, api: httpx.Client):
    files = {
        "main.py": ECHO,
        "input_schema.json": json.dumps({"properties": PROPERTIES}),
        "output_schema.json": "[]",
    }
    first = api.post(
        "/api/v2/workers/zipped/versions",
        files={"scraper_file": ("w.zip", _zip(files), "application/zip")},
        data={"title": "Zipped", "description": "from a zip"},
    )
    assert first.status_code == 200, first.text
    assert first.json()["data"] == {"slug": "zipped", "version": "1.0.0"}
    second = api.post(
        f"/api/v2/workers/{user.name}~zipped/versions",
        files={"scraper_file": ("w.zip", _zip(files), "application/zip")},
    )
    assert second.json()["data"]["version"] == "1.0.1"
    run = start(api, "zipped", {"query": "q"}, version="1.0.0")
    assert wait_for(api, run)["version"] == "1.0.0"
    assert api.get("/api/v2/workers/zipped").json()["data"]["title"] == "Zipped"

    broken = api.post(
        "/api/v2/workers/zipped/versions",
        files={"scraper_file": ("w.zip", _zip({"main.py": ECHO}), "application/zip")},
    )
    assert broken.status_code == 422
    assert any("input_schema.json" in line for line in broken.json()["details"])
    not_zip = api.post(
        "/api/v2/workers/zipped/versions",
        files={"scraper_file": ("w.zip", b"not a zip", "application/zip")},
    )
    assert not_zip.status_code == 422


def test_list_runs_with_filters_and_last_forms(server: Server, user: User, api: httpx.Client):
    worker = server.worker(user, ECHO, properties=PROPERTIES)
    other = server.worker(user, ECHO, properties=PROPERTIES)
    runs = [start(api, worker, {"query": str(n)}) for n in range(3)]
    newest = start(api, other, {"query": "z"})
    for run in [*runs, newest]:
        wait_for(api, run)

    listing = api.get("/api/v2/worker-runs", params={"worker_id": worker}).json()["data"]
    assert listing["count"] == 3
    assert [r["slug"] for r in listing["list"]] == runs[::-1]
    assert listing["page_index"] == 1 and listing["page_size"] == 20
    failed = api.get("/api/v2/worker-runs", params={"status": "failed", "worker_id": worker})
    assert failed.json()["data"]["count"] == 0
    future = api.get("/api/v2/worker-runs", params={"start_time": int(time.time()) + 100})
    assert future.json()["data"]["count"] == 0
    page = api.get("/api/v2/worker-runs", params={"worker_id": worker, "limit": 1, "offset": 1})
    assert [r["slug"] for r in page.json()["data"]["list"]] == [runs[1]]

    assert api.get("/api/v2/worker-runs/last").json()["data"]["slug"] == newest
    assert api.get(f"/api/v2/workers/{worker}/runs/last").json()["data"]["slug"] == runs[-1]
    log = api.get(f"/api/v2/workers/{worker}/runs/last/log").json()["data"]
    assert log["result_count"] == 1
    last_result = api.get(f"/api/v2/workers/{worker}/runs/last/result").json()["data"]
    assert last_result["list"] == [{"query": "2", "pages": 2}]

    rerun = api.post(f"/api/v2/workers/{worker}/runs/last/rerun")
    assert rerun.status_code == 200, rerun.text
    again = rerun.json()["data"]["run_slug"]
    assert again not in runs
    wait_for(api, again)
    rows = api.get(f"/api/v2/worker-runs/{again}/result").json()["data"]["list"]
    assert rows == [{"query": "2", "pages": 2}]

    finished = api.post("/api/v2/worker-runs/last/abort")
    assert finished.status_code == 409 and finished.json()["code"] == 70002


def test_abort_of_a_waiting_run_fails_it_at_once(make_server: Any):
    srv: Server = make_server(max_concurrent_runs=1)
    user = srv.user()
    worker = srv.worker(user, "import time\ntime.sleep(60)\n")
    with srv.client(user) as api:
        busy = start(api, worker)
        waiting = start(api, worker)
        assert api.get(f"/api/v2/worker-runs/{waiting}").json()["data"]["status"] == "ready"
        assert api.post(f"/api/v2/worker-runs/{waiting}/abort").status_code == 200
        record = api.get(f"/api/v2/worker-runs/{waiting}").json()["data"]
        assert record["status"] == "failed" and record["err_msg"] == "aborted by user"
        assert api.post(f"/api/v2/worker-runs/{busy}/abort").status_code == 200
        assert wait_for(api, busy, timeout=15)["err_msg"] == "aborted by user"


class _Receiver(BaseHTTPRequestHandler):
    """Answers 500 to the first two attempts of the first delivery it sees, then 200."""

    seen: ClassVar[list[tuple[dict[str, str], bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.seen.append((dict(self.headers), body))
        first = self.seen[0][0]["X-Runyard-Delivery"]
        tries = sum(1 for h, _ in self.seen if h["X-Runyard-Delivery"] == first)
        status = 500 if self.headers["X-Runyard-Delivery"] == first and tries <= 2 else 200
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_callbacks_are_retried_with_one_delivery_id(make_server: Any):
    srv: Server = make_server(callback_allow_private=True, callback_backoff_seconds=0.2)
    user = srv.user()
    worker = srv.worker(user, ECHO, properties=PROPERTIES)
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    _Receiver.seen = []
    url = f"http://127.0.0.1:{receiver.server_port}/hook"
    try:
        with srv.client(user) as api:
            run = start(api, worker, {"query": "q"}, callback_url=url)
            wait_for(api, run)
            deadline = time.monotonic() + 20
            while len(_Receiver.seen) < 4:  # running: 3 attempts, succeeded: 1
                assert time.monotonic() < deadline, _Receiver.seen
                time.sleep(0.05)
    finally:
        receiver.shutdown()
    secret = srv.services.callbacks.webhook_secret(user.id)
    deliveries: dict[str, list[dict[str, Any]]] = {}
    for headers, body in _Receiver.seen:
        assert verify_signature(secret, headers["X-Runyard-Signature"], body)
        deliveries.setdefault(headers["X-Runyard-Delivery"], []).append(json.loads(body))
    attempts = sorted(deliveries.values(), key=len)
    assert [len(a) for a in attempts] == [1, 3]
    retried, final = attempts[1], attempts[0]
    assert {p["run_status"] for p in retried} == {"running"}
    assert final[0]["run_status"] == "succeeded"
    assert final[0]["run_slug"] == run and final[0]["result_count"] == 1

    with srv.client(user) as api:
        refused = api.post(
            f"/api/v2/workers/{worker}/runs",
            json={"callback_url": "ftp://example.com/x", "input": {}},
        )
    assert refused.status_code == 422


def test_private_callback_addresses_are_refused_by_default(
    server: Server, user: User, api: httpx.Client
):
    worker = server.worker(user, ECHO, properties=PROPERTIES)
    reply = api.post(
        f"/api/v2/workers/{worker}/runs",
        json={
            "callback_url": "http://127.0.0.1:9/hook",
            "input": {"parameters": {"custom": {"query": "q"}}},
        },
    )
    assert reply.status_code == 422
    assert any("callback_url" in line for line in reply.json()["details"])


def test_a_run_needs_no_body_when_the_worker_needs_no_input(
    server: Server, user: User, api: httpx.Client
):
    worker = server.worker(user, ECHO, properties=[PROPERTIES[1]])
    reply = api.post(f"/api/v2/workers/{worker}/runs")
    assert reply.status_code == 200, reply.text
    run = reply.json()["data"]["run_slug"]
    assert wait_for(api, run)["status"] == "succeeded"
    assert api.get(f"/api/v2/worker-runs/{run}/result").json()["data"]["list"] == [{"pages": 2}]


def test_bad_versions_titles_and_numbers_are_422_not_500(
    server: Server, user: User, api: httpx.Client, tmp_path
):
    files = {
        "main.py": ECHO,
        "input_schema.json": json.dumps({"properties": PROPERTIES}),
        "output_schema.json": "[]",
    }
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("precious")
    for form in (
        {"version": str(victim)},
        {"version": "../x"},
        {"version": ".."},
        {"version": "v" * 500},
        {"version": "x y"},
        {"version": "LATEST"},
        {"title": "t" * 300},
    ):
        reply = api.post(
            "/api/v2/workers/paths/versions",
            files={"scraper_file": ("w.zip", _zip(files), "application/zip")},
            data=form,
        )
        assert reply.status_code == 422, (form, reply.text)
    assert (victim / "keep.txt").read_text() == "precious"

    worker = server.worker(user, ECHO, properties=PROPERTIES)
    for parameters in (
        {"custom": {"query": "q", "pages": 2**64}},
        {"custom": {"query": "q"}, "system": {"execute_limit_time_seconds": 2**64}},
        {"custom": {"query": "q"}, "system": {"memory": 2**50}},
    ):
        reply = api.post(
            f"/api/v2/workers/{worker}/runs", json={"input": {"parameters": parameters}}
        )
        assert reply.status_code == 422, (parameters, reply.text)
    for params in ({"offset": 2**63}, {"start_time": 2**63}, {"end_time": 2**63}):
        reply = api.get("/api/v2/worker-runs", params=params)
        assert reply.status_code in (200, 422), reply.text
    for path in ("/api/v2/worker-runs", "/api/v2/workers", "/api/v2/worker-tasks"):
        assert api.get(path, params={"offset": 10**30}).status_code == 422
    assert httpx.get(f"{server.url}/api/v2/store", params={"offset": 10**30}).status_code == 422
    far = api.get("/api/v2/worker-runs", params={"offset": 2**62})
    assert far.status_code == 200 and far.json()["data"]["list"] == []


def test_racing_uploads_of_one_version_give_one_winner(
    server: Server, user: User, api: httpx.Client
):
    files = {
        "main.py": ECHO,
        "input_schema.json": json.dumps({"properties": PROPERTIES}),
        "output_schema.json": "[]",
        "worker.json": json.dumps({"version": "2.0.0"}),
    }
    body = _zip(files)
    replies: list[httpx.Response] = []

    def upload() -> None:
        with server.client(user) as client:
            replies.append(
                client.post(
                    "/api/v2/workers/racing/versions",
                    files={"scraper_file": ("w.zip", body, "application/zip")},
                )
            )

    threads = [threading.Thread(target=upload) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.status_code for r in replies) == [200, 422, 422, 422], [r.text for r in replies]
    run = start(api, "racing", {"query": "q"})
    assert wait_for(api, run)["status"] == "succeeded"
