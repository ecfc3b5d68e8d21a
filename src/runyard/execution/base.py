"""The executor interface: how services hand runs over to whatever executes them."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, Protocol

from sqlalchemy import ColumnElement
from sqlalchemy.orm import Session

from runyard.storage import Run


class Executor(Protocol):
    def start(self) -> None:
        """Recover what a previous life of this executor left behind, then take runs."""

    def submit(self, run_id: int) -> None:
        """A run became ``ready``; it starts when a slot is free (in creation order)."""

    def abort(self, run_id: int) -> None:
        """The run was set ``aborting``: kill its process as soon as possible."""

    def close(self) -> None:
        """Stop taking runs and end the ones running here."""


#: ``err_msg`` of a run that was aborted.
ABORTED = "aborted by user"
#: The statuses of a run whose process may go on: in any other, it must stop at once.
ACTIVE = ("running", "aborting")


class RunStates(Protocol):
    """The run records an executor reads and moves (``services.runs.Runs``)."""

    def claim(
        self, run_id: int, executor: str, *, only_if: ColumnElement[bool] | None = None
    ) -> bool: ...

    def claim_next(self, executor: str) -> int | None: ...

    def owned_by(self, executor: str, statuses: Collection[str]) -> list[Run]: ...

    def status(self, run_id: int) -> str | None: ...

    def set_pid(self, run_id: int, pid: int | None) -> None: ...

    def transition(
        self,
        run_id: int,
        status: str,
        *,
        only_from: Collection[str] = (),
        only_if: ColumnElement[bool] | None = None,
        **values: Any,
    ) -> Run | None: ...

    def fail_owned(
        self,
        executor: str,
        statuses: Collection[str],
        err_msg: str,
        *,
        only_if: ColumnElement[bool] | None = None,
        session: Session | None = None,
    ) -> list[int]: ...
