"""Several API servers on one database and one shared directory (DESIGN §5): whatever one of
them writes or signs, any other serves."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.conftest import Databases, Server, start, wait_for
from tests.test_api_export import download, export_url

pytestmark = pytest.mark.both_databases


@pytest.fixture
def pair(
    make_server: Callable[..., Server], tmp_path: Path, backend: str, databases: Databases
) -> tuple[Server, Server]:
    url = databases.url(backend) or f"sqlite:///{tmp_path}/shared.db"
    shared = tmp_path / "shared"
    return (
        make_server(database_url=url, shared_dir=shared),
        make_server(database_url=url, shared_dir=shared),
    )


def test_an_export_asked_of_one_server_downloads_from_the_other(
    pair: tuple[Server, Server],
) -> None:
    one, two = pair
    user = one.user()
    run = one.run(user, [{"i": i, "name": f"row {i}"} for i in range(500)])
    with one.client(user) as api_one, two.client(user) as api_two:
        link = export_url(api_one, run, format="csv")
        # The link names the server that signed it; the same path on the other must work.
        elsewhere = httpx.URL(link).copy_with(host="127.0.0.1", port=two.port)
        assert str(elsewhere) != link
        theirs = download(str(elsewhere))
        assert theirs.status_code == 200, theirs.text
        assert theirs.content == download(link).content
        assert theirs.content.count(b"\n") == 501
        # And the other way round, for an export the second server writes itself.
        back = httpx.URL(export_url(api_two, run, format="jsonl")).copy_with(port=one.port)
        assert download(str(back)).content.count(b"\n") == 500


def test_a_run_started_on_one_server_is_read_aborted_and_logged_on_the_other(
    pair: tuple[Server, Server],
) -> None:
    one, two = pair
    user = one.user()
    worker = one.worker(
        user,
        """
        import time
        from runyard import sdk
        sdk.push({"n": 1})
        sdk.flush()
        print("pushed one row")
        time.sleep(60)
        """,
    )
    with one.client(user) as api_one, two.client(user) as api_two:
        run = start(api_one, worker)
        deadline = time.monotonic() + 30
        page = api_two.get(f"/api/v2/worker-runs/{run}/result").json()["data"]
        while page["count"] < 1 and time.monotonic() < deadline:
            time.sleep(0.1)
            page = api_two.get(f"/api/v2/worker-runs/{run}/result").json()["data"]
        assert page["list"] == [{"n": 1}]
        assert api_two.post(f"/api/v2/worker-runs/{run}/abort").json()["code"] == 0
        record = wait_for(api_one, run, timeout=30)
        assert record["status"] == "failed"
        assert record["err_msg"] == "aborted by user"
        log = api_two.get(f"/api/v2/worker-runs/{run}/log").json()["data"]
        assert any("pushed one row" in entry["content"] for entry in log["list"])
