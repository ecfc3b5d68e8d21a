"""A streaming BIFF8 (Excel 97-2003) workbook writer with bounded memory.

xlwt builds the whole file, shared strings included, in memory; for a million-row export that is
gigabytes. Here cell records go to one temporary file and the shared-string table (SST) to another
as rows arrive; on :meth:`Biff8Book.save` the workbook globals are assembled (their size is known
only then: one BOUNDSHEET per sheet, the SST) and both files are copied into the compound file.

Text cells are LABELSST records pointing into the SST rather than LABEL records: LABEL is limited
to 255 characters by MS-XLS and cannot be continued, while SST strings may span CONTINUE records,
so a text cell keeps up to Excel's 32,767 characters. Strings are not deduplicated (that would need
a table of every string); the SST simply lists every text cell in order.
"""

from __future__ import annotations

import shutil
import struct
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from runyard.formats._cfb import CfbStreamFile
from runyard.formats.cells import SheetValue

#: BIFF8 records carry at most this many data bytes; longer data continues in CONTINUE records.
MAX_RECORD_DATA = 8224
MAX_ROWS = 65_536
MAX_COLUMNS = 256

_BOF, _EOF, _CONTINUE = 0x0809, 0x000A, 0x003C
_SST, _EXTSST, _LABELSST, _NUMBER = 0x00FC, 0x00FF, 0x00FD, 0x0203
_DIMENSIONS, _WINDOW2, _BOUNDSHEET = 0x0200, 0x023E, 0x0085
_XF_CELL, _XF_BOLD = 15, 16
_EXTSST_MAX_BUCKETS = 1024
_COPY_BUFFER = 1 << 20


def _record(code: int, data: bytes) -> bytes:
    return struct.pack("<HH", code, len(data)) + data


def _bof(kind: int) -> bytes:
    return _record(_BOF, struct.pack("<HHHHII", 0x0600, kind, 0x0DBB, 0x07CC, 0, 0x06))


