"""The executor interface: how services hand runs over to whatever executes them."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, Protocol

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


class RunStates(Protocol):
    """The run records an executor reads and moves (``services.runs.Runs``)."""

    def claim_next(self, executor: str) -> int | None: ...

    def owned_by(self, executor: str, statuses: Collection[str]) -> list[Run]: ...

    def status(self, run_id: int) -> str | None: ...

    def set_pid(self, run_id: int, pid: int | None) -> None: ...

    def transition(
        self, run_id: int, status: str, *, only_from: Collection[str] = (), **values: Any
    ) -> Run | None: ...
