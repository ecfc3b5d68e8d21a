"""Importing an existing dataset (JSON, JSONL or CSV) as a finished run.

Files are read as a stream, so memory stays flat whatever their size. A file that turns out to
be bad part-way leaves nothing behind: the half-made run and its rows are deleted.
"""

from __future__ import annotations

import csv
import fcntl
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, TextIO

import orjson

from runyard.services.errors import InvalidInput
from runyard.services.runs import IMPORT_VERSION, Runs
from runyard.storage import Database, RowStore
from runyard.storage.ingest import RowIngestor, parse_row

ImportFormat = Literal["json", "jsonl", "csv"]
#: One parsed row: (line number, stored text, decoded object).
Parsed = tuple[int, str, dict[str, Any]]
_CHUNK = 1 << 20
#: A JSON array element is read whole; past this size it is reported instead of buffered on.
MAX_ELEMENT = 64 << 20


class BadRow(ValueError):
    def __init__(self, line: int, reason: str) -> None:
        super().__init__(f"line {line}: {reason}")


def guess_format(path: Path) -> ImportFormat:
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    if suffix == ".csv":
        return "csv"
    if suffix == ".json":
        return "json"
    raise InvalidInput(f"cannot tell the format of {path.name!r}: pass --format json|jsonl|csv")


def _jsonl(f: TextIO) -> Iterator[Parsed]:
    for number, line in enumerate(f, start=1):
        text = line.strip()
        if not text:
            continue
        try:
            yield number, text, parse_row(text)
        except ValueError as exc:
            raise BadRow(number, str(exc)) from None


def _csv(f: TextIO) -> Iterator[Parsed]:
    reader = csv.reader(f, strict=True)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise BadRow(reader.line_num, f"malformed CSV: {exc}") from None
    if header is None:
        return
    if any(not key for key in header) or len(set(header)) != len(header):
        raise BadRow(1, "the header row needs distinct, non-empty column names")
    width = len(header)
    while True:
        try:
            cells = next(reader, None)
        except csv.Error as exc:
            raise BadRow(reader.line_num, f"malformed CSV: {exc}") from None
        if cells is None:
            return
        if not cells:
            continue
        if len(cells) != width:
            raise BadRow(reader.line_num, f"{len(cells)} cells where the header has {width}")
        row = dict(zip(header, cells, strict=True))
        yield reader.line_num, orjson.dumps(row).decode(), row


class _JsonArray:
    """Streams the elements of one top-level JSON array, each with its exact source text."""

    def __init__(self, f: TextIO) -> None:
        self.f = f
        self.buf = ""
        self.pos = 0
        self.line = 1  # line number at ``pos``
        self.eof = False
        self.decoder = json.JSONDecoder()

    def _more(self) -> bool:
        if self.eof:
            return False
        chunk = self.f.read(_CHUNK)
        if not chunk:
            self.eof = True
            return False
        self.buf = self.buf[self.pos :] + chunk
        self.pos = 0
        return True

    def _advance(self, to: int) -> None:
        self.line += self.buf.count("\n", self.pos, to)
        self.pos = to

    def _skip_ws(self) -> str:
        """The next significant character ('' at the end of the file)."""
        while True:
            n = len(self.buf)
            i = self.pos
            while i < n and self.buf[i] in " \t\r\n":
                i += 1
            self._advance(i)
            if i < n:
                return self.buf[i]
            if not self._more():
                return ""

    def _expect(self, what: str) -> str:
        char = self._skip_ws()
        if char not in what:
            found = repr(char) if char else "end of file"
            raise BadRow(self.line, f"expected {' or '.join(map(repr, what))}, found {found}")
        self._advance(self.pos + 1)
        return char

    def __iter__(self) -> Iterator[Parsed]:
        self._expect("[")
        if self._skip_ws() == "]":
            self._advance(self.pos + 1)
        else:
            while True:
                yield self._element()
                if self._expect(",]") == "]":
                    break
        if self._skip_ws():
            raise BadRow(self.line, "unexpected data after the closing ']'")

    def _element(self) -> Parsed:
        self._skip_ws()
        while True:
            try:
                value, end = self.decoder.raw_decode(self.buf, self.pos)
                break
            except json.JSONDecodeError as exc:
                # A value cut by the chunk boundary fails like a malformed one: read on and
                # only believe the error once the whole file is in view.
                if len(self.buf) - self.pos > MAX_ELEMENT or not self._more():
                    line = self.line + self.buf.count("\n", self.pos, exc.pos)
                    raise BadRow(line, f"invalid JSON: {exc.msg}") from None
        text = self.buf[self.pos : end]
        line = self.line
        self._advance(end)
        if not isinstance(value, dict):
            raise BadRow(line, f"a row must be a JSON object, not {type(value).__name__}")
        try:
            orjson.loads(text)  # the store's own decoder must accept every row it keeps
        except orjson.JSONDecodeError as exc:
            raise BadRow(line, f"invalid JSON: {exc}") from None
        return line, text, value


