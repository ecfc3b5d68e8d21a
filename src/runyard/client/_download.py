"""Streaming a download to disk: never whole in memory, never a half-written file in place."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO
from urllib.parse import unquote, urlsplit

import httpx
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

#: Called with (bytes written so far, total bytes or None) after each chunk.
ProgressCallback = Callable[[int, int | None], None]
CHUNK = 1 << 16

#: ``filename*=UTF-8''…`` (RFC 6266, preferred) and plain ``filename=``.
_FILENAME_STAR = re.compile(r"""filename\*=(?:UTF-8|utf-8)''([^;]+)""")
_FILENAME = re.compile(r"""filename="?([^";]+)"?""", re.IGNORECASE)


def target(response: httpx.Response, path: str | os.PathLike[str] | None) -> Path:
    """Where to write: ``path``, or the server's file name inside ``path`` (a directory) or the
    current directory. A server's name is reduced to its last component."""
    given = Path(path) if path is not None else Path.cwd()
    if path is not None and not given.is_dir():
        return given
    disposition = response.headers.get("content-disposition", "")
    match = _FILENAME_STAR.search(disposition) or _FILENAME.search(disposition)
    raw = unquote(match.group(1)) if match else urlsplit(str(response.url)).path
    name = Path(raw.replace("\\", "/")).name
    return given / (name if name not in ("", ".", "..") else "download")


def total_of(response: httpx.Response) -> int | None:
    length = response.headers.get("content-length", "")
    return int(length) if length.isdigit() else None


@contextmanager
def part_file(dest: Path) -> Iterator[IO[bytes]]:
    """A ``.part`` file beside ``dest``, renamed over it once complete and flushed to disk."""
    part = dest.with_name(dest.name + ".part")
    try:
        with open(part, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(part, dest)
    finally:
        part.unlink(missing_ok=True)


@contextmanager
def progress_reporter(
    progress: bool | ProgressCallback, label: str, total: int | None
) -> Iterator[ProgressCallback]:
    """``progress=True`` draws a Rich bar on stderr; a callable is called; False does nothing."""
    if callable(progress):
        yield progress
        return
    if not progress:
        yield lambda done, total: None
        return
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=False,
    )
    with bar:
        task = bar.add_task(label, total=total)
        yield lambda done, total: bar.update(task, completed=done, total=total)
