"""How records look on a terminal: Rich tables and one-line summaries.

Every value from a server goes in as ``Text``, never as markup: rows hold brackets and colons.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from rich.cells import cell_len
from rich.console import Group, RenderableType
from rich.markdown import Markdown
from rich.table import Table
from rich.text import Text

from runyard.client import Header, LogEntry, ResultPage, Run, Task, WorkerDetail, WorkerSummary

STATUS_STYLES = {"succeeded": "green", "failed": "red", "running": "yellow", "aborting": "yellow"}
SCHEDULES = {1: "daily", 2: "weekly", 3: "monthly", 4: "once"}
WEEKDAYS = {1: "Mon", 2: "Tue", 3: "Wed", 4: "Thu", 5: "Fri", 6: "Sat", 7: "Sun"}
#: Widest a results column gets before its cells are cut with an ellipsis.
MAX_CELL_WIDTH = 60
#: Narrowest a results column is squeezed to on a terminal before columns are left out.
MIN_CELL_WIDTH = 12


def when(ts: int) -> str:
    """Unix seconds as UTC date and time; empty for 0 (not yet)."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S") if ts else ""


def duration(seconds: int) -> str:
    minutes, secs = divmod(max(seconds, 0), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"


def cell(value: Any) -> str:
    """A row value as table text: nested values as compact JSON, null as nothing."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def window(noun: str, offset: int, shown: int, count: int) -> str:
    """``rows 1-20 of 1,234`` (with an en dash): which part of a list a page shows."""
    if count == 0:
        return f"no {noun}"
    if shown == 0:
        return f"no {noun} from {offset + 1:,} on ({count:,} in all)"
    return f"{noun} {offset + 1:,}–{offset + shown:,} of {count:,}"


def status(run_status: str) -> Text:
    return Text(run_status, style=STATUS_STYLES.get(run_status, ""))


def _fields(pairs: list[tuple[str, str | Text]]) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    for name, value in pairs:
        grid.add_row(name, value if isinstance(value, Text) else Text(value))
    return grid


# Runs


def runs_table(runs: list[Run], caption: str) -> Table:
    table = Table(caption=caption)
    table.add_column("run", no_wrap=True)
    table.add_column("worker")
    table.add_column("status", no_wrap=True)
    table.add_column("rows", justify="right", no_wrap=True)
    table.add_column("started (UTC)")
    table.add_column("duration", justify="right", no_wrap=True)
    for run in runs:
        table.add_row(
            Text(run.slug),
            Text(run.scraper_slug),
            status(run.status),
            f"{run.results:,}",
            when(run.started_at),
            duration(run.duration),
        )
    return table


def run_fields(run: Run) -> Table:
    pairs: list[tuple[str, str | Text]] = [
        ("run", run.slug),
        ("worker", f"{run.scraper_slug} ({run.scraper_title})" if run.scraper_title else ""),
        ("version", run.version),
        ("status", status(run.status)),
        ("rows", f"{run.results:,}"),
        ("started (UTC)", when(run.started_at)),
        ("finished (UTC)", when(run.finished_at)),
        ("duration", duration(run.duration)),
        ("usage", run.usage),
        ("traffic", f"{run.traffic:,} bytes"),
        ("origin", run.origin),
    ]
    if run.err_msg:
        pairs.append(("error", Text(run.err_msg, style="red")))
    return _fields(pairs)


def progress(run: Run) -> Text:
    """The live line while waiting: ``running · 1,234 rows · 12s``."""
    return Text.assemble(
        status(run.status),
        f" · {run.results:,} rows · {duration(run.duration)}  ",
        (run.slug, "dim"),
    )


def summary(run: Run) -> Text:
    """The line after waiting: status, rows, duration and, for a failed run, why."""
    text = Text.assemble(
        f"run {run.slug} ",
        status(run.status),
        f": {run.results:,} rows in {duration(run.duration)}",
    )
    if run.err_msg:
        text.append(f": {run.err_msg}", style="red")
    return text


def log_line(entry: LogEntry) -> str:
    """A log entry as the whole-log download writes it: ``<ISO time> <LEVEL> <content>``."""
    secs, ms = divmod(entry.timestamp, 1000)
    stamp = datetime.fromtimestamp(secs, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{ms:03d}Z {entry.level} {entry.content}"


# Results


def results_table(page: ResultPage, offset: int, width: int | None = None) -> Table:
    """The page's rows under the run's headers, in order, labels as titles.

    Within ``width`` (a terminal's) the widest columns are narrowed first, down to
    MIN_CELL_WIDTH; the columns that still do not fit are left out, and the caption says so.
    """
    columns = _layout(page, width)
    caption = window("rows", offset, len(page.rows), page.count)
    hidden = len(page.headers) - len(columns)
    if hidden:
        caption += f" · {hidden} more columns do not fit: see --json"
    table = Table(caption=caption)
    for header, column_width in columns:
        table.add_column(
            Text(header.label or header.key),
            width=column_width,
            overflow="ellipsis",
            no_wrap=True,
        )
    for row in page.rows:
        table.add_row(*(Text(cell(row.get(h.key))) for h, _ in columns))
    return table


def _layout(page: ResultPage, width: int | None) -> list[tuple[Header, int]]:
    """The headers to show and the width of each column's text."""
    natural = [
        min(
            MAX_CELL_WIDTH,
            max(cell_len(t) for t in [h.label or h.key, *(cell(r.get(h.key)) for r in page.rows)]),
        )
        for h in page.headers
    ]
    if width is None:
        return list(zip(page.headers, natural, strict=True))
    # Each column costs its text, two spaces of padding and a border; the table one more border.
    used, count = 1, 0
    for n in natural:
        used += min(n, MIN_CELL_WIDTH) + 3
        if used > width and count:
            break
        count += 1
    kept = natural[:count]
    budget = width - 1 - 3 * count
    cap = max(kept, default=0)
    while cap > MIN_CELL_WIDTH and sum(min(n, cap) for n in kept) > budget:
        cap -= 1  # narrow the widest columns first
    return [(h, min(n, cap)) for h, n in zip(page.headers, kept, strict=False)]


# Workers


def workers_table(workers: list[WorkerSummary], caption: str) -> Table:
    table = Table(caption=caption)
    table.add_column("worker", no_wrap=True)
    table.add_column("title")
    table.add_column("owner")
    table.add_column("description", overflow="ellipsis")
    for w in workers:
        table.add_row(Text(w.slug), Text(w.title), Text(w.username), Text(w.description))
    return table


def worker_detail(worker: WorkerDetail) -> RenderableType:
    """Title, version and owner, the input fields as a table, then the readme."""
    parts: list[RenderableType] = [
        _fields(
            [
                ("worker", worker.slug),
                ("title", worker.title),
                ("version", worker.version),
                ("owner", worker.username),
            ]
        ),
        Text(),
    ]
    properties = worker.parameters.custom.get("properties") or []
    fields = Table(title="input fields", title_justify="left")
    for name in ("name", "title", "type", "required", "default", "description"):
        fields.add_column(name, overflow="fold")
    for prop in properties:
        if isinstance(prop, dict):
            fields.add_row(
                *(
                    Text(cell(prop.get(k)))
                    for k in ("name", "title", "type", "required", "default", "description")
                )
            )
    parts.append(fields if properties else Text("no input fields"))
    if worker.readme.strip():
        parts += [Text(), Markdown(worker.readme)]
    return Group(*parts)


# Tasks


def schedule(task: Task) -> str:
    """``daily at 09:00``, ``weekly on Mon at 09:00``…; ``(off)`` when disabled."""
    kind = SCHEDULES.get(task.schedule_type)
    if kind is None:
        return ""
    at = f" at {task.schedule_time}" if task.schedule_time else ""
    if kind == "weekly":
        text = f"weekly on {WEEKDAYS.get(task.schedule_weekday, '?')}{at}"
    elif kind == "monthly":
        text = f"monthly on day {task.schedule_day}{at}"
    elif kind == "once":
        text = f"once on {task.schedule_once_date}{at}"
    else:
        text = f"daily{at}"
    return text if task.schedule_enabled else f"{text} (off)"


def tasks_table(tasks: list[Task], caption: str) -> Table:
    table = Table(caption=caption)
    table.add_column("task", no_wrap=True)
    table.add_column("title")
    table.add_column("worker")
    table.add_column("schedule")
    table.add_column("runs", justify="right")
    table.add_column("last run", no_wrap=True)
    for t in tasks:
        table.add_row(
            Text(t.slug),
            Text(t.title),
            Text(t.worker_slug),
            schedule(t),
            f"{t.run_times:,}",
            Text(t.last_run_id),
        )
    return table


def task_detail(task: Task) -> RenderableType:
    """The task's record, then its input as JSON."""
    pairs: list[tuple[str, str | Text]] = [
        ("task", task.slug),
        ("title", task.title),
        ("description", task.description),
        ("worker", task.worker_path or task.worker_slug),
        ("version", task.version),
        ("schedule", schedule(task) or "none"),
        ("runs", f"{task.run_times:,}"),
        ("last run", task.last_run_id),
        ("created (UTC)", when(task.created_at)),
        ("updated (UTC)", when(task.updated_at)),
    ]
    text = json.dumps(task.input, ensure_ascii=False, indent=2)
    return Group(_fields(pairs), Text(), Text("input", style="bold"), Text(text))
