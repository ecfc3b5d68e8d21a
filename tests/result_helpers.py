"""Reading a run's rows back the way a client does."""

from __future__ import annotations

from typing import Any

import httpx


def read_all(client: httpx.Client, run: str, count: int) -> list[Any]:
    """Every row of ``run``, which holds ``count``, through the API page by page."""
    rows: list[Any] = []
    for offset in range(0, count, 100):
        reply = client.get(
            f"/api/v2/worker-runs/{run}/result", params={"offset": offset, "limit": 100}
        )
        assert reply.status_code == 200, reply.text
        page = reply.json()["data"]
        assert page["count"] == count
        rows += page["list"]
    return rows
