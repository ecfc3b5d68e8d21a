"""The web console over real HTTP, as a browser uses it: sign-in, runs, a run's page, exports."""

from __future__ import annotations

import html
import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from runyard.console.session import NONCE_COOKIE, SESSION_COOKIE, SessionSigner
from runyard.services.accounts import hash_key
from tests.conftest import Server, User, start, wait_for
from tests.console_helpers import browser, csrf, signed_in

ROWS = [
    {"id": i, "title": f"Item {i}", "url": f"https://shop.example/p/{i}", "tags": ["a", i]}
    for i in range(1, 46)
]
HEADERS = """
from runyard import sdk
sdk.set_headers([{"key": "title", "label": "Title"}, {"key": "id", "label": "Id"}])
for i in range(1, 4):
    sdk.push({"id": i, "title": f"<b>row {i}</b>", "extra": True})
"""


@pytest.fixture
def console(server: Server, user: User) -> Iterator[httpx.Client]:
    client = signed_in(server, user)
    yield client
    client.close()


def _cells(page: str) -> list[list[str]]:
    body = page.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return [
        [
            html.unescape(cell)
            for cell in re.findall(r"<td[^>]*>(?:<a [^>]*>)?(.*?)(?:</a>)?</td>", row)
        ]
        for row in re.findall(r"<tr>(.*?)</tr>", body, re.S)
    ]


# --- signing in ------------------------------------------------------------------------------


def test_pages_send_a_signed_out_browser_to_sign_in_and_back(server: Server, user: User) -> None:
    with browser(server) as client:
        assert client.get("/").headers["location"] == "/sign-in"
        for path in ("/runs?status=failed", "/runs/abc", "/workers", "/tasks"):
            resp = client.get(path)
            assert resp.status_code == 303
            assert resp.headers["location"].startswith("/sign-in?next=")
        page = client.get("/sign-in?next=/runs%3Fstatus%3Dfailed")
        resp = client.post(
            "/sign-in",
            data={"csrf": csrf(page.text), "api_key": user.key, "next": "/runs?status=failed"},
        )
        assert resp.headers["location"] == "/runs?status=failed"
        assert client.get("/").headers["location"] == "/runs"


def test_session_cookie_is_http_only_same_site_and_expires(server: Server, user: User) -> None:
    with browser(server) as client:
        resp = client.post(
            "/sign-in", data={"csrf": csrf(client.get("/sign-in").text), "api_key": user.key}
        )
        cookie = next(c for c in resp.headers.get_list("set-cookie") if SESSION_COOKIE in c)
        assert "HttpOnly" in cookie
        assert "SameSite=lax" in cookie
        assert f"Max-Age={server.services.settings.console_session_seconds}" in cookie
        # The cookie holds the key's hash, not the key; no page shows either.
        assert user.key not in cookie and hash_key(user.key) not in client.get("/runs").text
        assert user.key not in client.get("/runs").text


def test_a_wrong_key_is_refused_and_signs_nobody_in(server: Server) -> None:
    with browser(server) as client:
        resp = client.post(
            "/sign-in", data={"csrf": csrf(client.get("/sign-in").text), "api_key": "ry_nope"}
        )
        assert resp.status_code == 401
        assert "That API key is not valid." in resp.text
        assert SESSION_COOKIE not in client.cookies
        assert client.get("/runs").status_code == 303


@pytest.mark.parametrize("token", ["", "forged", None])
def test_sign_in_without_this_browsers_token_is_refused(
    server: Server, user: User, token: str | None
) -> None:
    with browser(server) as client:
        if token is None:  # a real token, but from another browser
            with browser(server) as other:
                token = csrf(other.get("/sign-in").text)
        client.get("/sign-in")
        resp = client.post("/sign-in", data={"csrf": token, "api_key": user.key})
        assert resp.status_code == 403
        assert "Form expired" in resp.text
        assert SESSION_COOKIE not in client.cookies


def test_a_form_from_another_origin_is_refused(server: Server, user: User) -> None:
    with browser(server) as client:
        token = csrf(client.get("/sign-in").text)
        resp = client.post(
            "/sign-in",
            data={"csrf": token, "api_key": user.key},
            headers={"Origin": "https://evil.example"},
        )
        assert resp.status_code == 403


