"""The store (spec §4): published workers are listed publicly, readable and runnable by all."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import Server, User, start, wait_for

pytestmark = pytest.mark.both_databases

ECHO = """
from runyard import sdk
sdk.push(sdk.input())
"""
PROPERTIES = [{"name": "query", "title": "Query", "type": "string", "required": True}]
PUBLIC = {"worker.json": '{"public": true, "title": "Shop Finder", "description": "finds"}'}


def test_store_lists_only_public_workers_without_a_key(server: Server, user: User) -> None:
    public = server.worker(user, ECHO, properties=PROPERTIES, files=PUBLIC)
    private = server.worker(user, ECHO, properties=PROPERTIES)

    store = httpx.get(f"{server.url}/api/v2/store", params={"keyword": public})
    assert store.status_code == 200, store.text
    assert store.json()["data"] == {
        "scraper": [
            {
                "description": "finds",
                "name": public,
                "path": f"{user.name}/{public}",
                "slug": public,
                "title": "Shop Finder",
                "username": user.name,
            }
        ],
        "count": 1,
        "page_index": 1,
        "page_size": 20,
    }
    hidden = httpx.get(f"{server.url}/api/v2/store", params={"keyword": private}).json()["data"]
    assert hidden["count"] == 0 and hidden["scraper"] == []


def test_store_keyword_matches_title_slug_and_path_and_pages(server: Server) -> None:
    owner = server.user()
    first = server.worker(owner, ECHO, files=PUBLIC)
    second = server.worker(owner, ECHO, files=PUBLIC)
    server.worker(owner, ECHO)  # private: never counted

    by_path = httpx.get(f"{server.url}/api/v2/store", params={"keyword": f"{owner.name}/"})
    data = by_path.json()["data"]
    assert data["count"] == 2
    assert [w["slug"] for w in data["scraper"]] == [second, first]  # newest first

    page = httpx.get(
        f"{server.url}/api/v2/store",
        params={"keyword": f"{owner.name}/", "offset": 1, "limit": 1},
    ).json()["data"]
    assert page["count"] == 2 and page["page_index"] == 2 and page["page_size"] == 1
    assert [w["slug"] for w in page["scraper"]] == [first]

    by_title = httpx.get(f"{server.url}/api/v2/store", params={"keyword": "SHOP FINDER"})
    assert {first, second} <= {w["slug"] for w in by_title.json()["data"]["scraper"]}
    by_slug = httpx.get(f"{server.url}/api/v2/store", params={"keyword": first}).json()["data"]
    assert [w["slug"] for w in by_slug["scraper"]] == [first]

    bad = httpx.get(f"{server.url}/api/v2/store", params={"limit": 0})
    assert bad.status_code == 422 and bad.json()["code"] == 11000


def test_another_user_reads_and_runs_a_public_worker(server: Server, user: User) -> None:
    public = server.worker(user, ECHO, properties=PROPERTIES, files=PUBLIC)
    other = server.user()
    with server.client(other) as theirs:
        for worker_id in (public, f"{user.name}~{public}"):
            detail = theirs.get(f"/api/v2/workers/{worker_id}")
            assert detail.status_code == 200, detail.text
            assert detail.json()["data"]["username"] == user.name
            assert detail.json()["data"]["parameters"]["custom"]["properties"][0]["name"] == (
                "query"
            )
        schema = httpx.get(f"{server.url}/api/v2/workers/{public}/input-schema")
        assert schema.json()["data"] == {"input_schema": {"properties": PROPERTIES}}

        run = start(theirs, public, {"query": "shoes"})
        assert wait_for(theirs, run)["status"] == "succeeded"
        assert theirs.get(f"/api/v2/worker-runs/{run}/result").json()["data"]["list"] == [
            {"query": "shoes"}
        ]
        rerun = theirs.post(f"/api/v2/worker-runs/{run}/rerun", json={})
        assert rerun.status_code == 200, rerun.text
        assert wait_for(theirs, rerun.json()["data"]["run_slug"])["status"] == "succeeded"

        # The run is the caller's, not the owner's; the worker stays out of "your workers".
        mine = theirs.get("/api/v2/workers", params={"keyword": public}).json()["data"]
        assert mine["count"] == 0
    with server.client(user) as owners:
        assert owners.get(f"/api/v2/worker-runs/{run}").status_code == 404


def test_a_private_worker_stays_404_for_others(server: Server, user: User) -> None:
    private = server.worker(user, ECHO, properties=PROPERTIES)
    other = server.user()
    with server.client(other) as theirs:
        for method, path in (
            ("GET", f"/api/v2/workers/{private}"),
            ("GET", f"/api/v2/workers/{user.name}~{private}"),
            ("GET", f"/api/v2/workers/{private}/input-schema"),
            ("POST", f"/api/v2/workers/{private}/runs"),
        ):
            reply = theirs.request(method, path, json={} if method == "POST" else None)
            assert reply.status_code == 404, (path, reply.text)
            assert reply.json()["code"] == 11004
        assert theirs.get("/api/v2/worker-runs").json()["data"]["count"] == 0
