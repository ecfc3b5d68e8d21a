"""Starting, aborting and rerunning runs: the use cases between the API and an executor."""

from __future__ import annotations

from typing import Any

import orjson

from runyard.execution.base import ABORTED, Executor
from runyard.services.accounts import Accounts
from runyard.services.callbacks import check_callback_url, status_payload
from runyard.services.errors import InvalidInput, WrongState
from runyard.services.inputs import validate_run_input
from runyard.services.runs import FINISHED, Runs
from runyard.services.workers import Workers
from runyard.settings import Settings
from runyard.storage import Run


class Launcher:
    def __init__(
        self,
        settings: Settings,
        runs: Runs,
        workers: Workers,
        accounts: Accounts,
        executor: Executor,
    ) -> None:
        self.settings = settings
        self.runs = runs
        self.workers = workers
        self.accounts = accounts
        self.executor = executor

    def _check_callback(self, url: str | None) -> None:
        if url is not None:
            check_callback_url(url, allow_private=self.settings.callback_allow_private)

    def start(
        self,
        user_id: int,
        worker_id: str,
        *,
        input: dict[str, Any] | None,
        version: str | None = None,
        callback_url: str | None = None,
        origin: str = "openapi",
        task_id: int | None = None,
    ) -> tuple[int, str]:
        """Validate and queue a run of ``worker_id``; ``(run id, run slug)``."""
        found = self.workers.version(user_id, worker_id, version)
        run_input = validate_run_input(
            input,
            orjson.loads(found.input_schema),
            default_timeout=self.settings.run_timeout_seconds,
            proxy_regions=self.settings.proxies.keys(),
        )
        self._check_callback(callback_url)
        try:
            custom = orjson.dumps(run_input.custom).decode()
        except orjson.JSONEncodeError:
            raise InvalidInput(
                "invalid input", ["parameters.custom: holds a number beyond 64 bits"]
            ) from None
        system = orjson.dumps(run_input.system).decode()
        return self._queue(
            user_id, found.worker_id, found.version, custom, system, callback_url, origin, task_id
        )

    def rerun(
        self,
        user_id: int,
        run_slug: str,
        worker_id: str | None = None,
        *,
        callback_url: str | None = None,
        origin: str = "openapi",
    ) -> tuple[int, str]:
        """A new run of the same worker, version and input as the named one."""
        run, _ = self.runs.find(user_id, run_slug, worker_id)
        # Refused if the version is gone or the worker is no longer the caller's or public.
        self.workers.version_for_rerun(user_id, run.worker_id, run.version)
        self._check_callback(callback_url)
        return self._queue(
            user_id, run.worker_id, run.version, run.input, run.system, callback_url, origin
        )

    def _queue(
        self,
        user_id: int,
        worker_id: int,
        version: str,
        input: str,
        system: str,
        callback_url: str | None,
        origin: str,
        task_id: int | None = None,
    ) -> tuple[int, str]:
        run_id, slug = self.runs.create(
            user_id,
            worker_id,
            version=version,
            origin=origin,
            status="ready",
            input=input,
            system=system,
            callback_url=callback_url,
            task_id=task_id,
            # Last of the checks, so a caller out of credit still learns what is wrong with a
            # request; nothing is created when it refuses.
            admit=self.accounts.admit_run,
        )
        self.executor.submit(run_id)
        return run_id, slug

    def abort(self, user_id: int, run_slug: str, worker_id: str | None = None) -> None:
        """``ready`` fails at once; ``running`` becomes ``aborting`` until its process is gone."""
        run, _ = self.runs.find(user_id, run_slug, worker_id)
        if self.runs.transition(run.id, "failed", only_from=("ready",), err_msg=ABORTED):
            return
        if self.runs.transition(run.id, "aborting", only_from=("running",)):
            self.executor.abort(run.id)
            return
        if self.runs.status(run.id) != "aborting":
            raise WrongState("the run has already finished")

    def outcome(self, run_id: int) -> tuple[bool, dict[str, Any]]:
        """Whether the run is over, and the status fields of a synchronous reply."""
        with self.runs.db.session() as s:
            run = s.get(Run, run_id)
            assert run is not None
        payload = status_payload(run)
        payload.pop("result_count", None)
        return run.status in FINISHED, payload
