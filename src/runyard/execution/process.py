"""One run, one OS process: spawn it, pump its channel and output, enforce its limits.

The same code executes a run whatever started it (the local executor's thread now, a Celery
task in the scale-out mode), and it holds everything that decides a run's outcome.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import random
import selectors
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import orjson
from sqlalchemy import Connection, select, update

from runyard.execution import sandbox
from runyard.execution.base import ABORTED, ACTIVE, RunStates
from runyard.runtime import BOOTSTRAP
from runyard.settings import Settings
from runyard.storage import Database, RowStore, Run, User, WorkerVersion
from runyard.storage.database import as_storage_error
from runyard.storage.ingest import RowIngestor
from runyard.storage.runlog import (
    DEBUG,
    ERROR,
    INFO,
    MAX_LINE_CHARS,
    WARN,
    LogWriter,
    RunLogStore,
)

log = logging.getLogger("runyard.execution")

#: Rows become visible at least this often while a worker keeps pushing.
FLUSH_SECONDS = 0.2
#: Rows per commit at most; a fast worker fills it between two timed flushes, and every commit
#: costs about as much as thousands of inserts.
RUN_BATCH = 10_000
#: How often a run checks the database for an abort asked through another server, or for its
#: end decided elsewhere (a lease that ran out).
ABORT_POLL_SECONDS = 1.0
#: Attempts at recording a run's end while the database cannot take it, within the one
#: budget of ``storage.database.BUSY_SECONDS``.
FINISH_ATTEMPTS = 5
#: After the worker's main process ends, how long its leftovers may keep the pipes open.
EXIT_GRACE_SECONDS = 2.0
_READ = 1 << 20
#: ``fcntl.F_SETPIPE_SZ`` (Linux; named in the module from Python 3.10 on some builds only).
F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
PIPE_BYTES = 1 << 20
#: A channel line carries a row plus its tag and, for an upsert, its key.
_ENVELOPE_BYTES = 4096
#: Longest stdout/stderr line read whole (UTF-8 can take 4 bytes a character).
MAX_LINE_BYTES = MAX_LINE_CHARS * 4
#: Channel tags (docs/workers.md).
_ROW, _UPSERT, _HEADERS, _LOG = b"R", b"U", b"H", b"L"
#: ``Run.usage`` has four decimals (spec §3).
USAGE_PLACES = Decimal("0.0001")
#: Port of a proxy URL that names none.
_DEFAULT_PORTS = {"http": 80, "https": 443, "socks5": 1080, "socks5h": 1080, "socks4": 1080}


class _LineBuffer:
    """Splits a stream into lines, cutting any line longer than ``cap`` bytes as it comes.

    The head of an over-long line is handed back once; the rest, up to its newline, is dropped
    without being kept.
    """

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.rest = b""
        self.skipping = False

    def feed(self, chunk: bytes) -> tuple[list[bytes], bytes | None]:
        lines = (self.rest + chunk).split(b"\n")
        self.rest = lines.pop()
        if self.skipping and lines:
            del lines[0]  # the end of the over-long line
            self.skipping = False
        cut = None
        if self.skipping:
            self.rest = b""
        elif len(self.rest) > self.cap:
            cut = self.rest[: self.cap]
            self.rest = b""
            self.skipping = True
        return lines, cut

    def close(self) -> list[bytes]:
        """The last, unterminated line."""
        rest = [] if self.skipping or not self.rest else [self.rest]
        self.rest = b""
        return rest


class RunFenced(Exception):
    """The run was finished by someone else (its node was declared dead): this process must
    stop, and write nothing more to it."""


class FencedRows:
    """A row store that refuses to append to a run no longer ``running`` or ``aborting``.

    ``RowIngestor.flush`` appends first in its transaction, so the check locks the run's row
    before any row is written: a reaper failing the run either committed before (the batch
    is refused and rolled back) or waits for the batch to commit. A node that was cut off and
    comes back never adds rows to a run someone else failed.
    """

    def __init__(self, rows: RowStore) -> None:
        self.rows = rows

    def append(self, conn: Connection, run_id: int, first_seq: int, texts: Sequence[str]) -> None:
        # FOR NO KEY UPDATE: the lock the batch's own update of the run takes anyway, taken
        # first; it does not block the foreign-key checks of log lines. (SQLite has no row
        # locks, and needs none: its writers take turns.)
        status = conn.scalar(
            select(Run.status).where(Run.id == run_id).with_for_update(key_share=True)
        )
        if status not in ACTIVE:
            raise RunFenced(f"run {run_id} is {status}")
        self.rows.append(conn, run_id, first_seq, texts)

    def replace(self, conn: Connection, run_id: int, rows: dict[int, str]) -> None:
        self.rows.replace(conn, run_id, rows)

    def read(self, run_id: int, start: int, stop: int) -> list[str]:
        return self.rows.read(run_id, start, stop)

    def iter_batches(self, run_id: int, stop: int, batch_size: int = 5000) -> Iterator[list[str]]:
        return self.rows.iter_batches(run_id, stop, batch_size)


@dataclass(frozen=True)
class RunContext:
    """What executing a run needs from the server."""

    settings: Settings
    db: Database
    rows: RowStore
    runs: RunStates
    logs: RunLogStore


def proxy_environment(url: str) -> dict[str, str]:
    """The variables a worker finds its proxy in (spec §4); ``ValueError`` for a URL without
    a host."""
    parts = urlsplit(url)
    if not parts.hostname:
        raise ValueError("the proxy URL has no host")
    port = parts.port or _DEFAULT_PORTS.get(parts.scheme.lower(), 80)
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    auth = ""
    if parts.username is not None:
        auth = unquote(parts.username) + ":" + unquote(parts.password or "")
    return {
        "HTTP_PROXY": url,
        "HTTPS_PROXY": url,
        "PROXY_DOMAIN": f"{host}:{port}",
        "PROXY_AUTH": auth,
    }


def usage_of(cpu_seconds: float, price: str | None) -> Decimal:
    """What a run's CPU time costs at ``price`` per CPU-second, to four decimals."""
    if price is None:
        return Decimal(0).quantize(USAGE_PLACES)
    return (Decimal(repr(cpu_seconds)) * Decimal(price)).quantize(USAGE_PLACES, ROUND_HALF_UP)


