from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from runyard.formats import get_writer
from runyard.formats.rss import item_elements

from .samples import COLUMNS, ROWS, assert_text_cell, batched, stored


def read(path: Path) -> ET.Element:
    root = ET.fromstring(path.read_bytes())
    assert (root.tag, root.attrib) == ("rss", {"version": "2.0"})
    (channel,) = list(root)
    assert channel.tag == "channel"
    return channel


def test_round_trip_cell_by_cell(tmp_path: Path) -> None:
    path = tmp_path / "out.rss"
    stats = get_writer("rss").write(path, COLUMNS, batched(stored(ROWS)), projected=False)
    assert stats.rows == len(ROWS)
    channel = read(path)
    assert [channel.findtext(t) for t in ("title", "link", "description")] == [
        "Runyard export",
        "http://localhost/",
        "Results exported from Runyard",
    ]
    items = channel.findall("item")
    assert len(items) == len(ROWS)
    others = [key for key in COLUMNS if key != "title"]
    for row, item in zip(ROWS, items, strict=True):
        tags = [child.tag for child in item]
        # <title> from title, <link> from url, then every other column (url included).
        assert tags == ["title", "link", *others]
        assert_text_cell(item.findtext("title") or "", row.get("title"))
        assert_text_cell(item.findtext("link") or "", row.get("url"))
        for key, child in zip(others, list(item)[2:], strict=True):
            assert_text_cell(child.text or "", row.get(key))


def test_standard_elements_and_name_clashes() -> None:
    assert item_elements(["link", "description", "x y"]) == [
        ("link", "link"),
        ("description", "description"),
        ("x_y", "x y"),
    ]
    assert item_elements(["url", "link", "title"]) == [
        ("title", "title"),
        ("link", "url"),
        ("url", "url"),
        ("link_2", "link"),
    ]
    assert item_elements(["a"]) == [("a", "a")]


def test_channel_options_are_escaped(tmp_path: Path) -> None:
    path = tmp_path / "out.rss"
    writer = get_writer("rss", channel_title="Maps & <Co>", channel_link="https://x.test/?a=1&b=2")
    writer.write(path, ["title"], [], projected=False)
    channel = read(path)
    assert channel.findtext("title") == "Maps & <Co>"
    assert channel.findtext("link") == "https://x.test/?a=1&b=2"
    assert channel.findall("item") == []


def test_missing_column_is_an_empty_element(tmp_path: Path) -> None:
    path = tmp_path / "out.rss"
    get_writer("rss").write(path, ["nobody", "n"], batched(stored(ROWS)), projected=True)
    items = read(path).findall("item")
    assert [(item[0].tag, item[0].text) for item in items] == [("nobody", None)] * len(ROWS)
