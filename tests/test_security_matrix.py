"""Tenant isolation, route by route: user B calls every route of the app with user A's ids.

The routes come from the application itself, so a route added later fails
``test_every_route_has_a_case`` until it is given one here. Each case is a request B makes
with A's ids (with a valid body, so it gets as far as the ownership check), and a *control*:
the same request with B's own ids, which must get past that check — proof that the 404 B gets
is the ownership check's and not, say, a validation error. Afterwards nothing of A's has
changed (B's aborts, deletes, updates and uploads did nothing) and B's attempts created
nothing either.

What the spec makes public is treated explicitly: the store, the proxy regions, a published
worker's detail and input schema (and runs of it, which are the caller's own: see
``test_runs_of_a_public_worker_are_the_callers_own``), and the file endpoint, where the
signature is the grant (``tests/test_security_links.py``).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.routing import iter_route_contexts

from runyard.api import create_app
from runyard.services import Services
from runyard.settings import Settings
from tests.conftest import Server
from tests.console_helpers import csrf, signed_in
from tests.security_world import PROPERTIES, Tenant, tenant, wait_status, worker_zip

pytestmark = pytest.mark.both_databases

API = "/api/v2"
#: Framework pages: no ids, no data, public by design.
DOCS = {
    (method, path)
    for method in ("GET", "HEAD")
    for path in ("/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc")
}
_PARAM = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True)
class Call:
    """One request: where, and what it sends."""

    method: str
    path: str
    json: Any = None
    form: dict[str, Any] | None = None
    files: dict[str, Any] | None = None
    params: dict[str, str] | None = None


@dataclass(frozen=True)
class Case:
    """How to call one route: the body that makes the call valid for an owner, whose ids go
    in its path, and what its control may answer."""

    json: Any = None
    form: dict[str, Any] | None = None  # console forms; the CSRF token is added when sent
    files: Callable[[], dict[str, Any]] | None = None
    #: Which ids of the tenant fill the path (one request per combination).
    ids: Callable[[Tenant], dict[str, list[str]]] = lambda t: {}
    #: Status codes the control (the same call with the caller's own ids) may get.
    control: frozenset[int] = frozenset({200, 303})
    #: Run the control after all others (it deletes what the others need).
    last: bool = False
    #: Public by the spec: B may call it with A's ids; checked by its own test.
    public: bool = False
    #: No id in the path: what it shows B is checked by ``test_routes_without_ids``.
    no_ids: bool = False


def runs_of(t: Tenant) -> dict[str, list[str]]:
    return {"runId": [r for r in (t.run, t.running) if r]}


def workers_of(t: Tenant) -> dict[str, list[str]]:
    ids = [t.worker, t.path]
    if t.sleeper:
        ids += [t.sleeper, f"{t.user.name}~{t.sleeper}"]
    return {"workerId": ids}


def paths_of(t: Tenant) -> dict[str, list[str]]:
    # The upload route's plain slug names the caller's own worker (made if new): only the
    # owner~slug form can name someone else's.
    return {"workerId": [t.path]}


def tasks_of(t: Tenant) -> dict[str, list[str]]:
    return {"workerTaskId": [t.task]}


def console_runs(t: Tenant) -> dict[str, list[str]]:
    return {"slug": [r for r in (t.run, t.running) if r]}


def console_workers(t: Tenant) -> dict[str, list[str]]:
    return {"worker_id": workers_of(t)["workerId"]}


def console_tasks(t: Tenant) -> dict[str, list[str]]:
    return {"slug": [t.task]}


def spare_tasks(t: Tenant) -> dict[str, list[str]]:
    """The API deletes ``task``; the console deletes this one."""
    return {"slug": [t.spare_task]}


def files_of(t: Tenant) -> dict[str, list[str]]:
    return {"name": [t.export_name], "filename": [t.export_filename]}


RUN_INPUT = {"input": {"parameters": {"custom": {"query": "x"}}}}
#: The control's run has finished: refusing to abort it (409; the console's "Not possible"
#: page, 400) is a decision made past the ownership check.
ABORT = frozenset({200, 409})
CONSOLE_ABORT = frozenset({303, 400})
TASK_FORM = {"title": "changed", "custom.query": "x"}

CASES: dict[tuple[str, str], Case] = {
    # --- API: results and exports
    ("GET", f"{API}/worker-runs/{{runId}}/result"): Case(ids=runs_of),
    ("GET", f"{API}/workers/{{workerId}}/runs/last/result"): Case(ids=workers_of),
    ("GET", f"{API}/worker-runs/{{runId}}/result/export"): Case(ids=runs_of),
    ("GET", f"{API}/worker-runs/last/export"): Case(no_ids=True),
    ("GET", f"{API}/workers/{{workerId}}/runs/last/export"): Case(ids=workers_of),
    # --- API: runs
    ("POST", f"{API}/workers/{{workerId}}/runs"): Case(json=RUN_INPUT, ids=workers_of),
    ("GET", f"{API}/worker-runs"): Case(no_ids=True),
    ("GET", f"{API}/worker-runs/{{runId}}"): Case(ids=runs_of),
    ("GET", f"{API}/workers/{{workerId}}/runs/last"): Case(ids=workers_of),
    ("GET", f"{API}/worker-runs/{{runId}}/log"): Case(ids=runs_of),
    ("GET", f"{API}/workers/{{workerId}}/runs/last/log"): Case(ids=workers_of),
    ("POST", f"{API}/worker-runs/{{runId}}/abort"): Case(ids=runs_of, control=ABORT),
    ("POST", f"{API}/workers/{{workerId}}/runs/last/abort"): Case(ids=workers_of, control=ABORT),
    ("POST", f"{API}/worker-runs/{{runId}}/rerun"): Case(json={"is_async": True}, ids=runs_of),
    ("POST", f"{API}/workers/{{workerId}}/runs/last/rerun"): Case(
        json={"is_async": True}, ids=workers_of
    ),
    # --- API: workers
    ("GET", f"{API}/workers"): Case(no_ids=True),
    ("GET", f"{API}/store"): Case(no_ids=True, public=True),
    ("GET", f"{API}/workers/{{workerId}}"): Case(ids=workers_of),
    ("GET", f"{API}/workers/{{workerId}}/input-schema"): Case(ids=workers_of),
    ("POST", f"{API}/workers/{{workerId}}/versions"): Case(
        files=lambda: {"scraper_file": ("w.zip", worker_zip(), "application/zip")},
        ids=paths_of,
    ),
    # --- API: files (no key: the signature is the grant; test_another_users_file_needs_...)
    ("GET", f"{API}/files/{{name}}/{{filename}}"): Case(ids=files_of, public=True),
    ("HEAD", f"{API}/files/{{name}}/{{filename}}"): Case(ids=files_of, public=True),
    # --- API: tasks
    ("POST", f"{API}/worker-tasks"): Case(no_ids=True),
    ("GET", f"{API}/worker-tasks"): Case(no_ids=True),
    ("GET", f"{API}/worker-tasks/{{workerTaskId}}"): Case(ids=tasks_of),
    ("PUT", f"{API}/worker-tasks/{{workerTaskId}}"): Case(
        json={"title": "hijacked", "schedule_type": 1, "schedule_time": "03:00"}, ids=tasks_of
    ),
    ("DELETE", f"{API}/worker-tasks/{{workerTaskId}}"): Case(ids=tasks_of, last=True),
    ("GET", f"{API}/worker-tasks/{{workerTaskId}}/input"): Case(ids=tasks_of),
    ("PUT", f"{API}/worker-tasks/{{workerTaskId}}/input"): Case(json=RUN_INPUT, ids=tasks_of),
    ("POST", f"{API}/worker-tasks/{{workerTaskId}}/runs"): Case(
        json={"is_async": True}, ids=tasks_of
    ),
    # --- API: account and proxies
    ("GET", f"{API}/users/account"): Case(no_ids=True),
    ("GET", f"{API}/proxy/region"): Case(no_ids=True, public=True),
    # --- console
    ("GET", "/"): Case(no_ids=True),
    ("GET", "/sign-in"): Case(no_ids=True, public=True),
    ("POST", "/sign-in"): Case(no_ids=True, public=True),
    ("POST", "/sign-out"): Case(no_ids=True),
    ("GET", "/runs"): Case(no_ids=True),
    ("GET", "/runs/{slug}"): Case(ids=console_runs),
    ("POST", "/runs/{slug}/abort"): Case(form={}, ids=console_runs, control=CONSOLE_ABORT),
    ("POST", "/runs/{slug}/export"): Case(form={"format": "csv", "keys": "ok"}, ids=console_runs),
    ("GET", "/workers"): Case(no_ids=True),
    ("GET", "/workers/{worker_id}/run"): Case(ids=console_workers),
    ("POST", "/workers/{worker_id}/run"): Case(form={"custom.query": "x"}, ids=console_workers),
    ("GET", "/tasks"): Case(no_ids=True),
    ("GET", "/tasks/new"): Case(no_ids=True),
    ("POST", "/tasks/new"): Case(no_ids=True),
    ("GET", "/tasks/{slug}"): Case(ids=console_tasks),
    ("POST", "/tasks/{slug}"): Case(form=TASK_FORM, ids=console_tasks),
    ("POST", "/tasks/{slug}/run"): Case(form={}, ids=console_tasks),
    ("GET", "/tasks/{slug}/delete"): Case(ids=console_tasks),
    ("POST", "/tasks/{slug}/delete"): Case(form={"confirm": "yes"}, ids=spare_tasks, last=True),
}


def app_routes(data_dir: Path) -> set[tuple[str, str]]:
    """Every (method, path) the application answers, read off the application."""
    svc = Services(Settings(data_dir=data_dir))  # never started: the routes are all we need
    try:
        app = create_app(svc)
    finally:
        svc.close()
    found: set[tuple[str, str]] = set()
    for route in iter_route_contexts(app.routes):
        for method in route.methods or ():
            found.add((method, str(route.path)))
    return found


def test_every_route_has_a_case(tmp_path: Path) -> None:
    routes = app_routes(tmp_path) - DOCS
    missing = sorted(routes - CASES.keys())
    assert not missing, f"routes without a tenant-isolation case: {missing}"
    stale = sorted(CASES.keys() - routes)
    assert not stale, f"cases for routes that no longer exist: {stale}"
    for (method, path), case in CASES.items():
        params = set(_PARAM.findall(path))
        assert case.no_ids == (not params), (method, path)


def calls(case: Case, method: str, template: str, owner: Tenant) -> Iterator[Call]:
    """The requests of ``case`` with ``owner``'s ids: one per combination of them."""
    ids = case.ids(owner)
    names = _PARAM.findall(template)
    assert set(names) == set(ids), (template, ids)
    for values in itertools.product(*(ids[n] for n in names)):
        path = template
        for name, value in zip(names, values, strict=True):
            path = path.replace("{" + name + "}", value)
        yield Call(
            method,
            path,
            json=case.json,
            form=case.form,
            files=case.files() if case.files else None,
        )


