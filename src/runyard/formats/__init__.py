"""Export writers, one per format (spec §2.2), behind one small interface."""

from __future__ import annotations

from typing import Any

from runyard.formats.base import ExportWriter, RowBatch, WriteStats
from runyard.formats.cells import cell_text
from runyard.formats.csv import CsvWriter
from runyard.formats.html import HtmlWriter
from runyard.formats.json import JsonWriter
from runyard.formats.jsonl import JsonlWriter
from runyard.formats.rss import RssWriter
from runyard.formats.xls import XlsWriter
from runyard.formats.xlsx import XlsxWriter
from runyard.formats.xml import XmlWriter

FORMATS: tuple[str, ...] = ("csv", "json", "jsonl", "xlsx", "xls", "xml", "html", "rss")

_WRITERS: dict[str, type[Any]] = {
    "csv": CsvWriter,
    "json": JsonWriter,
    "jsonl": JsonlWriter,
    "xlsx": XlsxWriter,
    "xls": XlsWriter,
    "xml": XmlWriter,
    "html": HtmlWriter,
    "rss": RssWriter,
}


def get_writer(fmt: str, **options: Any) -> ExportWriter:
    """A writer for ``fmt`` (any case) built with its ``options``; unknown formats → ValueError."""
    cls = _WRITERS.get(fmt.lower())
    if cls is None:
        raise ValueError(f"unknown export format {fmt!r}; supported: {', '.join(FORMATS)}")
    writer: ExportWriter = cls(**options)
    return writer


__all__ = ["FORMATS", "ExportWriter", "RowBatch", "WriteStats", "cell_text", "get_writer"]
