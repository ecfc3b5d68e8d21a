"""Every service wired to one database, one row store, one file store and one executor."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from runyard.execution.base import Executor
from runyard.execution.leases import Leases
from runyard.execution.local import LocalExecutor
from runyard.execution.process import RunContext
from runyard.execution.venvs import VenvBuilder
from runyard.services.accounts import Accounts
from runyard.services.callbacks import Callbacks
from runyard.services.exports import Exports
from runyard.services.imports import Imports
from runyard.services.launcher import Launcher
from runyard.services.links import LinkSigner
from runyard.services.results import Results
from runyard.services.runlog import RunLogs
from runyard.services.runs import Runs
from runyard.services.scheduler import Scheduler
from runyard.services.tasks import Tasks
from runyard.services.workers import Workers
from runyard.settings import Settings
from runyard.storage import Database, LocalFileStore, row_store
from runyard.storage.runlog import RunLogStore


class Services:
    """Built by every entry point; only ``runyard serve`` calls ``start`` (runs, callbacks)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.db = Database(settings.resolved_database_url, pool_size=settings.database_pool_size)
        if settings.executor == "celery" and self.db.dialect != "postgresql":
            self.db.dispose()
            raise ValueError(
                "RUNYARD_EXECUTOR=celery needs PostgreSQL (RUNYARD_DATABASE_URL=postgresql://…): "
                "API servers and execution nodes on other machines cannot share SQLite"
            )
        self.db.migrate()
        self.rows = row_store(self.db.engine)
        self.files = LocalFileStore(settings.files_dir)
        self.accounts = Accounts(self.db)
        self.runs = Runs(self.db)
        self.results = Results(self.runs, self.rows)
        self.imports = Imports(self.db, self.rows, self.runs, settings.data_dir / "locks")
        self.signer = LinkSigner(settings.resolved_secret_key(), settings.link_ttl_seconds)
        self.exports = Exports(
            self.db,
            self.rows,
            self.files,
            self.runs,
            self.signer,
            threads=settings.export_threads,
        )
        self.log_store = RunLogStore(self.db)
        self.logs = RunLogs(self.log_store, self.runs, self.signer)
        self.workers = Workers(
            self.db, settings, VenvBuilder(settings.resolved_venvs_dir, settings.pip_args)
        )
        self.callbacks = Callbacks(
            self.db,
            allow_private=settings.callback_allow_private,
            max_attempts=settings.callback_max_attempts,
            backoff_seconds=settings.callback_backoff_seconds,
            timeout_seconds=settings.callback_timeout_seconds,
        )
        self.runs.on_change = self.callbacks.notify
        self.run_context = RunContext(settings, self.db, self.rows, self.runs, self.log_store)
        self.leases = Leases(self.db, self.runs, lease_seconds=settings.node_lease_seconds)
        self.executor = self._executor()
        self.launcher = Launcher(settings, self.runs, self.workers, self.accounts, self.executor)
        self.tasks = Tasks(self.db, settings, self.workers, self.launcher)
        self.scheduler = Scheduler(
            self.db,
            self.launcher,
            self.tasks,
            ZoneInfo(settings.timezone),
            poll_seconds=settings.schedule_poll_seconds,
        )
        self._started = False

    def _executor(self) -> Executor:
        settings = self.settings
        if settings.executor == "celery":
            # Imported only here: Celery is the optional ``scale`` extra.
            from runyard.execution.broker import RunQueue
            from runyard.execution.celery import CeleryExecutor

            return CeleryExecutor(
                self.runs,
                self.leases,
                RunQueue(settings),
                watch_seconds=min(settings.node_heartbeat_seconds, 5.0),
                requeue_seconds=settings.run_requeue_seconds,
            )
        return LocalExecutor(
            self.run_context,
            max_concurrent=settings.max_concurrent_runs,
            name=settings.resolved_executor_name(),
            lock_dir=settings.data_dir / "locks",
        )

    def start(self) -> None:
        """Recover runs a dead server left behind, then execute runs and send callbacks."""
        if self._started:
            return
        self.executor.start()
        self.callbacks.start()
        self.scheduler.start()
        self._started = True

    def close(self) -> None:
        if self._started:
            self.scheduler.close()
            self.executor.close()
            self.callbacks.close()
        self.exports.close()
        self.db.dispose()