def send(client: httpx.Client, call: Call) -> httpx.Response:
    if call.form is not None:
        page = client.get("/runs")  # any page of the console carries this session's token
        data = {**call.form, "csrf": csrf(page.text)}
        return client.request(call.method, call.path, data=data)
    return client.request(
        call.method, call.path, json=call.json, files=call.files, params=call.params
    )


def assert_not_found(reply: httpx.Response, call: Call) -> None:
    where = f"{call.method} {call.path}"
    assert reply.status_code == 404, f"{where}: {reply.status_code} {reply.text[:300]}"
    if call.path.startswith(API):
        if call.method != "HEAD":
            body = reply.json()
            assert body["code"] == 11004 and body["data"] is None, (where, body)
    else:
        assert reply.headers["content-type"].startswith("text/html"), where
        assert "Not found" in reply.text, where


# --- the world: A owns things, B goes after them ------------------------------------------------


@dataclass
class World:
    server: Server
    a: Tenant
    b: Tenant
    api: dict[str, httpx.Client] = field(default_factory=dict)
    console: dict[str, httpx.Client] = field(default_factory=dict)

    def client(self, who: str, path: str) -> httpx.Client:
        return (self.api if path.startswith(API) else self.console)[who]


@pytest.fixture
def world(make_server: Callable[..., Server]) -> Iterator[World]:
    server = make_server()
    a = tenant(server, owner=True)
    b = tenant(server, owner=False)
    w = World(server, a, b)
    for name, t in (("a", a), ("b", b)):
        w.api[name] = server.client(t.user)
        w.console[name] = signed_in(server, t.user)
    yield w
    assert a.running is not None
    w.api["a"].post(f"{API}/worker-runs/{a.running}/abort")
    for client in (*w.api.values(), *w.console.values()):
        client.close()


