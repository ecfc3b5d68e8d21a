"""The Python client against raw httpx, each next to its baseline measured in the same run.

    make bench                                         # also runs this, at 100,000 rows
    .venv/bin/python benchmarks/client.py --rows 20000

Prints, and writes to benchmarks/CLIENT.md:
- reading every row of a run: ``Client.iter_results`` next to the loop a user would write by
  hand (httpx, ``offset``/``limit`` 100, ``orjson``), and ``AsyncClient.iter_results`` next to
  the same loop on ``httpx.AsyncClient``; one ``runyard serve`` answers all, in interleaved
  rounds;
- downloading an export: ``Export.download`` (which flushes the file to disk before putting it
  in place, so a crash never leaves a short file under the final name) next to a plain
  ``httpx`` stream of the same link into a file and fsync'd; the same stream without the fsync
  is shown for scale.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results import RUNYARD, _cli, _port, _wait_up, machine, prepare
from runyard.client import AsyncClient, Client

HERE = Path(__file__).resolve().parent
ROUNDS = 3
TARGETS = {"iter_ratio": 0.8, "download_ratio": 0.8}


def raw_rows(base: str, key: str, run: str) -> int:
    """The baseline: the paging loop written by hand."""
    n = 0
    with httpx.Client(headers={"Authorization": f"Bearer {key}"}, timeout=60) as http:
        offset = 0
        while True:
            reply = http.get(
                f"{base}/api/v2/worker-runs/{run}/result", params={"offset": offset, "limit": 100}
            )
            rows = orjson.loads(reply.content)["data"]["list"]
            n += len(rows)
            offset += len(rows)
            if len(rows) < 100:
                return n


def raw_async_rows(base: str, key: str, run: str) -> int:
    """The asyncio baseline: the same loop on ``httpx.AsyncClient``."""

    async def read() -> int:
        n = offset = 0
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(headers=headers, timeout=60) as http:
            while True:
                reply = await http.get(
                    f"{base}/api/v2/worker-runs/{run}/result",
                    params={"offset": offset, "limit": 100},
                )
                rows = orjson.loads(reply.content)["data"]["list"]
                n += len(rows)
                offset += len(rows)
                if len(rows) < 100:
                    return n

    return asyncio.run(read())


def client_rows(base: str, key: str, run: str) -> int:
    with Client(base, key) as client:
        return sum(1 for _ in client.iter_results(run))


def async_rows(base: str, key: str, run: str) -> int:
    async def read() -> int:
        async with AsyncClient(base, key) as client:
            n = 0
            async for _ in client.iter_results(run):
                n += 1
            return n

    return asyncio.run(read())


def raw_download(url: str, dest: Path, fsync: bool = False) -> int:
    with httpx.stream("GET", url, timeout=60) as reply, open(dest, "wb") as f:
        for chunk in reply.iter_bytes(1 << 16):
            f.write(chunk)
        if fsync:
            f.flush()
            os.fsync(f.fileno())
    return dest.stat().st_size


def client_download(base: str, url: str, dest: Path) -> int:
    with Client(base) as client:
        return client.download(url, dest).stat().st_size


def _rate(fn: Callable[[], int]) -> tuple[float, int]:
    started = time.perf_counter()
    n = fn()
    return n / (time.perf_counter() - started), n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--output", type=Path, default=HERE / "CLIENT.md")
    args = parser.parse_args()
    _, data_dir, run, _ = prepare(args.rows)
    key = _cli("keys", "create", "--user", "bench", "--data-dir", str(data_dir))
    port = _port()
    base = f"http://127.0.0.1:{port}"
    # The rate limiter runs (its cost is measured) but never throttles one busy key.
    env = {**os.environ, "RUNYARD_DATA_DIR": str(data_dir), "RUNYARD_RATE_LIMIT": "1000000"}
    server = subprocess.Popen(
        [*RUNYARD, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    rates: dict[str, list[float]] = {
        name: [] for name in ("raw", "client", "raw_async", "async", "dl_raw", "dl_sync", "dl")
    }
    try:
        _wait_up(f"{base}/openapi.json")
        with Client(base, key) as client:
            url = client.export(run, "jsonl").download_url
        dest = HERE / ".data" / "client-download.jsonl"
        raw_download(url, dest)  # waits for the export to be written; later ones only read
        for i in range(ROUNDS):
            print(f"round {i + 1}/{ROUNDS} …", flush=True)
            for name, fn in (
                ("raw", lambda: raw_rows(base, key, run)),
                ("client", lambda: client_rows(base, key, run)),
                ("raw_async", lambda: raw_async_rows(base, key, run)),
                ("async", lambda: async_rows(base, key, run)),
            ):
                rate, n = _rate(fn)
                assert n == args.rows, (name, n)
                rates[name].append(rate)
            rates["dl_raw"].append(_rate(lambda: raw_download(url, dest))[0])
            rates["dl_sync"].append(_rate(lambda: raw_download(url, dest, fsync=True))[0])
            rates["dl"].append(_rate(lambda: client_download(base, url, dest))[0])
        dest.unlink(missing_ok=True)
    finally:
        server.terminate()
        server.wait(10)
    med = {name: statistics.median(values) for name, values in rates.items()}
    report(args, med, args.output)


def report(args: argparse.Namespace, med: dict[str, float], output: Path) -> None:
    def line(what: str, rate: str, ratio: float, target: float | None) -> str:
        if target is None:
            return f"| {what} (baseline) | {rate} | 1.00× | |"
        verdict = "meets" if ratio >= target else "MISSES"
        return f"| {what} | {rate} | {ratio:.2f}× | ≥ {target} ({verdict}) |"

    it, dl = TARGETS["iter_ratio"], TARGETS["download_ratio"]
    rows = {name: f"{med[name]:,.0f} rows/s" for name in ("raw", "client", "raw_async", "async")}
    mbs = {name: f"{med[name] / 2**20:,.0f} MB/s" for name in ("dl_raw", "dl_sync", "dl")}
    lines = [
        "# Client benchmark",
        "",
        f"`make bench` (benchmarks/client.py), {args.rows:,} rows of about 750 B, one "
        f"`runyard serve` on loopback, median of {ROUNDS} interleaved rounds.",
        f"Machine: {machine()}.",
        "",
        "| what | rate | against baseline | target |",
        "|---|---|---|---|",
        line("every row, hand-written httpx + orjson loop", rows["raw"], 1.0, None),
        line("every row, `Client.iter_results`", rows["client"], med["client"] / med["raw"], it),
        line("every row, the same loop on `httpx.AsyncClient`", rows["raw_async"], 1.0, None),
        line(
            "every row, `AsyncClient.iter_results`",
            rows["async"],
            med["async"] / med["raw_async"],
            it,
        ),
        f"| JSONL export download, plain httpx stream into a file (for scale) | {mbs['dl_raw']}"
        f" | {med['dl_raw'] / med['dl_sync']:.2f}× | |",
        line("JSONL export download, the same stream then fsync", mbs["dl_sync"], 1.0, None),
        line(
            "JSONL export download, `Export.download` (.part, fsync, rename)",
            mbs["dl"],
            med["dl"] / med["dl_sync"],
            dl,
        ),
        "",
    ]
    text = "\n".join(lines)
    print(text)
    output.write_text(text)


if __name__ == "__main__":
    main()
