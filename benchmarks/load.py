"""Load on loopback: many clients paging a 1,000,000-row run while runs ingest, next to baselines
measured in the same run.

    make load                                        # 200 clients, 1,000,000 rows, 4 runs, 60 s
    make load LOAD_ARGS="--rows 100000 --clients 50 --seconds 10"
    .venv/bin/python benchmarks/load.py --postgres   # the same on PostgreSQL (a fresh schema)

One ``runyard serve`` bound to 127.0.0.1, on a copy of ``results.py``'s data set (built once,
reused) in a temporary data dir. Every client has an API key of its own (the per-key rate limit
stays at its default) and one keep-alive connection; the clients are asyncio coroutines
speaking HTTP/1.1 on bare streams (httpx costs about four times the CPU a request: ``--http
httpx`` to compare) in ``--client-procs`` processes, so that Python on the client side is not
what is measured. Each client pages the finished run with no pause between requests: sequential
pages, random offsets and the last pages (``limit`` 100 or 20), and checks every reply (200,
envelope code 0, the run's count, the number of rows, and that the first and last row are the
rows at that offset). Anything else — another status, a 429, a timeout, a connection error, a
wrong row — is an error.

Three windows, one after the other:
1. the clients alone (the readers' baseline);
2. ``--ingest-runs`` runs of ``examples/workers/sample-data`` pushing rows as fast as they can,
   alone (the ingest baseline);
3. both at once for ``--seconds`` — the figure the issue asks for.
Rows ingested are the runs' ``results`` read through the API at each window's start and end;
the runs are aborted at the end. Prints requests, errors by kind, requests/s, latency
percentiles, rows ingested and the CPU of the server, the run processes and the client
processes, and writes them to benchmarks/LOAD.md. Exit code 1 when any reply was an error.

Bounded: every wait has a timeout, the whole script a hard time limit (``--time-limit``), and
nothing listens or connects beyond 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _postgres
from results import RUNYARD, Side, _port, _wait_up, import_rows, machine, prepare, rows_file

HERE = Path(__file__).resolve().parent
API = "/api/v2"
INGEST_WORKER = HERE.parent / "examples" / "workers" / "sample-data"
#: The sample-data worker's largest count: far more than 4 runs push in any window here.
INGEST_COUNT = 10_000_000
LIMITS = (100, 20)
HTTP_NAMES = {"raw": "HTTP/1.1 on asyncio streams", "httpx": "`httpx.AsyncClient`"}
#: Share of requests that read the next page, a random page, and one of the last pages.
SEQUENTIAL, RANDOM = 0.4, 0.4
#: How long setup may take (building the 1,000,000-row data set the first time, about 75 s,
#: copying it, starting the server); the windows and their own waits come on top.
SETUP_SECONDS = 600
#: How long the ingesting runs may take to start and store their first rows.
INGEST_START_SECONDS = 120
ABORT_SECONDS = 60


# --- the clients (run in the client processes) ----------------------------------------------------


@dataclass(frozen=True)
class Job:
    """What one client process does in one window."""

    base: str
    run: str
    rows: int
    keys: tuple[str, ...]
    start_at: float  # wall clock (time.time()), the same in every process
    seconds: float
    timeout: float
    seed: int
    http: str  # "raw" or "httpx"


@dataclass
class Tally:
    """What the clients of one process (or, merged, of all of them) saw in one window."""

    requests: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    #: Milliseconds of each good reply, by ``limit``.
    latencies: dict[int, list[float]] = field(default_factory=lambda: {n: [] for n in LIMITS})
    rows_served: int = 0
    cpu_seconds: list[float] = field(default_factory=list)
    wall_seconds: float = 0.0
    warmup_errors: int = 0

    def merge(self, other: Tally) -> None:
        self.requests += other.requests
        self.errors.update(other.errors)
        for limit, values in other.latencies.items():
            self.latencies[limit].extend(values)
        self.rows_served += other.rows_served
        self.cpu_seconds += other.cpu_seconds
        self.wall_seconds = max(self.wall_seconds, other.wall_seconds)
        self.warmup_errors += other.warmup_errors


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    retry_after: str | None


class BadReply(Exception):
    """Bytes on the wire that are not an HTTP/1.1 reply."""


class RawHttp:
    """One keep-alive HTTP/1.1 connection on asyncio streams. Measured here: about 0.75 ms of
    client CPU a 100-row page, parsing included, against 3 ms through ``httpx.AsyncClient`` —
    on two cores shared with the server, httpx's cost would be most of what is measured."""

    def __init__(self, base: str, key: str, timeout: float) -> None:
        netloc = base.split("://", 1)[1]
        host, _, port = netloc.rpartition(":")
        self.host, self.port, self.timeout = host, int(port), timeout
        self._head = f" HTTP/1.1\r\nHost: {netloc}\r\nAuthorization: Bearer {key}\r\n\r\n".encode()
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def get(self, target: str) -> Reply:
        try:
            async with asyncio.timeout(self.timeout):
                return await self._get(target)
        except BaseException:
            self.drop()  # mid-reply: the connection's state is unknown
            raise

    async def _get(self, target: str) -> Reply:
        if self._streams is None:
            self._streams = await asyncio.open_connection(self.host, self.port)
        reader, writer = self._streams
        writer.write(b"GET " + target.encode() + self._head)
        head = await reader.readuntil(b"\r\n\r\n")
        status_line, *lines = head[:-4].split(b"\r\n")
        parts = status_line.split(b" ", 2)
        if len(parts) < 2 or parts[0] != b"HTTP/1.1" or not parts[1].isdigit():
            raise BadReply(status_line[:80].decode(errors="replace"))
        headers = {}
        for line in lines:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
            body = await self._chunks(reader)
        elif b"content-length" in headers:
            body = await reader.readexactly(int(headers[b"content-length"]))
        else:
            raise BadReply("a reply with neither Content-Length nor chunks")
        if headers.get(b"connection", b"").lower() == b"close":
            self.drop()
        retry = headers.get(b"retry-after")
        return Reply(int(parts[1]), body, retry.decode() if retry is not None else None)

    @staticmethod
    async def _chunks(reader: asyncio.StreamReader) -> bytes:
        body = bytearray()
        while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
            body += await reader.readexactly(size)
            await reader.readexactly(2)
        await reader.readuntil(b"\r\n")  # no trailers are sent
        return bytes(body)

    def drop(self) -> None:
        if self._streams is not None:
            self._streams[1].close()
            self._streams = None

    async def aclose(self) -> None:
        self.drop()