def snapshot(w: World, who: str) -> dict[str, Any]:
    """Everything a tenant can read of their own, except what moves by itself (durations)."""
    api = w.api[who]

    def data(path: str, **params: Any) -> Any:
        reply = api.get(API + path, params=params)
        assert reply.status_code == 200, reply.text
        return reply.json()["data"]

    def steady(record: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in record.items() if k != "duration"}

    runs = data("/worker-runs", limit=100)
    tasks = data("/worker-tasks", limit=100)
    workers = data("/workers", limit=100)
    return {
        "runs": [steady(r) for r in runs["list"]],
        "count": runs["count"],
        "results": {r["slug"]: data(f"/worker-runs/{r['slug']}/result") for r in runs["list"]},
        "logs": {r["slug"]: data(f"/worker-runs/{r['slug']}/log")["list"] for r in runs["list"]},
        "tasks": tasks,
        "inputs": {t["slug"]: data(f"/worker-tasks/{t['slug']}/input") for t in tasks["list"]},
        "workers": workers,
        "details": {s["slug"]: data(f"/workers/{s['slug']}") for s in workers["scraper"]},
        "account": data("/users/account"),
    }


def test_another_users_ids_are_404_on_every_route(world: World) -> None:
    w = world
    a, b = w.a, w.b
    assert a.running is not None
    before = {who: snapshot(w, who) for who in ("a", "b")}
    tried: list[str] = []
    for (method, template), case in CASES.items():
        if case.no_ids or case.public:
            continue
        for call in calls(case, method, template, a):
            assert_not_found(send(w.client("b", call.path), call), call)
            tried.append(f"{call.method} {call.path}")
    assert len(tried) >= 50

    # Nothing of A's changed, and B's attempts made nothing of B's either.
    assert {who: snapshot(w, who) for who in ("a", "b")} == before
    assert w.api["a"].get(f"{API}/worker-runs/{a.running}").json()["data"]["status"] == "running"
    assert httpx.get(a.export_url).status_code == 200

    # A version that does not exist: for A's worker the answer is still "no such worker"
    # (11004), never "no such version" (50003), which would tell B the worker exists.
    for worker_id in (a.worker, a.path):
        reply = w.api["b"].post(f"{API}/workers/{worker_id}/runs", json={"version": "9.9.9"})
        assert_not_found(reply, Call("POST", f"{API}/workers/{worker_id}/runs"))
        body = {"worker_id": worker_id, "title": "t", "input": {}, "version": "9.9.9"}
        assert_not_found(
            w.api["b"].post(f"{API}/worker-tasks", json=body), Call("POST", f"{API}/worker-tasks")
        )
    reply = w.api["b"].put(
        f"{API}/worker-tasks/{a.task}/input", json={"input": {}, "version": "9.9.9"}
    )
    assert_not_found(reply, Call("PUT", f"{API}/worker-tasks/{a.task}/input"))
    own = w.api["b"].post(f"{API}/workers/{b.worker}/runs", json={"version": "9.9.9"})
    assert own.status_code == 404 and own.json()["code"] == 50003

    # The controls: B's same requests on B's own objects get past the ownership check.
    ordered = sorted(CASES.items(), key=lambda item: item[1].last)
    for (method, template), case in ordered:
        if case.no_ids or case.public:
            continue
        for call in calls(case, method, template, b):
            reply = send(w.client("b", call.path), call)
            assert reply.status_code in case.control, (
                f"control {call.method} {call.path}: {reply.status_code} {reply.text[:300]}"
            )


