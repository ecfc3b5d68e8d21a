"""Limits at the door (docs/deploy.md, *Limits*): per-key rate limiting, request head and body
size, slow and idle clients, many connections — each through ``runyard serve``'s own uvicorn
configuration — and the row and log-line limits of a run."""

from __future__ import annotations

import io
import os
import socket
import time
import zipfile
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import orjson

from runyard.api import serving
from tests.conftest import Server, start, wait_for
from tests.console_helpers import signed_in

TASKS = "/api/v2/worker-tasks"
TEXT = [{"title": "Text", "name": "text", "type": "string", "editor": "textarea"}]
JSON = {"Content-Type": "application/json"}


# --- raw HTTP, for what a well-behaved client never sends -----------------------------------


def connect(srv: Server, data: bytes = b"") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", srv.port), timeout=30)
    if data:
        sock.sendall(data)
    return sock


def reply(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """The status, headers and body of the next reply on ``sock``."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before a reply: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed mid-body"
        body += chunk
    return int(status_line.split()[1]), headers, body


def closed(sock: socket.socket) -> bool:
    """Whether the server closes ``sock`` (waiting at most the socket's timeout)."""
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        pass
    except TimeoutError:
        return False
    return True


def envelope(body: bytes) -> dict[str, Any]:
    found: dict[str, Any] = orjson.loads(body)
    assert set(found) == {"code", "message", "data", "details", "request_id"}
    assert found["data"] is None
    return found


# --- rate limit ---------------------------------------------------------------------------------


def test_a_key_gets_its_burst_then_429_with_retry_after(make_server: Callable[..., Server]) -> None:
    # One token every 10 s: the test's own pace never refills a whole one.
    srv = make_server(rate_limit=0.1, rate_burst=5)
    alice, bob = srv.user(), srv.user()
    with srv.client(alice) as api:
        statuses = [api.get("/api/v2/worker-runs").status_code for _ in range(5)]
        refused = api.get("/api/v2/worker-runs")
    assert statuses == [200] * 5
    assert refused.status_code == 429
    body = refused.json()
    assert body["code"] == 13000
    assert "per API key" in body["details"][0]
    assert body["message"] == "too many requests"
    assert body["request_id"] == refused.headers["x-request-id"]
    assert 1 <= int(refused.headers["retry-after"]) <= 10  # when the next token is back
    # Another key has a bucket of its own.
    with srv.client(bob) as api:
        assert api.get("/api/v2/worker-runs").status_code == 200


def test_the_bucket_refills_after_the_retry_after(make_server: Callable[..., Server]) -> None:
    srv = make_server(rate_limit=2, rate_burst=2)
    with srv.client(srv.user()) as api:
        while (refused := api.get("/api/v2/users/account")).status_code == 200:
            pass
        assert refused.status_code == 429
        time.sleep(int(refused.headers["retry-after"]))
        assert api.get("/api/v2/users/account").status_code == 200


def test_requests_without_a_proven_key_count_against_the_address(
    make_server: Callable[..., Server],
) -> None:
    srv = make_server(rate_limit=0.1, rate_burst=5)
    alice = srv.user()
    with srv.client(alice) as api:
        assert api.get("/api/v2/worker-runs").status_code == 200  # alice's key is proven
    statuses = []
    for n in range(6):
        guess = httpx.get(
            f"{srv.url}/api/v2/worker-runs", headers={"Authorization": f"Bearer ry_guess{n}"}
        )
        statuses.append(guess.status_code)
    # Her first request took one of the address's 5 tokens; each guess takes another.
    assert statuses == [401, 401, 401, 401, 429, 429]
    assert guess.json()["code"] == 13000
    assert "per client address" in guess.json()["details"][0]
    assert int(guess.headers["retry-after"]) >= 1
    # A made-up X-Forwarded-For does not buy a fresh bucket: no proxy is trusted by default.
    forged = httpx.get(f"{srv.url}/api/v2/store", headers={"X-Forwarded-For": "203.0.113.9"})
    assert forged.status_code == 429
    # Anonymous requests share the address's bucket; a proven key keeps its own.
    assert httpx.get(f"{srv.url}/api/v2/store").status_code == 429
    with srv.client(alice) as api:
        assert api.get("/api/v2/worker-runs").status_code == 200


def test_console_pages_share_the_keys_bucket_and_answer_a_page(
    make_server: Callable[..., Server],
) -> None:
    srv = make_server(rate_limit=0.1, rate_burst=8)
    user = srv.user()
    browser = signed_in(srv, user)  # two requests on the address's bucket
    try:
        # The first page proves the session's key (on the address's bucket), then it has its own.
        statuses = [browser.get("/runs").status_code for _ in range(8)]
        page = browser.get("/runs")
    finally:
        browser.close()
    assert statuses == [200] * 8
    assert page.status_code == 429
    assert page.headers["content-type"].startswith("text/html")
    assert "Too many requests" in page.text
    assert int(page.headers["retry-after"]) >= 1
    assert page.headers["x-frame-options"] == "DENY"
    # The same key over the API: the same bucket.
    with srv.client(user) as api:
        assert api.get("/api/v2/worker-runs").status_code == 429


def test_a_trusted_proxy_names_the_client_address(make_server: Callable[..., Server]) -> None:
    srv = make_server(rate_limit=0.1, rate_burst=1, forwarded_allow_ips="127.0.0.1")
    for client in ("203.0.113.1", "203.0.113.2"):
        forwarded = {"X-Forwarded-For": client}
        assert httpx.get(f"{srv.url}/api/v2/store", headers=forwarded).status_code == 200
        assert httpx.get(f"{srv.url}/api/v2/store", headers=forwarded).status_code == 429


def test_zero_turns_rate_limiting_off(make_server: Callable[..., Server]) -> None:
    srv = make_server(rate_limit=0, rate_burst=1)
    with srv.client(srv.user()) as api:
        assert {api.get("/api/v2/users/account").status_code for _ in range(50)} == {200}
    assert {httpx.get(f"{srv.url}/api/v2/store").status_code for _ in range(20)} == {200}


def test_static_files_are_not_counted(make_server: Callable[..., Server]) -> None:
    srv = make_server(rate_limit=0.5, rate_burst=2)
    with httpx.Client(base_url=srv.url) as browser:
        assert {browser.get("/-/static/console.css").status_code for _ in range(10)} == {200}
        assert browser.get("/sign-in").status_code == 200


# --- body size ----------------------------------------------------------------------------------


def _task(worker: str, text: str) -> bytes:
    body = {"worker_id": worker, "title": "t", "input": {"parameters": {"custom": {"text": text}}}}
    return orjson.dumps(body)


def _task_count(api: httpx.Client) -> int:
    count: int = api.get(TASKS).json()["data"]["count"]
    return count


def test_a_body_declared_too_large_is_refused_before_it_is_sent(
    make_server: Callable[..., Server],
) -> None:
    srv = make_server(max_body_bytes=64 * 1024)
    user = srv.user()
    worker = srv.worker(user, "pass", properties=TEXT)
    with srv.client(user) as api:
        assert api.post(TASKS, content=_task(worker, "x" * 60_000), headers=JSON).status_code == 200
        too_big = api.post(TASKS, content=_task(worker, "x" * 70_000), headers=JSON)
        assert too_big.status_code == 413
        assert too_big.json()["code"] == 11000
        assert too_big.json()["message"] == (
            "request body too large: at most 65536 bytes are accepted"
        )
        assert _task_count(api) == 1
    # Declared, never sent: the answer comes at once, without a byte of the body.
    sock = connect(
        srv,
        f"POST {TASKS} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {user.key}\r\n"
        "Content-Type: application/json\r\nContent-Length: 10000000000\r\n\r\n".encode(),
    )
    with sock:
        status, headers, body = reply(sock)
        assert status == 413
        assert envelope(body)["code"] == 11000
        assert headers["x-request-id"] == envelope(body)["request_id"]


def test_a_streamed_body_is_refused_once_it_grows_past_the_limit(
    make_server: Callable[..., Server],
) -> None:
    srv = make_server(max_body_bytes=64 * 1024)
    user = srv.user()
    worker = srv.worker(user, "pass", properties=TEXT)

    def chunks() -> Iterator[bytes]:
        body = _task(worker, "x" * 200_000)
        for i in range(0, len(body), 16 * 1024):
            yield body[i : i + 16 * 1024]

    with srv.client(user) as api:
        refused = api.post(TASKS, content=chunks(), headers=JSON)  # no length: chunked
        assert refused.status_code == 413
        assert refused.json()["code"] == 11000
        assert _task_count(api) == 0
    # The answer comes while the body is still arriving: it was counted, not buffered whole.
    sock = connect(
        srv,
        f"POST {TASKS} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {user.key}\r\n"
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".encode(),
    )
    with sock:
        piece = b"x" * 40_000
        sock.sendall(b"%x\r\n%b\r\n" % (len(piece), piece) * 2)  # 80,000 bytes, no last chunk
        status, _, body = reply(sock)
        assert (status, envelope(body)["code"]) == (413, 11000)


def test_the_worker_zip_upload_keeps_its_own_ceiling(make_server: Callable[..., Server]) -> None:
    srv = make_server(max_body_bytes=64 * 1024)
    user = srv.user()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("pkg/main.py", "from runyard import sdk\nsdk.push({'ok': 1})\n")
        z.writestr("pkg/input_schema.json", '{"properties": []}')
        z.writestr("pkg/output_schema.json", "[]")
        z.writestr("pkg/data.bin", os.urandom(300_000))  # incompressible: the ZIP stays big
    assert len(buffer.getvalue()) > 4 * 64 * 1024
    with srv.client(user) as api:
        done = api.post(
            "/api/v2/workers/big/versions",
            files={"scraper_file": ("w.zip", buffer.getvalue(), "application/zip")},
        )
        assert done.status_code == 200, done.text
        assert done.json()["data"] == {"slug": "big", "version": "1.0.0"}
        run = start(api, "big")
        assert wait_for(api, run)["status"] == "succeeded"


def test_a_console_form_too_large_gets_a_page(make_server: Callable[..., Server]) -> None:
    srv = make_server(max_body_bytes=4096)
    with httpx.Client(base_url=srv.url) as browser:
        page = browser.post("/sign-in", data={"api_key": "x" * 10_000})
    assert page.status_code == 413
    assert page.headers["content-type"].startswith("text/html")
    assert "request body too large" in page.text


# --- request heads ------------------------------------------------------------------------------


def test_oversized_headers_are_refused_with_431(make_server: Callable[..., Server]) -> None:
    srv = make_server()  # max_header_bytes: 16 KiB
    with srv.client() as anonymous:
        assert anonymous.get("/api/v2/store", headers={"X-Pad": "a" * 15_000}).status_code == 200
        big = anonymous.get("/api/v2/store", headers={"X-Pad": "a" * 17_000})
    assert big.status_code == 431
    assert big.json()["code"] == 11000
    assert big.json()["message"] == "request header fields too large"
    # A head still arriving when it passes the limit: refused without waiting for its end.
    with connect(srv, b"GET /api/v2/store HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 40_000) as s:
        status, headers, body = reply(s)
        assert (status, envelope(body)["code"]) == (431, 11000)
        assert headers["connection"] == "close"
        assert closed(s)


def test_a_malformed_request_gets_the_envelope(make_server: Callable[..., Server]) -> None:
    srv = make_server()
    bad = b"GET /api/v2/store HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n"
    with connect(srv, bad) as s:
        status, _, body = reply(s)
        assert (status, envelope(body)["code"]) == (400, 11000)
        assert closed(s)
    with connect(srv, b"GET /api/v2/store HTTP/1.1\r\nHost: x\r\n\r\n") as kept:
        assert reply(kept)[0] == 200
        kept.sendall(bad)  # the second request on a kept-alive connection
        status, _, body = reply(kept)
        assert (status, envelope(body)["code"]) == (400, 11000)


# --- slow clients, many connections ------------------------------------------------------------


def test_a_head_not_sent_in_time_is_answered_408_and_closed(
    make_server: Callable[..., Server],
) -> None:
    srv = make_server(header_timeout_seconds=1)
    with connect(srv, b"GET /api/v2/store HTTP/1.1\r\nHost: x\r\n") as slow:
        status, headers, body = reply(slow)
        assert (status, envelope(body)["code"]) == (408, 11000)
        assert headers["connection"] == "close"
        assert closed(slow)
    with connect(srv) as silent:  # connects and says nothing: closed without a word
        assert silent.recv(100) == b""
    # A kept-alive connection gets the same deadline for each of its requests.
    with connect(srv, b"GET /api/v2/store HTTP/1.1\r\nHost: x\r\n\r\n") as kept:
        assert reply(kept)[0] == 200
        kept.sendall(b"GET /api/v2/store HTTP/1.1\r\n")
        assert reply(kept)[0] == 408


def test_a_stalled_body_is_answered_408_and_closed(make_server: Callable[..., Server]) -> None:
    srv = make_server(body_timeout_seconds=1)
    user = srv.user()
    head = (
        f"POST {TASKS} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {user.key}\r\n"
        "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
    )
    with connect(srv, head.encode() + b'{"worker_id": ') as stalled:
        status, headers, body = reply(stalled)
        assert status == 408
        assert envelope(body)["message"] == "request body timed out: no data for 1 s"
        assert headers["connection"] == "close"
        assert closed(stalled)


def test_hundreds_of_slow_connections_do_not_starve_a_normal_client(
    make_server: Callable[..., Server],
) -> None:
    # All from 127.0.0.1: the per-address cap (tested below) would close most of them first.
    srv = make_server(header_timeout_seconds=2, max_connections_per_address=0)
    user = srv.user()
    run = srv.run(user, [{"n": n} for n in range(50)])
    slow = []
    try:
        for n in range(500):
            sock = connect(srv, f"GET /api/v2/store?n={n} HTTP/1.1\r\nHost: x\r\n".encode())
            slow.append(sock)
        with srv.client(user) as api:
            page = api.get(f"/api/v2/worker-runs/{run}/result", params={"limit": 50})
            assert page.status_code == 200
            assert page.json()["data"]["count"] == 50
        # The heads never finished: each slow client is told so, and let go.
        for sock in slow:
            status, headers, body = reply(sock)
            assert (status, envelope(body)["code"]) == (408, 11000)
            assert headers["connection"] == "close"
            assert closed(sock)
    finally:
        for sock in slow:
            sock.close()


def test_one_address_cannot_hold_every_connection(make_server: Callable[..., Server]) -> None:
    srv = make_server(max_connections_per_address=5)
    held = [connect(srv) for _ in range(5)]
    try:
        with connect(srv, b"GET /api/v2/store HTTP/1.1\r\nHost: x\r\n\r\n") as extra:
            assert closed(extra)  # closed with no reply
        # The connections it holds still work.
        held[0].sendall(b"GET /api/v2/store HTTP/1.1\r\nHost: x\r\n\r\n")
        assert reply(held[0])[0] == 200
    finally:
        for sock in held:
            sock.close()
    deadline = time.monotonic() + 10
    while True:
        try:
            if httpx.get(f"{srv.url}/api/v2/store").status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "still refusing once the connections closed"
        time.sleep(0.1)


def test_past_max_connections_requests_are_answered_503(make_server: Callable[..., Server]) -> None:
    srv = make_server(max_connections=20)
    idle = [connect(srv) for _ in range(20)]
    try:
        with connect(srv, b"GET /api/v2/store HTTP/1.1\r\nHost: x\r\n\r\n") as extra:
            status, headers, body = reply(extra)
            assert (status, envelope(body)["code"]) == (503, 13000)
            assert headers["retry-after"] == "1"
    finally:
        for sock in idle:
            sock.close()
    deadline = time.monotonic() + 10
    while httpx.get(f"{srv.url}/api/v2/store").status_code != 200:
        assert time.monotonic() < deadline, "still refusing once the connections closed"
        time.sleep(0.1)


def test_serve_raises_its_open_files_limit() -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, 1024), hard))  # a shell's default
        assert serving.raise_open_files_limit() == hard
        assert resource.getrlimit(resource.RLIMIT_NOFILE) == (hard, hard)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


