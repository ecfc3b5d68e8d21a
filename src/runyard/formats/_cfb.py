"""A minimal streaming OLE2 / Compound File Binary (MS-CFB, version 3) writer.

It holds exactly one stream (an XLS file's ``Workbook``), written sector by sector straight into
the output file; the allocation tables and the directory go after it and the header is patched
last, so memory stays constant whatever the stream's size.
"""

from __future__ import annotations

import struct
import sys
from array import array
from typing import BinaryIO

SECTOR = 512
_IDS_PER_SECTOR = SECTOR // 4
_HEADER_DIFAT = 109
_FREESECT = 0xFFFFFFFF
_ENDOFCHAIN = 0xFFFFFFFE
_FATSECT = 0xFFFFFFFD
_DIFSECT = 0xFFFFFFFC
_NOSTREAM = 0xFFFFFFFF
#: Smaller streams would belong in the mini stream; padding past it keeps one code path.
_MIN_STANDARD_STREAM = 4096
_FAT_CHUNK = _IDS_PER_SECTOR * 1024


def _le_ids(ids: array[int]) -> bytes:
    if sys.byteorder == "big":
        ids.byteswap()
    return ids.tobytes()


def _dir_entry(name: str, kind: int, child: int, start: int, size: int) -> bytes:
    encoded = (name + "\0").encode("utf-16-le") if name else b""
    return struct.pack(
        "<64sHBBIII16sIQQIQ",
        encoded,
        len(encoded),
        kind,
        1,  # black: a one-node tree needs no balancing
        _NOSTREAM,
        _NOSTREAM,
        child,
        b"",
        0,
        0,
        0,
        start,
        size,
    )


class CfbStreamFile:
    """Write one named stream into a compound file at ``out`` (seekable, positioned at 0).

    Call :meth:`begin`, write the stream's bytes to ``out``, then :meth:`finish`.
    """

    def __init__(self, out: BinaryIO, stream_name: str) -> None:
        self.out = out
        self.stream_name = stream_name

    def begin(self) -> None:
        self.out.write(bytes(SECTOR))

    def finish(self) -> None:
        out = self.out
        size = out.tell() - SECTOR
        if size < _MIN_STANDARD_STREAM:
            out.write(bytes(_MIN_STANDARD_STREAM - size))
            size = _MIN_STANDARD_STREAM
        out.write(bytes(-size % SECTOR))
        stream_sectors = (size + SECTOR - 1) // SECTOR

        fat_sectors = difat_sectors = 0
        while True:
            total = stream_sectors + 1 + fat_sectors + difat_sectors
            need_fat = -(-total // _IDS_PER_SECTOR)
            need_difat = -(-max(0, need_fat - _HEADER_DIFAT) // (_IDS_PER_SECTOR - 1))
            if (need_fat, need_difat) == (fat_sectors, difat_sectors):
                break
            fat_sectors, difat_sectors = need_fat, need_difat
        dir_sector = stream_sectors
        first_fat = dir_sector + 1
        first_difat = first_fat + fat_sectors

        root = _dir_entry("Root Entry", 5, 1, _ENDOFCHAIN, 0)
        stream = _dir_entry(self.stream_name, 2, _NOSTREAM, 0, size)
        empty = _dir_entry("", 0, _NOSTREAM, 0, 0)
        out.write(root + stream + empty + empty)

        self._write_fat(stream_sectors, fat_sectors, difat_sectors)
        fat_ids = list(range(first_fat, first_fat + fat_sectors))
        for n in range(difat_sectors):
            chunk = fat_ids[_HEADER_DIFAT + n * 127 : _HEADER_DIFAT + (n + 1) * 127]
            chunk += [_FREESECT] * (127 - len(chunk))
            chunk.append(first_difat + n + 1 if n + 1 < difat_sectors else _ENDOFCHAIN)
            out.write(_le_ids(array("I", chunk)))

        header_difat = fat_ids[:_HEADER_DIFAT]
        header_difat += [_FREESECT] * (_HEADER_DIFAT - len(header_difat))
        out.seek(0)
        out.write(
            struct.pack(
                "<8s16sHHHHH6sIIIIIIIII",
                b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1",
                b"",
                0x003E,
                0x0003,
                0xFFFE,
                9,  # 2**9 = 512-byte sectors
                6,  # 2**6 = 64-byte mini sectors
                b"",
                0,
                fat_sectors,
                dir_sector,
                0,
                _MIN_STANDARD_STREAM,
                _ENDOFCHAIN,
                0,
                first_difat if difat_sectors else _ENDOFCHAIN,
                difat_sectors,
            )
        )
        out.write(_le_ids(array("I", header_difat)))
        out.seek(0, 2)

    def _write_fat(self, stream_sectors: int, fat_sectors: int, difat_sectors: int) -> None:
        # The stream is one contiguous chain, so its FAT is a counter, produced in chunks.
        for start in range(0, stream_sectors, _FAT_CHUNK):
            stop = min(start + _FAT_CHUNK, stream_sectors)
            ids = array("I", range(start + 1, stop + 1))
            if stop == stream_sectors:
                ids[-1] = _ENDOFCHAIN
            self.out.write(_le_ids(ids))
        tail = [_ENDOFCHAIN] + [_FATSECT] * fat_sectors + [_DIFSECT] * difat_sectors
        tail += [_FREESECT] * (-(stream_sectors + len(tail)) % _IDS_PER_SECTOR)
        self.out.write(_le_ids(array("I", tail)))