def _short_string(text: str) -> bytes:
    try:
        return struct.pack("<BB", len(text), 0) + text.encode("latin-1")
    except UnicodeEncodeError:
        raw = text.encode("utf-16-le")
        return struct.pack("<BB", len(raw) // 2, 1) + raw


def _font(bold: bool) -> bytes:
    return _record(
        0x0031,
        # Excel reads the weight; older readers (xlrd among them) the bold bit, so set both.
        struct.pack("<HHHHHBBBB", 200, int(bold), 0x7FFF, 700 if bold else 400, 0, 0, 0, 0, 0)
        + _short_string("Arial"),
    )


def _xf(font: int, flags: int, used: int) -> bytes:
    # General number format, bottom-aligned, no borders, default fill colours (0x20C0).
    return _record(
        0x00E0, struct.pack("<HHHBBBBIIH", font, 0, flags, 0x20, 0, 0, used, 0, 0, 0x20C0)
    )


def _globals_head() -> bytes:
    parts = [
        _bof(0x0005),
        _record(0x00E1, struct.pack("<H", 1200)),  # INTERFACEHDR
        _record(0x00C1, b"\0\0"),  # MMS
        _record(0x00E2, b""),  # INTERFACEEND
        _record(0x0042, struct.pack("<H", 1200)),  # CODEPAGE: UTF-16
        _record(0x003D, struct.pack("<HHHHHHHHH", 0, 0, 0x4000, 0x2000, 0x38, 0, 0, 1, 0x258)),
        _record(0x0022, b"\0\0"),  # DATEMODE: 1900
        _record(0x000E, b"\1\0"),  # PRECISION: as displayed off
    ]
    # Font index 4 does not exist in BIFF, so four fonts keep the numbering simple: 1 is bold.
    parts += [_font(False), _font(True), _font(False), _font(False)]
    # Excel expects 15 style XFs and the default cell XF (15) before any of its own.
    parts.append(_xf(0, 0xFFF5, 0))
    parts += [_xf(0, 0xFFF5, 0xF4) for _ in range(14)]
    parts.append(_xf(0, 0x0001, 0))
    parts.append(_xf(1, 0x0001, 0x08))
    parts.append(_record(0x0293, struct.pack("<HBB", 0x8000, 0, 0xFF)))  # STYLE "Normal"
    return b"".join(parts)


class _SstWriter:
    """Appends strings to the SST, split over CONTINUE records as MS-XLS requires."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.count = 0
        self.buf = bytearray(8)  # cstTotal and cstUnique, filled in by finish()
        self.flushed = 0
        self.first_flushed = False
        self.bucket_size = 8
        #: (string offset from the SST's first byte, offset inside its record) for EXTSST.
        self.buckets: list[tuple[int, int]] = []

    def _flush(self) -> None:
        code = _CONTINUE if self.first_flushed else _SST
        self.out.write(struct.pack("<HH", code, len(self.buf)))
        self.out.write(self.buf)
        self.flushed += 4 + len(self.buf)
        self.first_flushed = True
        self.buf = bytearray()

    def add(self, text: str) -> int:
        try:
            raw, flag, unit = text.encode("latin-1"), 0, 1
        except UnicodeEncodeError:
            raw, flag, unit = text.encode("utf-16-le", "replace"), 1, 2
        # The 3-byte header and the first character must share a record.
        if len(self.buf) + 3 + unit > MAX_RECORD_DATA:
            self._flush()
        if self.count % self.bucket_size == 0:
            self._note_bucket()
        self.buf += struct.pack("<HB", len(raw) // unit, flag)
        pos = 0
        while True:
            room = (MAX_RECORD_DATA - len(self.buf)) // unit * unit
            end = pos + room
            if end >= len(raw):
                self.buf += raw[pos:]
                break
            if unit == 2 and 0xD8 <= raw[end - 1] <= 0xDB:
                end -= 2  # a surrogate pair must not straddle records: readers decode per record
            self.buf += raw[pos:end]
            pos = end
            self._flush()
            self.buf.append(flag)
        index = self.count
        self.count += 1
        return index

    def _note_bucket(self) -> None:
        if len(self.buckets) == _EXTSST_MAX_BUCKETS:
            if self.bucket_size * 2 > 0xFFFF:
                return
            # Keep the index bounded: twice the strings per bucket, every other bucket.
            self.bucket_size *= 2
            self.buckets = self.buckets[::2]
            if self.count % self.bucket_size:
                return
        self.buckets.append((self.flushed + 4 + len(self.buf), 4 + len(self.buf)))

    def finish(self) -> int:
        """Flush the last record, patch the counts in, return the SST's size in bytes."""
        counts = struct.pack("<II", self.count, self.count)
        if self.first_flushed:
            self._flush()
            self.out.seek(4)
            self.out.write(counts)
            self.out.seek(0, 2)
        else:
            self.buf[:8] = counts
            self._flush()
        return self.flushed

    def extsst(self, base: int) -> bytes:
        data = struct.pack("<H", self.bucket_size) + b"".join(
            struct.pack("<IHH", base + at, inside, 0) for at, inside in self.buckets
        )
        return _record(_EXTSST, data)


class Biff8Book:
    """Sheets of rows, written as they come: :meth:`add_sheet`, :meth:`add_row`…, :meth:`save`."""

    def __init__(self, tmp_dir: Path | None = None) -> None:
        # Closed by close() / __exit__: the book outlives any single with-block in its caller.
        self._cells = tempfile.TemporaryFile(dir=tmp_dir)  # noqa: SIM115
        self._strings = tempfile.TemporaryFile(dir=tmp_dir)  # noqa: SIM115
        self._sst = _SstWriter(self._strings)
        #: (name, offset of the sheet's BOF in the cells file)
        self._sheets: list[tuple[str, int]] = []
        self._dimensions_at = 0
        self._rows = 0
        self._cols = 0

    def close(self) -> None:
        self._cells.close()
        self._strings.close()

    def __enter__(self) -> Biff8Book:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def rows_in_sheet(self) -> int:
        return self._rows

    def add_sheet(self, name: str) -> None:
        self._end_sheet()
        out = self._cells
        self._sheets.append((name, out.tell()))
        out.write(_bof(0x0010))
        self._dimensions_at = out.tell()
        out.write(_record(_DIMENSIONS, bytes(14)))
        self._rows = self._cols = 0

    def add_row(self, cells: Sequence[SheetValue], *, bold: bool = False) -> None:
        if self._rows >= MAX_ROWS:
            raise ValueError("a BIFF8 sheet holds at most 65,536 rows")
        row, xf = self._rows, _XF_BOLD if bold else _XF_CELL
        parts = []
        for col, value in enumerate(cells[:MAX_COLUMNS]):
            if isinstance(value, str):
                if value:
                    index = self._sst.add(value)
                    parts.append(struct.pack("<HHHHHI", _LABELSST, 10, row, col, xf, index))
            elif value is not None:
                parts.append(struct.pack("<HHHHHd", _NUMBER, 14, row, col, xf, value))
        self._cells.write(b"".join(parts))
        self._rows += 1
        self._cols = max(self._cols, min(len(cells), MAX_COLUMNS))

    def _end_sheet(self) -> None:
        if not self._sheets:
            return
        out = self._cells
        first = len(self._sheets) == 1
        options = 0x06B6 if first else 0x00B6  # grid, headers, zeros; the first one selected
        out.write(_record(_WINDOW2, struct.pack("<HHHHHHHI", options, 0, 0, 0x40, 0, 0, 0, 0)))
        out.write(_record(_EOF, b""))
        end = out.tell()
        out.seek(self._dimensions_at)
        out.write(_record(_DIMENSIONS, struct.pack("<IIHHH", 0, self._rows, 0, self._cols, 0)))
        out.seek(end)

    def save(self, path: Path) -> None:
        if not self._sheets:
            raise ValueError("a workbook needs at least one sheet")
        self._end_sheet()
        sst_size = self._sst.finish()
        head = _globals_head()
        sheet_records = [
            len(_record(_BOUNDSHEET, struct.pack("<IH", 0, 0) + _short_string(name)))
            for name, _ in self._sheets
        ]
        sst_base = len(head) + sum(sheet_records)
        extsst = self._sst.extsst(sst_base)
        globals_size = sst_base + sst_size + len(extsst) + 4
        with open(path, "wb", buffering=_COPY_BUFFER) as out:
            cfb = CfbStreamFile(out, "Workbook")
            cfb.begin()
            out.write(head)
            for name, offset in self._sheets:
                data = struct.pack("<IH", globals_size + offset, 0) + _short_string(name)
                out.write(_record(_BOUNDSHEET, data))
            self._strings.seek(0)
            shutil.copyfileobj(self._strings, out, _COPY_BUFFER)
            out.write(extsst)
            out.write(_record(_EOF, b""))
            self._cells.seek(0)
            shutil.copyfileobj(self._cells, out, _COPY_BUFFER)
            cfb.finish()