class HttpxHttp:
    """The same through one ``httpx.AsyncClient`` (``--http httpx``), for comparison."""

    def __init__(self, base: str, key: str, timeout: float) -> None:
        self.client = httpx.AsyncClient(
            base_url=base,
            headers={"Authorization": f"Bearer {key}"},
            timeout=timeout,
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
        )

    async def get(self, target: str) -> Reply:
        resp = await self.client.get(target)
        return Reply(resp.status_code, resp.content, resp.headers.get("retry-after"))

    async def aclose(self) -> None:
        await self.client.aclose()


def pick(rng: random.Random, cursor: int, rows: int) -> tuple[int, int]:
    """The next ``(offset, limit)``: the page after ``cursor``, a random one, or near the end
    (up to one past the last row, which must give an empty page)."""
    limit = rng.choice(LIMITS)
    draw = rng.random()
    if draw < SEQUENTIAL:
        offset = cursor if cursor < rows else 0
    elif draw < SEQUENTIAL + RANDOM:
        offset = rng.randrange(rows)
    else:
        offset = rng.randrange(max(rows - 3 * limit, 0), rows + 1)
    return offset, limit


def check(reply: Reply, offset: int, limit: int, rows: int) -> tuple[str | None, int]:
    """``(what is wrong or None, rows in the page)``. The data set's row ``i`` has ``id`` ``i``,
    so the first and last row of the page say whether it is the right window."""
    if reply.status == 429:
        return "rate limited (429)", 0
    if reply.status != 200:
        return f"HTTP {reply.status}", 0
    try:
        body = orjson.loads(reply.body)
        if body["code"] != 0 or not body["request_id"]:
            return "envelope code not 0", 0
        data = body["data"]
        page = data["list"]
        expected = max(0, min(limit, rows - offset))
        if data["count"] != rows:
            return "wrong count", 0
        if len(page) != expected:
            return "wrong number of rows", 0
        if expected and (page[0]["id"] != offset or page[-1]["id"] != offset + expected - 1):
            return "wrong rows", 0
    except (orjson.JSONDecodeError, KeyError, TypeError, IndexError):
        return "malformed reply", 0
    return None, expected


