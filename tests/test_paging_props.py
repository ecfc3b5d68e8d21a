"""Properties of paging: any offset and limit give exactly the right slice and page index."""

from __future__ import annotations

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runyard.services import MAX_LIMIT, Window
from tests.conftest import Server

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


@given(offset=st.integers(0, 10**9), limit=st.integers(1, 10**6))
def test_page_mode_windows_tile_the_rows(offset: int, limit: int) -> None:
    window = Window.from_query(offset, limit, "page")
    page = max(offset, 1)
    assert window.start == (page - 1) * window.size
    assert window.page_index == page
    assert window.size == min(limit, MAX_LIMIT)