def test_a_published_workers_own_routes_are_public_and_nothing_else(world: World) -> None:
    """Spec §1/§4: a published worker's detail and input schema are readable by anyone; its
    owner's runs of it, uploads to it and its tasks are not."""
    w = world
    a = w.a
    assert a.public_worker is not None
    b_api = w.api["b"]
    for worker_id in (a.public_worker, a.public_path):
        detail = b_api.get(f"{API}/workers/{worker_id}")
        assert detail.status_code == 200 and detail.json()["data"]["username"] == a.user.name
        anonymous = httpx.get(f"{w.server.url}{API}/workers/{worker_id}/input-schema")
        assert anonymous.json()["data"] == {"input_schema": {"properties": PROPERTIES}}
        page = w.console["b"].get(f"/workers/{worker_id}/run")
        assert page.status_code == 200
        # A's runs of it (A has a finished one) are still A's alone.
        for suffix in ("", "/result", "/log", "/export"):
            call = Call("GET", f"{API}/workers/{worker_id}/runs/last{suffix}")
            assert_not_found(b_api.get(call.path), call)
        for suffix in ("/abort", "/rerun"):
            call = Call("POST", f"{API}/workers/{worker_id}/runs/last{suffix}")
            assert_not_found(b_api.post(call.path, json={}), call)
    call = Call("POST", f"{API}/workers/{a.public_path}/versions")
    upload = b_api.post(call.path, files={"scraper_file": ("w.zip", worker_zip(), "x/zip")})
    assert_not_found(upload, call)
    store = httpx.get(f"{w.server.url}{API}/store").json()["data"]["scraper"]
    assert {s["slug"] for s in store} == {a.public_worker}  # the private ones are not listed


