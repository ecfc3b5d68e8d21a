"""Run log storage: what the worker printed and logged, kept per run and capped.

Lines are numbered densely from 0 within their run, like result rows, so the newest 1,000 are one
key-range read however long the log is.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import func, insert, select

from runyard.storage.database import Database, StorageFull
from runyard.storage.models import run_logs

DEBUG, INFO, WARN, ERROR = 1, 2, 3, 4
LEVELS = {"debug": DEBUG, "info": INFO, "warn": WARN, "warning": WARN, "error": ERROR}
LEVEL_NAMES = {DEBUG: "DEBUG", INFO: "INFO", WARN: "WARN", ERROR: "ERROR"}
#: Newest entries in ``GET .../log`` (spec §3).
TAIL = 1000
#: Longest line kept; the rest of a longer one is cut and marked.
MAX_LINE_CHARS = 8192


@dataclass(frozen=True)
class LogEntry:
    """One entry of ``GET .../log``, field for field."""

    type: int
    group: str
    content: str
    timestamp: int


def _now_ms() -> int:
    return int(time.time() * 1000)


class RunLogStore:
    """Run log lines in the metadata database: written in batches, read newest-first or whole."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def writer(self, run_id: int, max_lines: int) -> LogWriter:
        return LogWriter(self.db, run_id, max_lines)

    def tail(self, run_id: int, count: int = TAIL) -> list[LogEntry]:
        """The newest ``count`` entries, oldest first."""
        with self.db.engine.connect() as conn:
            rows = conn.execute(
                select(run_logs.c.level, run_logs.c.ts_ms, run_logs.c.content)
                .where(run_logs.c.run_id == run_id)
                .order_by(run_logs.c.seq.desc())
                .limit(count)
            ).all()
        return [LogEntry(level, "0", content, ts) for level, ts, content in reversed(rows)]

    def text(self, run_id: int, batch: int = 5000) -> Iterator[bytes]:
        """The whole log as text, one ``<ISO time> <LEVEL> <content>`` line per entry."""
        start = 0
        while True:
            with self.db.engine.connect() as conn:
                rows = conn.execute(
                    select(run_logs.c.level, run_logs.c.ts_ms, run_logs.c.content)
                    .where(run_logs.c.run_id == run_id, run_logs.c.seq >= start)
                    .order_by(run_logs.c.seq)
                    .limit(batch)
                ).all()
            if not rows:
                return
            yield "".join(
                f"{_iso(ts)} {LEVEL_NAMES.get(level, 'INFO')} {content}\n"
                for level, ts, content in rows
            ).encode()
            start += len(rows)


def _iso(ts_ms: int) -> str:
    secs, ms = divmod(ts_ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{ms:03d}Z"


class LogWriter:
    """Buffers one run's log lines and commits them in batches; thread-safe.

    Past ``max_lines`` lines are counted, not stored, so a worker flooding its output cannot fill
    the disk; ``close`` records how many were dropped.
    """

    def __init__(self, db: Database, run_id: int, max_lines: int) -> None:
        self.db = db
        self.run_id = run_id
        self.max_lines = max_lines
        self._lock = threading.Lock()
        self._pending: list[dict[str, object]] = []
        with db.engine.connect() as conn:
            self._next: int = (
                conn.scalar(
                    select(func.count()).select_from(run_logs).where(run_logs.c.run_id == run_id)
                )
                or 0
            )
        self.dropped = 0

    def write(self, level: int, content: str, ts_ms: int | None = None) -> None:
        if "\x00" in content:
            # PostgreSQL text cannot hold NUL: one such line would sink its whole batch.
            content = content.replace("\x00", "\N{REPLACEMENT CHARACTER}")
        if len(content) > MAX_LINE_CHARS:
            content = content[:MAX_LINE_CHARS] + f"… [{len(content) - MAX_LINE_CHARS} chars cut]"
        with self._lock:
            if self._next + len(self._pending) >= self.max_lines:
                self.dropped += 1
                return
            self._pending.append(
                {
                    "run_id": self.run_id,
                    "seq": self._next + len(self._pending),
                    "level": level,
                    "ts_ms": ts_ms if ts_ms is not None else _now_ms(),
                    "content": content,
                }
            )

    def flush(self) -> None:
        """Commit the buffered lines. ``StorageFull`` when the disk is too full for them
        (they stay buffered); a database busy past its retries is retried whole first."""
        with self._lock:
            if not self._pending:
                return
            self.db.check_room(sum(len(str(line["content"])) + 64 for line in self._pending))
            self._insert(self._pending)
            # Dropped only once committed: a failed write is retried by the next flush.
            self._next += len(self._pending)
            self._pending = []

    def _insert(self, lines: list[dict[str, object]]) -> None:
        def commit() -> None:
            with self.db.engine.begin() as conn:
                conn.execute(insert(run_logs), lines)

        self.db.retry(commit, f"storing log lines of run {self.run_id}")

    def close(self) -> None:
        """Flush, and say how many lines the cap dropped (that line is always kept).

        On a disk too full for the buffered lines, only the newest — the run's last word,
        such as why it failed — is written, into the room kept free for such records, and a
        line says how many others were lost.
        """
        notes: list[str] = []
        try:
            self.flush()
        except StorageFull:
            with self._lock:
                lost, self._pending = self._pending[:-1], self._pending[-1:]
            if lost:
                notes.append(f"{len(lost)} log lines were lost: the disk was full")
            with self._lock:
                self._insert([{**self._pending[0], "seq": self._next}])
                self._next += 1
                self._pending = []
        if self.dropped:
            notes.append(
                f"log limit of {self.max_lines} lines reached: "
                f"{self.dropped} later lines were dropped"
            )
        for note in notes:
            with self._lock:
                self._insert(
                    [
                        {
                            "run_id": self.run_id,
                            "seq": self._next,
                            "level": WARN,
                            "ts_ms": _now_ms(),
                            "content": note,
                        }
                    ]
                )
                self._next += 1
