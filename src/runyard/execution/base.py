"""The executor interface: how services hand runs over to whatever executes them."""

from __future__ import annotations

from typing import Protocol


class Executor(Protocol):
    def start(self) -> None:
        """Recover what a previous life of this executor left behind, then take runs."""

    def submit(self, run_id: int) -> None:
        """A run became ``ready``; it starts when a slot is free (in creation order)."""

    def abort(self, run_id: int) -> None:
        """The run was set ``aborting``: kill its process as soon as possible."""

    def close(self) -> None:
        """Stop taking runs and end the ones running here."""
