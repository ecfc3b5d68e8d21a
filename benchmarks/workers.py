"""Worker runs: ingest rate and start latency, each next to a baseline measured in the same run.

    make bench                                    # results.py, then this at 1,000,000 rows
    make bench WORKERS_BENCH_ARGS="--rows 100000 --skip scrapyd"
    .venv/bin/python benchmarks/workers.py --skip ingest     # start latency only

Prints, and writes to benchmarks/WORKERS.md:
- ingest: a worker pushing N rows through ``sdk.push_many``, executed by a real Runyard (its
  executor, run process and row store), from ``launcher.start`` to ``succeeded``; next to raw
  batched ``sqlite3`` inserts of the same row texts into a fresh file with Runyard's pragmas.
  When the ratio misses its target, where the parent's time goes (the worker alone, the parent
  alone, and a profile of the parent);
- start latency: ``POST /workers/{id}/runs`` on ``runyard serve`` until the first row is readable
  through ``/result``; next to Scrapyd (from PyPI, in a private venv under ``.data``) from the
  ``schedule.json`` POST until the first item is on disk.

With ``--postgres [URL]`` (default postgresql://127.0.0.1:5432/test; ``make bench-postgres``)
only the ingest is measured, on SQLite and on PostgreSQL alternately in one run (each Runyard
and each baseline in a fresh schema, dropped after): the PostgreSQL baseline is raw psycopg
``COPY`` of the same texts, 2,000 rows a commit. Written to benchmarks/POSTGRES.md next to
results.py's part.
"""

from __future__ import annotations

import argparse
import cProfile
import itertools
import os
import pstats
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _postgres
from _postgres import code_version
from results import PY, RUNYARD, _cli, _port, _wait_up, machine, rows_file
from runyard.execution.process import RunContext, RunProcess
from runyard.runtime import BOOTSTRAP
from runyard.services import Services
from runyard.services.packages import load_package
from runyard.services.runs import FINISHED
from runyard.settings import Settings
from runyard.storage import Run
from runyard.storage.rowstore import PostgresRowStore

HERE = Path(__file__).resolve().parent
WORK = HERE / ".data" / "workers"
BATCH = 2000
#: Rows of the breakdown runs: enough to reach a steady state, small enough to profile.
BREAKDOWN_ROWS = 200_000
LATENCY_RUNS = 10
POLL = 0.01
TARGETS = {"ingest_ratio": 0.7}
INGEST_ROUNDS = 2
PATHS = {
    "runyard": "Runyard: worker `sdk.push_many` → channel → run process → SQLite",
    "raw": f"raw `sqlite3` executemany, {BATCH:,} rows a commit, WAL + synchronous=NORMAL "
    "(baseline)",
    "runyard_pg": "Runyard: worker `sdk.push_many` → channel → run process → PostgreSQL `COPY`",
    "raw_pg": f"raw psycopg `COPY` into a `json` column, {BATCH:,} rows a commit (baseline)",
}
#: Scrapyd's side, installed into its own venv by this script. setuptools is pinned too:
#: Scrapyd's egg runner imports pkg_resources and the egg is built with bdist_egg.
SCRAPYD_VENV = HERE / ".data" / "scrapyd-venv"
SCRAPYD_PINS = ("scrapyd==1.6.0", "scrapy==2.19.0", "setuptools==80.9.0")
#: Scrapyd's shipped ``poll_interval``, and a tuned one that takes its timer out of the figure.
SCRAPYD_INTERVALS = (5.0, 0.1)

INPUT_SCHEMA = {
    "description": "Benchmark worker.",
    "properties": [
        {
            "title": "Rows",
            "name": "rows",
            "type": "integer",
            "editor": "number",
            "description": "Push only the first this many rows (empty: all).",
            "required": False,
        }
    ],
}
OUTPUT_SCHEMA = [{"name": "id", "type": "integer", "description": "Row number"}]

# The worker programs. ``sdk`` pushes through the SDK, as a worker would; ``pipe`` writes the
# same rows as ready-made channel lines, so the run measures Runyard's side almost alone.
SDK_MAIN = '''"""Benchmark worker: push the rows of a JSONL file through the Runyard SDK."""

import itertools

# orjson, not json, so that making the dicts weighs little next to what is measured: pushing
# them. It is there because a worker without requirements.txt runs on the server's interpreter.
import orjson

from runyard import sdk

with open({src!r}, "rb") as f:
    sdk.push_many(map(orjson.loads, itertools.islice(f, sdk.input().get("rows"))))
'''
PIPE_MAIN = '''"""Benchmark worker: write the rows of a JSONL file to the channel as they are."""

import itertools
import json
import os

fd = int(os.environ["RUNYARD_CHANNEL_FD"])
with open(os.environ["RUNYARD_INPUT"], encoding="utf-8") as f:
    limit = json.load(f).get("rows")
with open({src!r}, "rb") as f, open(fd, "wb", buffering=1 << 16) as out:
    for line in itertools.islice(f, limit):
        out.write(b"R " + line)
'''
ONE_ROW_MAIN = '''"""Benchmark worker: push one row."""

from runyard import sdk

sdk.push({"n": 1})
'''

