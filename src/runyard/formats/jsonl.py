"""JSON Lines export: one row object per line, spliced or projected exactly like JSON."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from runyard.formats.base import RowBatch, WriteStats
from runyard.formats.json import encoded_batches

_BUFFER = 1 << 20


def _one_line(text: str) -> str:
    # Rows imported from a pretty-printed JSON array keep their line breaks (text is stored as
    # received). A raw line break in JSON can only be whitespace between tokens — inside a
    # string it would be escaped — so turning it into a space changes nothing but the layout.
    if "\n" in text or "\r" in text:
        return text.replace("\r", " ").replace("\n", " ")
    return text


class JsonlWriter:
    extension = "jsonl"
    media_type = "application/x-ndjson"

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
            for texts in encoded_batches(batches, columns, projected=projected, stats=stats):
                out.write("\n".join(map(_one_line, texts)).encode())
                out.write(b"\n")
        return stats
