"""The console's results page at 1,000,000 rows, next to the API's result page in the same run.

    make bench                                   # also runs this
    .venv/bin/python benchmarks/console.py --rows 100000

One ``runyard serve`` on the data set of ``results.py`` (built once, reused). A console session
signs in like a browser; then, in interleaved rounds at offsets 0, 500,000 and the last page:
- the run page (``/runs/{run}``: status, log tail, results table, export panel);
- the results table alone (the fragment the page's script refreshes);
- the API's ``GET /worker-runs/{run}/result`` page of the same rows (the baseline).

Server time is what the console reports in its ``Server-Timing`` header (routing, session,
queries, template); wall time is the client's. Written to benchmarks/CONSOLE.md. The issue's
target: under 100 ms server time for any page.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results import RUNYARD, Side, _port, _wait_up, machine, prepare

HERE = Path(__file__).resolve().parent
TARGET_MS = 100.0
SIZES = (20, 100)


def _server_ms(resp: httpx.Response) -> float:
    match = re.search(r"dur=([0-9.]+)", resp.headers.get("server-timing", ""))
    assert match, "the console reply carries no Server-Timing header"
    return float(match.group(1))


def sign_in(client: httpx.Client, key: str) -> None:
    form = client.get("/sign-in")
    token = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert token, "no CSRF token on the sign-in page"
    resp = client.post("/sign-in", data={"csrf": token.group(1), "api_key": key, "next": "/runs"})
    assert resp.status_code == 303, resp.text


def measure(base: str, key: str, run: str, rows: int, rounds: int) -> dict[str, dict[str, float]]:
    """Median server and wall ms of each (what, size, offset), in interleaved rounds."""
    offsets = {"first": 0, "middle": rows // 2, "last": max(rows - 100, 0)}
    console = httpx.Client(base_url=base, timeout=60)
    api = httpx.Client(base_url=base, timeout=60, headers={"Authorization": f"Bearer {key}"})
    sign_in(console, key)
    fragment = {"X-Runyard-Fragment": "results"}

    def requests(size: int, offset: int) -> dict[str, tuple[httpx.Client, str, dict[str, str]]]:
        query = f"offset={offset}&limit={size}"
        return {
            "page": (console, f"/runs/{run}?{query}", {}),
            "table": (console, f"/runs/{run}?{query}", fragment),
            "api": (api, f"/api/v2/worker-runs/{run}/result?{query}", {}),
        }

    samples: dict[str, list[tuple[float, float]]] = {}
    for round_ in range(rounds + 1):  # round 0 warms caches and templates, and is dropped
        for size in SIZES:
            for where, offset in offsets.items():
                for what, (client, url, headers) in requests(size, offset).items():
                    started = time.perf_counter()
                    resp = client.get(url, headers=headers)
                    wall = (time.perf_counter() - started) * 1000
                    assert resp.status_code == 200, (url, resp.status_code, resp.text[:300])
                    server = _server_ms(resp) if client is console else wall
                    if round_:
                        samples.setdefault(f"{what}/{size}/{where}", []).append((server, wall))
    return {
        name: {
            "server": statistics.median(s for s, _ in values),
            "wall": statistics.median(w for _, w in values),
            "server_max": max(s for s, _ in values),
        }
        for name, values in samples.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--output", type=Path, default=HERE / "CONSOLE.md")
    args = parser.parse_args()

    _src, data_dir, run, _info = prepare(args.rows)
    side = Side("SQLite", data_dir, run=run)
    key = side.cli("keys", "create", "--user", "bench")
    port = _port()
    base = f"http://127.0.0.1:{port}"
    log = data_dir.parent / "serve-console.log"
    with open(log, "wb") as sink:
        server = subprocess.Popen(
            [*RUNYARD, "serve", "--port", str(port)],
            env=side.env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_up(base + "/sign-in", server, log)
        figures = measure(base, key, run, args.rows, args.rounds)
    finally:
        server.terminate()
        server.wait(10)

    worst = max(f["server_max"] for name, f in figures.items() if not name.startswith("api"))
    verdict = "meets" if worst < TARGET_MS else "MISSES"
    lines = [
        "# Console results page",
        "",
        f"{args.rows:,} rows of about 750 B, one `runyard serve` (SQLite), median of "
        f"{args.rounds} interleaved rounds. {machine()}.",
        "",
        "Server ms: the console's `Server-Timing`; for the API page (no such header) the wall "
        "time. Ratio: wall time next to the API page of the same rows.",
        "",
        "| what | rows | offset | server ms | wall ms | × API page |",
        "|---|---|---|---|---|---|",
    ]
    for size in SIZES:
        for where in ("first", "middle", "last"):
            api_wall = figures[f"api/{size}/{where}"]["wall"]
            for what, label in (
                ("page", "run page"),
                ("table", "results table"),
                ("api", "API page"),
            ):
                f = figures[f"{what}/{size}/{where}"]
                lines.append(
                    f"| {label} | {size} | {where} | {f['server']:.1f} | {f['wall']:.1f} | "
                    f"{f['wall'] / api_wall:.2f}× |"
                )
    lines += [
        "",
        f"Slowest console reply in any round: {worst:.1f} ms server time — {verdict} the "
        f"target of {TARGET_MS:.0f} ms.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    args.output.write_text(text)


if __name__ == "__main__":
    main()