SPIDER = """import scrapy


class One(scrapy.Spider):
    name = "one"

    async def start(self):
        yield {"n": 1}
"""
SETUP_PY = """from setuptools import find_packages, setup

setup(
    name="benchproj",
    version="1.0",
    packages=find_packages(),
    entry_points={"scrapy": ["settings = benchproj.settings"]},
)
"""


# --- the data and the packages ------------------------------------------------------------------


def package(name: str, main: str) -> Path:
    root = WORK / "packages" / name
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    (root / "main.py").write_text(main)
    (root / "input_schema.json").write_bytes(orjson.dumps(INPUT_SCHEMA))
    (root / "output_schema.json").write_bytes(orjson.dumps(OUTPUT_SCHEMA))
    return root


def fresh(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    return path


# --- ingest ---------------------------------------------------------------------------------------


def load_texts(src: Path, rows: int) -> list[str]:
    # Read before any clock starts: the baseline is SQLite taking rows, with nothing else in
    # its loop (reading and decoding the file would add about 3 µs a row).
    with open(src, encoding="utf-8") as f:
        texts = [line.rstrip("\n") for line in itertools.islice(f, rows)]
    assert len(texts) == rows, f"{src} holds {len(texts)} rows, not {rows}"
    return texts


def raw_insert(texts: list[str]) -> float:
    """Seconds to insert ``texts`` as one run's rows with bare sqlite3, in a fresh file."""
    rows = len(texts)
    db = fresh(WORK / "raw") / "raw.db"
    db.parent.mkdir(parents=True)
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(
        "CREATE TABLE result_rows (run_id INTEGER NOT NULL, seq INTEGER NOT NULL, "
        "data TEXT NOT NULL, PRIMARY KEY (run_id, seq))"
    )
    conn.commit()
    started = time.perf_counter()
    for first in range(0, rows, BATCH):
        conn.executemany(
            "INSERT INTO result_rows (run_id, seq, data) VALUES (1, ?, ?)",
            [(first + i, text) for i, text in enumerate(texts[first : first + BATCH])],
        )
        conn.commit()
    seconds = time.perf_counter() - started
    conn.close()
    shutil.rmtree(db.parent)
    return seconds


def raw_copy(texts: list[str], base_url: str) -> float:
    """Seconds to ``COPY`` ``texts`` as one run's rows with bare psycopg, in a fresh schema."""
    rows = len(texts)
    with _postgres.Schema(base_url, "bench_raw") as schema:
        conn = _postgres.connect(schema.url)
        conn.autocommit = False
        conn.execute(
            "CREATE TABLE result_rows (run_id INTEGER NOT NULL, seq INTEGER NOT NULL, "
            "data json NOT NULL, PRIMARY KEY (run_id, seq))"
        )
        conn.commit()
        started = time.perf_counter()
        for first in range(0, rows, BATCH):
            with conn.cursor() as cur, cur.copy(PostgresRowStore._COPY) as copy:
                for i, text in enumerate(texts[first : first + BATCH], first):
                    copy.write_row((1, i, text))
            conn.commit()
        seconds = time.perf_counter() - started
        conn.close()
    return seconds


class Runyard:
    """An embedded Runyard in a fresh data dir: one user, the benchmark's workers registered.

    With ``postgres`` (a server URL) its database is a fresh schema there, dropped on close.
    """

    def __init__(
        self,
        name: str,
        workers: dict[str, str],
        *,
        start: bool = True,
        postgres: str | None = None,
    ) -> None:
        self.data_dir = fresh(WORK / name)
        self.schema = _postgres.Schema(postgres, "bench_ingest").create() if postgres else None
        self.svc = Services(
            Settings(
                data_dir=self.data_dir,
                database_url=self.schema and self.schema.url,
                executor="local",
            )
        )
        self.uid = self.svc.accounts.create_user("bench")
        for slug, main in workers.items():
            self.svc.workers.register(self.uid, load_package(package(slug, main)), slug=slug)
        if start:
            self.svc.start()

    def run(self, slug: str, rows: int | None = None) -> tuple[int, float]:
        """Start a run and wait for it to succeed: ``(run id, seconds)``."""
        custom = {} if rows is None else {"rows": rows}
        started = time.perf_counter()
        run_id, _ = self.svc.launcher.start(
            self.uid, slug, input={"parameters": {"custom": custom}} if custom else None
        )
        while (status := self.svc.runs.status(run_id)) not in FINISHED:
            # Coarser than the latency polls: this thread shares the GIL with the run's pump.
            time.sleep(0.02)
        seconds = time.perf_counter() - started
        run = self.get(run_id)
        assert status == "succeeded", f"run {run.slug} {status}: {run.err_msg}"
        return run_id, seconds

    def get(self, run_id: int) -> Run:
        with self.svc.db.session() as s:
            run = s.get(Run, run_id)
            assert run is not None
            return run

    def close(self) -> None:
        self.svc.close()
        if self.schema:
            self.schema.drop()
        shutil.rmtree(self.data_dir, ignore_errors=True)


def check_rows(ry: Runyard, run_id: int, src: Path, rows: int) -> None:
    """The run holds every row, stored as the very text the baseline inserts."""
    assert ry.get(run_id).results == rows, f"{ry.get(run_id).results} rows, not {rows}"
    with open(src, encoding="utf-8") as f:
        wanted = {
            i: line.rstrip("\n")
            for i, line in enumerate(itertools.islice(f, rows))
            if i in (0, rows // 2, rows - 1)
        }
    for seq, text in wanted.items():
        assert ry.svc.rows.read(run_id, seq, seq + 1) == [text], f"row {seq} differs"


def ingest(src: Path, rows: int, rounds: int) -> dict[str, Any]:
    # Runyard's runs alternate with the baseline's, and each is compared with the mean of the
    # baseline runs either side of it, so a change in the machine's other load during the
    # run weighs on both sides alike.
    texts = load_texts(src, rows)
    order: list[tuple[str, float]] = []
    print(f"ingest: raw sqlite3, {rows:,} rows …", flush=True)
    order.append(("raw", raw_insert(texts)))
    for _ in range(rounds):
        print(f"ingest: Runyard, {rows:,} rows …", flush=True)
        # A fresh data dir each time, as the baseline gets a fresh file.
        ry = Runyard("ingest", {"bench-ingest": SDK_MAIN.format(src=str(src))})
        try:
            run_id, seconds = ry.run("bench-ingest")
            check_rows(ry, run_id, src, rows)
        finally:
            ry.close()
        order.append(("runyard", seconds))
        print(f"ingest: raw sqlite3, {rows:,} rows …", flush=True)
        order.append(("raw", raw_insert(texts)))
    ratios = [
        statistics.fmean((order[i - 1][1], order[i + 1][1])) / order[i][1]
        for i in range(1, len(order), 2)
    ]
    return {"rows": rows, "order": order, "ratios": ratios, "ratio": statistics.median(ratios)}


def ingest_compare(src: Path, rows: int, rounds: int, base_url: str) -> dict[str, Any]:
    """Runyard on SQLite and on PostgreSQL, each next to its own raw baseline, alternating.

    The order is ``raw, raw_pg`` then per round ``runyard, runyard_pg, raw, raw_pg``: each
    Runyard run is compared with the mean of its backend's baseline runs either side of it,
    and the two Runyard runs of a round with each other.
    """
    texts = load_texts(src, rows)
    order: list[tuple[str, float]] = []

    def raw(kind: str) -> None:
        print(f"ingest: {PATHS[kind].split(',')[0]}, {rows:,} rows …", flush=True)
        seconds = raw_insert(texts) if kind == "raw" else raw_copy(texts, base_url)
        order.append((kind, seconds))

    def runyard(kind: str) -> None:
        print(f"ingest: {PATHS[kind].split(' → ')[-1]} Runyard, {rows:,} rows …", flush=True)
        ry = Runyard(
            "ingest",
            {"bench-ingest": SDK_MAIN.format(src=str(src))},
            postgres=base_url if kind == "runyard_pg" else None,
        )
        try:
            run_id, seconds = ry.run("bench-ingest")
            check_rows(ry, run_id, src, rows)
        finally:
            ry.close()
        order.append((kind, seconds))

    raw("raw")
    raw("raw_pg")
    for _ in range(rounds):
        runyard("runyard")
        runyard("runyard_pg")
        raw("raw")
        raw("raw_pg")
    out: dict[str, Any] = {"rows": rows, "order": order}
    for kind, base in (("runyard", "raw"), ("runyard_pg", "raw_pg")):
        runs = [i for i, (k, _) in enumerate(order) if k == kind]
        bases = [sec for k, sec in order if k == base]
        mine = [order[i][1] for i in runs]
        # Baseline runs r and r+1 stand either side of Runyard run r.
        ratios = [statistics.fmean((bases[r], bases[r + 1])) / sec for r, sec in enumerate(mine)]
        out[kind] = {"seconds": mine, "ratios": ratios, "base_seconds": bases}
    out["pg_vs_sqlite"] = [
        s / p for s, p in zip(out["runyard"]["seconds"], out["runyard_pg"]["seconds"], strict=True)
    ]
    out["raw_pg_vs_sqlite"] = [
        s / p
        for s, p in zip(
            out["runyard"]["base_seconds"], out["runyard_pg"]["base_seconds"], strict=True
        )
    ]
    return out


def report_postgres(ing: dict[str, Any]) -> str:
    rows = ing["rows"]
    med = {
        kind: rows / statistics.median(ing[kind]["seconds"]) for kind in ("runyard", "runyard_pg")
    }
    base = {
        kind: rows / statistics.median(ing[kind]["base_seconds"])
        for kind in ("runyard", "runyard_pg")
    }

    def spread(values: list[float]) -> str:
        return ", ".join(f"{v:.2f}" for v in values)

    lines = [
        "## Ingest (`benchmarks/workers.py --postgres`)",
        "",
        f"A worker pushing {rows:,} rows (`benchmarks/_data.py`, about 755 bytes each) through "
        "`sdk.push_many`, executed by a real embedded Runyard (local executor, run process, row "
        "store), from `launcher.start` to the run's `succeeded`; each Runyard in a fresh data "
        "dir, and on PostgreSQL a fresh schema. Each baseline takes the very same texts, read "
        "into memory before its clock starts, into a fresh table with the same primary key.",
        "",
        "| # | path | seconds | rows/s |",
        "|---:|---|---:|---:|",
        *(
            f"| {i} | {PATHS[what]} | {sec:.1f} | {rows / sec:,.0f} |"
            for i, (what, sec) in enumerate(ing["order"], 1)
        ),
        "",
        "| backend | Runyard rows/s (median) | raw baseline rows/s (median) | Runyard / raw |",
        "|---|---:|---:|---:|",
        f"| SQLite | {med['runyard']:,.0f} | {base['runyard']:,.0f} "
        f"| {statistics.median(ing['runyard']['ratios']):.2f}× "
        f"({spread(ing['runyard']['ratios'])}) |",
        f"| PostgreSQL | {med['runyard_pg']:,.0f} | {base['runyard_pg']:,.0f} "
        f"| {statistics.median(ing['runyard_pg']['ratios']):.2f}× "
        f"({spread(ing['runyard_pg']['ratios'])}) |",
        "",
        f"PostgreSQL / SQLite ingest rows/s: **{statistics.median(ing['pg_vs_sqlite']):.2f}×** "
        f"through Runyard (per round: {spread(ing['pg_vs_sqlite'])}), "
        f"{statistics.median(ing['raw_pg_vs_sqlite']):.2f}× for the raw baselines "
        f"({spread(ing['raw_pg_vs_sqlite'])}). Each Runyard run is compared with the mean of "
        "its backend's baseline runs either side of it. Both databases commit every batch "
        "durably as configured (SQLite WAL with synchronous=NORMAL; PostgreSQL fsync and "
        "synchronous_commit on), and PostgreSQL's server process takes CPU on the same two "
        "cores as the worker and the run process.",
        "",
    ]
    return "\n".join(lines)


def worker_alone(src: Path, rows: int) -> float:
    """Seconds for the SDK worker to push ``rows`` rows into /dev/null (no Runyard behind it)."""
    pkg = package("bench-alone", SDK_MAIN.format(src=str(src)))
    (pkg / "input.json").write_bytes(orjson.dumps({"rows": rows}))
    with open(os.devnull, "wb") as sink:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "RUNYARD_CHANNEL_FD": str(sink.fileno()),
            "RUNYARD_INPUT": str(pkg / "input.json"),
        }
        started = time.perf_counter()
        subprocess.run(
            [PY, str(BOOTSTRAP), "main.py"], cwd=pkg, env=env, pass_fds=(sink.fileno(),), check=True
        )
        return time.perf_counter() - started


def profile_parent(src: Path, rows: int) -> tuple[float, pstats.Stats]:
    """Execute a ``pipe`` run in this thread under cProfile: the parent's side only."""
    ry = Runyard("profile", {"bench-pipe": PIPE_MAIN.format(src=str(src))}, start=False)
    try:
        run_id, _ = ry.svc.launcher.start(
            ry.uid, "bench-pipe", input={"parameters": {"custom": {"rows": rows}}}
        )
        assert ry.svc.runs.claim_next("bench-profile") == run_id
        # The very context the server's executor runs with (it is not started here).
        ctx: RunContext = ry.svc.executor.ctx  # type: ignore[attr-defined]
        proc = RunProcess(ctx, run_id)
        profiler = cProfile.Profile()
        started = time.perf_counter()
        profiler.runcall(proc.execute)
        seconds = time.perf_counter() - started
        assert ry.get(run_id).status == "succeeded", ry.get(run_id).err_msg
        check_rows(ry, run_id, src, rows)
    finally:
        ry.close()
    return seconds, pstats.Stats(profiler)


class Profile:
    """Lookups in a cProfile result by ``file.py:function`` (or a built-in's own label)."""

    def __init__(self, stats: pstats.Stats) -> None:
        raw: dict[tuple[str, int, str], Any] = stats.stats  # type: ignore[attr-defined]
        self.by_label = {self.label(key): value for key, value in raw.items()}
        self.total: float = stats.total_tt  # type: ignore[attr-defined]

    @staticmethod
    def label(key: tuple[str, int, str]) -> str:
        file, line, func = key
        return f"{Path(file).name}:{func}" if line else func

    def own(self, label: str) -> float:
        return float(self.by_label[label][2]) if label in self.by_label else 0.0

    def cumulative(self, label: str, caller: str | None = None) -> float:
        """Time in ``label`` and below; only its calls from ``caller`` when given."""
        if label not in self.by_label:
            return 0.0
        if caller is None:
            return float(self.by_label[label][3])
        callers = self.by_label[label][4]
        return sum(float(v[3]) for k, v in callers.items() if self.label(k) == caller)

    def top(self, n: int) -> list[tuple[float, int, str]]:
        rows = [(float(v[2]), int(v[1]), label) for label, v in self.by_label.items()]
        return sorted(rows, reverse=True)[:n]


def parent_parts(prof: Profile) -> dict[str, float]:
    """The parent's profiled time cut into parts that add up to the whole."""
    flush = prof.cumulative("ingest.py:flush")
    inserts = prof.own("<method 'executemany' of 'sqlite3.Cursor' objects>")
    commit = prof.own("<method 'commit' of 'sqlite3.Connection' objects>")
    pump = prof.cumulative("process.py:_pump")
    add = prof.cumulative("ingest.py:add")
    # Each row is decoded twice over: its JSON to a dict, its bytes to the stored str.
    decode = prof.own("<orjson.loads>") + prof.own("<method 'decode' of 'bytes' objects>")
    # ``flush`` runs from three places: ``add`` (a full batch), the pump's 0.2 s timer, and
    # once after the pump; each is taken out of its caller so no second is counted twice.
    from_add = prof.cumulative("ingest.py:flush", "ingest.py:add")
    from_pump = prof.cumulative("ingest.py:flush", "process.py:_pump")
    from_execute = flush - from_add - from_pump
    return {
        "sqlite3 `executemany` (the inserts themselves)": inserts,
        "sqlite3 `commit`": commit,
        "around them in `RowIngestor.flush` (parameters, SQLAlchemy, begin, the run's count)": (
            flush - inserts - commit
        ),
        "row decode (`orjson.loads`, `bytes.decode`)": decode,
        "queueing (`RowIngestor.add`)": add - from_add,
        "channel read, line split, row checks, dispatch, log flush (rest of `_pump`)": (
            pump - decode - add - from_pump
        ),
        "setup and teardown (package copy, spawn, wait, finish)": (
            prof.total - pump - from_execute
        ),
    }


def where_time_goes(src: Path, rows: int) -> dict[str, Any]:
    print(f"breakdown at {rows:,} rows: raw, full run, parent alone, worker alone …", flush=True)
    raw = raw_insert(load_texts(src, rows))
    ry = Runyard(
        "breakdown",
        {
            "bench-ingest": SDK_MAIN.format(src=str(src)),
            "bench-pipe": PIPE_MAIN.format(src=str(src)),
        },
    )
    try:
        _, full = ry.run("bench-ingest", rows)
        run_id, pipe = ry.run("bench-pipe", rows)
        check_rows(ry, run_id, src, rows)
    finally:
        ry.close()
    alone = worker_alone(src, rows)
    print("breakdown: profiling the parent …", flush=True)
    profiled, stats = profile_parent(src, rows)
    prof = Profile(stats)
    return {
        "rows": rows,
        "raw_s": raw,
        "full_s": full,
        "pipe_s": pipe,
        "alone_s": alone,
        "profiled_s": profiled,
        "profile_total": prof.total,
        "parts": parent_parts(prof),
        "top": prof.top(10),
    }


# --- start latency --------------------------------------------------------------------------------


def _timed_until(check: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError("timed out waiting for the first row")
        time.sleep(POLL)


def runyard_latency(runs: int) -> list[float]:
    data_dir = fresh(WORK / "latency")
    pkg = package("bench-one", ONE_ROW_MAIN)
    _cli("users", "create", "bench", "--data-dir", str(data_dir))
    key = _cli("keys", "create", "--user", "bench", "--data-dir", str(data_dir))
    _cli("workers", "add", str(pkg), "--user", "bench", "--data-dir", str(data_dir))
    port = _port()
    server = subprocess.Popen(
        [*RUNYARD, "serve", "--port", str(port), "--data-dir", str(data_dir)],
        # Polled every 10 ms: the rate limiter must never throttle it.
        env={**os.environ, "RUNYARD_RATE_LIMIT": "1000000"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}/api/v2"
    samples = []
    try:
        _wait_up(f"http://127.0.0.1:{port}/openapi.json")
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}) as client:
            for i in range(runs + 1):  # the first run warms the server up and is not counted
                started = time.perf_counter()
                resp = client.post("/workers/bench-one/runs", json={})
                assert resp.status_code == 200, resp.text
                run = resp.json()["data"]["run_slug"]

                def has_row(run: str = run) -> bool:
                    page = client.get(f"/worker-runs/{run}/result")
                    return bool(page.json()["data"]["list"])

                _timed_until(has_row)
                if i:
                    samples.append(time.perf_counter() - started)

                def finished(run: str = run) -> bool:
                    detail = client.get(f"/worker-runs/{run}").json()["data"]
                    return detail["status"] in FINISHED

                # One run at a time, as on the Scrapyd side.
                _timed_until(finished)
    finally:
        server.terminate()
        server.wait(10)
        shutil.rmtree(data_dir, ignore_errors=True)
    return samples


def scrapyd_venv() -> Path:
    """Scrapyd and Scrapy at their pinned versions, installed once and reused."""
    marker = SCRAPYD_VENV / "pins.txt"
    pins = "\n".join(SCRAPYD_PINS)
    if marker.exists() and marker.read_text() == pins:
        return SCRAPYD_VENV / "bin"
    print(f"installing {', '.join(SCRAPYD_PINS)} into {SCRAPYD_VENV} …", flush=True)
    shutil.rmtree(SCRAPYD_VENV, ignore_errors=True)
    subprocess.run([PY, "-m", "venv", str(SCRAPYD_VENV)], check=True)
    pip = subprocess.run(
        [SCRAPYD_VENV / "bin" / "python", "-m", "pip", "install", "--quiet", *SCRAPYD_PINS],
        capture_output=True,
        text=True,
    )
    # Shown only on failure: pip can warn at length about a machine's index settings.
    if pip.returncode:
        sys.exit(f"installing Scrapyd failed:\n{pip.stderr}")
    marker.write_text(pins)
    return SCRAPYD_VENV / "bin"


def scrapy_egg(bin_dir: Path) -> bytes:
    """The trivial project as the egg ``scrapyd-deploy`` would upload."""
    root = fresh(WORK / "scrapy-project")
    (root / "benchproj" / "spiders").mkdir(parents=True)
    (root / "setup.py").write_text(SETUP_PY)
    (root / "scrapy.cfg").write_text("[settings]\ndefault = benchproj.settings\n")
    (root / "benchproj" / "__init__.py").write_text("")
    (root / "benchproj" / "settings.py").write_text(
        'BOT_NAME = "benchproj"\nSPIDER_MODULES = ["benchproj.spiders"]\n'
    )
    (root / "benchproj" / "spiders" / "__init__.py").write_text("")
    (root / "benchproj" / "spiders" / "one.py").write_text(SPIDER)
    subprocess.run(
        [bin_dir / "python", "setup.py", "--quiet", "bdist_egg", "--dist-dir", "dist"],
        cwd=root,
        check=True,
        capture_output=True,
    )
    (egg,) = (root / "dist").glob("*.egg")
    return egg.read_bytes()


def scrapyd_latency(bin_dir: Path, egg: bytes, interval: float, runs: int) -> list[float]:
    home = fresh(WORK / "scrapyd")
    home.mkdir(parents=True)
    port = _port()
    (home / "scrapyd.conf").write_text(
        "[scrapyd]\n"
        f"bind_address = 127.0.0.1\nhttp_port = {port}\npoll_interval = {interval}\n"
        "eggs_dir = eggs\ndbs_dir = dbs\nlogs_dir = logs\nitems_dir = items\n"
        f"jobs_to_keep = {runs + 5}\n"
    )
    server = subprocess.Popen(
        [bin_dir / "scrapyd"], cwd=home, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{port}"
    items = home / "items" / "benchproj" / "one"
    # A schedule lands anywhere in the poller's period: a pause drawn at random before each
    # one, so the samples do not all hit the same phase of its timer.
    rng = random.Random(1)
    samples = []
    try:
        _wait_up(f"{base}/daemonstatus.json")
        with httpx.Client(base_url=base, timeout=30) as client:
            resp = client.post(
                "/addversion.json",
                data={"project": "benchproj", "version": "1"},
                files={"egg": ("benchproj.egg", egg)},
            )
            assert resp.json()["status"] == "ok", resp.text
            for i in range(runs + 1):  # the first run fills Scrapyd's spider list cache
                time.sleep(rng.uniform(0, interval))
                started = time.perf_counter()
                resp = client.post("/schedule.json", data={"project": "benchproj", "spider": "one"})
                assert resp.json()["status"] == "ok", resp.text
                job = resp.json()["jobid"]
                path = items / f"{job}.jl"

                def has_item(path: Path = path) -> bool:
                    return path.exists() and b"\n" in path.read_bytes()

                _timed_until(has_item)
                if i:
                    samples.append(time.perf_counter() - started)

                def finished(job: str = job) -> bool:
                    jobs = client.get("/listjobs.json", params={"project": "benchproj"}).json()
                    return any(j["id"] == job for j in jobs["finished"])

                _timed_until(finished)
    finally:
        server.terminate()
        server.wait(10)
        shutil.rmtree(home, ignore_errors=True)
    return samples


def latency(skip: set[str], runs: int) -> dict[str, Any]:
    print(f"start latency: runyard serve, {runs} runs …", flush=True)
    out: dict[str, Any] = {"runyard": runyard_latency(runs), "scrapyd": {}}
    if "scrapyd" not in skip:
        bin_dir = scrapyd_venv()
        egg = scrapy_egg(bin_dir)
        for interval in SCRAPYD_INTERVALS:
            print(f"start latency: Scrapyd, poll_interval {interval} s, {runs} runs …", flush=True)
            out["scrapyd"][interval] = scrapyd_latency(bin_dir, egg, interval, runs)
    return out


# --- the report -------------------------------------------------------------------------------


def report(rows: int, ing: dict[str, Any] | None, brk: dict[str, Any] | None, lat: Any) -> str:
    lines = [
        "# Worker run benchmarks",
        "",
        f"Machine: {machine()}.",
        f"Code: {code_version()}.",
        f"Data: {rows:,} rows from `benchmarks/_data.py` (the rows of RESULTS.md), about 755 "
        "bytes each as compact JSON, 15 fields, 3 of them nested (two lists, one object)."
        if ing
        else "Data: none (ingest skipped); the latency runs push one row each.",
        "Command: `make bench` (`python benchmarks/workers.py`). Ratios compare figures measured "
        "in the same run; absolute times depend on the machine's other load.",
        "",
    ]
    if ing:
        ratio = ing["ratio"]
        met = ratio >= TARGETS["ingest_ratio"]
        lines += [
            "## Ingest: a worker pushing rows, until the run has succeeded",
            "",
            "| # | path | seconds | rows/s |",
            "|---:|---|---:|---:|",
            *(
                f"| {i} | {PATHS[what]} | {sec:.1f} | {ing['rows'] / sec:,.0f} |"
                for i, (what, sec) in enumerate(ing["order"], 1)
            ),
            "",
            f"Runyard / raw rows/s: **{ratio:.2f}×** (target ≥ {TARGETS['ingest_ratio']}: "
            f"{'meets target' if met else 'MISSES target'}), the median of "
            f"{len(ing['ratios'])} Runyard runs, each against the mean of the baseline runs "
            f"either side of it ({', '.join(f'{r:.2f}' for r in ing['ratios'])}).",
            "Runyard's time runs from `launcher.start` to the run's `succeeded`: claiming the "
            "run, copying the package, starting the worker's interpreter, the worker reading "
            "the JSONL file and handing each row to `sdk.push_many` as a dict, the SDK encoding "
            "it, the parent's checks, and the commits (each batch also updates the run's count, "
            "and `result_rows` has a foreign key). The baseline inserts the very same texts "
            "(checked on the stored rows), read into memory before its clock starts, into a "
            "table with the same primary key: nothing else.",
            "",
        ]
    if brk:
        n = brk["rows"]
        lines += [
            f"### Where the time goes ({n:,} rows)",
            "",
            "| what | seconds | rows/s |",
            "|---|---:|---:|",
            f"| full run, as above | {brk['full_s']:.2f} | {n / brk['full_s']:,.0f} |",
            f"| the worker alone: `sdk.push_many` into /dev/null | {brk['alone_s']:.2f} "
            f"| {n / brk['alone_s']:,.0f} |",
            f"| the parent alone: a worker writing ready-made `R` lines, same run path "
            f"| {brk['pipe_s']:.2f} | {n / brk['pipe_s']:,.0f} |",
            f"| raw `sqlite3` (baseline) | {brk['raw_s']:.2f} | {n / brk['raw_s']:,.0f} |",
            "",
            "The worker and the parent are two processes on the machine's two cores, each busy "
            "for most of a row's time, so a full run is slower than either side alone: it is "
            "bounded by the slower side and by the two sides' CPU time added up, halved. The "
            "parent's own time, from cProfile of the ready-made-lines run executed in this "
            f"process ({brk['profiled_s']:.2f} s under the profiler, which inflates per-call "
            f"costs; shares are of the profiled {brk['profile_total']:.2f} s):",
            "",
            "| part of the parent | seconds | share |",
            "|---|---:|---:|",
        ]
        for what, sec in brk["parts"].items():
            lines.append(f"| {what} | {sec:.2f} | {sec / brk['profile_total']:.0%} |")
        lines += [
            "",
            "Heaviest functions by own time:",
            "",
            "| function | calls | own seconds |",
            "|---|---:|---:|",
        ]
        for tt, nc, label in brk["top"]:
            lines.append(f"| `{label}` | {nc:,} | {tt:.2f} |")
        lines.append("")
    if lat:
        ry = statistics.median(lat["runyard"])
        lines += [
            "## Start latency: from the start request to the first row readable",
            "",
            f"Median of {len(lat['runyard'])} runs each, one at a time, after one warm-up run; "
            f"polled every {POLL * 1000:.0f} ms.",
            "",
            "| system | median | min | max |",
            "|---|---:|---:|---:|",
            f"| Runyard: `POST /workers/{{id}}/runs` → row in `GET /worker-runs/{{run}}/result` "
            f"| {ry * 1000:.0f} ms | {min(lat['runyard']) * 1000:.0f} ms "
            f"| {max(lat['runyard']) * 1000:.0f} ms |",
        ]
        for interval, samples in lat["scrapyd"].items():
            shipped = " (as shipped)" if interval == SCRAPYD_INTERVALS[0] else ""
            lines.append(
                f"| Scrapyd 1.6.0 + Scrapy 2.19.0, poll_interval {interval} s{shipped}: "
                f"`schedule.json` → item in the FEEDS file "
                f"| {statistics.median(samples) * 1000:.0f} ms | {min(samples) * 1000:.0f} ms "
                f"| {max(samples) * 1000:.0f} ms |"
            )
        lines.append("")
        for interval, samples in lat["scrapyd"].items():
            lines.append(
                f"Runyard / Scrapyd (poll_interval {interval} s) median latency: "
                f"**{ry / statistics.median(samples):.2f}×** "
                f"({statistics.median(samples) / ry:.1f} times faster)."
            )
        if lat["scrapyd"]:
            lines += [
                "",
                "Both sides run a one-row job in a new process: Runyard spawns the worker's "
                "interpreter on a private copy of the package, Scrapyd spawns `scrapy crawl` "
                "on the deployed egg (a spider yielding one item from `start()`, no request). "
                "Scrapyd's poller looks at its queue every `poll_interval` seconds, so its "
                "shipped 5 s adds half a period on average; the tuned row takes that out. "
                "Scrapy writes the feed file when the spider closes, and a Runyard worker's "
                "lone row is sent when it exits: both measure a whole short job.",
            ]
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument(
        "--skip",
        default="",
        help="comma-separated parts to leave out: ingest, breakdown (run only when the ingest "
        "ratio misses its target), latency, scrapyd (the latency baseline)",
    )
    parser.add_argument("--rounds", type=int, default=INGEST_ROUNDS, help="Runyard ingest runs")
    parser.add_argument(
        "--breakdown", action="store_true", help="run the breakdown even when the ratio meets"
    )
    parser.add_argument("--runs", type=int, default=LATENCY_RUNS, help="latency samples a side")
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help="default benchmarks/WORKERS.md; with --postgres benchmarks/POSTGRES.md",
    )
    _postgres.add_option(parser, "the ingest alone")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    WORK.mkdir(parents=True, exist_ok=True)
    if args.postgres:
        _postgres.check(args.postgres)
        clock = _postgres.Clock()
        compared = ingest_compare(rows_file(args.rows), args.rows, args.rounds, args.postgres)
        body = report_postgres(compared) + "\n" + clock.note() + "\n"
        output = args.output or _postgres.OUTPUT
        _postgres.write_section(
            "workers.py", _postgres.header(machine(), args.postgres), body, output
        )
        print()
        print(body)
        print(f"\nwritten to {output}")
        return
    ing = brk = lat = None
    if "ingest" not in skip:
        src = rows_file(args.rows)
        ing = ingest(src, args.rows, args.rounds)
        missed = ing["ratio"] < TARGETS["ingest_ratio"]
        if "breakdown" not in skip and (missed or args.breakdown):
            brk = where_time_goes(src, min(args.rows, BREAKDOWN_ROWS))
    if "latency" not in skip:
        lat = latency(skip, args.runs)
    text = report(args.rows, ing, brk, lat)
    output = args.output or HERE / "WORKERS.md"
    print()
    print(text)
    output.write_text(text + "\n")
    print(f"\nwritten to {output}")


if __name__ == "__main__":
    main()
