"""Result pages and exports at 1,000,000 rows, each next to a baseline measured in the same run.

    make bench                      # 1,000,000 rows (first run builds the data set: minutes)
    make bench BENCH_ARGS="--rows 100000 --formats csv,json"
    make bench-postgres             # --postgres: SQLite and PostgreSQL side by side

Prints, and writes to benchmarks/RESULTS.md:
- page time at offsets 0, 500,000 and 999,900 (limit 100) and the ratio deep/first, next to a
  raw SQLite range read and SQL OFFSET;
- pages per second over HTTP: `runyard serve` next to a bare Starlette endpoint reading the same
  page from the same SQLite file;
- each export format's seconds, rows/s and peak RSS, next to DuckDB COPY writing the same rows
  to CSV.

With ``--postgres [URL]`` (default postgresql://127.0.0.1:5432/test) the same figures are
measured on SQLite and on PostgreSQL in one run, and written to benchmarks/POSTGRES.md: the rows
are imported into a fresh SQLite data dir and a fresh PostgreSQL schema (both timed, both
dropped at the end), then pages, HTTP (all four servers in interleaved rounds) and exports
(``--formats``, default jsonl and csv, alternating between the backends) are measured on each,
with the ratios deep/first on each backend and PostgreSQL/SQLite for each figure.
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import random
import resource
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _postgres
from _data import write_jsonl
from runyard.services import Services, Window
from runyard.settings import Settings

HERE = Path(__file__).resolve().parent
PY = sys.executable
RUNYARD = [PY, "-m", "runyard"]
ALL_FORMATS = ["csv", "json", "jsonl", "xlsx", "xls", "xml", "html", "rss"]
#: ``--postgres``: the backend shows in reading rows out, which JSONL (spliced text) shows
#: most plainly, and CSV (decoded, cell rules applied) in the most common format.
POSTGRES_FORMATS = ["jsonl", "csv"]
POSTGRES_EXPORT_ROUNDS = 2
ROUNDS = 10
TARGETS = {"deep_first": 1.2, "http_ratio": 0.8, "csv_vs_duckdb": 1.5, "rss_mb": 300}


def _cli(*args: str, env: dict[str, str] | None = None) -> str:
    return subprocess.run(
        [*RUNYARD, *args], check=True, capture_output=True, text=True, env=env
    ).stdout.strip()


@dataclass
class Side:
    """One backend holding the data set as one run of user ``bench``: SQLite in ``data_dir``,
    or PostgreSQL at ``database_url`` (``data_dir`` then holds only files and local state)."""

    name: str
    data_dir: Path
    run: str = ""
    database_url: str | None = None
    import_seconds: float = 0.0
    #: Per-round figures, filled in by the benchmarks.
    figures: dict[str, Any] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        # None of the caller's own Runyard settings: each side is the embedded server on its
        # database, nothing else.
        env = {k: v for k, v in os.environ.items() if not k.startswith("RUNYARD_")}
        env["RUNYARD_DATA_DIR"] = str(self.data_dir)
        # The rate limiter runs (its cost is measured) but never throttles one busy key.
        env["RUNYARD_RATE_LIMIT"] = "1000000"
        if self.database_url:
            env["RUNYARD_DATABASE_URL"] = self.database_url
        return env

    def settings(self, **values: Any) -> Settings:
        return Settings(
            data_dir=self.data_dir, database_url=self.database_url, executor="local", **values
        )

    def cli(self, *args: str) -> str:
        return _cli(*args, "--data-dir", str(self.data_dir), env=self.env)

    def bare_target(self) -> str:
        """What ``_bare.py`` reads: the SQLite file or the PostgreSQL URL."""
        return self.database_url or str(self.data_dir / "runyard.db")

    @contextmanager
    def raw(self) -> Iterator[Callable[[str, tuple[Any, ...]], list[Any]]]:
        """A bare driver connection: ``query(sql, params)`` with ``?`` placeholders."""
        if self.database_url is None:
            conn = sqlite3.connect(self.data_dir / "runyard.db", isolation_level=None)
            try:
                yield lambda sql, params: conn.execute(sql, params).fetchall()
            finally:
                conn.close()
            return
        with _postgres.connect(self.database_url) as pg:

            def query(sql: str, params: tuple[Any, ...]) -> list[Any]:
                cur = pg.execute(sql.replace("?", "%s"), params)
                return cur.fetchall() if cur.description else []

            yield query


def rows_file(rows: int) -> Path:
    """The rows as JSONL, from ``_data.py``'s generator and seed (built once, reused)."""
    src = HERE / ".data" / f"rows-{rows}" / "rows.jsonl"
    if not src.exists():
        print(f"building the data set: {rows:,} rows …", flush=True)
        tmp = src.with_suffix(".tmp")
        write_jsonl(tmp, rows)
        tmp.rename(src)
    return src