def charge(db: Database, user_id: int, cost: Decimal) -> None:
    """Take ``cost`` off the user's credit, if one is kept.

    A compare-and-set on the old value: two runs finishing at once never lose a charge, and
    the write comes first in its transaction so that SQLite waits for its lock instead of
    failing a read transaction that turned into a write.
    """
    while True:
        with db.session() as s:
            credit = s.scalar(select(User.credit).where(User.id == user_id))
        if credit is None:
            return
        left = format(Decimal(credit) - cost, "f")
        with db.session() as s, s.begin():
            changed = s.execute(
                update(User).where(User.id == user_id, User.credit == credit).values(credit=left)
            )
            if changed.rowcount:  # type: ignore[attr-defined]
                return


def _exited(pid: int) -> bool:
    """Whether the child ``pid`` has ended, leaving it unreaped (a zombie) for ``_reap``.

    ``Popen.poll`` would reap it and lose its resource usage.
    """
    return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None


def _reap(proc: subprocess.Popen[bytes]) -> tuple[int, float]:
    """Wait for the worker's main process; its exit code and CPU seconds (user + system).

    ``wait4`` gives the usage of this one child, including every descendant it waited for
    itself (the kernel adds a reaped child's usage to its parent's), so concurrent runs
    never see each other's time, unlike ``getrusage(RUSAGE_CHILDREN)`` of the server.
    Processes the worker left behind are killed with its group and not counted.
    """
    _, status, usage = os.wait4(proc.pid, 0)
    # Popen must not wait again: the pid is gone, and it could be reused.
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_utime + usage.ru_stime