def test_uploading_to_another_users_slug_makes_the_callers_own_worker(world: World) -> None:
    """A bare slug names the caller's own worker (spec §4: the hosted CLI publishes so): B's
    upload to A's slug makes B a worker of that name and leaves A's alone."""
    w = world
    a = w.a
    before = snapshot(w, "a")
    upload = w.api["b"].post(
        f"{API}/workers/{a.worker}/versions",
        files={"scraper_file": ("w.zip", worker_zip(), "application/zip")},
    )
    assert upload.status_code == 200, upload.text
    mine = w.api["b"].get(f"{API}/workers/{a.worker}").json()["data"]
    assert mine["username"] == w.b.user.name
    assert snapshot(w, "a") == before
    call = Call("GET", f"{API}/workers/{a.path}")
    assert_not_found(w.api["b"].get(call.path), call)


def test_runs_of_a_public_worker_are_the_callers_own(world: World) -> None:
    w = world
    a, b = w.a, w.b
    assert a.public_worker is not None
    before = snapshot(w, "a")
    b_api = w.api["b"]
    run = b_api.post(f"{API}/workers/{a.public_path}/runs", json=RUN_INPUT).json()["data"]
    wait_status(b_api, run["run_slug"], "succeeded")
    mine = b_api.get(f"{API}/workers/{a.public_path}/runs/last").json()["data"]
    assert mine["slug"] == run["run_slug"]
    task = b_api.post(
        f"{API}/worker-tasks",
        json={"worker_id": a.public_path, "title": "mine", "input": RUN_INPUT["input"]},
    )
    assert task.status_code == 200, task.text
    # A sees none of it: not the run, not the task, not in "last" of A's own worker.
    after = snapshot(w, "a")
    assert after == before
    assert w.api["a"].get(f"{API}/worker-runs/{run['run_slug']}").status_code == 404
    assert b.user.name not in str(after)


def test_another_users_file_needs_its_own_link(world: World) -> None:
    """The file endpoint takes no key: the signature is the grant. B's own valid expiry and
    signature opens none of A's files, and no signature opens nothing."""
    w = world
    a, b = w.a, w.b
    b_query = httpx.URL(b.export_url).params
    b_log_query = httpx.URL(b.log_url).params
    for url, own in ((a.export_url, b_query), (a.log_url, b_log_query)):
        path = httpx.URL(url).path
        for method in ("GET", "HEAD"):
            for params in ({}, dict(own), {"expires": own["expires"]}):
                call = Call(method, path, params=params)
                assert_not_found(w.api["b"].request(method, path, params=params), call)
        assert httpx.get(url).status_code == 200  # A's own link works, for anyone holding it