def parse_file(f: TextIO, fmt: ImportFormat) -> Iterator[Parsed]:
    if fmt == "jsonl":
        return _jsonl(f)
    if fmt == "csv":
        return _csv(f)
    return iter(_JsonArray(f))


class Imports:
    """Runs made from files. While an import writes, it holds an OS lock on a file named after
    its run; a lock file nobody holds means the importer died (``kill -9``, power loss), and
    ``clean_abandoned`` deletes that half-made run. A run with no lock file here is left alone:
    it may belong to an import on another machine."""

    def __init__(self, db: Database, rows: RowStore, runs: Runs, locks_dir: Path) -> None:
        self.db = db
        self.rows = rows
        self.runs = runs
        self.locks_dir = locks_dir

    @contextmanager
    def _holding(self, slug: str) -> Iterator[None]:
        self.locks_dir.mkdir(parents=True, exist_ok=True)
        # Locked under a temporary name, then renamed: the final name never exists unlocked
        # while its importer lives, so a cleaner cannot mistake a starting import for a dead one.
        tmp = self.locks_dir / f".{slug}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            final = self.locks_dir / f"{slug}.lock"
            os.replace(tmp, final)
            try:
                yield
            finally:
                final.unlink(missing_ok=True)
        finally:
            tmp.unlink(missing_ok=True)
            os.close(fd)

    def clean_abandoned(self) -> list[str]:
        """Delete the runs of imports whose process died; returns their slugs."""
        cleaned = []
        for lock in self.locks_dir.glob("*.lock") if self.locks_dir.is_dir() else []:
            try:
                fd = os.open(lock, os.O_RDWR)
            except FileNotFoundError:  # finished meanwhile
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # its importer is alive
                os.close(fd)
                continue
            try:
                run_id = self.runs.running_import(lock.stem)
                if run_id is not None:
                    self.runs.delete(run_id)
                    cleaned.append(lock.stem)
                lock.unlink(missing_ok=True)
            finally:
                os.close(fd)
        return cleaned

    def run(
        self,
        path: Path,
        *,
        user_id: int,
        worker_slug: str,
        fmt: ImportFormat | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> str:
        """Store every row of ``path`` as a new succeeded run of ``worker_slug``; return its
        slug. Bad input raises ``InvalidInput`` naming the line, and leaves no run behind."""
        self.clean_abandoned()
        fmt = fmt or guess_format(path)
        try:
            f = open(path, encoding="utf-8-sig", newline="" if fmt == "csv" else None)  # noqa: SIM115
        except OSError as exc:
            raise InvalidInput(f"cannot read {path}: {exc.strerror or exc}") from None
        with f:
            worker_id = self.runs.ensure_worker(user_id, worker_slug)
            run_id, slug = self.runs.create(
                user_id, worker_id, version=IMPORT_VERSION, origin="cli", status="running"
            )
            with self._holding(slug):
                try:
                    self._ingest(f, fmt, run_id, progress)
                except BadRow as exc:
                    self.runs.delete(run_id)
                    raise InvalidInput(f"{path.name}: {exc}") from None
                except BaseException:
                    self.runs.delete(run_id)
                    raise
                self.runs.finish(run_id, "succeeded")
        return slug

    def _ingest(
        self,
        f: TextIO,
        fmt: ImportFormat,
        run_id: int,
        progress: Callable[[int], None] | None,
    ) -> None:
        ingestor = RowIngestor(self.db, self.rows, run_id, on_commit=progress)
        line = 0
        try:
            for line, text, row in parse_file(f, fmt):  # noqa: B007 - used below
                ingestor.add(text, row)
        except UnicodeDecodeError:
            raise BadRow(line + 1, "the file is not UTF-8 text") from None
        ingestor.flush()
