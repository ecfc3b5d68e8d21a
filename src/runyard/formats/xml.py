"""XML export: ``<items><item><key>value</key>…</item>…</items>``, streamed row by row.

Every column is an element of every item, empty (``<key/>``) when the row has null or no value.
Characters XML 1.0 forbids (controls other than tab, LF, CR; lone surrogates; U+FFFE/U+FFFF)
are removed from values; carriage returns are written as ``&#13;`` so parsers do not turn them
into line feeds.

**Element names.** A key that is not a usable XML name is rewritten, deterministically:

1. Every character outside this set becomes ``_``: ASCII letters and digits, ``_``, ``-``,
   ``.``, and the non-ASCII letters of :data:`_LETTER_RANGES` (Latin-1 and Latin Extended-A
   letters, Greek, Cyrillic, Hebrew, Arabic, Thai, Vietnamese, Hiragana, Katakana, CJK unified
   ideographs U+4E00-U+9FA5 and Hangul syllables), plus the kana/ideograph extenders of
   :data:`_EXTENDER_RANGES` after the first character. ``:`` is replaced too, since it would
   make the name a namespace prefix. The set is deliberately the part of XML 1.0 name characters
   that every parser accepts (expat, behind Python's ElementTree, still uses the 4th edition).
2. A name that is empty or does not start with a letter or ``_`` gets a ``_`` prefix.
3. A name starting with ``xml`` in any case (reserved by XML) gets a ``_`` prefix.
4. A name already taken by an earlier column gets the first free suffix ``_2``, ``_3``, ….
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import BinaryIO

from runyard.formats.base import RowBatch, WriteStats
from runyard.formats.cells import cell_text, decode_row

_BUFFER = 1 << 20

_LETTER_RANGES = (
    "\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u00ff"  # Latin-1 letters
    "\u0100-\u0131\u0134-\u013e\u0141-\u0148\u014a-\u017e"  # Latin Extended-A
    "\u0386\u0388-\u038a\u038c\u038e-\u03a1\u03a3-\u03ce"  # Greek
    "\u0401-\u040c\u040e-\u044f\u0451-\u045c\u045e-\u0481"  # Cyrillic
    "\u05d0-\u05ea"  # Hebrew
    "\u0621-\u063a\u0641-\u064a"  # Arabic
    "\u0e01-\u0e2e\u0e30\u0e32-\u0e33"  # Thai
    "\u1ea0-\u1ef9"  # Vietnamese
    "\u3041-\u3094\u30a1-\u30fa"  # Hiragana, Katakana
    "\u4e00-\u9fa5"  # CJK unified ideographs
    "\uac00-\ud7a3"  # Hangul syllables
)
_EXTENDER_RANGES = "\u00b7\u3005\u3031-\u3035\u309d-\u309e\u30fc-\u30fe"

_NOT_NAME_CHAR = re.compile(f"[^A-Za-z0-9_.\\-{_LETTER_RANGES}{_EXTENDER_RANGES}]")
_NAME_START = re.compile(f"[A-Za-z_{_LETTER_RANGES}]")
_NOT_XML_CHAR = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "\r": "&#13;"})


def xml_name(key: str) -> str:
    """``key`` as an XML element name (rules 1-3 of the module docstring)."""
    name = _NOT_NAME_CHAR.sub("_", key)
    if not _NAME_START.match(name):
        name = "_" + name
    if name[:3].lower() == "xml":
        name = "_" + name
    return name


def xml_names(keys: Iterable[str], taken: Iterable[str] = ()) -> list[str]:
    """Element names for ``keys``, all distinct and distinct from ``taken`` (rule 4)."""
    used = set(taken)
    names = []
    for key in keys:
        base = name = xml_name(key)
        suffix = 2
        while name in used:
            name = f"{base}_{suffix}"
            suffix += 1
        used.add(name)
        names.append(name)
    return names


def xml_text(value: str) -> str:
    """``value`` as XML character data: illegal characters dropped, markup escaped."""
    return _NOT_XML_CHAR.sub("", value).translate(_ESCAPES)


def element(name: str, value: object) -> str:
    text = cell_text(value)
    return f"<{name}>{xml_text(text)}</{name}>" if text else f"<{name}/>"


def write_items(
    out: BinaryIO, batches: Iterable[RowBatch], elements: Sequence[tuple[str, str]]
) -> int:
    """Each row as ``<item>`` with one element per (element name, column); returns the rows."""
    rows = 0
    for batch in batches:
        parts = []
        for text in batch:
            row = decode_row(text)
            parts.append("<item>")
            parts.extend(element(name, row.get(key)) for name, key in elements)
            parts.append("</item>\n")
        out.write("".join(parts).encode())
        rows += len(batch)
    return rows


class XmlWriter:
    extension = "xml"
    media_type = "application/xml; charset=utf-8"

    def write(
        self,
        path: Path,
        columns: Sequence[str],
        batches: Iterable[RowBatch],
        *,
        projected: bool,
    ) -> WriteStats:
        stats = WriteStats()
        elements = list(zip(xml_names(columns), columns, strict=True))
        with open(path, "wb", buffering=_BUFFER) as out:
            out.write(b'<?xml version="1.0" encoding="UTF-8"?>\n<items>\n')
            stats.rows = write_items(out, batches, elements)
            out.write(b"</items>\n")
        return stats
