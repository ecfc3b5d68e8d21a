"""``GET /worker-runs/{runId}/result`` and the conventions of spec §1, over real HTTP."""

from __future__ import annotations

import hashlib

import httpx
import orjson
import pytest

from tests.conftest import Server, User

pytestmark = pytest.mark.both_databases


def _ok(resp: httpx.Response) -> dict:
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["code"] == 0
    assert body["message"] == "success"
    assert body["request_id"] == resp.headers["x-request-id"]
    return body["data"]


def _err(resp: httpx.Response, status: int, code: int) -> dict:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["code"] == code
    assert body["data"] is None
    assert "details" in body
    assert body["request_id"] == resp.headers["x-request-id"]
    assert resp.headers["content-type"] == "application/json"
    return body


def test_page_matches_the_seed_shape(server: Server, user: User, api: httpx.Client) -> None:
    run = server.run(user, [{"title": "Example result"}])
    data = _ok(api.get(f"/api/v2/worker-runs/{run}/result", params={"offset": 0, "limit": 20}))
    assert data == {
        "count": 1,
        "headers": [{"key": "title", "label": "title"}],
        "list": [{"title": "Example result"}],
        "page_index": 1,
        "page_size": 20,
    }
    assert isinstance(data["count"], int)


def test_defaults_are_offset_0_limit_20(server: Server, user: User, api: httpx.Client) -> None:
    run = server.run(user, [{"i": i} for i in range(30)])
    data = _ok(api.get(f"/api/v2/worker-runs/{run}/result"))
    assert [r["i"] for r in data["list"]] == list(range(20))
    assert (data["page_index"], data["page_size"], data["count"]) == (1, 20, 30)


def test_rows_come_back_exactly_as_pushed(server: Server, user: User, api: httpx.Client) -> None:
    # Key order, spacing-free text, unicode and nesting all survive untouched.
    texts = [
        '{"z":1,"a":{"nested":[1,2,{"x":null}]},"m":"héllo 👋 \\"q\\""}',
        '{"b":true,"a":1.5e3,"z":"line\\nbreak"}',
        # A tab between tokens, backslashes, a NUL escape: COPY's own escape characters,
        # which must reach PostgreSQL's json column unharmed.
        '{"t":\t"tab\\\\back","n":"\\u0000" }',
    ]
    run = server.run(user, texts)
    raw = api.get(f"/api/v2/worker-runs/{run}/result").content
    for text in texts:
        assert text.encode() in raw
    data = orjson.loads(raw)["data"]
    assert list(data["list"][0]) == ["z", "a", "m"]
    assert data["list"][1]["a"] == 1500.0


def test_headers_list_every_key_in_order_of_first_sight(
    server: Server, user: User, api: httpx.Client
) -> None:
    rows = [{"b": 1, "a": 2}] + [{"a": i} for i in range(500)] + [{"late": "only here"}]
    run = server.run(user, rows)
    data = _ok(api.get(f"/api/v2/worker-runs/{run}/result", params={"limit": 1}))
    assert [h["key"] for h in data["headers"]] == ["b", "a", "late"]
    assert data["count"] == 502


def test_offset_is_a_zero_based_row_offset(server: Server, user: User, api: httpx.Client) -> None:
    run = server.run(user, [{"i": i} for i in range(250)])
    data = _ok(api.get(f"/api/v2/worker-runs/{run}/result", params={"offset": 45, "limit": 10}))
    assert [r["i"] for r in data["list"]] == list(range(45, 55))
    assert data["page_index"] == 45 // 10 + 1


def test_limit_above_100_is_capped(server: Server, user: User, api: httpx.Client) -> None:
    run = server.run(user, [{"i": i} for i in range(250)])
    data = _ok(api.get(f"/api/v2/worker-runs/{run}/result", params={"limit": 1000}))
    assert len(data["list"]) == 100
    assert data["page_size"] == 100


def test_offset_past_the_end_is_an_empty_page(
    server: Server, user: User, api: httpx.Client
) -> None:
    run = server.run(user, [{"i": 1}])
    data = _ok(api.get(f"/api/v2/worker-runs/{run}/result", params={"offset": 10}))
    assert data["list"] == []
    assert data["count"] == 1


@pytest.mark.parametrize(
    "params",
    [{"limit": 0}, {"limit": -5}, {"offset": -1}, {"limit": "ten"}, {"offset": "1.5"}],
)
def test_bad_paging_is_422_11000(
    server: Server, user: User, api: httpx.Client, params: dict
) -> None:
    run = server.run(user, [{"i": 1}])
    body = _err(api.get(f"/api/v2/worker-runs/{run}/result", params=params), 422, 11000)
    assert body["details"] and any(next(iter(params)) in line for line in body["details"])


def test_empty_run(server: Server, user: User, api: httpx.Client) -> None:
    run = server.run(user, [])
    assert _ok(api.get(f"/api/v2/worker-runs/{run}/result")) == {
        "count": 0,
        "headers": [],
        "list": [],
        "page_index": 1,
        "page_size": 20,
    }


def test_last_is_the_callers_newest_run(server: Server, api: httpx.Client, user: User) -> None:
    server.run(user, [{"n": "old"}])
    server.run(user, [{"n": "new"}])
    server.run(server.user(), [{"n": "someone else's"}])
    assert _ok(api.get("/api/v2/worker-runs/last/result"))["list"] == [{"n": "new"}]


# --- authentication -----------------------------------------------------------------------


def test_three_key_transports(server: Server, user: User) -> None:
    run = server.run(user, [{"i": 1}])
    path = f"/api/v2/worker-runs/{run}/result"
    with server.client() as anon:
        for kwargs in (
            {"headers": {"Authorization": f"Bearer {user.key}"}},
            {"headers": {"api-key": user.key}},
            {"params": {"token": user.key}},
        ):
            assert _ok(anon.get(path, **kwargs))["count"] == 1