#: What a request can fail with, short of a reply: each counted as ``connection (<name>)``.
CONNECTION_ERRORS = (OSError, EOFError, asyncio.LimitOverrunError, BadReply, httpx.HTTPError)


async def _client(
    http: RawHttp | HttpxHttp, job: Job, rng: random.Random, tally: Tally, stop_at: float
) -> None:
    path = f"{API}/worker-runs/{job.run}/result"
    cursor = rng.randrange(job.rows)
    # Connect before the clock starts: the window measures paging, not 200 TCP handshakes.
    try:
        await http.get(f"{path}?offset=0&limit=1")
    except CONNECTION_ERRORS:
        tally.warmup_errors += 1
    await asyncio.sleep(max(0.0, job.start_at - time.time()))
    while time.time() < stop_at:
        offset, limit = pick(rng, cursor, job.rows)
        started = time.perf_counter()
        tally.requests += 1
        try:
            reply = await http.get(f"{path}?offset={offset}&limit={limit}")
        except (TimeoutError, httpx.TimeoutException):  # TimeoutError is an OSError: first
            tally.errors["timeout"] += 1
            continue
        except CONNECTION_ERRORS as exc:
            tally.errors[f"connection ({type(exc).__name__})"] += 1
            await asyncio.sleep(0.1)  # a dead server must not turn into a busy loop
            continue
        ms = (time.perf_counter() - started) * 1000
        problem, served = check(reply, offset, limit, job.rows)
        if problem is None:
            tally.latencies[limit].append(ms)
            tally.rows_served += served
            cursor = offset + limit
            continue
        tally.errors[problem] += 1
        if reply.status == 429:  # as a well-behaved client would: wait as told
            try:
                wait = float(reply.retry_after or 1)
            except ValueError:
                wait = 1.0
            await asyncio.sleep(min(wait, max(0.0, stop_at - time.time())))


async def _drive(job: Job) -> Tally:
    tally = Tally()
    stop_at = job.start_at + job.seconds
    rng = random.Random(job.seed)
    kind = RawHttp if job.http == "raw" else HttpxHttp
    clients = [kind(job.base, key, job.timeout) for key in job.keys]
    try:
        tasks = [
            asyncio.create_task(_client(http, job, random.Random(rng.random()), tally, stop_at))
            for http in clients
        ]
        await asyncio.sleep(max(0.0, job.start_at - time.time()))
        cpu = time.process_time()
        await asyncio.gather(*tasks)
        tally.cpu_seconds = [time.process_time() - cpu]
        tally.wall_seconds = time.time() - job.start_at
    finally:
        for http in clients:
            await http.aclose()
    return tally


def drive(job: Job) -> Tally:
    """One client process's part of a window (the pool's entry point)."""
    return asyncio.run(_drive(job))


def _ready(_: int) -> int:
    return os.getpid()


# --- the server, its data and the ingesting runs --------------------------------------------------


@dataclass
class Setup:
    side: Side
    keys: list[str]
    ingest_key: str
    seconds: dict[str, float]


