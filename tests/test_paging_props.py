"""Properties of paging: any offset and limit give exactly the right slice and page index."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runyard.services import MAX_LIMIT
from runyard.settings import Settings
from tests.conftest import Databases, Server

pytestmark = pytest.mark.both_databases

TOTAL = 237


@pytest.fixture(scope="module")
def paged(server: Server) -> tuple[httpx.Client, str]:
    user = server.user()
    run = server.run(user, [{"i": i} for i in range(TOTAL)])
    return server.client(user), run


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(offset=st.integers(0, TOTAL + 50), limit=st.integers(1, 250))
def test_any_window_over_http(paged: tuple[httpx.Client, str], offset: int, limit: int) -> None:
    api, run = paged
    data = api.get(
        f"/api/v2/worker-runs/{run}/result", params={"offset": offset, "limit": limit}
    ).json()["data"]
    size = min(limit, MAX_LIMIT)
    assert [r["i"] for r in data["list"]] == list(range(TOTAL))[offset : offset + size]
    assert data["page_index"] == offset // size + 1
    assert data["page_size"] == size
    assert data["count"] == TOTAL


@pytest.fixture(scope="module")
def page_mode(
    tmp_path_factory: pytest.TempPathFactory, backend: str, databases: Databases
) -> Iterator[tuple[httpx.Client, str]]:
    srv = Server(
        Settings(
            data_dir=tmp_path_factory.mktemp("pages"),
            offset_mode="page",
            database_url=databases.url(backend),
        )
    )
    user = srv.user()
    run = srv.run(user, [{"i": i} for i in range(TOTAL)])
    with srv.client(user) as client:
        yield client, run
    srv.stop()


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(page=st.integers(0, 30), limit=st.integers(1, 150))
def test_page_mode_pages_tile_the_rows(
    page_mode: tuple[httpx.Client, str], page: int, limit: int
) -> None:
    api, run = page_mode
    data = api.get(
        f"/api/v2/worker-runs/{run}/result", params={"offset": page, "limit": limit}
    ).json()["data"]
    size = min(limit, MAX_LIMIT)
    first = (max(page, 1) - 1) * size
    assert [r["i"] for r in data["list"]] == list(range(TOTAL))[first : first + size]
    assert data["page_index"] == max(page, 1)