def test_routes_without_ids(world: World) -> None:
    """The routes that take no id show B only B's own: lists, ``last``, the account, and
    the filters and bodies that name a worker by id."""
    w = world
    a, b = w.a, w.b
    b_api = w.api["b"]
    a_ids = {a.worker, a.run, a.task, a.running, a.export_name}

    def leaks(text: str) -> set[str]:
        return {i for i in a_ids if i and i in text}

    # Lists hold B's own, and filtering by A's worker gives what a missing worker gives.
    for path in ("/worker-runs", "/worker-tasks", "/workers"):
        reply = b_api.get(API + path)
        assert reply.status_code == 200 and not leaks(reply.text), path
        for worker_id in (a.worker, a.path):
            if path != "/workers":
                filtered = b_api.get(API + path, params={"worker_id": worker_id}).json()["data"]
                missing = b_api.get(API + path, params={"worker_id": "nope~nope"}).json()["data"]
                assert filtered["count"] == missing["count"] == 0
    assert (
        b_api.get(f"{API}/workers", params={"keyword": a.user.name}).json()["data"]
        == (b_api.get(f"{API}/workers", params={"keyword": "no-such-thing"}).json()["data"])
    )

    # ``last`` is B's newest run, although A's running one is newer.
    last = b_api.get(f"{API}/worker-runs/last").json()["data"]
    assert last["slug"] == b.run
    for suffix in ("/result", "/log"):
        reply = b_api.get(f"{API}/worker-runs/last{suffix}")
        assert reply.status_code == 200 and not leaks(reply.text), suffix
    for path in ("/worker-runs/last/export", "/worker-runs/last/result/export"):
        url = b_api.get(API + path).json()["data"]["download_url"]
        assert b.run in httpx.get(url).headers["content-disposition"]
    # B's abort of "last" is about B's finished run, not A's running one.
    assert b_api.post(f"{API}/worker-runs/last/abort").status_code == 409
    assert w.api["a"].get(f"{API}/worker-runs/{a.running}").json()["data"]["status"] == "running"

    # A task for A's private worker: as if it did not exist.
    body = {"worker_id": a.path, "title": "t", "input": RUN_INPUT["input"]}
    for worker_id in (a.worker, a.path):
        call = Call("POST", f"{API}/worker-tasks")
        assert_not_found(b_api.post(call.path, json={**body, "worker_id": worker_id}), call)

    account = b_api.get(f"{API}/users/account")
    assert account.status_code == 200 and not leaks(account.text)

    # The console: lists, the task form for A's worker, and its filters.
    console = w.console["b"]
    for path in ("/", "/runs", "/workers", "/tasks", "/tasks/new"):
        reply = console.get(path, follow_redirects=True)
        assert reply.status_code == 200 and not leaks(reply.text), path
        assert a.user.name not in reply.text, path
    # The filter is echoed as typed; past that, A's worker shows what a missing one shows.
    for worker_id in (a.worker, a.path):
        filtered = console.get("/runs", params={"worker": worker_id}).text
        missing = console.get("/runs", params={"worker": "no-such~worker"}).text
        assert filtered.replace(worker_id, "?") == missing.replace("no-such~worker", "?")
    for worker_id in (a.worker, a.path):
        call = Call("GET", f"/tasks/new?worker={worker_id}")
        assert_not_found(console.get(call.path), call)
        call = Call("POST", f"/tasks/new?worker={worker_id}", form=TASK_FORM)
        assert_not_found(send(console, call), call)

    # Signing out ends B's session only.
    out = send(console, Call("POST", "/sign-out", form={}))
    assert out.status_code == 303
    assert w.console["a"].get("/runs").status_code == 200


def test_console_without_a_session_shows_nothing(world: World) -> None:
    """Every console page that shows data sends a browser without a session to sign in."""
    w = world
    a = w.a
    anonymous = httpx.Client(base_url=w.server.url, follow_redirects=False)
    with anonymous:
        for (method, template), case in CASES.items():
            if template.startswith(API) or case.public or template == "/":
                continue
            paths = (
                [c.path for c in calls(case, method, template, a)]
                if not case.no_ids
                else [template]
            )
            for path in paths:
                reply = anonymous.request(method, path)
                assert reply.status_code in (303, 403), (method, path, reply.status_code)
                assert a.user.name not in reply.text
