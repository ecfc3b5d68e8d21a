"""The embedded executor: runs execute as child processes of ``runyard serve``."""

from __future__ import annotations

import fcntl
import logging
import shutil
import threading
from pathlib import Path
from typing import IO

from runyard.execution import sandbox
from runyard.execution.base import ABORTED, ACTIVE
from runyard.execution.process import RunContext, RunProcess, fail_leftovers, kill_runs
from runyard.storage import Run

log = logging.getLogger("runyard.execution")


class ExecutorBusy(RuntimeError):
    """Another live process is this executor."""


#: A dispatcher that missed a wake-up (another server made the run) still looks this often.
POLL_SECONDS = 1.0


class LocalExecutor:
    """At most ``max_concurrent`` runs at once; the rest wait as ``ready``, oldest first."""

    def __init__(self, ctx: RunContext, *, max_concurrent: int, name: str, lock_dir: Path) -> None:
        self.ctx = ctx
        self.lock_path = lock_dir / f"executor-{name}.lock"
        self._lock_file: IO[bytes] | None = None
        self.max_concurrent = max_concurrent
        self.name = name
        self._active: dict[int, RunProcess] = {}
        self._threads: dict[int, threading.Thread] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._dispatcher: threading.Thread | None = None

    def start(self) -> None:
        """Take this executor's lock, recover its orphans, then take runs.

        The lock makes a second ``runyard serve`` on the same data directory refuse to start
        instead of failing (and killing) the first one's runs as orphans. Refuses to start
        (``SandboxUnavailable``) if the worker sandbox cannot run here.
        """
        sandbox.check(self.ctx.settings)
        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        lock_file = open(self.lock_path, "wb")  # noqa: SIM115 -- held for the executor's life
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock_file.close()
            raise ExecutorBusy(
                f"another runyard serve is already executing runs as {self.name!r} from this "
                "data directory"
            ) from None
        self._lock_file = lock_file
        self.recover()
        self._dispatcher = threading.Thread(
            target=self._dispatch, name="runyard-dispatcher", daemon=True
        )
        self._dispatcher.start()

    def recover(self) -> int:
        """Fail the runs a dead life of this executor left ``running``; their rows stay."""
        orphans = self.ctx.runs.owned_by(self.name, ("running", "aborting"))
        # By their environment, not their stored pid: that process died with the server
        # (runtime/bootstrap.py), its children did not; the pid may never have been stored.
        kill_runs([run.slug for run in orphans])
        for run in orphans:
            err = ABORTED if run.status == "aborting" else "server restarted"
            self.ctx.runs.transition(
                run.id, "failed", only_from=("running", "aborting"), err_msg=err
            )
            shutil.rmtree(self.ctx.settings.runs_dir / run.slug, ignore_errors=True)
            log.warning("run %s was left %s by a previous server: failed", run.slug, run.status)
        return len(orphans)

    def submit(self, run_id: int) -> None:
        self._wake.set()

    def abort(self, run_id: int) -> None:
        with self._lock:
            proc = self._active.get(run_id)
        if proc is not None:
            proc.abort()

    def close(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._dispatcher is not None:
            self._dispatcher.join(10)
        with self._lock:
            procs = list(self._active.values())
            threads = list(self._threads.values())
        for proc in procs:
            proc.abort("server stopped")
        for thread in threads:
            thread.join(30)
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    def _fail_unfinished(self, run_id: int) -> None:
        """Fail the run if its thread ended without finishing it (the database was away)."""
        with self.ctx.db.session() as s:
            run = s.get(Run, run_id)
        if run is not None and run.status in ACTIVE and run.executor == self.name:
            log.error("run %s was left %s by its thread", run.slug, run.status)
            fail_leftovers(self.ctx, [run], self.name, "the server lost track of the run")

    def _dispatch(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                self._fill_slots()
            except Exception:
                log.exception("starting runs failed")
            self._wake.wait(POLL_SECONDS)

    def _fill_slots(self) -> None:
        while not self._stopping.is_set():
            with self._lock:
                if len(self._active) >= self.max_concurrent:
                    return
            run_id = self.ctx.runs.claim_next(self.name)
            if run_id is None:
                return
            proc = RunProcess(self.ctx, run_id)
            thread = threading.Thread(
                target=self._execute, args=(proc,), name=f"runyard-run-{run_id}", daemon=True
            )
            with self._lock:
                self._active[run_id] = proc
                self._threads[run_id] = thread
            thread.start()

    def _execute(self, proc: RunProcess) -> None:
        try:
            proc.execute()
        finally:
            try:
                self._fail_unfinished(proc.run_id)
            except Exception:
                log.warning("run %d may be left unfinished until a restart", proc.run_id)
            with self._lock:
                self._active.pop(proc.run_id, None)
                self._threads.pop(proc.run_id, None)
            self._wake.set()
