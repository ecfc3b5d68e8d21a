"""JSON export: one array of row objects.

Unprojected rows are spliced in exactly as stored, never decoded, which is both faster and the
only way to guarantee "rows exactly as stored" (key order, number spelling, escapes).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from runyard.formats.base import RowBatch, WriteStats
from runyard.formats.cells import decode_row, dumps

_BUFFER = 1 << 20


def row_texts(batch: RowBatch, columns: Sequence[str], *, projected: bool) -> Sequence[str]:
    """The batch's rows as JSON texts: as stored, or projected onto ``columns`` (missing → null)."""
    if not projected:
        return batch
    texts = []
    for text in batch:
        row = decode_row(text)
        texts.append(dumps({key: row.get(key) for key in columns}))
    return texts


def encoded_batches(
    batches: Iterable[RowBatch], columns: Sequence[str], *, projected: bool, stats: WriteStats
) -> Iterator[Sequence[str]]:
    """Each non-empty batch as row texts, counting rows as they pass."""
    keys = list(columns)
    for batch in batches:
        if batch:
            stats.rows += len(batch)
            yield row_texts(batch, keys, projected=projected)


class JsonWriter:
    extension = "json"
    media_type = "application/json"

    def write(
        self,
        path: Path,
        columns: Sequence[str],
        batches: Iterable[RowBatch],
        *,
        projected: bool,
    ) -> WriteStats:
        stats = WriteStats()
        with open(path, "wb", buffering=_BUFFER) as out:
            out.write(b"[")
            separator = b"\n"
            for texts in encoded_batches(batches, columns, projected=projected, stats=stats):
                out.write(separator)
                out.write(",\n".join(texts).encode())
                separator = b",\n"
            out.write(b"]" if stats.rows == 0 else b"\n]")
        return stats