def import_rows(side: Side, src: Path) -> None:
    """Import ``src`` as one run of a new user ``bench``; sets ``side.run`` and its seconds."""
    side.cli("users", "create", "bench")
    started = time.perf_counter()
    side.run = side.cli("runs", "import", str(src), "--user", "bench", "--worker", "bench-shop")
    side.import_seconds = time.perf_counter() - started


def stored_bytes(side: Side) -> dict[str, int]:
    """What the run's rows take on disk: the SQLite file (all of it: the rows are nearly all of
    it), or PostgreSQL's ``result_rows`` table, its TOAST and its index."""
    if side.database_url is None:
        db = side.data_dir / "runyard.db"
        wal = db.with_name(db.name + "-wal")
        return {"total": db.stat().st_size + (wal.stat().st_size if wal.exists() else 0)}
    with side.raw() as raw:
        ((table, index, total),) = raw(
            "SELECT pg_table_size('result_rows'), pg_indexes_size('result_rows'), "
            "pg_total_relation_size('result_rows')",
            (),
        )
    return {"table": table, "index": index, "total": total}


def prepare(rows: int) -> tuple[Path, Path, str, dict[str, Any]]:
    """The data set: a JSONL file and a data dir holding it as one run (built once, reused)."""
    base = HERE / ".data" / f"rows-{rows}"
    data_dir = base / "runyard"
    marker = base / "run.json"
    if marker.exists():
        info = orjson.loads(marker.read_bytes())
        return base / "rows.jsonl", data_dir, info["run"], info
    src = rows_file(rows)
    print(f"importing the data set: {rows:,} rows …", flush=True)
    side = Side("SQLite", data_dir)
    import_rows(side, src)
    # The import is the largest child so far, so the children's peak is the import's.
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    info = {
        "run": side.run,
        "import_seconds": side.import_seconds,
        "jsonl_bytes": src.stat().st_size,
        "import_rss_mb": peak,
    }
    marker.write_bytes(orjson.dumps(info))
    return src, data_dir, side.run, info


def _median_ms(fns: list[Callable[[], Any]], repeat: int) -> list[float]:
    """Each function's median time in ms. The calls go round robin, so a change in the
    machine's load while they run weighs on every one alike (the deep/first ratio compares
    them)."""
    for fn in fns:
        fn()  # warm the page cache for this range
    samples: list[list[float]] = [[] for _ in fns]
    for _ in range(repeat):
        for fn, times in zip(fns, samples, strict=True):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
    return [statistics.median(times) * 1000 for times in samples]


