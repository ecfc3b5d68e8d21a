"""An execution node (``runyard worker``): executes the runs its Celery tasks name, exactly as
the local executor does, while holding a lease on them.

The node's heartbeat thread keeps its lease, reaps the runs of nodes that lost theirs, and stops
its own runs when it cannot tell whether it still holds its lease: a node cut off from the
database for longer than the lease has been declared dead by others, and its runs failed. It
also fails the runs the node owns but no longer executes (a thread that ended on a database
error without finishing its run): a live node's runs are nobody else's to fail.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import threading
import time

from sqlalchemy import select

from runyard.execution import sandbox
from runyard.execution.base import ACTIVE
from runyard.execution.broker import NodeUnavailable
from runyard.execution.leases import Leases, Membership, NodeTaken
from runyard.execution.process import RunContext, RunProcess, fail_leftovers
from runyard.storage import Run

log = logging.getLogger("runyard.execution")


class ExecutionNode:
    def __init__(
        self,
        ctx: RunContext,
        leases: Leases,
        *,
        name: str,
        slots: int,
        heartbeat_seconds: float,
    ) -> None:
        self.ctx = ctx
        self.leases = leases
        self.name = name
        self.slots = slots
        self.heartbeat_seconds = heartbeat_seconds
        self.member: Membership | None = None
        self._active: dict[int, RunProcess] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._closed = threading.Event()
        #: Set while the lease is in doubt: no new run is taken.
        self._lease_lost = threading.Event()
        self._heart: threading.Thread | None = None

    def start(self) -> None:
        """Join (``NodeTaken`` if a live node has this name), kill what a previous life of
        this node left running on this host and fail its runs, then keep the lease.
        ``SandboxUnavailable`` first if the worker sandbox cannot run here."""
        sandbox.check(self.ctx.settings)
        leftovers = self.ctx.runs.owned_by(self.name, ACTIVE)
        self.member = self.leases.join(self.name, self.slots)
        # Their own processes died with their parent (runtime/bootstrap.py), not always their
        # children. ``join`` failed the runs if it found the previous life's row; without one
        # (it was reaped, or left) nobody else would.
        fail_leftovers(self.ctx, leftovers, self.name, f"execution node {self.name} restarted")
        self._remove_scratch()
        self._heart = threading.Thread(target=self._keep_lease, name="runyard-heartbeat")
        self._heart.daemon = True
        self._heart.start()

    def _remove_scratch(self) -> None:
        """Remove the scratch directories a previous life left (its runs were failed while
        it was dead), keeping those of runs another node on this data directory executes."""
        runs_dir = self.ctx.settings.runs_dir
        if not runs_dir.is_dir():
            return
        # Not a dot-named one: another node's start-up probe (sandbox.check) may be using it.
        slugs = [entry.name for entry in runs_dir.iterdir() if not entry.name.startswith(".")]
        with self.ctx.db.session() as s:
            elsewhere = set(
                s.scalars(
                    select(Run.slug).where(
                        Run.slug.in_(slugs), Run.status.in_(ACTIVE), Run.executor != self.name
                    )
                )
            )
        for slug in slugs:
            if slug not in elsewhere:
                shutil.rmtree(runs_dir / slug, ignore_errors=True)

    def execute(self, run_id: int) -> None:
        """The task's body: claim the run (a compare-and-set; if another delivery or node got
        it, or it was aborted or finished, do nothing) and execute it here.

        ``NodeUnavailable`` (the message goes back to the queue) while the node stops or its
        lease is in doubt or gone."""
        proc = RunProcess(self.ctx, run_id)
        member = self.member
        assert member is not None, "the node was not started"
        with self._lock:
            if self._stopping.is_set() or self._lease_lost.is_set():
                raise NodeUnavailable(self.name)
            if run_id in self._active:
                return  # a duplicate message, delivered while this node executes the run
            # Before the claim: a run this node owns but does not hold here is one whose
            # execution here is over (``_fail_lost_runs``).
            self._active[run_id] = proc
        claimed = False
        try:
            # Only while this life's row is there: a reaped node claiming a run and dying
            # before its next heartbeat would leave it ``running`` for nobody to fail.
            claimed = self.ctx.runs.claim(run_id, self.name, only_if=self.leases.holds(member))
            if not claimed:
                if self.ctx.runs.status(run_id) == "ready":
                    # Nobody took it: this life's lease is gone. Back to the queue; the
                    # heartbeat finds out and registers again.
                    raise NodeUnavailable(self.name)
                log.info("run %d is not ready (taken, aborted or finished): skipped", run_id)
                return
            proc.execute()
        finally:
            try:
                if claimed:
                    # Normally finished by now; not if its thread failed on the way (the
                    # database was away): then now, or by the heartbeat once it is back.
                    self._fail_unfinished(run_id)
            finally:
                with self._lock:
                    self._active.pop(run_id, None)

    def _lost(self) -> str:
        return f"execution node {self.name} lost track of the run"

    def _fail_unfinished(self, run_id: int) -> None:
        try:
            with self.ctx.db.session() as s:
                run = s.get(Run, run_id)
            if run is not None and run.status in ACTIVE and run.executor == self.name:
                log.error("run %s was left %s by its thread", run.slug, run.status)
                fail_leftovers(self.ctx, [run], self.name, self._lost())
        except Exception:
            log.warning("run %d may be left unfinished: the heartbeat will retry", run_id)

    def _fail_lost_runs(self) -> None:
        """Fail the runs this node owns but no longer executes (their thread ended without
        finishing them)."""
        owned = self.ctx.runs.owned_by(self.name, ACTIVE)  # first: see ``execute``
        with self._lock:
            here = set(self._active)
        lost = [run for run in owned if run.id not in here]
        if lost:
            log.error("execution node %s lost track of %d runs: failed", self.name, len(lost))
            fail_leftovers(self.ctx, lost, self.name, self._lost())

    def stop_runs(self, why: str) -> None:
        """Kill every run executing here; each fails with ``why`` (unless it was finished
        elsewhere). Never blocks for long: it is called from a signal handler too."""
        with self._lock:
            procs = list(self._active.values())
        for proc in procs:
            # Kills its process group at once: its thread may be stuck in a database call.
            proc.abort(why)

    def stopping(self) -> None:
        """The node is shutting down: take no more runs, end those running."""
        self._stopping.set()
        self.stop_runs(f"execution node {self.name} stopped")

    def close(self, wait_seconds: float = 30) -> None:
        """After the Celery worker has stopped: end what is left, and leave."""
        self.stopping()
        deadline = time.monotonic() + wait_seconds
        while self.running() and time.monotonic() < deadline:
            time.sleep(0.1)
        self._closed.set()
        if self._heart is not None:
            self._heart.join(10)
        if self.member is not None:
            # A run whose thread could not finish it (the database was away) is failed now.
            self.leases.leave(self.member, f"execution node {self.name} stopped")

    def running(self) -> list[int]:
        with self._lock:
            return list(self._active)

    def _keep_lease(self) -> None:
        last_beat = time.monotonic()
        lease = self.leases.lease_seconds
        while not self._closed.wait(self.heartbeat_seconds):
            assert self.member is not None
            try:
                alive: bool | None = self.leases.beat(self.member)
            except Exception:
                log.warning("execution node %s could not write its heartbeat", self.name)
                alive = None
            now = time.monotonic()
            if alive:
                last_beat = now
                self._lease_lost.clear()
                try:
                    self._fail_lost_runs()
                except Exception:
                    log.warning("execution node %s could not check its runs", self.name)
            elif alive is False:
                self._rejoin()
                last_beat = time.monotonic()
            elif now - last_beat > lease:
                # Others have declared this node dead and failed its runs by now: they must
                # not go on here.
                self._lease_lost.set()
                self.stop_runs(
                    f"execution node {self.name} lost its lease (no heartbeat written for "
                    f"{now - last_beat:.0f} s)"
                )
            try:
                self.leases.reap()
            except Exception:
                log.warning("reaping silent execution nodes failed", exc_info=True)

    def _rejoin(self) -> None:
        """This life of the node was declared dead: its runs were failed; stop them and come
        back as a new life, unless another node took the name meanwhile."""
        log.error("execution node %s was declared dead: its runs were failed", self.name)
        self._lease_lost.set()
        self.stop_runs(f"execution node {self.name} was declared dead")
        try:
            self.member = self.leases.join(self.name, self.slots)
        except NodeTaken as exc:
            # Two nodes sharing a name could not tell their runs apart: this one goes.
            log.error("execution node %s cannot come back, stopping: %s", self.name, exc)
            os.kill(os.getpid(), signal.SIGTERM)
            return
        except Exception:
            log.warning("execution node %s could not register again", self.name, exc_info=True)
            return
        self._lease_lost.clear()
