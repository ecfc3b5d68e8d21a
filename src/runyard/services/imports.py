"""Importing an existing dataset (JSON, JSONL or CSV) as a finished run.

Files are read as a stream, so memory stays flat whatever their size. A file that turns out to
be bad part-way leaves nothing behind: the half-made run and its rows are deleted.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal, TextIO

import orjson

from runyard.services.errors import InvalidInput
from runyard.services.ingest import RowIngestor, parse_row
from runyard.services.runs import Runs
from runyard.storage import Database, RowStore

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


def import_file(
    db: Database,
    rows: RowStore,
    runs: Runs,
    path: Path,
    *,
    user_id: int,
    worker_slug: str,
    fmt: ImportFormat | None = None,
    progress: Callable[[int], None] | None = None,
) -> str:
    """Store every row of ``path`` as a new succeeded run of ``worker_slug``; return its slug."""
    fmt = fmt or guess_format(path)
    try:
        f = open(path, encoding="utf-8-sig", newline="" if fmt == "csv" else None)  # noqa: SIM115
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror or exc}") from None
    worker_id = runs.ensure_worker(user_id, worker_slug)
    run_id, slug = runs.create(user_id, worker_id, version="import", origin="cli", status="running")
    try:
        with f:
            ingestor = RowIngestor(db, rows, run_id, on_commit=progress)
            line = 0
            try:
                for line, text, row in parse_file(f, fmt):  # noqa: B007 - used below
                    ingestor.add(text, row)
            except UnicodeDecodeError:
                raise BadRow(line + 1, "the file is not UTF-8 text") from None
            ingestor.flush()
    except BadRow as exc:
        runs.delete(run_id)
        raise InvalidInput(f"{path.name}: {exc}") from None
    except BaseException:
        runs.delete(run_id)
        raise
    runs.finish(run_id, "succeeded")
    return slug
