"""Result pages and exports at 1,000,000 rows, each next to a baseline measured in the same run.

    make bench                      # 1,000,000 rows (first run builds the data set: minutes)
    make bench BENCH_ARGS="--rows 100000 --formats csv,json"

Prints, and writes to benchmarks/RESULTS.md:
- page time at offsets 0, 500,000 and 999,900 (limit 100) and the ratio deep/first, next to a
  raw SQLite range read and SQL OFFSET;
- pages per second over HTTP: `runyard serve` next to a bare Starlette endpoint reading the same
  page from the same SQLite file;
- each export format's seconds, rows/s and peak RSS, next to DuckDB COPY writing the same rows
  to CSV.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import resource
import socket
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _data import write_jsonl
from runyard.services import Services, Window
from runyard.settings import Settings

HERE = Path(__file__).resolve().parent
PY = sys.executable
RUNYARD = [PY, "-m", "runyard"]
ALL_FORMATS = ["csv", "json", "jsonl", "xlsx", "xls", "xml", "html", "rss"]
ROUNDS = 10
TARGETS = {"deep_first": 1.2, "http_ratio": 0.8, "csv_vs_duckdb": 1.5, "rss_mb": 300}


def _cli(*args: str) -> str:
    return subprocess.run(
        [*RUNYARD, *args], check=True, capture_output=True, text=True
    ).stdout.strip()


def prepare(rows: int) -> tuple[Path, Path, str, dict[str, Any]]:
    """The data set: a JSONL file and a data dir holding it as one run (built once, reused)."""
    base = HERE / ".data" / f"rows-{rows}"
    src = base / "rows.jsonl"
    data_dir = base / "runyard"
    marker = base / "run.json"
    if marker.exists():
        info = orjson.loads(marker.read_bytes())
        return src, data_dir, info["run"], info
    print(f"building the data set: {rows:,} rows …", flush=True)
    size = write_jsonl(src, rows)
    _cli("users", "create", "bench", "--data-dir", str(data_dir))
    started = time.perf_counter()
    run = _cli(
        "runs",
        "import",
        str(src),
        "--user",
        "bench",
        "--worker",
        "bench-shop",
        "--data-dir",
        str(data_dir),
    )
    seconds = time.perf_counter() - started
    # The import is the largest child so far, so the children's peak is the import's.
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    info = {"run": run, "import_seconds": seconds, "jsonl_bytes": size, "import_rss_mb": peak}
    marker.write_bytes(orjson.dumps(info))
    return src, data_dir, run, info


def _median_ms(fn: Any, repeat: int) -> float:
    fn()  # warm the page cache for this range
    samples = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    return statistics.median(samples) * 1000


def page_times(data_dir: Path, run: str, rows: int) -> dict[str, Any]:
    svc = Services(Settings(data_dir=data_dir))
    uid = svc.accounts.user_id("bench")
    run_id = svc.runs.find(uid, run)[0].id
    raw = sqlite3.connect(data_dir / "runyard.db")
    offsets = [0, rows // 2, max(rows - 100, 0)]
    out: dict[str, Any] = {"offsets": offsets, "runyard_ms": [], "range_ms": [], "offset_ms": []}

    for off in offsets:

        def runyard_page(off: int = off) -> bytes:
            page = svc.results.page(uid, run, Window.from_query(off, 100))
            return ",".join(page.rows).encode()

        def range_read(off: int = off) -> list[Any]:
            return raw.execute(
                "SELECT data FROM result_rows WHERE run_id=? AND seq>=? AND seq<? ORDER BY seq",
                (run_id, off, off + 100),
            ).fetchall()

        def offset_read(off: int = off) -> list[Any]:
            return raw.execute(
                "SELECT data FROM result_rows WHERE run_id=? ORDER BY seq LIMIT 100 OFFSET ?",
                (run_id, off),
            ).fetchall()

        out["runyard_ms"].append(_median_ms(runyard_page, 300))
        out["range_ms"].append(_median_ms(range_read, 300))
        out["offset_ms"].append(_median_ms(offset_read, 5))
    out["deep_first"] = out["runyard_ms"][-1] / out["runyard_ms"][0]
    svc.close()
    return out


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_up(url: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def _pages_per_second(client: httpx.Client, url: str, rows: int, seconds: float) -> float:
    rng = random.Random(1)
    done = 0
    end = time.perf_counter() + seconds
    started = time.perf_counter()
    while time.perf_counter() < end:
        resp = client.get(url, params={"offset": rng.randrange(max(rows - 100, 1)), "limit": 100})
        assert resp.status_code == 200, resp.text
        done += 1
    return done / (time.perf_counter() - started)


def http_rates(data_dir: Path, run: str, rows: int, seconds: float) -> dict[str, Any]:
    key = _cli("keys", "create", "--user", "bench", "--data-dir", str(data_dir))
    svc = Services(Settings(data_dir=data_dir))
    run_id = svc.runs.find(svc.accounts.user_id("bench"), run)[0].id
    svc.close()
    p1, p2 = _port(), _port()
    env = {**os.environ, "RUNYARD_DATA_DIR": str(data_dir)}
    servers = [
        subprocess.Popen(
            [*RUNYARD, "serve", "--port", str(p1)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ),
        subprocess.Popen(
            [PY, str(HERE / "_bare.py"), str(data_dir / "runyard.db"), str(run_id), str(p2)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ),
    ]
    try:
        ry_url = f"http://127.0.0.1:{p1}/api/v2/worker-runs/{run}/result"
        bare_url = f"http://127.0.0.1:{p2}/page"
        _wait_up(f"http://127.0.0.1:{p1}/openapi.json")
        _wait_up(bare_url)
        rates: dict[str, list[float]] = {"runyard": [], "bare": []}
        with httpx.Client(headers={"Authorization": f"Bearer {key}"}) as client:
            _pages_per_second(client, ry_url, rows, 1)
            _pages_per_second(client, bare_url, rows, 1)
            # Short interleaved rounds, so drift in the machine's load hits both sides alike;
            # the ratio is the median of the rounds' ratios.
            for _ in range(ROUNDS):
                rates["runyard"].append(_pages_per_second(client, ry_url, rows, seconds / ROUNDS))
                rates["bare"].append(_pages_per_second(client, bare_url, rows, seconds / ROUNDS))
    finally:
        for proc in servers:
            proc.terminate()
            proc.wait(10)
    ratios = [r / b for r, b in zip(rates["runyard"], rates["bare"], strict=True)]
    return {
        "runyard": statistics.median(rates["runyard"]),
        "bare": statistics.median(rates["bare"]),
        "ratio": statistics.median(ratios),
        "ratio_range": (min(ratios), max(ratios)),
    }


def _child_json(args: list[str]) -> dict[str, Any]:
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    return dict(orjson.loads(out.strip().splitlines()[-1]))


def exports(src: Path, data_dir: Path, run: str, formats: list[str]) -> dict[str, Any]:
    # Each export gets a fresh data dir copy of nothing: exports of a finished run are reused,
    # so drop earlier files first to measure a real write.
    subprocess.run(
        [
            PY,
            "-c",
            (
                "import sqlite3,sys,shutil,pathlib;"
                "d=pathlib.Path(sys.argv[1]);"
                "c=sqlite3.connect(d/'runyard.db');c.execute('DELETE FROM exports');c.commit();"
                "shutil.rmtree(d/'files',ignore_errors=True)"
            ),
            str(data_dir),
        ],
        check=True,
    )
    results: dict[str, Any] = {}
    for fmt in formats:
        print(f"  exporting {fmt} …", flush=True)
        results[fmt] = _child_json(
            [PY, str(HERE / "_export_one.py"), str(data_dir), "bench", run, fmt]
        )
    dest = src.with_name("duckdb.csv")
    results["duckdb"] = _child_json([PY, str(HERE / "_duckdb_copy.py"), str(src), str(dest)])
    dest.unlink(missing_ok=True)
    return results


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}, SQLite "
        f"{sqlite3.sqlite_version}"
    )


def report(
    rows: int,
    info: dict[str, Any],
    pages: dict[str, Any] | None,
    http: dict[str, Any] | None,
    exp: dict[str, Any] | None,
) -> str:
    lines = [
        "# Benchmark results",
        "",
        f"Machine: {machine()}.",
        f"Data: {rows:,} rows, {info['jsonl_bytes'] / rows:.0f} bytes each on average as JSON "
        f"(15 fields, 3 nested). Import: {info['import_seconds']:.1f} s "
        f"({rows / info['import_seconds']:,.0f} rows/s, "
        + (
            f"peak RSS {info['import_rss_mb']:.0f} MB)."
            if "import_rss_mb" in info
            else "peak RSS not recorded: the data set predates that figure)."
        ),
        "Command: `make bench` (`python benchmarks/results.py`). Ratios compare figures measured "
        "in the same run; absolute times depend on the machine's other load.",
        "",
    ]

    def verdict(value: float, target: float, higher_is_better: bool = False) -> str:
        met = value >= target if higher_is_better else value <= target
        return "meets target" if met else "MISSES target"

    if pages:
        lines += [
            "## Result page (limit 100), median in-process time",
            "",
            "| offset | Runyard page | raw SQLite range read | SQL OFFSET |",
            "|---:|---:|---:|---:|",
        ]
        for i, off in enumerate(pages["offsets"]):
            lines.append(
                f"| {off:,} | {pages['runyard_ms'][i]:.3f} ms | {pages['range_ms'][i]:.3f} ms "
                f"| {pages['offset_ms'][i]:.1f} ms |"
            )
        lines += [
            "",
            f"Deep/first ratio: **{pages['deep_first']:.2f}** (target ≤ "
            f"{TARGETS['deep_first']}: {verdict(pages['deep_first'], TARGETS['deep_first'])}).",
            "",
        ]
    if http:
        lines += [
            "## Pages per second over HTTP (limit 100, random offsets, one keep-alive client)",
            "",
            "| server | pages/s |",
            "|---|---:|",
            f"| `runyard serve` (auth, envelope, request id) | {http['runyard']:,.0f} |",
            f"| bare Starlette endpoint, same SQLite file | {http['bare']:,.0f} |",
            "",
            f"Runyard / bare: **{http['ratio']:.2f}×**, the median of {ROUNDS} interleaved rounds "
            f"(range {http['ratio_range'][0]:.2f}–{http['ratio_range'][1]:.2f}; target ≥ "
            f"{TARGETS['http_ratio']}: "
            f"{verdict(http['ratio'], TARGETS['http_ratio'], higher_is_better=True)}).",
            "",
        ]
    if exp:
        duck = exp["duckdb"]
        lines += [
            "## Exports (whole run, one process each)",
            "",
            "| format | seconds | rows/s | file MB | peak RSS MB |",
            "|---|---:|---:|---:|---:|",
        ]
        for fmt, r in exp.items():
            if fmt == "duckdb":
                continue
            lines.append(
                f"| {fmt} | {r['seconds']:.1f} | {r['rows'] / r['seconds']:,.0f} | "
                f"{(r['bytes'] or 0) / 2**20:,.0f} | {r['peak_rss_mb']:.0f} |"
            )
        lines.append(
            f"| DuckDB COPY → CSV (baseline) | {duck['seconds']:.1f} | "
            f"{rows / duck['seconds']:,.0f} | | {duck['peak_rss_mb']:.0f} |"
        )
        lines.append("")
        if "csv" in exp:
            ratio = exp["csv"]["seconds"] / duck["seconds"]
            lines.append(
                f"CSV / DuckDB time: **{ratio:.2f}×** (target ≤ {TARGETS['csv_vs_duckdb']}: "
                f"{verdict(ratio, TARGETS['csv_vs_duckdb'])})."
            )
        lines.append(
            "The baseline is not like for like: DuckDB reads a flat JSONL file with its parallel "
            "native reader and writes nested values in its own notation, while Runyard reads the "
            "rows out of SQLite, decodes each one and applies the spec's cell rules (compact JSON "
            "for nested values) in Python."
        )
        worst = max(r["peak_rss_mb"] for f, r in exp.items() if f != "duckdb")
        lines += [
            f"Highest peak RSS: **{worst:.0f} MB** (target ≤ {TARGETS['rss_mb']} MB: "
            f"{verdict(worst, TARGETS['rss_mb'])}).",
            "",
        ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--formats", default=",".join(ALL_FORMATS))
    parser.add_argument("--http-seconds", type=float, default=20.0)
    parser.add_argument("--skip", default="", help="comma-separated: pages,http,exports")
    parser.add_argument("--output", type=Path, default=HERE / "RESULTS.md")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    src, data_dir, run, info = prepare(args.rows)
    pages = None if "pages" in skip else page_times(data_dir, run, args.rows)
    http = None if "http" in skip else http_rates(data_dir, run, args.rows, args.http_seconds)
    exp = None
    if "exports" not in skip:
        exp = exports(src, data_dir, run, [f for f in args.formats.split(",") if f])
    text = report(args.rows, info, pages, http, exp)
    print()
    print(text)
    args.output.write_text(text + "\n")
    print(f"\nwritten to {args.output}")


if __name__ == "__main__":
    main()
