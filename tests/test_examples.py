"""The bundled workers, run for real: the scraper against a local site, CoreClaw's own format
unmodified, synthetic data — and the README's first-start flow with nothing but HTTP."""

from __future__ import annotations

import csv
import io
import itertools
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from runyard.services.packages import load_package
from tests.conftest import Server, User, start, wait_for
from tests.served import free_port
from tests.sites import ShopSite

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "workers"


@pytest.fixture(scope="module")
def examples(server: Server) -> User:
    """A user with the three bundled workers registered (the scraper's venv built once)."""
    user = server.user()
    for name in ("web-scraper", "sample-data", "coreclaw-hello"):
        server.services.workers.register(user.id, load_package(EXAMPLES / name))
    return user


def test_web_scraper_crawls_the_local_site(server: Server, examples: User):
    with ShopSite(slow_delay=0.2) as site, server.client(examples) as api:
        run = start(
            api,
            "web-scraper",
            {
                "start_urls": [site.url + "/"],
                "fields": {"title": "title", "price": "span.price", "sku": "div.product@data-sku"},
                "max_retries": 2,
            },
        )
        record = wait_for(api, run, timeout=120)
        assert record["status"] == "succeeded", api.get(f"/api/v2/worker-runs/{run}/log").text
        rows = api.get(f"/api/v2/worker-runs/{run}/result", params={"limit": 100}).json()["data"]
        assert site.hits.get("/private/secret", 0) == 0
        assert site.hits["/flaky"] == 2
    u = site.url
    got = [(r["depth"], r["url"], r["status"], r["title"]) for r in rows["list"]]
    assert got == [
        (0, f"{u}/", 200, "Test Shop"),
        (1, f"{u}/category/a", 200, "Category A | Test Shop"),
        (1, f"{u}/category/b", 200, "Category B | Test Shop"),
        (1, f"{u}/flaky", 200, "Flaky Deal | Test Shop"),
        (1, f"{u}/slow", 200, "Slow Page | Test Shop"),
        (1, f"{u}/product/3", 200, "Product 3 | Test Shop"),
        (1, f"{u}/missing", 404, None),
        *[
            (2, f"{u}/product/{n}", 200, f"Product {n} | Test Shop")
            for n in (1, 2, 4, 5, 6, 7, 8, 9, 10)
        ],
    ]
    product = next(r for r in rows["list"] if r["url"] == f"{u}/product/4")
    assert (product["price"], product["sku"]) == ("$39.99", "SKU-004")


def test_coreclaw_worker_runs_unmodified(server: Server, examples: User):
    with server.client(examples) as api:
        run = start(api, "coreclaw-hello", {"name": "Ada", "count": 2})
        assert wait_for(api, run)["status"] == "succeeded"
        page = api.get(f"/api/v2/worker-runs/{run}/result").json()["data"]
        log = api.get(f"/api/v2/worker-runs/{run}/log").json()["data"]["list"]
    assert page["headers"] == [
        {"key": "index", "label": "Index"},
        {"key": "name", "label": "Name"},
        {"key": "greeting", "label": "Greeting"},
    ]
    assert page["list"] == [
        {"index": 1, "name": "Ada", "greeting": "Hello, Ada! (1/2)"},
        {"index": 2, "name": "Ada", "greeting": "Hello, Ada! (2/2)"},
    ]
    assert "Script execution completed" in [e["content"] for e in log]


def test_sample_data_is_deterministic_and_exports(server: Server, examples: User):
    with server.client(examples) as api:
        runs = [start(api, "sample-data", {"count": 250, "seed": 7}) for _ in range(2)]
        for run in runs:
            assert wait_for(api, run)["results"] == 250
        pages = [
            api.get(
                f"/api/v2/worker-runs/{run}/result", params={"offset": 200, "limit": 50}
            ).json()["data"]["list"]
            for run in runs
        ]
        assert pages[0] == pages[1] and len(pages[0]) == 50
        link = api.get(f"/api/v2/worker-runs/{runs[0]}/result/export", params={"format": "csv"})
        body = httpx.get(link.json()["data"]["download_url"]).content.decode("utf-8-sig")
    assert len(list(csv.DictReader(io.StringIO(body)))) == 250


def test_first_start_then_curl_alone_scrapes_and_exports(tmp_path: Path, venvs_dir: Path):
    """The README's promise: `make serve`, then the printed curl lines, and rows come back."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "runyard", "serve", "--port", str(port), "--workers", str(EXAMPLES)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "RUNYARD_DATA_DIR": str(tmp_path / "data"),
            "RUNYARD_VENVS_DIR": str(venvs_dir),
        },
    )
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and "Application startup complete" not in "".join(lines):
            lines.append(proc.stdout.readline())
        banner = "".join(lines)
        assert "registered worker web-scraper 1.0.0" in banner, banner
        assert "registered worker coreclaw-hello 1.0.0" in banner
        curls = [
            shlex.split(line) for line in banner.splitlines() if line.strip().startswith("curl")
        ]
        start_run, read_rows = curls[0], curls[1]
        headers = dict(
            value.split(": ", 1) for flag, value in itertools.pairwise(start_run) if flag == "-H"
        )
        body = start_run[start_run.index("-d") + 1]
        reply = httpx.post(start_run[-1], headers=headers, content=body, timeout=300)
        assert reply.status_code == 200, reply.text
        data = reply.json()["data"]
        assert data["is_finished"] is True and data["run_status"] == "succeeded", data
        assert data["results"]["list"][0]["url"] == f"http://127.0.0.1:{port}/docs"
        rows = httpx.get(read_rows[-1], headers=headers).json()["data"]
        assert rows["count"] >= 1 and rows["list"][0]["title"]
        export = httpx.get(
            read_rows[-1].replace("/result", "/export"), headers=headers, params={"format": "xlsx"}
        ).json()["data"]["download_url"]
        assert httpx.get(export).content.startswith(b"PK")
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
    assert re.search(r"ry_[A-Za-z0-9_-]{43}", banner)