def setup(args: argparse.Namespace, work: Path, schema: _postgres.Schema | None) -> Setup:
    """The 1M-row run in a fresh data dir (a copy of the cached data set, or an import into
    PostgreSQL), a key per client, and a user ``ingest`` owning the sample-data worker."""
    from runyard.services import Services
    from runyard.services.packages import load_package

    seconds: dict[str, float] = {}
    started = time.perf_counter()
    if schema is None:
        _src, cached, run, _info = prepare(args.rows)
        seconds["data set (built once, then cached)"] = time.perf_counter() - started
        mark = time.perf_counter()
        side = Side("SQLite", work / "runyard", run=run)
        shutil.copytree(cached, side.data_dir)
        seconds["copy into a temporary data dir"] = time.perf_counter() - mark
    else:
        src = rows_file(args.rows)
        seconds["data set (built once, then cached)"] = time.perf_counter() - started
        mark = time.perf_counter()
        side = Side("PostgreSQL", work / "runyard", database_url=schema.url)
        import_rows(side, src)
        seconds["import into PostgreSQL"] = time.perf_counter() - mark
    mark = time.perf_counter()
    svc = Services(side.settings())
    try:
        keys = [svc.accounts.create_key("bench") for _ in range(args.clients)]
        ingest_user = svc.accounts.create_user("ingest")
        ingest_key = svc.accounts.create_key("ingest")
        svc.workers.register(ingest_user, load_package(INGEST_WORKER))
    finally:
        svc.close()
    seconds[f"{args.clients} keys, ingest user and worker"] = time.perf_counter() - mark
    return Setup(side, keys, ingest_key, seconds)


