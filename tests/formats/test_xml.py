from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import orjson
import pytest

from runyard.formats import get_writer
from runyard.formats.xml import _EXTENDER_RANGES, _LETTER_RANGES, xml_name, xml_names

from .samples import COLUMNS, ROWS, assert_text_cell, batched, stored


def read(path: Path) -> ET.Element:
    raw = path.read_bytes()
    assert raw.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    return ET.fromstring(raw)


def test_round_trip_cell_by_cell(tmp_path: Path) -> None:
    path = tmp_path / "out.xml"
    stats = get_writer("xml").write(path, COLUMNS, batched(stored(ROWS)), projected=False)
    assert stats.rows == len(ROWS)
    root = read(path)
    assert root.tag == "items"
    items = list(root)
    assert [item.tag for item in items] == ["item"] * len(ROWS)
    for row, item in zip(ROWS, items, strict=True):
        assert [child.tag for child in item] == COLUMNS
        for key, child in zip(COLUMNS, item, strict=True):
            assert len(child) == 0
            assert_text_cell(child.text or "", row.get(key))


def test_illegal_characters_are_removed(tmp_path: Path) -> None:
    path = tmp_path / "out.xml"
    row = {"v": "a\x00b\x01c\x0bd\x1fe\ufffef\tg\nh\ri\U0001f600"}
    get_writer("xml").write(path, ["v"], [stored([row])], projected=False)
    assert read(path)[0][0].text == "abcdef\tg\nh\ri\U0001f600"


def test_empty_run_and_missing_column(tmp_path: Path) -> None:
    path = tmp_path / "out.xml"
    get_writer("xml").write(path, ["a"], [], projected=False)
    assert len(read(path)) == 0
    get_writer("xml").write(path, ["n", "nobody"], batched(stored(ROWS)), projected=True)
    assert [(item[1].tag, item[1].text) for item in read(path)] == [("nobody", None)] * len(ROWS)


@pytest.mark.parametrize(
    ("key", "name"),
    [
        ("title", "title"),
        ("first name", "first_name"),
        ("a:b", "a_b"),
        ("1st", "_1st"),
        ("-x", "_-x"),
        (".", "_."),
        ("", "_"),
        ("xmlThing", "_xmlThing"),
        ("XML", "_XML"),
        ("_xml", "_xml"),
        ("price(€)", "price___"),
        ("標題", "標題"),
        ("データ", "データ"),
        ("Größe", "Größe"),
        ("😀", "_"),
    ],
)
def test_name_rule(key: str, name: str) -> None:
    assert xml_name(key) == name


def test_names_are_made_distinct() -> None:
    assert xml_names(["a b", "a_b", "a?b", "a_b_2"]) == ["a_b", "a_b_2", "a_b_3", "a_b_2_2"]
    assert xml_names(["link", "x"], taken=["link"]) == ["link_2", "x"]


def test_every_allowed_name_character_parses_with_expat() -> None:
    # The rule promises names every parser takes; expat (4th edition tables) is the strictest.
    ranges = re.findall(r"(.)(?:-(.))?", _LETTER_RANGES + _EXTENDER_RANGES)
    for first, last in ranges:
        for code in range(ord(first), ord(last or first) + 1):
            name = xml_name("a" + chr(code))
            ET.fromstring(f"<{name}/>")
    for code in range(0x20, 0x3000):
        ET.fromstring(f"<{xml_name(chr(code) + 'x')}/>")


def test_odd_keys_still_parse_and_keep_their_order(tmp_path: Path) -> None:
    keys = ["a b", "a_b", "1", "xml", "<&>", "😀", ""]
    path = tmp_path / "out.xml"
    get_writer("xml").write(
        path, keys, [[orjson.dumps({k: k for k in keys}).decode()]], projected=False
    )
    item = read(path)[0]
    assert [child.tag for child in item] == xml_names(keys)
    assert [child.text or "" for child in item] == keys