# --- rows and log lines of a run ----------------------------------------------------------------


def test_the_row_limit_follows_its_setting(make_server: Callable[..., Server]) -> None:
    srv = make_server(max_row_bytes=2048)
    user = srv.user()
    worker = srv.worker(
        user,
        """
        from runyard import sdk

        def row(size):  # compact JSON text of exactly ``size`` bytes
            return {"pad": "x" * (size - len('{"pad":""}'))}

        sdk.push(row(2048))
        sdk.push(row(2049))
        sdk.upsert({**row(3000), "id": "a"}, key="id")
        sdk.push({"after": True})
        """,
    )
    with srv.client(user) as api:
        run = start(api, worker)
        assert wait_for(api, run)["status"] == "succeeded"
        rows = api.get(f"/api/v2/worker-runs/{run}/result").json()["data"]["list"]
        log = api.get(f"/api/v2/worker-runs/{run}/log").json()["data"]["list"]
    assert [len(orjson.dumps(r)) for r in rows] == [2048, len(b'{"after":true}')]
    errors = [e["content"] for e in log if e["type"] == 4]
    assert "row rejected (#1 in this run): row of 2049 bytes exceeds the 2048-byte row limit" in (
        errors
    )
    assert any(line.startswith("row rejected (#2 in this run): row of 30") for line in errors)


def test_log_lines_are_cut_at_8192_characters(make_server: Callable[..., Server]) -> None:
    srv = make_server()
    user = srv.user()
    worker = srv.worker(
        user,
        """
        import sys
        from runyard import sdk

        print("o" * 10_000)
        print("e" * 10_000, file=sys.stderr)
        sdk.log("s" * 10_000)
        print("short")
        """,
    )
    with srv.client(user) as api:
        run = start(api, worker)
        assert wait_for(api, run)["status"] == "succeeded"
        log = api.get(f"/api/v2/worker-runs/{run}/log").json()["data"]["list"]
    long = {e["content"][0]: e for e in log if len(e["content"]) > 100}
    for mark, level in (("o", 2), ("e", 4), ("s", 2)):  # stdout, stderr, the SDK's log
        assert long[mark]["content"] == mark * 8192 + "… [1808 chars cut]"
        assert long[mark]["type"] == level
    assert "short" in [e["content"] for e in log]