@contextmanager
def serving(side: Side, ingest_runs: int, log: Path) -> Iterator[tuple[str, int]]:
    """``runyard serve`` on 127.0.0.1 (base URL, pid); stopped, with anything it started."""
    import psutil

    port = _port()
    base = f"http://127.0.0.1:{port}"
    env = side.env
    # The other benchmarks lift the per-key rate limit; this one measures with the default on.
    for name in ("RUNYARD_RATE_LIMIT", "RUNYARD_RATE_BURST"):
        env.pop(name, None)
    # The server's default of 2 would queue the other ingesting runs as ``ready``.
    env["RUNYARD_MAX_CONCURRENT_RUNS"] = str(max(2, ingest_runs))
    with open(log, "wb") as sink:
        server = subprocess.Popen(
            [*RUNYARD, "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_up(f"{base}/api/v2/store", server, log)
        yield base, server.pid
    finally:
        try:
            left = psutil.Process(server.pid).children(recursive=True)
        except psutil.Error:
            left = []
        server.terminate()
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(5)
        for child in left:  # run processes the server did not take down with it
            with suppress(psutil.Error):
                child.kill()


class Ingest:
    """The ingesting runs, through the API as user ``ingest``."""

    def __init__(self, base: str, key: str) -> None:
        self.http = httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=60
        )
        self.slugs: list[str] = []

    def start(self, runs: int, delay_ms: int) -> None:
        for i in range(runs):
            custom = {"count": INGEST_COUNT, "seed": i + 1, "delay_ms": delay_ms}
            resp = self.http.post(
                f"{API}/workers/sample-data/runs",
                json={"input": {"parameters": {"custom": custom}}},
            )
            assert resp.status_code == 200, resp.text
            self.slugs.append(resp.json()["data"]["run_slug"])
        deadline = time.monotonic() + INGEST_START_SECONDS
        while True:
            runs_now = self.records()
            if all(r["status"] == "running" and r["results"] > 0 for r in runs_now):
                return
            if any(r["status"] not in ("ready", "running") for r in runs_now):
                raise RuntimeError(f"an ingesting run ended before the window: {runs_now}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the ingesting runs did not start in time: {runs_now}")
            time.sleep(0.2)

    def records(self) -> list[dict[str, Any]]:
        out = []
        for slug in self.slugs:
            resp = self.http.get(f"{API}/worker-runs/{slug}")
            assert resp.status_code == 200, resp.text
            out.append(resp.json()["data"])
        return out

    def counts(self) -> tuple[float, list[int], list[str]]:
        """(when, each run's stored rows, each run's status), in one request: under load a
        reply waits its turn behind the clients' requests, so the moment the counts stand for
        is taken as the middle of the request."""
        started = time.monotonic()
        resp = self.http.get(f"{API}/worker-runs", params={"worker_id": "sample-data"})
        when = (started + time.monotonic()) / 2
        assert resp.status_code == 200, resp.text
        by_slug = {r["slug"]: r for r in resp.json()["data"]["list"]}
        records = [by_slug[slug] for slug in self.slugs]
        return when, [r["results"] for r in records], [r["status"] for r in records]

    def abort(self) -> None:
        for slug in self.slugs:
            self.http.post(f"{API}/worker-runs/{slug}/abort")
        deadline = time.monotonic() + ABORT_SECONDS
        while any(r["status"] not in ("succeeded", "failed") for r in self.records()):
            if time.monotonic() > deadline:
                raise RuntimeError("the ingesting runs did not stop after their abort")
            time.sleep(0.2)

    def close(self) -> None:
        self.http.close()


# --- CPU ------------------------------------------------------------------------------------------


def _queued_seconds(pid: int) -> float:
    """Seconds the threads of ``pid`` have spent runnable but waiting for a CPU (Linux's
    schedstat; 0 elsewhere): what tells a server starved of CPU from one blocked on a lock."""
    total = 0
    for stat in Path(f"/proc/{pid}/task").glob("*/schedstat"):
        try:
            total += int(stat.read_text().split()[1])
        except (OSError, IndexError, ValueError):
            continue  # a thread that ended meanwhile
    return total / 1e9


@dataclass
class Cpu:
    """CPU seconds at one moment: the server process, each process under it, the machine;
    and how long the server's threads waited for a CPU."""

    server: float
    children: dict[int, float]
    machine_busy: float
    server_queued: float

    @staticmethod
    def now(server_pid: int) -> Cpu:
        import psutil

        server = psutil.Process(server_pid)
        times = server.cpu_times()
        children = {}
        for child in server.children(recursive=True):
            try:
                t = child.cpu_times()
            except psutil.Error:
                continue
            children[child.pid] = t.user + t.system
        total = psutil.cpu_times()
        idle = total.idle + getattr(total, "iowait", 0.0)
        return Cpu(
            times.user + times.system, children, sum(total) - idle, _queued_seconds(server_pid)
        )

    def cores_since(self, before: Cpu, seconds: float) -> dict[str, float]:
        kids = sum(t - before.children.get(pid, 0.0) for pid, t in self.children.items())
        return {
            "server": (self.server - before.server) / seconds,
            "runs": kids / seconds,
            "machine": (self.machine_busy - before.machine_busy) / seconds,
            "server_queued": (self.server_queued - before.server_queued) / seconds,
        }


# --- the windows ----------------------------------------------------------------------------------


@dataclass
class Window:
    name: str
    clients: int
    ingest_runs: int
    seconds: float
    tally: Tally | None = None
    cores: dict[str, float] = field(default_factory=dict)
    rows_ingested: int | None = None
    ingest_seconds: float = 0.0
    ingest_ended: list[str] = field(default_factory=list)

    @property
    def errors(self) -> int:
        return sum(self.tally.errors.values()) if self.tally else 0

    def latencies(self, limit: int | None = None) -> list[float]:
        if self.tally is None:
            return []
        if limit is not None:
            return sorted(self.tally.latencies[limit])
        return sorted(v for values in self.tally.latencies.values() for v in values)


def pct(values: list[float], q: float) -> float:
    """The ``q`` quantile of sorted ``values`` (nearest rank)."""
    if not values:
        return float("nan")
    return values[min(len(values) - 1, max(0, int(q * len(values) + 0.5) - 1))]


def run_window(
    pool: Any,
    window: Window,
    args: argparse.Namespace,
    base: str,
    run: str,
    keys: list[str],
    server_pid: int,
    ingest: Ingest | None,
    seed: int,
) -> None:
    """One window: the clients (if any) and the ingesting runs (if any) for its seconds."""
    start_at = time.time() + 3  # every client connected and waiting by then
    result = None
    if window.clients:
        parts = [keys[i :: args.client_procs] for i in range(args.client_procs)]
        jobs = [
            Job(
                base,
                run,
                args.rows,
                tuple(p),
                start_at,
                window.seconds,
                args.timeout,
                seed + i,
                args.http,
            )
            for i, p in enumerate(parts)
            if p
        ]
        result = pool.map_async(drive, jobs)
    time.sleep(max(0.0, start_at - time.time()))
    cpu = Cpu.now(server_pid)
    started = time.monotonic()
    before = ingest.counts() if ingest else None
    time.sleep(max(0.0, start_at + window.seconds - time.time()))
    window.cores = Cpu.now(server_pid).cores_since(cpu, time.monotonic() - started)
    if ingest and before:
        after = ingest.counts()
        window.rows_ingested = sum(after[1]) - sum(before[1])
        window.ingest_seconds = after[0] - before[0]
        window.ingest_ended = [s for s in after[2] if s != "running"]
    if result is not None:
        tally = Tally()
        for part in result.get(timeout=window.seconds + args.timeout + 60):
            tally.merge(part)
        window.tally = tally


# --- the report -----------------------------------------------------------------------------------


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}×" if b and a == a and b == b else "—"


