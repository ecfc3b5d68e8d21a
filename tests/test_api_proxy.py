"""Proxy regions (spec §4): the public list, validation, and the proxy in a run's environment."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from tests.conftest import Server, start, wait_for

pytestmark = pytest.mark.both_databases

PROXIES = {
    "US": {
        "name": {"en": "United States", "de": "Vereinigte Staaten"},
        "urls": ["http://bob%40corp:s3cret@us.proxy.example:8080"],
    },
    "DE": {"name": {"de": "Deutschland", "fr": "Allemagne"}, "urls": ["http://de.proxy.example"]},
    "JP": {"name": "Japan", "urls": ["http://a.jp.example:1", "http://b.jp.example:2"]},
}
NAMES = ("HTTP_PROXY", "HTTPS_PROXY", "PROXY_DOMAIN", "PROXY_AUTH")
ECHO_ENV = f"""
import os
from runyard import sdk
sdk.push({{k: os.environ.get(k) for k in {NAMES!r}}})
"""


def test_regions_are_public_and_named_by_language(make_server: Callable[..., Server]) -> None:
    server = make_server(proxies=PROXIES)
    url = f"{server.url}/api/v2/proxy/region"

    default = httpx.get(url)
    assert default.status_code == 200, default.text
    assert default.json()["data"] == {
        "list": [
            {"code": "US", "name": "United States"},
            {"code": "DE", "name": "Deutschland"},  # no English name: the first one
            {"code": "JP", "name": "Japan"},
        ]
    }
    german = httpx.get(url, params={"language": "de"}).json()["data"]["list"]
    assert [r["name"] for r in german] == ["Vereinigte Staaten", "Deutschland", "Japan"]
    french = httpx.get(url, params={"language": "fr"}).json()["data"]["list"]
    assert [r["name"] for r in french] == ["United States", "Allemagne", "Japan"]
    # The URLs hold credentials: they never leave the server.
    assert "proxy.example" not in default.text


def test_no_regions_configured(server: Server) -> None:
    reply = httpx.get(f"{server.url}/api/v2/proxy/region")
    assert reply.json()["data"] == {"list": []}


def test_a_run_gets_its_regions_proxy(make_server: Callable[..., Server]) -> None:
    server = make_server(proxies=PROXIES)
    user = server.user()
    worker = server.worker(user, ECHO_ENV)
    with server.client(user) as api:
        run = start(api, worker, system={"proxy_region": "US"})
        record = wait_for(api, run)
        assert record["status"] == "succeeded", record
        assert record["traffic"] == 0
        rows = api.get(f"/api/v2/worker-runs/{run}/result").json()["data"]["list"]
        assert rows == [
            {
                "HTTP_PROXY": "http://bob%40corp:s3cret@us.proxy.example:8080",
                "HTTPS_PROXY": "http://bob%40corp:s3cret@us.proxy.example:8080",
                "PROXY_DOMAIN": "us.proxy.example:8080",
                "PROXY_AUTH": "bob@corp:s3cret",
            }
        ]

        run = start(api, worker, system={"proxy_region": "DE"})
        assert wait_for(api, run)["status"] == "succeeded"
        rows = api.get(f"/api/v2/worker-runs/{run}/result").json()["data"]["list"]
        assert rows[0]["PROXY_DOMAIN"] == "de.proxy.example:80"
        assert rows[0]["PROXY_AUTH"] == ""

        seen = set()
        for _ in range(8):
            run = start(api, worker, system={"proxy_region": "JP"})
            assert wait_for(api, run)["status"] == "succeeded"
            seen.add(
                api.get(f"/api/v2/worker-runs/{run}/result").json()["data"]["list"][0][
                    "PROXY_DOMAIN"
                ]
            )
        assert seen <= {"a.jp.example:1", "b.jp.example:2"} and seen

        plain = start(api, worker)
        assert wait_for(api, plain)["status"] == "succeeded"
        rows = api.get(f"/api/v2/worker-runs/{plain}/result").json()["data"]["list"]
        assert rows == [dict.fromkeys(NAMES)]


def test_an_unknown_region_is_422_and_creates_nothing(make_server: Callable[..., Server]) -> None:
    server = make_server(proxies=PROXIES)
    user = server.user()
    worker = server.worker(user, ECHO_ENV)
    with server.client(user) as api:
        reply = api.post(
            f"/api/v2/workers/{worker}/runs",
            json={"input": {"parameters": {"system": {"proxy_region": "XX"}}}},
        )
        assert reply.status_code == 422 and reply.json()["code"] == 11000
        assert any("proxy_region" in line for line in reply.json()["details"])
        assert api.get("/api/v2/worker-runs").json()["data"]["count"] == 0


def test_a_region_on_a_server_without_proxies_is_422(server: Server) -> None:
    user = server.user()
    worker = server.worker(user, ECHO_ENV)
    with server.client(user) as api:
        reply = api.post(
            f"/api/v2/workers/{worker}/runs",
            json={"input": {"parameters": {"system": {"proxy_region": "US"}}}},
        )
        assert reply.status_code == 422
