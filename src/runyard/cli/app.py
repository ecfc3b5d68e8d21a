"""The Typer apps, the two consoles, and the ways a command ends or prints for scripts."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import typer
from pydantic import BaseModel
from rich.console import Console, RenderableType
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from runyard.cli.render import window
from runyard.client import Page

M = TypeVar("M", bound=BaseModel)

app = typer.Typer(
    name="runyard",
    help="Runyard: run workers, keep every result row, page and export them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
users_app = typer.Typer(help="Manage users (local data directory).", no_args_is_help=True)
keys_app = typer.Typer(help="Manage API keys (local data directory).", no_args_is_help=True)
runs_app = typer.Typer(help="List, inspect, abort and rerun runs.", no_args_is_help=True)
workers_app = typer.Typer(help="List, inspect and upload workers.", no_args_is_help=True)
tasks_app = typer.Typer(help="Saved tasks: a worker, an input, a schedule.", no_args_is_help=True)
app.add_typer(runs_app, name="runs")
app.add_typer(workers_app, name="workers")
app.add_typer(tasks_app, name="tasks")
app.add_typer(users_app, name="users")
app.add_typer(keys_app, name="keys")

#: Results for scripts and people (tables, slugs, JSON) go to ``out``; messages to ``err``.
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def fail(message: str, prefix: str = "error") -> NoReturn:
    """One line on stderr, ``<prefix>: <message>``, and exit code 1."""
    # A Text, not markup: messages quote user data and server replies, brackets included.
    err.print(Text.assemble((prefix, "red"), ": ", message))
    raise typer.Exit(1)


def show(table: Table) -> None:
    """A table on stdout: fitted to a terminal's width, and at its natural width in a pipe or
    file, where nothing wraps lines and a squeezed table would only lose text."""
    if out.is_terminal:
        out.print(table)
        return
    natural = Measurement.get(out, out.options.update_width(10_000), table).maximum
    Console(file=sys.stdout, width=max(natural, 20), highlight=False, soft_wrap=True).print(table)


def emit(text: str) -> None:
    """A line for scripts on stdout, exactly as given (no markup, emoji or wrapping)."""
    typer.echo(text)


def emit_json(value: Any, *, lines: bool = False) -> None:
    """``value`` as JSON on stdout: indented, or compact on one line for JSON Lines."""
    if lines:
        typer.echo(json.dumps(value, ensure_ascii=False, separators=(",", ":")))
    else:
        typer.echo(json.dumps(value, ensure_ascii=False, indent=2))


def emit_page(
    page: Page[M],
    offset: int,
    as_json: bool,
    noun: str,
    table: Callable[[list[M], str], Table],
) -> None:
    """A list command's output: the items as a JSON array, or a table whose caption says
    which of them these are."""
    if as_json:
        emit_json([item.model_dump(mode="json") for item in page.items])
    else:
        show(table(page.items, window(noun, offset, len(page.items), page.count)))


def emit_record(record: M, as_json: bool, detail: Callable[[M], RenderableType]) -> None:
    """A show command's output: the record as JSON, or ``detail``'s rendering of it."""
    if as_json:
        emit_json(record.model_dump(mode="json"))
    else:
        out.print(detail(record))