def _environment(
    run: Run,
    scratch: Path,
    input_path: Path,
    channel_fd: int,
    memory_mb: int | None,
    proxy: dict[str, str] | None = None,
    *,
    sandboxed: bool = False,
) -> dict[str, str]:
    # Built from nothing: the worker never sees the server's secrets or database URL.
    env = {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "HOME": str(scratch),
        "TMPDIR": str(scratch / "tmp"),
        "LANG": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "RUNYARD_CHANNEL_FD": str(channel_fd),
        "RUNYARD_INPUT": str(input_path),
        "RUNYARD_RUN_ID": run.slug,
    }
    # The bootstrap dies with this process (runtime/bootstrap.py): unsandboxed, it checks that
    # by this pid; sandboxed, with bwrap (--die-with-parent), and this pid is not in its view.
    if sandboxed:
        env["RUNYARD_SANDBOX"] = "bwrap"
    else:
        env["RUNYARD_PARENT_PID"] = str(os.getpid())
    if memory_mb:
        env["RUNYARD_MEMORY_MB"] = str(memory_mb)
    env.update(proxy or {})
    return env


def kill_group(pid: int) -> None:
    """Kill a run's whole process group (its session, which the child leads)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def is_run_process(pid: int, run_slug: str) -> bool:
    """Whether ``pid`` is still the run's own process (not a recycled pid)."""
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False
    return f"RUNYARD_RUN_ID={run_slug}".encode() in environ.split(b"\0")


def run_processes(run_slug: str) -> list[int]:
    """Every live process of a run, found by its environment (when its pid was never stored)."""
    pids = (int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit())
    return [pid for pid in pids if is_run_process(pid, run_slug)]


_RUN_ID = b"RUNYARD_RUN_ID="


def _processes_by_run() -> dict[int, str]:
    """The run slug of every process of this user that carries one in its environment."""
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:  # gone, or another user's
            continue
        for variable in environ.split(b"\0"):
            if variable.startswith(_RUN_ID):
                found[int(entry.name)] = variable[len(_RUN_ID) :].decode(errors="replace")
                break
    return found


def kill_runs(slugs: Collection[str]) -> None:
    """Kill every process left of these runs, wherever it sits in their tree.

    Found by the ``RUNYARD_RUN_ID`` each inherits, not by the stored pid: ``PR_SET_PDEATHSIG``
    kills the run's own process alone when its executor dies, and its children live on,
    handed to init, in a group whose leader is gone. Each such process is killed with its whole
    group (a group holding one of the run's processes is the run's: only the run's own tree
    shares its session), which takes along children that were given another environment.
    """
    wanted = set(slugs)
    if not wanted:
        return
    for _ in range(5):  # a process may fork while its group is being killed: look again
        found = [pid for pid, slug in _processes_by_run().items() if slug in wanted]
        if not found:
            return
        for pid in found:
            with contextlib.suppress(OSError):
                os.killpg(os.getpgid(pid), signal.SIGKILL)
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)
    log.warning("processes of runs %s survived being killed", ", ".join(sorted(wanted)))


def fail_leftovers(ctx: RunContext, runs: Collection[Run], executor: str, why: str) -> list[int]:
    """Fail runs of ``executor`` that no thread will finish — with ``why``, or as aborted if
    they were being aborted — once what is left of their processes on this host is killed;
    the ids failed (not those finished meanwhile, or owned by someone else by now)."""
    if not runs:
        return []
    kill_runs([run.slug for run in runs])
    owned = Run.executor == executor
    failed = []
    for run in runs:
        done = ctx.runs.transition(
            run.id, "failed", only_from=("running",), only_if=owned, err_msg=why
        ) or ctx.runs.transition(
            run.id, "failed", only_from=("aborting",), only_if=owned, err_msg=ABORTED
        )
        if done is not None:
            shutil.rmtree(ctx.settings.runs_dir / run.slug, ignore_errors=True)
            log.warning("run %s failed: %s", run.slug, why)
            failed.append(run.id)
    return failed


