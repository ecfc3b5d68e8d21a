"""Waiting for a run, and following its log: what ``run``, ``runs rerun``, ``tasks run`` and
``runs log --follow`` share."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import typer
from rich.live import Live
from rich.spinner import Spinner

from runyard.cli import render
from runyard.cli.app import emit, err
from runyard.client import Client, LogEntry, Run

Wait = Annotated[
    bool, typer.Option("--wait", help="Wait for the run to finish; exit 1 if it failed.")
]
Follow = Annotated[
    bool,
    typer.Option("--follow", "-f", help="Like --wait, printing the run's log as it grows."),
]
Timeout = Annotated[
    float | None,
    typer.Option(
        "--timeout",
        metavar="SECONDS",
        help="With --wait or --follow: stop waiting after this long (the run goes on).",
        show_default=False,
    ),
]

LogKey = tuple[int, int, str]


class LogTail:
    """Prints each log entry once, polling after polling.

    ``GET …/log`` returns the newest ``cap`` (1,000) entries, oldest first. Until a reply is
    full it starts at the log's first entry, so what is new is what lies past the previous
    reply. Once replies are full the window slides: the entries already printed are the
    longest start of the new reply that equals the end of the previous one (lines logged in
    between beyond the window are missed; ``runs log --all`` has them all).
    """

    def __init__(
        self, client: Client, run: str, write: Callable[[LogEntry], None], cap: int = 1000
    ) -> None:
        self.client = client
        self.run = run
        self.write = write
        self.cap = cap
        self.printed: list[LogKey] = []  # the previous reply, every entry of it printed

    def poll(self) -> None:
        entries = self.client.get_log(self.run).entries
        keys = [(e.timestamp, e.type, e.content) for e in entries]
        for entry in entries[self._overlap(keys) :]:
            self.write(entry)
        self.printed = keys

    def _overlap(self, keys: list[LogKey]) -> int:
        if len(keys) < self.cap:
            return min(len(self.printed), len(keys))
        if not self.printed:
            return 0
        last = self.printed[-1]
        for k in range(min(len(keys), len(self.printed)), 0, -1):
            if keys[k - 1] == last and keys[:k] == self.printed[-k:]:
                return k
        return 0


def wait_for(client: Client, run: str, *, follow: bool, timeout: float | None) -> Run:
    """Wait for ``run`` (an id) under a spinner showing its status and rows; with ``follow``
    its log lines scroll above the spinner, on stderr. Ctrl-C stops waiting, not the run."""
    spinner = Spinner("dots", "waiting…")
    tail = LogTail(client, run, lambda e: err.print(render.log_line(e), markup=False, emoji=False))
    # The spinner must not capture stdout: scripts read the run id there.
    live = Live(spinner, console=err, transient=True, redirect_stdout=False, redirect_stderr=False)

    def on_poll(record: Run) -> None:
        if follow:
            tail.poll()
        spinner.update(text=render.progress(record))

    try:
        with live:
            # Following polls often: each poll is also the next look at the log.
            interval = 1.0 if follow else 5.0
            return client.wait(run, timeout=timeout, on_poll=on_poll, max_interval=interval)
    except KeyboardInterrupt:
        err.print(
            f"stopped waiting; run {run} goes on (`runyard runs abort {run}` stops it)",
            markup=False,
        )
        raise typer.Exit(130) from None


def conclude(run: Run) -> None:
    """The one-line summary on stderr; exit code 1 unless the run succeeded."""
    err.print(render.summary(run))
    if run.status != "succeeded":
        raise typer.Exit(1)


def started(client: Client, run: str, *, wait: bool, follow: bool, timeout: float | None) -> None:
    """A run was just started: its id alone on stdout, then wait or follow if asked."""
    emit(run)
    if wait or follow:
        conclude(wait_for(client, run, follow=follow, timeout=timeout))
    elif timeout is not None:
        err.print("note: --timeout applies only with --wait or --follow")


def follow_log(client: Client, run: str, write: Callable[[LogEntry], None]) -> Run:
    """Print ``run``'s log as it grows until the run finishes (no spinner: lines go to
    stdout, and a spinner on the same screen would tear them)."""
    tail = LogTail(client, run, write)
    try:
        return client.wait(run, on_poll=lambda _: tail.poll(), max_interval=1.0)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