@pytest.mark.parametrize(
    "target", ["//evil.example/x", "https://evil.example/", "/\\evil.example", "runs"]
)
def test_sign_in_never_redirects_off_site(server: Server, user: User, target: str) -> None:
    with browser(server) as client:
        token = csrf(client.get("/sign-in").text)
        resp = client.post("/sign-in", data={"csrf": token, "api_key": user.key, "next": target})
        assert resp.headers["location"] == "/runs"


def test_tampered_expired_and_revoked_sessions_end(server: Server) -> None:
    user = server.user()
    client = signed_in(server, user)
    assert client.get("/runs").status_code == 200
    good = client.cookies[SESSION_COOKIE]

    client.cookies.set(SESSION_COOKIE, good[:-2] + ("AA" if not good.endswith("AA") else "BB"))
    assert client.get("/runs").status_code == 303

    signer = SessionSigner(
        server.services.settings.resolved_secret_key(),
        server.services.settings.console_session_seconds,
    )
    old = time.time() - server.services.settings.console_session_seconds - 1
    client.cookies.set(SESSION_COOKIE, signer.issue(hash_key(user.key), now=old))
    assert client.get("/runs").status_code == 303

    client.cookies.set(SESSION_COOKIE, good)
    assert client.get("/runs").status_code == 200
    key_id = server.services.accounts.list_keys(user.name)[-1].id
    server.services.accounts.revoke_key(key_id)
    assert client.get("/runs").status_code == 303


def test_sign_out_needs_the_token_and_clears_the_session(console: httpx.Client) -> None:
    page = console.get("/runs")
    assert console.post("/sign-out", data={"csrf": "forged"}).status_code == 403
    assert console.get("/runs").status_code == 200
    resp = console.post("/sign-out", data={"csrf": csrf(page.text)})
    assert resp.headers["location"] == "/sign-in"
    assert SESSION_COOKIE not in console.cookies and NONCE_COOKIE not in console.cookies
    assert console.get("/runs").status_code == 303


def test_pages_are_private_unframed_and_timed(console: httpx.Client) -> None:
    resp = console.get("/runs")
    assert resp.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in resp.headers["content-security-policy"]
    assert "script-src 'self'" in resp.headers["content-security-policy"]
    assert resp.headers["x-frame-options"] == "DENY"
    assert re.fullmatch(r"app;dur=[0-9.]+", resp.headers["server-timing"])


def test_console_routes_stay_out_of_the_api_description(server: Server) -> None:
    paths = httpx.get(server.url + "/openapi.json").json()["paths"]
    assert all(path.startswith("/api/v2/") for path in paths)


# --- runs ------------------------------------------------------------------------------------


def test_runs_list_shows_only_the_callers_runs_filtered_and_paged(server: Server) -> None:
    user, other = server.user(), server.user()
    mine = [server.run(user, [{"n": i}]) for i in range(23)]
    theirs = server.run(other, [{"n": 0}])
    client = signed_in(server, user)
    first = client.get("/runs").text
    assert "23 runs" in first
    assert mine[-1] in first and mine[0] not in first  # newest first, 20 a page
    assert theirs not in first
    assert mine[0] in client.get("/runs?offset=20").text
    assert "No runs with status failed yet." in client.get("/runs?status=failed").text
    assert "23 runs succeeded" in client.get("/runs?status=succeeded").text
    # An unknown status is no filter, not an error.
    assert client.get("/runs?status=nonsense").status_code == 200
    fragment = client.get("/runs", headers={"X-Runyard-Fragment": "1"}).text
    assert "<html" not in fragment and mine[-1] in fragment