def _ms(value: float) -> str:
    if value != value:  # NaN: no good reply to take it from
        return "—"
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def report(args: argparse.Namespace, windows: list[Window], info: dict[str, Any]) -> str:
    readers, ingest_alone, both = windows
    assert readers.tally and both.tally
    rate_limit = info["rate_limit"]
    lines = [
        "# Load on loopback",
        "",
        f"Run {info['date']}. Machine: {machine()}. Code: {info['code']}. Load average "
        f"(1/5/15 min) {info['load_before']} at the start, {info['load_after']} at the end."
        + (f" Database: {info['database']}." if info["database"] else ""),
        "",
        f"Command: `make load` (`python benchmarks/load.py {' '.join(info['argv'])}`). One "
        f"`runyard serve` ({info['backend']}) on 127.0.0.1; a run of {args.rows:,} rows "
        f"(`benchmarks/_data.py`, ~750 B each); {args.clients} clients, each with its own API "
        f"key and one keep-alive connection, as asyncio coroutines ({HTTP_NAMES[args.http]}) in "
        f"{args.client_procs} processes; {args.ingest_runs} runs of `sample-data` pushing rows "
        f"as fast as they can. Each client pages with no pause: {SEQUENTIAL:.0%} the next page, "
        f"{RANDOM:.0%} a random offset, {1 - SEQUENTIAL - RANDOM:.0%} one of the last pages "
        f"(or one past the end: an empty page); `limit` 100 or 20. Every reply is checked "
        f"(status 200, code 0, the run's count, the number of rows, the first and last row's "
        f"`id`); anything else is an error. Per-key rate limit: {rate_limit}.",
        "",
        "Setup: "
        + "; ".join(f"{what} {sec:.1f} s" for what, sec in info["setup"].items())
        + f"; total {sum(info['setup'].values()):.1f} s.",
        "",
        "| window | clients | ingesting runs | seconds | requests | errors | requests/s "
        "| rows read/s | p50 ms | p90 ms | p99 ms | max ms | rows ingested | rows ingested/s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for w in windows:
        cells = [w.name, str(w.clients), str(w.ingest_runs), f"{w.seconds:.0f}"]
        if w.tally:
            lat = w.latencies()
            secs = w.tally.wall_seconds
            cells += [
                f"{w.tally.requests:,}",
                f"**{w.errors}**",
                f"{w.tally.requests / secs:,.0f}",
                f"{w.tally.rows_served / secs:,.0f}",
                *(_ms(pct(lat, q)) for q in (0.5, 0.9, 0.99)),
                _ms(lat[-1] if lat else float("nan")),
            ]
        else:
            cells += ["", "", "", "", "", "", "", ""]
        if w.rows_ingested is not None:
            cells += [
                f"{w.rows_ingested:,}",
                f"{w.rows_ingested / max(w.ingest_seconds, 1e-9):,.0f}",
            ]
        else:
            cells += ["", ""]
        lines.append("| " + " | ".join(cells) + " |")

    rps = {w.name: w.tally.requests / w.tally.wall_seconds for w in (readers, both) if w.tally}
    ingest_rate = {
        w.name: w.rows_ingested / max(w.ingest_seconds, 1e-9)
        for w in (ingest_alone, both)
        if w.rows_ingested is not None
    }
    lat_r, lat_b = readers.latencies(), both.latencies()
    served = max(readers.tally.requests, 1)
    per_request = {
        "server": readers.cores["server"] * readers.seconds / served * 1000,
        "clients": sum(readers.tally.cpu_seconds) / served * 1000,
    }
    lines += [
        "",
        "Cost of ingesting while reading, measured in this run: requests/s "
        f"**{_ratio(rps[both.name], rps[readers.name])}** the readers alone, p50 "
        f"{_ratio(pct(lat_b, 0.5), pct(lat_r, 0.5))}, p99 "
        f"{_ratio(pct(lat_b, 0.99), pct(lat_r, 0.99))}; rows ingested/s "
        f"**{_ratio(ingest_rate[both.name], ingest_rate[ingest_alone.name])}** "
        "the runs alone. CPU a request, readers alone: the server "
        f"{per_request['server']:.2f} ms, the clients {per_request['clients']:.2f} ms (reading "
        "and checking every row of the reply).",
        "",
        "Latency by page size (p50 / p99 ms):",
        "",
        "| window | limit=100 | limit=20 |",
        "|---|---:|---:|",
    ]
    for w in (readers, both):
        cells = [w.name]
        for limit in LIMITS:
            lat = w.latencies(limit)
            cells.append(f"{_ms(pct(lat, 0.5))} / {_ms(pct(lat, 0.99))} ({len(lat):,} replies)")
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "CPU in cores (1.0 = one core busy for the whole window; the machine has "
        f"{os.cpu_count()}): the server process (the API and the runs' ingest threads); how long "
        "its threads were ready to run but waited for a CPU (Linux schedstat, summed over "
        "threads, so it can pass 1.0); the processes under it (the workers in their "
        "sandboxes); each client process; and the whole machine (every process, other load "
        "included).",
        "",
        "| window | server | server waiting for a CPU | run processes | client processes "
        "| machine |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for w in windows:
        clients = (
            " + ".join(f"{c / w.tally.wall_seconds:.2f}" for c in w.tally.cpu_seconds)
            if w.tally
            else ""
        )
        lines.append(
            f"| {w.name} | {w.cores['server']:.2f} | {w.cores['server_queued']:.2f} "
            f"| {w.cores['runs']:.2f} | {clients} "
            f"| {w.cores['machine']:.2f} |"
        )
    errors: Counter[str] = Counter()
    for w in windows:
        if w.tally:
            errors.update(w.tally.errors)
    ended = [s for w in windows for s in w.ingest_ended]
    lines += [""]
    if errors:
        lines.append(
            "Errors by kind: " + ", ".join(f"{kind} {n:,}" for kind, n in errors.most_common())
        )
    else:
        lines.append(
            f"**No errors** in {sum(w.tally.requests for w in windows if w.tally):,} requests "
            "(no 429s, timeouts, connection errors or wrong pages)."
        )
    if ended:
        lines.append(f"Ingesting runs that stopped during a window: {', '.join(ended)}.")
    warmup = sum(w.tally.warmup_errors for w in windows if w.tally)
    if warmup:
        lines.append(f"Clients that could not connect before a window began: {warmup:,}.")
    lines.append("")
    return "\n".join(lines)


# --- main -----------------------------------------------------------------------------------------


def _hard_limit(signum: int, frame: FrameType | None) -> None:
    raise TimeoutError("the load benchmark ran past its hard time limit (--time-limit)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=60.0, help="the window under load")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--ingest-runs", type=int, default=4)
    parser.add_argument(
        "--baseline-seconds",
        type=float,
        default=None,
        help="each baseline window (default: --seconds / 2, at least 5)",
    )
    parser.add_argument(
        "--ingest-delay-ms", type=int, default=0, help="the runs' pause between chunks of 1,000"
    )
    parser.add_argument("--client-procs", type=int, default=2)
    parser.add_argument(
        "--http",
        choices=("raw", "httpx"),
        default="raw",
        help="the clients' HTTP: asyncio streams (default, the cheapest) or httpx.AsyncClient",
    )
    parser.add_argument("--timeout", type=float, default=30.0, help="per request, seconds")
    parser.add_argument(
        "--time-limit",
        type=float,
        default=None,
        help="hard limit on the whole run, seconds (default: setup allowance + windows)",
    )
    parser.add_argument("--out", type=Path, default=HERE / "LOAD.md")
    _postgres.add_option(parser, "the load")
    args = parser.parse_args()
    if args.clients < 1 or args.rows < 1000 or args.ingest_runs < 1 or args.client_procs < 1:
        parser.error("need at least 1 client, 1,000 rows, 1 ingesting run, 1 client process")
    baseline = args.baseline_seconds or max(5.0, args.seconds / 2)
    windows = [
        Window("readers alone (baseline)", args.clients, 0, baseline),
        Window("ingest alone (baseline)", 0, args.ingest_runs, baseline),
        Window("readers + ingest", args.clients, args.ingest_runs, args.seconds),
    ]
    limit = args.time_limit or (
        SETUP_SECONDS
        + INGEST_START_SECONDS
        + ABORT_SECONDS
        + sum(w.seconds + 3 + (args.timeout + 60 if w.clients else 0) for w in windows)
    )
    signal.signal(signal.SIGALRM, _hard_limit)
    signal.alarm(int(limit))

    from runyard.settings import Settings

    field_ = Settings.model_fields.get("rate_limit")
    burst = Settings.model_fields.get("rate_burst")
    rate_limit = (
        f"the default, {field_.default} requests/s per key"
        + (f" (burst {burst.default})" if burst else "")
        if field_
        else "none in this build"
    )
    clock = _postgres.Clock()
    date = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    HERE.joinpath(".data").mkdir(exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="load-", dir=HERE / ".data"))
    schema = None
    if args.postgres:
        _postgres.check(args.postgres)
        schema = _postgres.Schema(args.postgres, "bench_load").create()
    pool = multiprocessing.get_context("spawn").Pool(args.client_procs)
    try:
        print(f"setting up: {args.rows:,} rows, {args.clients} keys …", flush=True)
        ready = setup(args, work, schema)
        mark = time.perf_counter()
        # Start the client processes (imports and all) while nothing is measured.
        pool.map(_ready, range(args.client_procs))
        ready.seconds["client processes"] = time.perf_counter() - mark
        mark = time.perf_counter()
        with serving(ready.side, args.ingest_runs, work / "serve.log") as (base, pid):
            ready.seconds["server start"] = time.perf_counter() - mark
            print(f"setup took {sum(ready.seconds.values()):.1f} s", flush=True)
            readers, ingest_alone, both = windows
            print(f"{readers.name}: {readers.seconds:.0f} s …", flush=True)
            run_window(pool, readers, args, base, ready.side.run, ready.keys, pid, None, 1)
            ingest = Ingest(base, ready.ingest_key)
            try:
                print(f"starting {args.ingest_runs} ingesting runs …", flush=True)
                ingest.start(args.ingest_runs, args.ingest_delay_ms)
                for w in (ingest_alone, both):
                    print(f"{w.name}: {w.seconds:.0f} s …", flush=True)
                    run_window(pool, w, args, base, ready.side.run, ready.keys, pid, ingest, 2)
                ingest.abort()
            finally:
                ingest.close()
    finally:
        pool.terminate()
        pool.join()
        if schema is not None:
            schema.drop()
        shutil.rmtree(work, ignore_errors=True)
        signal.alarm(0)
    info = {
        "date": date,
        "code": _postgres.code_version(),
        "load_before": clock.load_before,
        "load_after": _postgres.load(),
        "argv": sys.argv[1:],
        "backend": "PostgreSQL" if schema is not None else "SQLite",
        "database": _postgres.server_note(args.postgres) if args.postgres else None,
        "rate_limit": rate_limit,
        "setup": ready.seconds,
    }
    text = report(args, windows, info)
    print()
    print(text)
    args.out.write_text(text)
    print(f"written to {args.out}")
    failed = sum(w.errors for w in windows) + sum(len(w.ingest_ended) for w in windows)
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except TimeoutError as exc:  # the hard limit: everything is stopped and removed by now
        sys.exit(f"load: {exc}")