def page_times(side: Side, rows: int) -> dict[str, Any]:
    svc = Services(side.settings())
    uid = svc.accounts.user_id("bench")
    run = side.run
    run_id = svc.runs.find(uid, run)[0].id
    offsets = [0, rows // 2, max(rows - 100, 0)]
    out: dict[str, Any] = {"offsets": offsets}

    with side.raw() as raw:

        def runyard_page(off: int) -> bytes:
            page = svc.results.page(uid, run, Window.from_query(off, 100))
            return ",".join(page.rows).encode()

        def range_read(off: int) -> list[Any]:
            return raw(
                "SELECT data FROM result_rows WHERE run_id=? AND seq>=? AND seq<? ORDER BY seq",
                (run_id, off, off + 100),
            )

        def offset_read(off: int) -> list[Any]:
            return raw(
                "SELECT data FROM result_rows WHERE run_id=? ORDER BY seq LIMIT 100 OFFSET ?",
                (run_id, off),
            )

        def at_each(fn: Callable[[int], Any]) -> list[Callable[[], Any]]:
            return [functools.partial(fn, off) for off in offsets]

        out["runyard_ms"] = _median_ms(at_each(runyard_page), 300)
        out["range_ms"] = _median_ms(at_each(range_read), 300)
        out["offset_ms"] = _median_ms(at_each(offset_read), 5)
    out["deep_first"] = out["runyard_ms"][-1] / out["runyard_ms"][0]
    svc.close()
    return out


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_up(
    url: str, proc: subprocess.Popen[bytes] | None = None, log: Path | None = None
) -> None:
    """Wait for ``url`` to answer; when ``proc`` (writing to ``log``) exits or never answers,
    fail with the end of its log."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            if proc is not None and proc.poll() is not None:
                break
            time.sleep(0.1)
    tail = log.read_text(errors="replace")[-2000:] if log and log.exists() else ""
    raise RuntimeError(f"{url} did not come up" + (f"; its log ends:\n{tail}" if tail else ""))


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


def http_rates(sides: list[Side], rows: int, seconds: float) -> dict[str, dict[str, Any]]:
    """Pages/s of ``runyard serve`` and of the bare endpoint on each side, all servers up at
    once and measured in interleaved rounds; ``seconds`` is each server's total."""
    servers: list[subprocess.Popen[bytes]] = []
    urls: dict[tuple[str, str], str] = {}
    headers: dict[str, dict[str, str]] = {}
    try:
        for side in sides:
            key = side.cli("keys", "create", "--user", "bench")
            headers[side.name] = {"Authorization": f"Bearer {key}"}
            svc = Services(side.settings())
            run_id = svc.runs.find(svc.accounts.user_id("bench"), side.run)[0].id
            svc.close()
            p1, p2 = _port(), _port()
            # The servers' output goes to a log next to the data, shown if one fails to start.
            logs = [
                side.data_dir.parent / f"{what}-{side.name.lower()}.log"
                for what in ("serve", "bare")
            ]
            commands = [
                [*RUNYARD, "serve", "--port", str(p1)],
                [PY, str(HERE / "_bare.py"), side.bare_target(), str(run_id), str(p2)],
            ]
            for command, log in zip(commands, logs, strict=True):
                with open(log, "wb") as sink:
                    servers.append(
                        subprocess.Popen(
                            command, env=side.env, stdout=sink, stderr=subprocess.STDOUT
                        )
                    )
            urls[side.name, "runyard"] = (
                f"http://127.0.0.1:{p1}/api/v2/worker-runs/{side.run}/result"
            )
            urls[side.name, "bare"] = f"http://127.0.0.1:{p2}/page"
            _wait_up(f"http://127.0.0.1:{p1}/openapi.json", servers[-2], logs[0])
            _wait_up(urls[side.name, "bare"], servers[-1], logs[1])
        rates: dict[tuple[str, str], list[float]] = {target: [] for target in urls}
        clients = {side.name: httpx.Client(headers=headers[side.name]) for side in sides}
        try:
            for (name, _), url in urls.items():
                _pages_per_second(clients[name], url, rows, 1)
            # Short interleaved rounds, so drift in the machine's load hits every server alike;
            # each ratio is the median of the rounds' ratios.
            for _ in range(ROUNDS):
                for (name, what), url in urls.items():
                    rate = _pages_per_second(clients[name], url, rows, seconds / ROUNDS)
                    rates[name, what].append(rate)
        finally:
            for client in clients.values():
                client.close()
    finally:
        for proc in servers:
            proc.terminate()
            proc.wait(10)
    out: dict[str, dict[str, Any]] = {}
    for side in sides:
        ry, bare = rates[side.name, "runyard"], rates[side.name, "bare"]
        ratios = [r / b for r, b in zip(ry, bare, strict=True)]
        out[side.name] = {
            "runyard": statistics.median(ry),
            "bare": statistics.median(bare),
            "ratio": statistics.median(ratios),
            "ratio_range": (min(ratios), max(ratios)),
            "rounds": {"runyard": ry, "bare": bare},
        }
    return out


def _child_json(args: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    out = subprocess.run(args, check=True, capture_output=True, text=True, env=env).stdout
    return dict(orjson.loads(out.strip().splitlines()[-1]))


def forget_exports(side: Side) -> None:
    """Exports of a finished run are reused: drop earlier ones, so each export is a real write."""
    with side.raw() as raw:
        raw("DELETE FROM exports", ())
    shutil.rmtree(side.settings().files_dir, ignore_errors=True)


def export_one(side: Side, fmt: str) -> dict[str, Any]:
    forget_exports(side)
    return _child_json(
        [PY, str(HERE / "_export_one.py"), str(side.data_dir), "bench", side.run, fmt],
        env=side.env,
    )


def exports(src: Path, data_dir: Path, run: str, formats: list[str]) -> dict[str, Any]:
    side = Side("SQLite", data_dir, run)
    results: dict[str, Any] = {}
    for fmt in formats:
        print(f"  exporting {fmt} …", flush=True)
        results[fmt] = export_one(side, fmt)
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


def _spread(values: list[float], fmt: str = ".2f") -> str:
    return f"{min(values):{fmt}}–{max(values):{fmt}}"


def report_postgres(
    rows: int,
    jsonl_bytes: int,
    sides: list[Side],
    pages: dict[str, Any] | None,
    http: dict[str, Any] | None,
    exp: dict[str, Any] | None,
) -> str:
    """The ``--postgres`` part of POSTGRES.md: every figure on both backends, with ratios."""
    sq, pg = (side.name for side in sides)
    imp = {side.name: side.import_seconds for side in sides}
    lines = [
        "## Result pages, HTTP, import and exports (`benchmarks/results.py --postgres`)",
        "",
        f"Data: {rows:,} rows from `benchmarks/_data.py`, {jsonl_bytes / rows:.0f} bytes each "
        "on average as JSON (15 fields, 3 nested), imported in this run into a fresh SQLite "
        "data dir and a fresh PostgreSQL schema.",
        "",
        "### Import: `runyard runs import rows.jsonl` (one process, rows stored as received)",
        "",
        "| backend | seconds | rows/s |",
        "|---|---:|---:|",
        *(f"| {name} | {sec:.1f} | {rows / sec:,.0f} |" for name, sec in imp.items()),
        "",
        f"PostgreSQL / SQLite rows/s: **{imp[sq] / imp[pg]:.2f}×** (one import each: SQLite's "
        "executemany into a WAL file, PostgreSQL's `COPY` of 2,000-row batches, each batch one "
        "transaction with the run's count).",
        "",
    ]
    disk: dict[str, dict[str, int]] = {
        s.name: s.figures["disk"] for s in sides if "disk" in s.figures
    }
    if sq in disk and pg in disk:
        mb = 2**20
        lines += [
            f"On disk after the import: SQLite's whole database file {disk[sq]['total'] / mb:,.0f}"
            f" MB ({disk[sq]['total'] / rows:,.0f} bytes a row); PostgreSQL's `result_rows` "
            f"{disk[pg]['total'] / mb:,.0f} MB ({disk[pg]['total'] / rows:,.0f} bytes a row: "
            f"table and TOAST {disk[pg]['table'] / mb:,.0f} MB, primary-key index "
            f"{disk[pg]['index'] / mb:,.0f} MB), for {jsonl_bytes / mb:,.0f} MB of JSON text.",
            "",
        ]
    if pages:
        lines += [
            "### Result page (limit 100), median in-process time",
            "",
            "`Services.results.page` (the run's count and columns, then the rows by key range) "
            "next to the bare driver reading the same key range and a SQL `OFFSET` read.",
            "",
            "| offset | SQLite: Runyard page | SQLite: raw range | SQLite: SQL OFFSET "
            "| PostgreSQL: Runyard page | PostgreSQL: raw range | PostgreSQL: SQL OFFSET |",
            "|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for i, off in enumerate(pages[sq]["offsets"]):
            cells = []
            for name in (sq, pg):
                p = pages[name]
                cells += [
                    f"{p['runyard_ms'][i]:.3f} ms",
                    f"{p['range_ms'][i]:.3f} ms",
                    f"{p['offset_ms'][i]:.1f} ms",
                ]
            lines.append(f"| {off:,} | " + " | ".join(cells) + " |")
        first = pages[pg]["runyard_ms"][0] / pages[sq]["runyard_ms"][0]
        deep = pages[pg]["runyard_ms"][-1] / pages[sq]["runyard_ms"][-1]
        lines += [
            "",
            f"Deep/first ratio (offset {pages[sq]['offsets'][-1]:,} / offset 0): SQLite "
            f"**{pages[sq]['deep_first']:.2f}**, PostgreSQL **{pages[pg]['deep_first']:.2f}** "
            f"(target ≤ {TARGETS['deep_first']}). PostgreSQL / SQLite page time: "
            f"{first:.2f}× at offset 0, {deep:.2f}× at the deepest.",
            "",
        ]
    if http:
        ry = [p / s for p, s in zip(*(http[n]["rounds"]["runyard"] for n in (pg, sq)), strict=True)]
        bare = [p / s for p, s in zip(*(http[n]["rounds"]["bare"] for n in (pg, sq)), strict=True)]
        lines += [
            "### Pages per second over HTTP (limit 100, random offsets, one keep-alive client)",
            "",
            f"All four servers up at once, measured in {ROUNDS} interleaved rounds; medians, "
            "and PostgreSQL / SQLite as the median of the rounds' ratios (their range in "
            "brackets).",
            "",
            "| server | SQLite pages/s | PostgreSQL pages/s | PostgreSQL / SQLite |",
            "|---|---:|---:|---:|",
            f"| `runyard serve` (auth, envelope, request id) | {http[sq]['runyard']:,.0f} "
            f"| {http[pg]['runyard']:,.0f} | **{statistics.median(ry):.2f}×** ({_spread(ry)}) |",
            f"| bare Starlette endpoint, same database | {http[sq]['bare']:,.0f} "
            f"| {http[pg]['bare']:,.0f} | {statistics.median(bare):.2f}× ({_spread(bare)}) |",
            f"| Runyard / bare | {http[sq]['ratio']:.2f}× ({_spread([*http[sq]['ratio_range']])})"
            f" | {http[pg]['ratio']:.2f}× ({_spread([*http[pg]['ratio_range']])}) | |",
            "",
        ]
    if exp:
        rounds = len(next(iter(exp.values()))[sq])
        lines += [
            "### Exports (whole run, one process each)",
            "",
            f"Each format exported {rounds} times on each backend, alternating SQLite and "
            "PostgreSQL; median seconds, and PostgreSQL / SQLite as the median of the rounds' "
            "ratios (their range in brackets).",
            "",
            "| format | SQLite seconds | SQLite rows/s | PostgreSQL seconds | PostgreSQL rows/s "
            "| PostgreSQL / SQLite time | peak RSS MB (SQLite / PostgreSQL) |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for fmt, by_side in exp.items():
            sec = {n: statistics.median(r["seconds"] for r in by_side[n]) for n in (sq, pg)}
            rss = {n: max(r["peak_rss_mb"] for r in by_side[n]) for n in (sq, pg)}
            ratios = [
                p["seconds"] / s["seconds"] for p, s in zip(by_side[pg], by_side[sq], strict=True)
            ]
            lines.append(
                f"| {fmt} | {sec[sq]:.1f} | {rows / sec[sq]:,.0f} | {sec[pg]:.1f} "
                f"| {rows / sec[pg]:,.0f} | **{statistics.median(ratios):.2f}×** "
                f"({_spread(ratios)}) | {rss[sq]:.0f} / {rss[pg]:.0f} |"
            )
        lines += [
            "",
            "The writers are the same code on both backends; what differs is reading the rows "
            "out, 5,000 at a time by key range.",
            "",
        ]
    return "\n".join(lines)


def compare(args: argparse.Namespace, skip: set[str]) -> None:
    """``--postgres``: every figure on SQLite and on PostgreSQL in this one run."""
    _postgres.check(args.postgres)
    clock = _postgres.Clock()
    src = rows_file(args.rows)
    work = HERE / ".data" / f"rows-{args.rows}" / f"compare-{os.getpid()}"
    schema = _postgres.Schema(args.postgres, "bench_results").create()
    sq = Side("SQLite", work / "sqlite")
    pg = Side("PostgreSQL", work / "postgres", database_url=schema.url)
    sides = [sq, pg]
    try:
        for side in sides:
            print(f"importing {args.rows:,} rows into {side.name} …", flush=True)
            import_rows(side, src)
            side.figures["disk"] = stored_bytes(side)
        pages: dict[str, Any] | None = None
        http: dict[str, Any] | None = None
        exp: dict[str, dict[str, list[dict[str, Any]]]] | None = None
        if "pages" not in skip:
            print("result pages …", flush=True)
            pages = {side.name: page_times(side, args.rows) for side in sides}
        if "http" not in skip:
            print("pages per second over HTTP …", flush=True)
            http = http_rates(sides, args.rows, args.http_seconds)
        if "exports" not in skip:
            formats = [f for f in (args.formats or ",".join(POSTGRES_FORMATS)).split(",") if f]
            rounds = args.export_rounds or POSTGRES_EXPORT_ROUNDS
            exp = {fmt: {side.name: [] for side in sides} for fmt in formats}
            for i in range(rounds):
                for fmt in formats:
                    for side in sides if i % 2 == 0 else reversed(sides):
                        print(
                            f"  exporting {fmt} from {side.name} ({i + 1}/{rounds}) …", flush=True
                        )
                        exp[fmt][side.name].append(export_one(side, fmt))
    finally:
        schema.drop()
        shutil.rmtree(work, ignore_errors=True)
    body = report_postgres(args.rows, src.stat().st_size, sides, pages, http, exp)
    body += "\n" + clock.note() + "\n"
    output = args.output or _postgres.OUTPUT
    _postgres.write_section("results.py", _postgres.header(machine(), args.postgres), body, output)
    print()
    print(body)
    print(f"\nwritten to {output}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument(
        "--formats",
        default=None,
        help=f"comma-separated (default: all; with --postgres: {','.join(POSTGRES_FORMATS)})",
    )
    parser.add_argument(
        "--http-seconds", type=float, default=20.0, help="pages/s: each server's total seconds"
    )
    parser.add_argument("--skip", default="", help="comma-separated: pages,http,exports")
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help="default benchmarks/RESULTS.md; with --postgres benchmarks/POSTGRES.md",
    )
    _postgres.add_option(parser, "pages, HTTP pages/s, imports and exports")
    parser.add_argument(
        "--export-rounds",
        type=int,
        default=None,
        help=f"with --postgres: exports per format and backend ({POSTGRES_EXPORT_ROUNDS})",
    )
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    if args.postgres:
        compare(args, skip)
        return
    src, data_dir, run, info = prepare(args.rows)
    side = Side("SQLite", data_dir, run)
    pages = None if "pages" in skip else page_times(side, args.rows)
    http = None if "http" in skip else http_rates([side], args.rows, args.http_seconds)["SQLite"]
    exp = None
    if "exports" not in skip:
        formats = args.formats or ",".join(ALL_FORMATS)
        exp = exports(src, data_dir, run, [f for f in formats.split(",") if f])
    text = report(args.rows, info, pages, http, exp)
    output = args.output or HERE / "RESULTS.md"
    print()
    print(text)
    output.write_text(text + "\n")
    print(f"\nwritten to {output}")


if __name__ == "__main__":
    main()