def test_run_page_shows_the_results_table_in_the_runs_columns(
    server: Server, user: User, console: httpx.Client
) -> None:
    run = server.run(user, ROWS)
    page = console.get(f"/runs/{run}")
    assert page.status_code == 200
    assert "Rows 1–20 of 45" in page.text
    headers = re.findall(r'<th scope="col" title="([^"]+)">', page.text)
    assert headers == ["id", "title", "url", "tags"]
    cells = _cells(page.text)
    assert cells[0] == ["1", "1", "Item 1", "https://shop.example/p/1", '["a",1]']
    assert '<a href="https://shop.example/p/1" rel="nofollow noopener noreferrer">' in page.text

    last = console.get(f"/runs/{run}?offset=40").text
    assert "Rows 41–45 of 45" in last
    assert [c[0] for c in _cells(last)] == ["41", "42", "43", "44", "45"]
    assert "Rows 21–40 of 45" in console.get(f"/runs/{run}?row=33").text
    assert "Rows 1–50 of 45" not in console.get(f"/runs/{run}?limit=50").text
    assert "Rows 1–45 of 45" in console.get(f"/runs/{run}?limit=50").text
    # A blank "Go to row" box and odd sizes are not errors.
    assert "Rows 1–20 of 45" in console.get(f"/runs/{run}?row=&limit=20").text
    assert "Rows 1–20 of 45" in console.get(f"/runs/{run}?limit=17").text
    assert console.get(f"/runs/{run}?offset=-1").status_code == 400


def test_run_page_fragments_answer_alone(server: Server, user: User, console: httpx.Client) -> None:
    run = server.run(user, ROWS)
    for fragment, marker in (("results", "Rows 1–20 of 45"), ("summary", "succeeded")):
        resp = console.get(f"/runs/{run}", headers={"X-Runyard-Fragment": fragment})
        assert marker in resp.text and "<html" not in resp.text
    log = console.get(f"/runs/{run}", headers={"X-Runyard-Fragment": "log"}).text
    assert "Download the whole log" in log and "<html" not in log


def test_headers_order_columns_and_markup_in_rows_is_text(server: Server, user: User) -> None:
    worker = server.worker(user, HEADERS)
    with server.client(user) as api:
        run = start(api, worker)
        wait_for(api, run)
    page = signed_in(server, user).get(f"/runs/{run}").text
    assert re.findall(r'<th scope="col" title="([^"]+)">([^<]+)</th>', page) == [
        ("title", "Title"),
        ("id", "Id"),
        ("extra", "extra"),  # a key outside the headers gets a column of its own, as in the API
    ]
    assert "&lt;b&gt;row 1&lt;/b&gt;" in page and "<b>row 1</b>" not in page


def test_another_users_run_is_a_not_found_page(server: Server, console: httpx.Client) -> None:
    other = server.user()
    theirs = server.run(other, ROWS)
    for resp in (
        console.get(f"/runs/{theirs}"),
        console.post(
            f"/runs/{theirs}/export",
            data={"csrf": csrf(console.get("/runs").text), "format": "csv"},
        ),
    ):
        assert resp.status_code == 404
        assert resp.headers["content-type"].startswith("text/html")
        assert "Not found" in resp.text


def _export(console: httpx.Client, run: str, **form: Any) -> httpx.Response:
    token = csrf(console.get(f"/runs/{run}").text)
    return console.post(
        f"/runs/{run}/export",
        data={"csrf": token, **form},
        headers={"Accept": "application/json"},
    )


def test_export_panel_links_the_same_file_as_the_api(
    server: Server, user: User, console: httpx.Client, api: httpx.Client
) -> None:
    run = server.run(user, ROWS)
    resp = _export(console, run, format="csv", keys=["id", "title", "url", "tags"], bom="1")
    assert resp.status_code == 200
    ours = httpx.get(resp.json()["download_url"]).content
    link = api.get(f"/api/v2/worker-runs/{run}/result/export?format=csv").json()["data"]
    assert ours == httpx.get(link["download_url"]).content
    assert ours.startswith(b"\xef\xbb\xbf")

    picked = _export(console, run, format="jsonl", keys=["url", "id"])
    rows = httpx.get(picked.json()["download_url"]).text.splitlines()
    assert rows[0] == '{"url":"https://shop.example/p/1","id":1}'

    semicolon = _export(console, run, format="csv", keys=["id", "title"], delimiter=";")
    assert httpx.get(semicolon.json()["download_url"]).text.splitlines()[1] == "1;Item 1"


