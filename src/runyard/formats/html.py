"""HTML export: a standalone HTML5 page holding one ``<table>``, streamed row by row."""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from pathlib import Path

from runyard.formats.base import RowBatch, WriteStats
from runyard.formats.cells import cell_text, decode_row

_BUFFER = 1 << 20


def html_text(value: str) -> str:
    # A raw CR would be folded into LF by every HTML parser; the reference keeps it.
    return html.escape(value).replace("\r", "&#13;")


class HtmlWriter:
    extension = "html"
    media_type = "text/html; charset=utf-8"

    def __init__(self, *, title: str = "Runyard export") -> None:
        self.title = title

    def write(
        self,
        path: Path,
        columns: Sequence[str],
        batches: Iterable[RowBatch],
        *,
        projected: bool,
    ) -> WriteStats:
        stats = WriteStats()
        keys = list(columns)
        head = "".join(f"<th>{html_text(key)}</th>" for key in keys)
        with open(path, "wb", buffering=_BUFFER) as out:
            out.write(
                '<!DOCTYPE html>\n<html>\n<head>\n<meta charset="utf-8">\n'
                f"<title>{html_text(self.title)}</title>\n</head>\n<body>\n<table>\n"
                f"<thead><tr>{head}</tr></thead>\n<tbody>\n".encode()
            )
            for batch in batches:
                parts = []
                for text in batch:
                    row = decode_row(text)
                    parts.append("<tr>")
                    parts.extend(f"<td>{html_text(cell_text(row.get(k)))}</td>" for k in keys)
                    parts.append("</tr>\n")
                out.write("".join(parts).encode())
                stats.rows += len(batch)
            out.write(b"</tbody>\n</table>\n</body>\n</html>\n")
        return stats
