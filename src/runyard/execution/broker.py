"""The Celery side of the ``celery`` executor: one app, one queue, one task carrying a run id.

A message only says "run N may be ready". The database decides everything else (the claim is a
compare-and-set there), so a message lost, duplicated or delivered again is harmless: a lost
one is sent again (``CeleryExecutor``), an extra one finds the run claimed and does nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from celery import Celery

from runyard.settings import Settings

#: The one task: execute the run whose id it carries.
TASK_NAME = "runyard.execute_run"
REJECT_PAUSE_SECONDS = 1.0


class NodeUnavailable(Exception):
    """The node cannot take a run now (it is stopping, or has lost its lease): the message
    goes back to the queue for another node."""


class RunQueue:
    def __init__(self, settings: Settings) -> None:
        self.name = settings.celery_queue
        app = Celery("runyard", broker=settings.broker_url.get_secret_value(), set_as_current=False)
        app.conf.update(
            # Acknowledged as the task starts, not when the run ends: the database owns the
            # run from its claim on, and an unacknowledged delivery held for a run's lifetime
            # would be given to another node after Redis's visibility timeout, or make
            # RabbitMQ close the channel past its consumer_timeout. A node dying between the
            # two loses only a message, which the requeue watcher (execution.celery) sends
            # again.
            task_acks_late=False,
            # One message per free slot: a busy node never sits on runs another could start.
            # With early acknowledgement the prefetch limit counts only messages not yet
            # started, so on Redis a node takes none while its slots are full (RabbitMQ
            # ignores this: there a busy node may hold one waiting message per slot).
            worker_prefetch_multiplier=1,
            worker_disable_prefetch=True,
            worker_concurrency=settings.max_concurrent_runs,
            worker_pool="threads",
            task_ignore_result=True,
            result_backend=None,
            task_serializer="json",
            accept_content=["json"],
            task_default_queue=self.name,
            broker_connection_retry_on_startup=True,
            # A broker hiccup must not kill runs: the database, not the broker, owns them.
            worker_cancel_long_running_tasks_on_connection_loss=False,
            # Nothing is broadcast to nodes (abort travels through the database).
            worker_enable_remote_control=False,
        )
        self.app: Any = app

    def send(self, run_id: int) -> None:
        self.app.send_task(TASK_NAME, args=[run_id], queue=self.name)

    def waiting(self) -> int:
        """Messages waiting in the queue (not those a node holds)."""
        with self.app.connection_for_write() as conn:
            try:
                _, count, _ = conn.default_channel.queue_declare(queue=self.name, passive=True)
            except conn.channel_errors:  # no such queue yet: nothing was ever sent
                return 0
        return int(count)

    def serve(self, execute: Callable[[int], None]) -> None:
        """Make ``execute(run_id)`` the task's body in this process (an execution node);
        not shared with other apps of the process, each of which serves its own node."""

        def execute_run(run_id: int) -> None:
            try:
                execute(run_id)
            except NodeUnavailable:
                # Back to the queue for another node (the message is acknowledged already);
                # the pause keeps a node that stays unavailable from taking it again and again.
                time.sleep(REJECT_PAUSE_SECONDS)
                self.send(run_id)

        self.app.task(name=TASK_NAME, shared=False)(execute_run)

    def close(self) -> None:
        self.app.close()