def test_export_panel_refuses_what_the_api_refuses(
    server: Server, user: User, console: httpx.Client
) -> None:
    run = server.run(user, ROWS)
    nothing = _export(console, run, format="csv")
    assert nothing.status_code == 422
    assert nothing.json()["problem"] == "Tick at least one field to export."
    bad = _export(console, run, format="pdf", keys=["id"])
    assert bad.status_code == 422 and "format must be one of" in bad.json()["problem"]
    # Without the script, the page itself shows the problem and the link.
    token = csrf(console.get(f"/runs/{run}").text)
    page = console.post(f"/runs/{run}/export", data={"csrf": token, "format": "pdf", "keys": "id"})
    assert page.status_code == 422 and "unsupported export format" in page.text
    page = console.post(f"/runs/{run}/export", data={"csrf": token, "format": "xlsx", "keys": "id"})
    assert page.status_code == 200 and "Download XLSX" in page.text
    forged = console.post(f"/runs/{run}/export", data={"csrf": "x", "format": "csv", "keys": "id"})
    assert forged.status_code == 403


def test_abort_from_the_run_page(server: Server, user: User, console: httpx.Client) -> None:
    worker = server.worker(user, "import time\ntime.sleep(120)\n")
    with server.client(user) as api:
        run = start(api, worker)
        deadline = time.monotonic() + 30
        while api.get(f"/api/v2/worker-runs/{run}").json()["data"]["status"] != "running":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        page = console.get(f"/runs/{run}").text
        assert "Abort run" in page
        assert console.post(f"/runs/{run}/abort", data={"csrf": "x"}).status_code == 403
        resp = console.post(f"/runs/{run}/abort", data={"csrf": csrf(page)})
        assert resp.headers["location"] == f"/runs/{run}"
        assert wait_for(api, run)["status"] == "failed"
        again = console.post(f"/runs/{run}/abort", data={"csrf": csrf(page)})
        assert again.status_code == 400 and "already finished" in again.text


# --- workers and the start form -----------------------------------------------------------

SCHEMA = [
    {"title": "Query", "name": "q", "type": "string", "editor": "input", "required": True},
    {"title": "Pages", "name": "pages", "type": "integer", "editor": "number", "default": 2},
]


def test_start_a_run_from_the_form(server: Server, user: User, console: httpx.Client) -> None:
    worker = server.worker(
        user, "from runyard import sdk\nsdk.push(sdk.input())\n", properties=SCHEMA
    )
    listing = console.get("/workers").text
    assert f'href="/workers/{worker}/run"' in listing
    form = console.get(f"/workers/{worker}/run")
    assert form.status_code == 200 and "Query" in form.text

    refused = console.post(
        f"/workers/{worker}/run", data={"csrf": csrf(form.text), "custom.q": "  "}
    )
    assert refused.status_code == 422
    assert "must not be empty" in refused.text

    resp = console.post(
        f"/workers/{worker}/run",
        data={
            "csrf": csrf(form.text),
            "custom.q": "shoes",
            "custom.pages": "5",
            "system.execute_limit_time_seconds": "60",
        },
    )
    assert resp.status_code == 303
    run = resp.headers["location"].removeprefix("/runs/")
    with server.client(user) as api:
        record = wait_for(api, run)
        assert record["origin"] == "console"
        row = api.get(f"/api/v2/worker-runs/{run}/result").json()["data"]["list"][0]
    assert row == {"q": "shoes", "pages": 5}


EDITORS = [
    {"title": "Query", "name": "q", "type": "string", "editor": "input"},
    {
        "title": "Sort",
        "name": "sort",
        "type": "integer",
        "editor": "select",
        "options": [{"label": "New", "value": 1}, {"label": "Old", "value": 2}],
    },
    {"title": "Extra", "name": "extra", "type": "object", "editor": "json"},
    {
        "title": "Sources",
        "name": "sources",
        "type": "array",
        "editor": "requestListSource",
        "param_list": [{"param": "url", "title": "URL"}],
    },
]


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("custom.sort", "²", "is not one of the choices"),
        ("custom.sort", "9" * 5000, "is not one of the choices"),
        ("custom.extra", "[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ("custom.extra", '{"a": 1e999}', "too large a number"),
        ("system.memory", "²", "must be a whole number"),
        ("system.memory", "9" * 5000, "must be a whole number"),
    ],
)
def test_odd_form_values_are_problems_not_errors(
    server: Server, user: User, console: httpx.Client, field: str, value: str, problem: str
) -> None:
    worker = server.worker(user, "pass\n", properties=EDITORS)
    form = console.get(f"/workers/{worker}/run").text
    resp = console.post(f"/workers/{worker}/run", data={"csrf": csrf(form), field: value})
    assert resp.status_code == 422
    assert problem in html.unescape(resp.text)


