"""RSS 2.0 export: one ``<item>`` per row.

An item's ``<title>`` comes from a ``title`` column, its ``<link>`` from ``url`` (else ``link``),
its ``<description>`` from ``description``, each when that column exists. Every other column is an
element too, named by the XML export's rule (:func:`runyard.formats.xml.xml_names`) and kept
distinct from those three: with both ``url`` and ``link`` columns, ``<link>`` holds the URL, and
the ``link`` column becomes ``<link_2>``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from runyard.formats.base import RowBatch, WriteStats
from runyard.formats.xml import write_items, xml_names, xml_text

_BUFFER = 1 << 20


def item_elements(columns: Sequence[str]) -> list[tuple[str, str]]:
    """(element name, source column) for each element of an item, in order."""
    standard: list[tuple[str, str]] = []
    if "title" in columns:
        standard.append(("title", "title"))
    link = "url" if "url" in columns else "link" if "link" in columns else None
    if link is not None:
        standard.append(("link", link))
    if "description" in columns:
        standard.append(("description", "description"))
    # A column that is its own standard element (title → <title>) is not repeated.
    rest = [key for key in columns if (key, key) not in standard]
    names = xml_names(rest, taken=[name for name, _ in standard])
    return standard + list(zip(names, rest, strict=True))


class RssWriter:
    extension = "rss"
    media_type = "application/rss+xml; charset=utf-8"

    def __init__(
        self,
        *,
        channel_title: str = "Runyard export",
        channel_link: str = "http://localhost/",
        channel_description: str = "Results exported from Runyard",
    ) -> None:
        self.channel_title = channel_title
        self.channel_link = channel_link
        self.channel_description = channel_description

    def write(
        self,
        path: Path,
        columns: Sequence[str],
        batches: Iterable[RowBatch],
        *,
        projected: bool,
    ) -> WriteStats:
        stats = WriteStats()
        elements = item_elements(list(columns))
        with open(path, "wb", buffering=_BUFFER) as out:
            out.write(
                '<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0">\n<channel>\n'
                f"<title>{xml_text(self.channel_title)}</title>\n"
                f"<link>{xml_text(self.channel_link)}</link>\n"
                f"<description>{xml_text(self.channel_description)}</description>\n".encode()
            )
            stats.rows = write_items(out, batches, elements)
            out.write(b"</channel>\n</rss>\n")
        return stats
