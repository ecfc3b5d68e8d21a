"""The PostgreSQL side of ``--postgres``: a fresh schema per benchmark, dropped after it, and
the one report file, benchmarks/POSTGRES.md, that results.py and workers.py each fill a part of.
"""

from __future__ import annotations

import argparse
import itertools
import os
import re
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg.types.string import TextLoader
from sqlalchemy import make_url

HERE = Path(__file__).resolve().parent
DEFAULT_URL = "postgresql://127.0.0.1:5432/test"
OUTPUT = HERE / "POSTGRES.md"
_names = itertools.count()


def add_option(parser: argparse.ArgumentParser, measures: str) -> None:
    """``--postgres [URL]``: measure ``measures`` on SQLite and PostgreSQL side by side."""
    parser.add_argument(
        "--postgres",
        nargs="?",
        const=DEFAULT_URL,
        default=None,
        metavar="URL",
        help=f"measure {measures} on SQLite and PostgreSQL side by side (default URL "
        f"{DEFAULT_URL}; fresh schemas are created and dropped)",
    )


def dsn(url: str) -> str:
    """``url`` as libpq takes it (no SQLAlchemy driver suffix)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def connect(url: str) -> psycopg.Connection[Any]:
    """A plain autocommit connection that hands ``json`` values over as their text, as Runyard's
    own engine does (rows are spliced, never parsed)."""
    conn = psycopg.connect(dsn(url), autocommit=True)
    conn.adapters.register_loader("json", TextLoader)
    return conn


class Schema:
    """A schema of its own on the server at ``base_url``: created on entering, dropped with
    everything in it on leaving. ``url`` selects it through libpq's ``options``."""

    def __init__(self, base_url: str, prefix: str = "bench") -> None:
        self.base_url = base_url
        self.name = f"{prefix}_{os.getpid()}_{next(_names)}"
        self.url = (
            make_url(base_url)
            .update_query_dict({"options": f"-csearch_path={self.name}"})
            .render_as_string(hide_password=False)
        )

    def create(self) -> Schema:
        with connect(self.base_url) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{self.name}" CASCADE')
            conn.execute(f'CREATE SCHEMA "{self.name}"')
        return self

    def drop(self) -> None:
        with connect(self.base_url) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{self.name}" CASCADE')

    def __enter__(self) -> Schema:
        return self.create()

    def __exit__(self, *_exc: object) -> None:
        self.drop()


def check(base_url: str) -> None:
    """Fail at once, in one line, when the server cannot be reached."""
    try:
        connect(base_url).close()
    except psycopg.Error as exc:
        raise SystemExit(f"PostgreSQL at {base_url} is unreachable: {exc}") from None


def server_note(base_url: str) -> str:
    """The server's version and the settings that move these figures."""
    with connect(base_url) as conn:
        version = conn.execute("SHOW server_version").fetchone()
        values = {
            name: conn.execute(f"SHOW {name}").fetchone()
            for name in ("shared_buffers", "fsync", "synchronous_commit", "max_connections")
        }
    host = make_url(base_url).host or "local socket"
    shown = ", ".join(f"{name} {row[0] if row else '?'}" for name, row in values.items())
    return (
        f"PostgreSQL {version[0] if version else '?'} at {host} (on this same machine, over "
        f"TCP; {shown}); psycopg {psycopg.__version__}"
    )


def load() -> str:
    """The 1-, 5- and 15-minute load averages, to show how busy the machine was."""
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


def code_version() -> str:
    """The commit measured, and whether src/ differed from it (others edit the same tree)."""
    root = HERE.parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "src"], cwd=root, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        return "unknown (no git)"
    return f"commit {head}" + (" with uncommitted changes in src/" if dirty else "")


class Clock:
    """When a part ran and how loaded the machine was at its start and end."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.at = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        self.load_before = load()

    def note(self) -> str:
        minutes = (time.monotonic() - self.started) / 60
        return (
            f"Run {self.at}, {minutes:.1f} min; load average (1/5/15 min) {self.load_before} "
            f"at the start, {load()} at the end. Code: {code_version()}."
        )


def write_section(name: str, header: str, body: str, path: Path = OUTPUT) -> None:
    """Put ``body`` into ``path`` as the part written by ``name`` (results.py, workers.py),
    keeping the other script's part; ``header`` replaces the file's opening lines."""
    parts: dict[str, str] = {}
    order: list[str] = []
    if path.exists():
        for match in re.finditer(r"<!-- ([\w.]+) -->\n(.*?)<!-- /\1 -->", path.read_text(), re.S):
            order.append(match.group(1))
            parts[match.group(1)] = match.group(2)
    if name not in parts:
        order.append(name)
    parts[name] = body.rstrip("\n") + "\n"
    # results.py's part first, whatever order the scripts ran in.
    order.sort(key=lambda n: (n != "results.py", n))
    text = header.rstrip("\n") + "\n\n"
    text += "\n".join(f"<!-- {n} -->\n{parts[n]}<!-- /{n} -->\n" for n in order)
    path.write_text(text)


def header(machine: str, base_url: str) -> str:
    return "\n".join(
        [
            "# PostgreSQL next to SQLite",
            "",
            f"Machine: {machine}.",
            f"Database: {server_note(base_url)}.",
            "Command: `make bench-postgres` (`benchmarks/results.py --postgres` and "
            "`benchmarks/workers.py --postgres`): each benchmark measures the SQLite side and "
            "the PostgreSQL side in the same run, interleaved where it can, each PostgreSQL "
            "part in a fresh schema created for it and dropped after. Ratios compare figures "
            "of the same run; absolute times depend on the machine's other load (2 shared "
            "cores, and PostgreSQL's server processes share them with Runyard and the "
            "benchmark client).",
        ]
    )
