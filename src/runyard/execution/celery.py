"""The scale-out executor of ``runyard serve``: runs are sent to a Celery queue and executed by
``runyard worker`` nodes (``execution.node``); this server executes nothing itself.

Abort needs no message: the run is ``aborting`` in the shared database, and the node executing
it looks there every second. The background thread makes the system whole again after
failures: it fails the runs of nodes whose lease ran out, and sends again the runs whose
message was lost.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Protocol

from runyard.execution.broker import RunQueue
from runyard.execution.leases import Leases

log = logging.getLogger("runyard.execution")


class QueuedRuns(Protocol):
    """What the executor records about queued runs (``services.runs.Runs``)."""

    def mark_queued(self, run_id: int, when: float) -> None: ...

    def stale_ready(self, before: float, limit: int = ...) -> list[tuple[int, float | None]]: ...

    def requeue(self, run_id: int, seen_queued_at: float | None, now: float) -> bool: ...


class CeleryExecutor:
    def __init__(
        self,
        runs: QueuedRuns,
        leases: Leases,
        queue: RunQueue,
        *,
        watch_seconds: float,
        requeue_seconds: float,
    ) -> None:
        self.runs = runs
        self.leases = leases
        self.queue = queue
        self.watch_seconds = watch_seconds
        self.requeue_seconds = requeue_seconds
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None

    def start(self) -> None:
        self._watcher = threading.Thread(target=self._watch, name="runyard-watch", daemon=True)
        self._watcher.start()

    def submit(self, run_id: int) -> None:
        # The run is committed ``ready``: whatever fails here, the watcher sends it again
        # later, and the start must not be answered with an error (a client would start it
        # again).
        try:
            self.queue.send(run_id)
            self.runs.mark_queued(run_id, time.time())
        except Exception:
            log.exception("run %d: sending it to the broker failed; it will be sent again", run_id)

    def abort(self, run_id: int) -> None:
        """Nothing to send: the node sees ``aborting`` in the database within a second."""

    def close(self) -> None:
        self._stopping.set()
        if self._watcher is not None:
            self._watcher.join(10)
        self.queue.close()

    def requeue_lost(self) -> list[int]:
        """Send again the ``ready`` runs whose message looks lost; their ids.

        Only once the queue is empty: a run waiting behind others still has its message, and
        re-sending it would only grow the backlog. A stale run with nothing waiting lost its
        message (or it sits unacknowledged with a dead node until the broker gives it back).
        """
        now = time.time()
        stale = self.runs.stale_ready(now - self.requeue_seconds)
        if not stale or self.queue.waiting():
            return []
        resend = []
        for run_id, seen in stale:
            if self.runs.requeue(run_id, seen, now):
                self.queue.send(run_id)
                resend.append(run_id)
        if resend:
            log.warning("sent %d runs again: their messages were lost", len(resend))
        return resend

    def _watch(self) -> None:
        while not self._stopping.wait(self.watch_seconds):
            for step in (self.leases.reap, self.requeue_lost):
                try:
                    step()
                except Exception:
                    log.exception("%s failed", step.__name__)
