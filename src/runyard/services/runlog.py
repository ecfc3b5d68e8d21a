"""Run logs for the API: the newest entries, and a signed link to the whole log."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from runyard.services.links import LinkSigner
from runyard.services.runs import Runs
from runyard.storage.runlog import TAIL, LogEntry, RunLogStore

#: Download links to a whole log are file links named ``log-<run slug>``.
LINK_PREFIX = "log-"


@dataclass(frozen=True)
class LogView:
    """``GET .../log`` (spec §3), field for field."""

    all_logs_url: str
    list: list[LogEntry]
    result_count: int


class RunLogs:
    def __init__(self, store: RunLogStore, runs: Runs, signer: LinkSigner) -> None:
        self.store = store
        self.runs = runs
        self.signer = signer

    def view(
        self,
        user_id: int,
        run_slug: str,
        worker_id: str | None,
        base_url: str,
        *,
        count: int = TAIL,
    ) -> LogView:
        """The newest ``count`` entries and a signed link to the whole log."""
        run, worker = self.runs.find(user_id, run_slug, worker_id)
        url = self.signer.url(
            base_url,
            LINK_PREFIX + run.slug,
            f"{worker.slug}_{run.slug}.log",
            expires=self.signer.expiry(),
        )
        return LogView(
            all_logs_url=url, list=self.store.tail(run.id, count), result_count=run.results
        )

    def download(self, name: str, filename: str, expires: int, signature: str) -> Iterator[bytes]:
        """The whole log behind a signed link (checked first: a bad link is NotFound)."""
        self.signer.verify(name, filename, expires, signature)
        run_id = self.runs.id_of(name.removeprefix(LINK_PREFIX))
        return self.store.text(run_id)
