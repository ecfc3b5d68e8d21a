from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

from runyard.formats import get_writer

from .samples import COLUMNS, ROWS, assert_text_cell, batched, stored


class TableReader(HTMLParser):
    """Collects the page's doctype, title and table cells; fails on stray tags in cells."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.doctype = ""
        self.title = ""
        self.charset = ""
        self.head: list[str] = []
        self.body: list[list[str]] = []
        self.stack: list[str] = []
        self.cell: list[str] | None = None

    def handle_decl(self, decl: str) -> None:
        self.doctype = decl

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        assert self.cell is None, f"markup inside a cell: <{tag}>"
        if tag == "meta":
            self.charset = dict(attrs).get("charset") or ""
            return
        self.stack.append(tag)
        if tag == "tr" and "tbody" in self.stack:
            self.body.append([])
        if tag in ("td", "th", "title"):
            self.cell = []

    def handle_endtag(self, tag: str) -> None:
        assert self.stack.pop() == tag
        if tag in ("td", "th", "title"):
            text = "".join(self.cell or [])
            self.cell = None
            if tag == "title":
                self.title = text
            elif tag == "th":
                self.head.append(text)
            else:
                self.body[-1].append(text)

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell.append(data)


def read(path: Path) -> TableReader:
    reader = TableReader()
    reader.feed(path.read_text(encoding="utf-8"))
    reader.close()
    assert reader.stack == []
    assert reader.doctype.lower() == "doctype html"
    assert reader.charset == "utf-8"
    return reader


def test_round_trip_cell_by_cell(tmp_path: Path) -> None:
    path = tmp_path / "out.html"
    stats = get_writer("html").write(path, COLUMNS, batched(stored(ROWS)), projected=False)
    assert stats.rows == len(ROWS)
    page = read(path)
    assert page.title == "Runyard export"
    assert page.head == COLUMNS
    assert len(page.body) == len(ROWS)
    for row, line in zip(ROWS, page.body, strict=True):
        for key, cell in zip(COLUMNS, line, strict=True):
            assert_text_cell(cell, row.get(key))


def test_markup_in_keys_values_and_title_is_escaped(tmp_path: Path) -> None:
    path = tmp_path / "out.html"
    evil = "</td><script>alert('x')</script>&amp;"
    writer = get_writer("html", title="<b>T</b>")
    writer.write(path, [evil], [stored([{evil: evil}])], projected=False)
    page = read(path)
    assert (page.title, page.head, page.body) == ("<b>T</b>", [evil], [[evil]])


def test_empty_run_and_missing_column(tmp_path: Path) -> None:
    path = tmp_path / "out.html"
    get_writer("html").write(path, ["a", "b"], [], projected=False)
    page = read(path)
    assert (page.head, page.body) == (["a", "b"], [])
    get_writer("html").write(path, ["nobody"], batched(stored(ROWS)), projected=True)
    assert read(path).body == [[""]] * len(ROWS)