def test_bearer_wins_over_the_other_transports(server: Server, user: User) -> None:
    run = server.run(user, [{"i": 1}])
    with server.client() as anon:
        resp = anon.get(
            f"/api/v2/worker-runs/{run}/result",
            headers={"Authorization": "Bearer wrong", "api-key": user.key},
        )
    _err(resp, 401, 12002)


def test_missing_key_is_401_12001(server: Server, user: User) -> None:
    run = server.run(user, [{"i": 1}])
    with server.client() as anon:
        body = _err(anon.get(f"/api/v2/worker-runs/{run}/result"), 401, 12001)
    assert body["message"] == "authentication required"


def test_unknown_or_revoked_key_is_401_12002(server: Server, user: User) -> None:
    run = server.run(user, [{"i": 1}])
    path = f"/api/v2/worker-runs/{run}/result"
    with server.client() as anon:
        body = _err(anon.get(path, headers={"api-key": "ry_nope"}), 401, 12002)
        assert body["message"] == "invalid token"
        key_id = server.services.accounts.list_keys(user.name)[0].id
        server.services.accounts.revoke_key(key_id)
        _err(anon.get(path, params={"token": user.key}), 401, 12002)


def test_keys_are_stored_hashed(server: Server, user: User) -> None:
    if server.services.db.dialect == "sqlite":
        # The database file itself, free pages and the write-ahead log included.
        db_bytes = (server.services.settings.data_dir / "runyard.db").read_bytes()
        wal = server.services.settings.data_dir / "runyard.db-wal"
        db_bytes += wal.read_bytes() if wal.exists() else b""
    else:
        with server.services.db.engine.connect() as conn:
            db_bytes = repr(conn.exec_driver_sql("SELECT * FROM api_keys").all()).encode()
        assert hashlib.sha256(user.key.encode()).hexdigest().encode() in db_bytes
    assert user.key.encode() not in db_bytes


def test_another_users_run_is_404_11004(server: Server, user: User, api: httpx.Client) -> None:
    other = server.user()
    theirs = server.run(other, [{"secret": 1}])
    _err(api.get(f"/api/v2/worker-runs/{theirs}/result"), 404, 11004)
    _err(api.get(f"/api/v2/worker-runs/{theirs}/result/export"), 404, 11004)
    _err(api.get(f"/api/v2/worker-runs/{theirs}"), 404, 11004)
    _err(api.get("/api/v2/worker-runs/01ARZ3NDEKTSV4RRFFQ69G5FAV/result"), 404, 11004)


# --- envelope on everything ------------------------------------------------------------------


def test_unknown_route_and_method_are_404_envelopes(api: httpx.Client) -> None:
    _err(api.get("/api/v2/nothing-here"), 404, 11004)
    _err(api.get("/nothing-here"), 404, 11004)
    _err(api.post("/api/v2/worker-runs/x/result"), 404, 11004)


def test_incoming_request_id_is_reused(api: httpx.Client) -> None:
    resp = api.get("/api/v2/nothing", headers={"X-Request-Id": "trace-123"})
    assert resp.headers["x-request-id"] == "trace-123"
    assert resp.json()["request_id"] == "trace-123"
    junk = api.get("/api/v2/nothing", headers={"X-Request-Id": "x" * 500})
    assert junk.json()["request_id"].startswith("req-")


def test_request_ids_are_unique(api: httpx.Client) -> None:
    ids = {api.get("/api/v2/nothing").json()["request_id"] for _ in range(20)}
    assert len(ids) == 20


def test_unexpected_failure_is_500_10000_without_internals(
    server: Server, user: User, api: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = server.run(user, [{"i": 1}])

    def boom(*_a: object, **_k: object) -> None:
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(server.services.results, "page", boom)
    resp = api.get(f"/api/v2/worker-runs/{run}/result")
    body = _err(resp, 500, 10000)
    assert "secret" not in resp.text
    assert body["message"] == "internal server error"


# --- run record --------------------------------------------------------------------------------


def test_run_record_has_every_field_with_its_type(
    server: Server, user: User, api: httpx.Client
) -> None:
    run = server.run(user, [{"i": 1}, {"i": 2}], worker="my-scraper")
    data = _ok(api.get(f"/api/v2/worker-runs/{run}"))
    types = {
        "slug": str,
        "scraper_slug": str,
        "scraper_title": str,
        "version": str,
        "status": str,
        "results": int,
        "usage": str,
        "traffic": int,
        "origin": str,
        "started_at": int,
        "finished_at": int,
        "duration": int,
        "err_msg": str,
    }
    assert set(data) == set(types)
    for field, kind in types.items():
        assert isinstance(data[field], kind), field
    assert data["slug"] == run and len(run) == 26
    assert data["scraper_slug"] == "my-scraper"
    assert (data["status"], data["results"], data["usage"]) == ("succeeded", 2, "0.0000")
    assert data["finished_at"] >= data["started_at"] > 0


# --- page mode (server setting) --------------------------------------------------------------


def test_page_offset_mode(make_server) -> None:  # type: ignore[no-untyped-def]
    srv = make_server(offset_mode="page")
    user = srv.user()
    run = srv.run(user, [{"i": i} for i in range(50)])
    with srv.client(user) as api:
        data = _ok(api.get(f"/api/v2/worker-runs/{run}/result", params={"offset": 2, "limit": 10}))
        assert [r["i"] for r in data["list"]] == list(range(10, 20))
        assert data["page_index"] == 2
        first = _ok(api.get(f"/api/v2/worker-runs/{run}/result", params={"offset": 0}))
        assert first["page_index"] == 1 and first["list"][0] == {"i": 0}