def test_odd_row_indexes_and_files_are_ignored(
    server: Server, user: User, console: httpx.Client
) -> None:
    worker = server.worker(
        user, "from runyard import sdk\nsdk.push(sdk.input())\n", properties=EDITORS
    )
    form = console.get(f"/workers/{worker}/run").text
    resp = console.post(
        f"/workers/{worker}/run",
        data={
            "csrf": csrf(form),
            "custom.sources.².url": "x",
            f"custom.sources.{'9' * 5000}.url": "y",
            "custom.sources.0.url": "https://a.example/",
        },
    )
    assert resp.status_code == 303, resp.text
    # A file where text belongs is no value: the text box holds nothing.
    upload = console.post(
        f"/workers/{worker}/run",
        data={"csrf": csrf(form)},
        files={"custom.q": ("a.txt", b"hello")},
    )
    assert upload.status_code == 303, upload.text
    with server.client(user) as api:
        for reply, row in (
            (resp, {"q": "", "sources": [{"url": "https://a.example/"}]}),
            (upload, {"q": "", "sources": []}),
        ):
            run = reply.headers["location"].removeprefix("/runs/")
            wait_for(api, run)
            assert api.get(f"/api/v2/worker-runs/{run}/result").json()["data"]["list"] == [row]


def test_paging_past_the_end_shows_the_last_page(
    server: Server, user: User, console: httpx.Client
) -> None:
    run = server.run(user, ROWS[:40])
    for query in ("offset=40", "offset=100000", "row=41", "row=²"):
        page = console.get(f"/runs/{run}?{query}")
        assert page.status_code == 200, query
        assert ("Rows 21–40 of 40" if query != "row=²" else "Rows 1–20 of 40") in page.text


def test_a_nul_in_the_address_is_a_console_page(console: httpx.Client) -> None:
    for path in ("/runs?worker=%00", "/runs/%00"):
        resp = console.get(path)
        assert resp.status_code in (400, 404), path
        assert resp.headers["content-type"].startswith("text/html"), path


def test_export_keys_holding_commas_and_spaces(
    server: Server, user: User, console: httpx.Client
) -> None:
    run = server.run(user, [{"a,b": 1, "c": 2, " d": 3}])
    resp = _export(console, run, format="jsonl", keys=["a,b", " d"])
    assert httpx.get(resp.json()["download_url"]).text.strip() == '{"a,b":1," d":3}'


def test_behind_a_tls_proxy_forms_work_and_cookies_are_secure(make_server: Any) -> None:
    srv = make_server(public_url="https://console.example")
    user = srv.user()
    with browser(srv) as client:
        page = client.get("/sign-in")
        # The proxy speaks https to the browser, so the browser sends back Secure cookies;
        # this client speaks http to the server and has to be handed the cookie.
        nonce = page.cookies[NONCE_COOKIE]
        resp = client.post(
            "/sign-in",
            data={"csrf": csrf(page.text), "api_key": user.key},
            headers={"Origin": "https://console.example", "Cookie": f"{NONCE_COOKIE}={nonce}"},
        )
        assert resp.status_code == 303
        cookie = next(c for c in resp.headers.get_list("set-cookie") if SESSION_COOKIE in c)
        assert "Secure" in cookie


def test_start_form_refuses_forged_posts_and_others_workers(
    server: Server, user: User, console: httpx.Client
) -> None:
    worker = server.worker(user, "pass\n", properties=SCHEMA)
    assert (
        console.post(f"/workers/{worker}/run", data={"csrf": "x", "custom.q": "a"}).status_code
        == 403
    )
    other = server.user()
    theirs = server.worker(other, "pass\n", properties=SCHEMA)
    assert console.get(f"/workers/{theirs}/run").status_code == 404