class RunProcess:
    """Executes one claimed (``running``) run to its end; ``abort`` may come from any thread."""

    def __init__(self, ctx: RunContext, run_id: int) -> None:
        self.ctx = ctx
        self.run_id = run_id
        self._abort = threading.Event()
        self._abort_why = ABORTED
        self.pid: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        #: Held while the process is reaped: its pid (and group id) may be reused after.
        self._pid_lock = threading.Lock()
        self._reaped = False
        #: The sandbox's first process (bwrap is ``pid``): the worker is killed through it,
        #: never bwrap, which then reaps it and so reports its CPU time.
        self._init: sandbox.Init | None = None
        self.rejected = 0
        self._last_stderr = ""

    def abort(self, why: str = ABORTED) -> None:
        """End the run with ``why`` (from any thread): the thread executing it notices within
        a moment and fails the run, and the process group is killed from here at once — that
        thread may be stuck in a database call that does not return soon."""
        self._abort_why = why
        self._abort.set()  # first: the thread must see it before it sees the process die
        self._kill()

    def _kill(self, *, whole_group: bool = False) -> None:
        """Kill the run's process tree, if it has one still: the sandboxed worker, which takes
        its pid namespace along and lets bwrap exit; else (or ``whole_group``: bwrap did not
        exit) the process group."""
        with self._pid_lock:
            if self.pid is None or self._reaped:
                return
            if self._init is not None and not whole_group:
                sandbox.kill(self._init)
            else:
                kill_group(self.pid)

    def _reap(self, proc: subprocess.Popen[bytes]) -> tuple[int, float]:
        # Waits for the end without reaping, so that the lock is never held while waiting.
        os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
        with self._pid_lock:
            self._reaped = True
            if self._init is not None:
                self._init.close()
                self._init = None
            return _reap(proc)

    def execute(self) -> None:
        ctx = self.ctx
        with ctx.db.session() as s:
            run = s.get(Run, self.run_id)
            version = s.scalar(
                select(WorkerVersion).where(
                    WorkerVersion.worker_id == (run.worker_id if run else -1),
                    WorkerVersion.version == (run.version if run else ""),
                )
            )
        if run is None or run.status not in ACTIVE:
            return  # finished elsewhere since it was claimed: nothing to do
        logs = ctx.logs.writer(self.run_id, ctx.settings.run_log_max_lines)
        scratch = ctx.settings.runs_dir / run.slug
        try:
            if version is None:
                self._finish(logs, "failed", f"version {run.version} of the worker is gone")
                return
            self._execute(run, version, scratch, logs)
        except RunFenced as exc:
            # Its end was decided elsewhere: no rows, no log lines, no status from here.
            self._kill()
            log.warning("run %s was stopped: it was finished elsewhere (%s)", run.slug, exc)
        except Exception as exc:
            self._kill()
            if self._proc is not None and not self._reaped:
                self._reap(self._proc)  # no zombie left behind
            problem = as_storage_error(exc)
            if problem is None:
                log.exception("run %s failed inside Runyard", run.slug)
                self._finish(logs, "failed", f"internal error: {type(exc).__name__}")
                return
            # A full disk or a database locked past its retries: nothing of the batch in
            # flight was kept, every committed row stays. The worker's scratch files may be
            # what filled the disk: they go before the run's end is written.
            log.error("run %s failed: %s", run.slug, problem)
            shutil.rmtree(scratch, ignore_errors=True)
            self._finish(logs, "failed", str(problem))
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def _execute(self, run: Run, version: WorkerVersion, scratch: Path, logs: LogWriter) -> None:
        settings = self.ctx.settings
        shutil.rmtree(scratch, ignore_errors=True)
        # Absolute: the worker's paths must hold from its own working directory (and bwrap
        # mounts absolute paths only).
        scratch = Path(os.path.abspath(scratch))
        work = scratch / "work"
        shutil.copytree(version.path, work)
        (scratch / "tmp").mkdir()
        input_path = scratch / "input.json"
        input_path.write_text(run.input, encoding="utf-8")
        system = orjson.loads(run.system)
        timeout = int(system.get("execute_limit_time_seconds") or settings.run_timeout_seconds)
        memory_mb: int | None = system.get("memory")
        proxy = None
        region_code = system.get("proxy_region")
        if region_code:
            region = settings.proxies.get(region_code)
            if region is None:
                # Configured when the run was started, removed since: running without the
                # proxy the caller asked for could expose them, so the run fails instead.
                self._finish(logs, "failed", f"proxy region {region_code} is not configured")
                return
            try:
                proxy = proxy_environment(random.choice(region.urls))
            except ValueError:
                # Never the parser's message: it can quote the URL's password.
                log.error(
                    "a proxy URL of region %s cannot be parsed (check RUNYARD_PROXIES)", region_code
                )
                self._finish(logs, "failed", f"a proxy URL of region {region_code} is invalid")
                return

        if self._abort.is_set():  # e.g. its node is stopping: never started
            self._finish(logs, "failed", self._abort_why)
            return
        sandboxed = settings.sandbox == "bwrap"
        read_fd, write_fd = os.pipe()
        with contextlib.suppress(OSError):
            # Room for about a thousand rows, so the worker rarely waits for the parent (Linux).
            fcntl.fcntl(write_fd, F_SETPIPE_SZ, PIPE_BYTES)
        env = _environment(
            run, scratch, input_path, write_fd, memory_mb, proxy, sandboxed=sandboxed
        )
        argv = [version.python, BOOTSTRAP, "main.py"]
        pass_fds = [write_fd]
        info_read = info_write = -1
        try:
            if sandboxed:
                info_read, info_write = os.pipe()
                pass_fds.append(info_write)
                argv = sandbox.command(
                    settings,
                    argv,
                    scratch=scratch,
                    workdir=work,
                    info_fd=info_write,
                    memory_mb=memory_mb,
                )
                sandbox.hand_over(scratch)
            proc = subprocess.Popen(
                argv,
                cwd=work,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                pass_fds=pass_fds,
                start_new_session=True,
            )
        except (OSError, sandbox.SandboxUnavailable) as exc:
            os.close(read_fd)
            if info_read >= 0:
                os.close(info_read)
            self._finish(logs, "failed", f"could not start the worker: {exc}")
            return
        finally:
            os.close(write_fd)
            if info_write >= 0:
                os.close(info_write)
        self.pid, self._proc = proc.pid, proc
        if sandboxed:
            init = sandbox.started(info_read, lambda pid: is_run_process(pid, run.slug))
            with self._pid_lock:
                self._init = init
        self.ctx.runs.set_pid(self.run_id, proc.pid)
        logs.write(INFO, f"started {run.slug}: version {run.version}, pid {proc.pid}")

        rows = FencedRows(self.ctx.rows)
        ingest = RowIngestor(self.ctx.db, rows, self.run_id, batch_size=RUN_BATCH)
        try:
            reason = self._pump(proc, read_fd, ingest, logs, time.monotonic() + timeout)
            ingest.flush()
        except RunFenced:
            self._kill()
            self._reap(proc)
            raise
        if self.rejected:
            logs.write(WARN, f"{self.rejected} rows were rejected (see the errors above)")
        code, cpu = self._reap(proc)
        if sandboxed:
            code = sandbox.exit_code(code)

        if self.ctx.runs.status(self.run_id) == "aborting":
            self._finish(logs, "failed", ABORTED, cpu_seconds=cpu)
        elif reason == "abort" or (reason is None and code < 0 and self._abort.is_set()):
            # (Or killed by ``abort`` itself after the pump last looked: the streams were
            # closed already.)
            self._finish(logs, "failed", self._abort_why, cpu_seconds=cpu)
        elif reason == "timeout":
            self._finish(logs, "failed", f"timed out after {timeout} s", cpu_seconds=cpu)
        elif code == 0:
            self._finish(logs, "succeeded", None, ingest.count, cpu_seconds=cpu)
        else:
            self._finish(logs, "failed", self._exit_message(code, memory_mb), cpu_seconds=cpu)

    def _exit_message(self, code: int, memory_mb: int | None) -> str:
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:  # real-time signals have no name
                name = f"signal {-code}"
            message = f"worker was killed by {name}"
        else:
            message = f"worker exited with code {code}"
        if memory_mb and "MemoryError" in self._last_stderr:
            return f"worker ran out of memory (limit {memory_mb} MB)"
        if self._last_stderr:
            message += f": {self._last_stderr[:500]}"
        return message

    def _finish(
        self,
        logs: LogWriter,
        status: str,
        err_msg: str | None,
        results: int | None = None,
        *,
        cpu_seconds: float = 0.0,
    ) -> None:
        if err_msg:
            # PostgreSQL text cannot hold NUL (a worker's last stderr line may carry one).
            err_msg = err_msg.replace("\x00", "\N{REPLACEMENT CHARACTER}")
        try:
            if err_msg:
                logs.write(ERROR, f"run failed: {err_msg}")
            else:
                logs.write(INFO, f"run succeeded with {results} results")
            logs.close()
        except Exception:
            # The log is the lesser loss: the run must not stay ``running`` for it.
            log.exception("the last log lines of run %d could not be written", self.run_id)
        db = self.ctx.db
        with db.session() as s:
            price = s.scalar(
                select(User.price_per_cpu_second)
                .join(Run, Run.user_id == User.id)
                .where(Run.id == self.run_id)
            )
        cost = usage_of(cpu_seconds, price)
        # The cost is written with the final status, so a run is never finished unpriced.
        cost_values: dict[str, Any] = {"cpu_seconds": cpu_seconds, "usage": format(cost, "f")}
        # Success only from ``running``: an abort accepted meanwhile wins over it.
        done = self._settle(
            lambda: self.ctx.runs.transition(
                self.run_id,
                status,
                only_from=("running",) if status == "succeeded" else ("running", "aborting"),
                err_msg=err_msg,
                **cost_values,
            )
        )
        if done is None and status == "succeeded":
            done = self._settle(
                lambda: self.ctx.runs.transition(
                    self.run_id, "failed", only_from=("aborting",), err_msg=ABORTED, **cost_values
                )
            )
        # Charged only by the transition that finished the run, so never twice. A crash
        # between the two commits loses the charge: the run's usage still records it.
        if done is not None and cost > 0:
            charge(db, done.user_id, cost)

    def _settle(self, change: Callable[[], Run | None]) -> Run | None:
        """``change()``, the run's end, tried again while the database cannot take it (a full
        disk may get room back — another run's scratch files removed — and a lock held past
        the statement retries may be let go): a run left ``running`` stays so until a restart.
        """
        return self.ctx.db.retry(
            change, f"recording the end of run {self.run_id}", FINISH_ATTEMPTS, full_too=True
        )

    def _pump(
        self,
        proc: subprocess.Popen[bytes],
        channel_fd: int,
        ingest: RowIngestor,
        logs: LogWriter,
        deadline: float,
    ) -> str | None:
        """Read until every stream is closed and the process is gone; the reason the run was
        cut short, if it was. Limits are checked all along, even once the streams are closed.
        """
        assert proc.stdout is not None and proc.stderr is not None
        sel = selectors.DefaultSelector()
        channel = os.fdopen(channel_fd, "rb", buffering=0)
        # Over-long lines are cut at these sizes as they arrive: a worker writing without
        # newlines must not grow the server's memory.
        row_cap = self.ctx.settings.max_row_bytes + _ENVELOPE_BYTES
        buffers = {
            "channel": _LineBuffer(row_cap),
            "stdout": _LineBuffer(MAX_LINE_BYTES),
            "stderr": _LineBuffer(MAX_LINE_BYTES),
        }
        for name, stream in (
            ("channel", channel),
            ("stdout", proc.stdout),
            ("stderr", proc.stderr),
        ):
            sel.register(stream, selectors.EVENT_READ, name)
        reason: str | None = None
        last_flush = last_poll = time.monotonic()
        exited_at: float | None = None
        killed_at: float | None = None
        try:
            while sel.get_map() or not _exited(proc.pid):
                for key, _ in sel.select(timeout=FLUSH_SECONDS):
                    name = key.data
                    buffer = buffers[name]
                    data = os.read(key.fd, _READ)
                    if not data:
                        sel.unregister(key.fileobj)
                        lines, cut = buffer.close(), None
                    else:
                        lines, cut = buffer.feed(data)
                    self._lines(name, lines, ingest, logs)
                    if cut is not None:
                        self._overlong(name, cut, logs)
                now = time.monotonic()
                if now - last_flush >= FLUSH_SECONDS:
                    ingest.flush()
                    logs.flush()
                    last_flush = now
                if reason is None:
                    if now >= deadline:
                        reason = "timeout"
                    elif self._abort.is_set():
                        reason = "abort"
                    elif now - last_poll >= ABORT_POLL_SECONDS:
                        last_poll = now
                        status = self.ctx.runs.status(self.run_id)
                        if status == "aborting":
                            reason = "abort"
                        elif status not in ACTIVE:
                            self._kill()
                            raise RunFenced(f"run {self.run_id} is {status}")
                    if reason is not None:
                        self._kill()
                        killed_at = now
                if exited_at is None and _exited(proc.pid):
                    exited_at = now
                if (
                    exited_at is None
                    and killed_at is not None
                    and now - killed_at > EXIT_GRACE_SECONDS
                ):
                    # bwrap outlived its killed worker: it goes too (its CPU time with it).
                    self._kill(whole_group=True)
                    killed_at = None
                if exited_at is not None and now - exited_at > EXIT_GRACE_SECONDS:
                    # A left-behind grandchild holds the pipes open: the run is over anyway.
                    kill_group(proc.pid)
                    break
        finally:
            sel.close()
            channel.close()
        return reason

    def _overlong(self, name: str, head: bytes, logs: LogWriter) -> None:
        if name == "channel":
            limit = self.ctx.settings.max_row_bytes
            self._reject(logs, f"row exceeds the {limit}-byte row limit")
        else:
            mark = " … [line cut]"
            text = head.decode("utf-8", "replace")[: MAX_LINE_CHARS - len(mark)]
            logs.write(ERROR if name == "stderr" else INFO, text + mark)

    def _lines(self, name: str, lines: list[bytes], ingest: RowIngestor, logs: LogWriter) -> None:
        if name == "channel":
            limit = self.ctx.settings.max_row_bytes
            add = ingest.add
            for line in lines:
                # The hot path, inline: a row line whose text is a JSON object within the limit.
                if line[:2] == b"R " and len(line) - 2 <= limit:
                    body = line[2:]
                    try:
                        row = orjson.loads(body)
                    except orjson.JSONDecodeError:
                        row = None
                    if type(row) is dict:
                        add(body.decode(), row)
                        continue
                try:
                    self._message(line, ingest, logs)
                except (ValueError, TypeError, AttributeError) as exc:
                    # The channel is written by the worker: a garbled message is its error.
                    logs.write(ERROR, f"malformed message ignored: {exc}: {line[:80]!r}")
            return
        level = ERROR if name == "stderr" else INFO
        for line in lines:
            text = line.decode("utf-8", "replace").rstrip("\r")
            if name == "stderr" and text.strip():
                self._last_stderr = text.strip()
            logs.write(level, text)

    def _message(self, line: bytes, ingest: RowIngestor, logs: LogWriter) -> None:
        tag, body = line[:1], line[2:]
        if tag == _ROW:
            row = self._row(body, logs)
            if row is not None:
                ingest.add(body.decode(), row)
        elif tag == _UPSERT:
            try:
                message = orjson.loads(body)
                key, text = message["key"], orjson.dumps(message["row"])
            except (orjson.JSONDecodeError, KeyError, TypeError):
                self._reject(logs, 'an upsert must be {"key": ..., "row": {...}}')
                return
            row = self._row(text, logs)
            if row is not None and isinstance(key, str):
                ingest.upsert(text.decode(), row, key)
        elif tag == _HEADERS:
            headers = orjson.loads(body)
            if isinstance(headers, list) and all(
                isinstance(h, dict) and isinstance(h.get("key"), str) for h in headers
            ):
                ingest.set_headers(headers)
            else:
                logs.write(ERROR, "table headers ignored: expected a list of {key, label}")
        elif tag == _LOG:
            message = orjson.loads(body)
            level = message.get("level", INFO)
            level = level if level in (DEBUG, INFO, WARN, ERROR) else INFO
            logs.write(level, str(message.get("msg", "")))
        elif line:
            logs.write(ERROR, f"unknown message on the channel: {line[:80]!r}")

    def _row(self, text: bytes, logs: LogWriter) -> dict[str, object] | None:
        limit = self.ctx.settings.max_row_bytes
        if len(text) > limit:
            self._reject(logs, f"row of {len(text)} bytes exceeds the {limit}-byte row limit")
            return None
        try:
            row = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            self._reject(logs, f"row is not valid JSON ({exc})")
            return None
        if not isinstance(row, dict):
            self._reject(logs, f"a row must be a JSON object, not {type(row).__name__}")
            return None
        return row

    def _reject(self, logs: LogWriter, why: str) -> None:
        self.rejected += 1
        logs.write(ERROR, f"row rejected (#{self.rejected} in this run): {why}")
