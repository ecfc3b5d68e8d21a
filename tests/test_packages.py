"""Worker packages: what registers, and the exact lines a developer reads when one does not."""

from __future__ import annotations

import io
import json
import stat
import zipfile
from pathlib import Path
from typing import Any

import pytest

from runyard.services import packages
from runyard.services.errors import InvalidInput
from runyard.services.packages import Package, extract_zip, load_package

MAIN = "from sdk import CoreSDK\nCoreSDK.Result.push_data({'ok': True})\n"
OUTPUT = [{"name": "ok", "type": "boolean", "description": "Worked"}]
PROP = {"title": "Query", "name": "q", "type": "string", "editor": "input"}


def write(root: Path, files: dict[str, Any]) -> Path:
    """A package directory: ``main.py`` and both schemas unless ``files`` says otherwise.

    A value of None leaves the file out; str and bytes are written as they are; anything else
    as JSON.
    """
    defaults: dict[str, Any] = {
        "main.py": MAIN,
        "input_schema.json": {"properties": [PROP]},
        "output_schema.json": OUTPUT,
    }
    root.mkdir(parents=True, exist_ok=True)
    for name, content in {**defaults, **files}.items():
        if content is None:
            continue
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        elif isinstance(content, str):
            path.write_text(content)
        else:
            path.write_text(json.dumps(content, indent=2))
    return root


def problems(tmp_path: Path, files: dict[str, Any]) -> list[str]:
    with pytest.raises(InvalidInput) as caught:
        load_package(write(tmp_path / "pkg", files))
    assert caught.value.message == "invalid worker package"
    return caught.value.details or []


def schema_problems(tmp_path: Path, props: list[Any], **root: Any) -> list[str]:
    schema = {"properties": props, **root}
    try:
        load_package(write(tmp_path / "pkg", {"input_schema.json": schema}))
    except InvalidInput as exc:
        return exc.details or []
    return []


# --- what registers ------------------------------------------------------------------------


def test_a_full_package_loads(tmp_path: Path) -> None:
    root = write(
        tmp_path / "pkg",
        {
            "worker.json": {
                "slug": "maps.scraper",
                "title": "Maps",
                "version": "1.2.0",
                "description": "Places from maps",
                "public": True,
            },
            "README.md": "# Maps\n",
            "requirements.txt": "six==1.16.0\n",
        },
    )
    assert load_package(root) == Package(
        root=root,
        slug="maps.scraper",
        title="Maps",
        version="1.2.0",
        description="Places from maps",
        public=True,
        input_schema={"properties": [PROP]},
        output_schema=OUTPUT,
        readme="# Maps\n",
        requirements="six==1.16.0\n",
    )


def test_a_minimal_package_loads_with_defaults(tmp_path: Path) -> None:
    root = write(
        tmp_path / "pkg",
        {"input_schema.json": {"description": "From the schema", "properties": []}},
    )
    package = load_package(root)
    assert (package.slug, package.title, package.version, package.public) == (
        None,
        None,
        None,
        False,
    )
    # CoreClaw keeps the worker's summary in input_schema.json.
    assert package.description == "From the schema"
    assert (package.readme, package.requirements) == ("", None)


def test_files_written_on_windows_load(tmp_path: Path) -> None:
    root = write(
        tmp_path / "pkg",
        {
            "input_schema.json": b'\xef\xbb\xbf{"properties": []}',
            "readme.md": "lower-case name",
            # PowerShell's `pip freeze > requirements.txt`.
            "requirements.txt": "six==1.16.0\r\n".encode("utf-16"),
        },
    )
    package = load_package(root)
    assert package.readme == "lower-case name"
    assert package.requirements == "six==1.16.0\r\n"


def test_the_examples_of_coreclaws_documentation_load(tmp_path: Path) -> None:
    schema = {
        "description": "Instagram reels",
        "b": "startUrl",
        "concurrency": {"fields": ["startUrl", "searchTerms"], "remove_fields": ["searchTerms"]},
        "properties": [
            {
                "title": "URL",
                "name": "startUrl",
                "type": "array",
                "editor": "requestList",
                "description": "Reels to fetch",
                "default": [{"url": "https://www.instagram.com/reel/C5Rdyj_q7YN/"}],
                "required": True,
            },
            {
                "title": "Search term(s)",
                "name": "searchTerms",
                "type": "array",
                "editor": "stringList",
                "default": [{"string": "restaurant"}, {"string": "school"}],
            },
            {
                "title": "Language",
                "name": "language",
                "type": "string",
                "editor": "select",
                "options": [{"label": "English", "value": "en"}, {"label": "中文", "value": "zh"}],
                "default": "en",
            },
            {
                "title": "Category",
                "name": "radio",
                "type": "integer",
                "editor": "radioGroup",
                "options": [{"label": "hotel", "value": 1}, {"label": "restaurant", "value": 2}],
                "default": 1,
            },
            {
                "title": "Data Sections to Scrape",
                "name": "data_sections",
                "type": "array",
                "editor": "checkboxGroup",
                "options": [
                    {"label": "Reviews", "value": "reviews"},
                    {"label": "Address", "value": "address"},
                ],
                "default": ["reviews", "address"],
            },
            {
                "title": "Extract posts that are newer than",
                "name": "date",
                "type": "string",
                "editor": "datepicker",
                "format": "DD/MM/YYYY",
                "valueFormat": "DD/MM/YYYY",
                "dateType": "absoluteOrRelative",
            },
            {"title": "Skip closed", "name": "skipClosed", "type": "boolean", "editor": "checkbox"},
            {
                "title": "Timeout (secs)",
                "name": "timeout",
                "type": "integer",
                "editor": "number",
                "minimum": 1,
                "maximum": 120,
                "default": 30,
                "sectionCaption": "Request control",
                "sectionDescription": "Performance parameters",
                "placeholder": "30",
            },
            {
                "title": "startURLs",
                "name": "url",
                "type": "array",
                "editor": "requestListSource",
                "default": [{"url": "https://www.instagram.com/espn", "num_of_posts": "10"}],
                "param_list": [
                    {"param": "url", "title": "URL", "editor": "input", "required": True},
                    {"param": "num_of_posts", "title": "Posts", "type": "integer"},
                ],
            },
            {"title": "Notes", "name": "notes", "type": "string", "editor": "textarea"},
            {"title": "Ratio", "name": "ratio", "type": "number", "editor": "number"},
        ],
    }
    package = load_package(write(tmp_path / "pkg", {"input_schema.json": schema}))
    assert package.input_schema == schema  # kept as written, unknown UI keys included


def test_a_json_editor_registers_for_objects_and_lists(tmp_path: Path) -> None:
    schema = {
        "properties": [
            {
                "title": "Headers",
                "name": "headers",
                "type": "object",
                "editor": "json",
                "default": {"Accept": "text/html"},
            },
            {"title": "Pages", "name": "pages", "type": "array", "editor": "json", "default": [1]},
        ]
    }
    package = load_package(write(tmp_path / "pkg", {"input_schema.json": schema}))
    assert package.input_schema == schema


# --- what does not, and the lines that say why --------------------------------------------


def test_missing_files_are_all_named(tmp_path: Path) -> None:
    assert problems(
        tmp_path, {"main.py": None, "input_schema.json": None, "output_schema.json": None}
    ) == ["main.py: missing", "input_schema.json: missing", "output_schema.json: missing"]


def test_malformed_json_names_file_line_and_column(tmp_path: Path) -> None:
    assert problems(
        tmp_path,
        {
            "input_schema.json": '{\n  "properties": [\n    {"name": "q",}\n  ]\n}\n',
            "output_schema.json": "",
            "worker.json": b"\xff\xfe{}",
        },
    ) == [
        "input_schema.json: invalid JSON at line 3, column 18: "
        "Expecting property name enclosed in double quotes",
        "output_schema.json: invalid JSON at line 1, column 1: Expecting value",
        "worker.json: not UTF-8 text",
    ]


def test_a_syntax_error_in_main_is_caught_at_upload(tmp_path: Path) -> None:
    assert problems(tmp_path, {"main.py": "import sys\nprint('hi'\n"}) == [
        "main.py: line 2: '(' was never closed"
    ]


def test_problems_of_several_files_come_together(tmp_path: Path) -> None:
    assert problems(
        tmp_path,
        {
            "main.py": None,
            "input_schema.json": {"properties": [{"name": "q", "type": "text"}]},
            "output_schema.json": [{"name": "a"}, {"name": "a"}],
            "worker.json": {"version": "latest"},
        },
    ) == [
        "main.py: missing",
        'input_schema.json: properties[0] (q): "type" must be one of string, integer, number, '
        "boolean, array, object",
        'output_schema.json: [1] (a): "name" repeats [0]',
        'worker.json: "version" must not be "latest": that word names the newest version',
    ]


TYPES = "string, integer, number, boolean, array, object"
EDITORS = (
    "input, textarea, number, select, radio, checkbox, switch, datepicker, stringList, "
    "requestList, requestListSource, json"
)
P0 = "input_schema.json: properties[0]"


@pytest.mark.parametrize(
    ("props", "expected"),
    [
        (["q"], [f"{P0}: must be an object"]),
        ([{"type": "string"}], [f'{P0}: "name" is missing']),
        (
            [{"name": "max-pages", "type": "integer"}],
            [f'{P0} (max-pages): "name" must match ^[A-Za-z_][A-Za-z0-9_]*$'],
        ),
        (
            [{"name": "查询", "type": "string"}],
            [f'{P0} (查询): "name" must match ^[A-Za-z_][A-Za-z0-9_]*$'],
        ),
        (
            [PROP, {**PROP, "title": "Again"}],
            ['input_schema.json: properties[1] (q): "name" repeats properties[0]'],
        ),
        (
            [PROP, {"name": "a", "type": "string"}, {"name": "max_pages", "type": "float"}],
            [f'input_schema.json: properties[2] (max_pages): "type" must be one of {TYPES}'],
        ),
        ([{"name": "q"}], [f'{P0} (q): "type" is missing']),
        (
            [{"name": "q", "type": "string", "editor": "dropdown"}],
            [f'{P0} (q): "editor" must be one of {EDITORS}'],
        ),
        (
            [{"name": "q", "type": "string", "editor": "switch"}],
            [f'{P0} (q): editor "switch" needs "type" boolean'],
        ),
        (
            [{"name": "q", "type": "string", "editor": "stringList"}],
            [f'{P0} (q): editor "stringList" needs "type" array'],
        ),
        (
            [{"name": "n", "type": "string", "editor": "number"}],
            [f'{P0} (n): editor "number" needs "type" integer or number'],
        ),
        (
            [{"name": "headers", "type": "string", "editor": "json"}],
            [f'{P0} (headers): editor "json" needs "type" object or array'],
        ),
        (
            [{**PROP, "required": "yes", "title": 5}],
            [f'{P0} (q): "required" must be true or false', f'{P0} (q): "title" must be a string'],
        ),
        (
            [{"name": "lang", "type": "string", "editor": "select"}],
            [f'{P0} (lang): "options" is required for editor "select"'],
        ),
        (
            [{"name": "tags", "type": "array", "editor": "checkbox"}],
            [f'{P0} (tags): "options" is required for editor "checkbox"'],
        ),
        (
            [{"name": "lang", "type": "string", "editor": "select", "options": []}],
            [f'{P0} (lang): "options" must be a non-empty list of {{label, value}}'],
        ),
        (
            [{"name": "lang", "type": "string", "editor": "select", "options": [{"label": "A"}]}],
            [f'{P0} (lang): options[0]: must be an object with "label" and "value"'],
        ),
        (
            [
                {
                    "name": "cat",
                    "type": "integer",
                    "editor": "radio",
                    "options": [{"label": "A", "value": "1"}, {"label": 2, "value": 2}],
                }
            ],
            [
                f'{P0} (cat): options[0]: "value" must be an integer',
                f'{P0} (cat): options[1]: "label" must be a string',
            ],
        ),
        (
            [
                {
                    "name": "cat",
                    "type": "integer",
                    "editor": "radio",
                    "options": [{"label": "A", "value": 1}, {"label": "B", "value": 1}],
                }
            ],
            [f'{P0} (cat): options[1]: "value" repeats options[0]'],
        ),
        (
            [{"name": "n", "type": "integer", "editor": "number", "default": "5"}],
            [f'{P0} (n): "default" must be an integer'],
        ),
        (
            [
                {
                    "name": "lang",
                    "type": "string",
                    "editor": "select",
                    "options": [{"label": "English", "value": "en"}],
                    "default": "fr",
                }
            ],
            [f'{P0} (lang): "default" must be one of "en"'],
        ),
        (
            [
                {
                    "name": "parts",
                    "type": "array",
                    "editor": "checkbox",
                    "options": [{"label": "A", "value": "a"}, {"label": "B", "value": "b"}],
                    "default": ["a", "c"],
                }
            ],
            [f'{P0} (parts): "default"[1] must be one of "a", "b"'],
        ),
        (
            [{"name": "n", "type": "integer", "minimum": 1, "default": 0}],
            [f'{P0} (n): "default" must be at least 1'],
        ),
        (
            [{"name": "n", "type": "integer", "minimum": "1", "maximum": True}],
            [f'{P0} (n): "minimum" must be a number', f'{P0} (n): "maximum" must be a number'],
        ),
        (
            [{"name": "n", "type": "number", "minimum": 10, "maximum": 1}],
            [f'{P0} (n): "minimum" must not be greater than "maximum"'],
        ),
        (
            [{"name": "q", "type": "string", "maximum": 10}],
            [f'{P0} (q): "maximum" applies only to type integer or number'],
        ),
        (
            [
                {
                    "name": "terms",
                    "type": "array",
                    "editor": "stringList",
                    "default": ["a", {"string": "b"}],
                }
            ],
            [f'{P0} (terms): "default" must not mix strings and objects'],
        ),
        (
            [
                {
                    "name": "src",
                    "type": "array",
                    "editor": "requestListSource",
                    "param_list": [{"param": "url"}, {"param": "url"}, {"title": "x"}],
                }
            ],
            [
                f'{P0} (src): param_list[1]: "param" repeats param_list[0]',
                f'{P0} (src): param_list[2]: "param" must be a non-empty string',
            ],
        ),
    ],
)
def test_input_schema_property_rules(tmp_path: Path, props: list[Any], expected: list[str]) -> None:
    assert schema_problems(tmp_path, props) == expected


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        ([PROP], ['input_schema.json: must be an object with a "properties" list']),
        ({}, ['input_schema.json: "properties" is missing']),
        (
            {"properties": {"q": {"type": "string"}}},
            [
                'input_schema.json: "properties" must be a list of fields (CoreClaw format), '
                "not an object"
            ],
        ),
        (
            {"properties": [], "description": 1},
            ['input_schema.json: "description" must be a string'],
        ),
        (
            {"properties": [PROP], "b": "q"},
            ['input_schema.json: "b" (q) must name a property of type array'],
        ),
        (
            {
                "properties": [PROP, {"name": "urls", "type": "array", "editor": "requestList"}],
                "concurrency": {"fields": ["urls", "q"], "remove_fields": ["other"]},
            },
            [
                "input_schema.json: concurrency.fields[1] (q): must name a property of type array",
                "input_schema.json: concurrency.remove_fields[0] (other): "
                "must name a property of type array",
            ],
        ),
        (
            {"properties": [], "concurrency": ["urls"]},
            ['input_schema.json: "concurrency" must be an object like {"fields": [...]}'],
        ),
    ],
)
def test_input_schema_root_rules(tmp_path: Path, schema: Any, expected: list[str]) -> None:
    assert problems(tmp_path, {"input_schema.json": schema}) == expected


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        ({"name": "a"}, ["output_schema.json: must be a list of {name, type, description}"]),
        (["a"], ["output_schema.json: [0]: must be an object"]),
        ([{"type": "string"}], ['output_schema.json: [0]: "name" is missing']),
        ([{"name": " "}], ['output_schema.json: [0]: "name" must be a non-empty string']),
        (
            [{"name": "a", "type": 1, "description": None}],
            [
                'output_schema.json: [0] (a): "type" must be a string',
                'output_schema.json: [0] (a): "description" must be a string',
            ],
        ),
    ],
)
def test_output_schema_rules(tmp_path: Path, schema: Any, expected: list[str]) -> None:
    assert problems(tmp_path, {"output_schema.json": schema}) == expected


@pytest.mark.parametrize(
    ("meta", "expected"),
    [
        (["x"], ["worker.json: must be an object"]),
        (
            {"name": "x", "slug": "ok"},
            [
                'worker.json: "name" is not a known key '
                "(allowed: slug, title, version, description, public)"
            ],
        ),
        ({"slug": "My Worker"}, ['worker.json: "slug" must match ^[a-z0-9][a-z0-9._-]{0,127}$']),
        ({"slug": "-x"}, ['worker.json: "slug" must match ^[a-z0-9][a-z0-9._-]{0,127}$']),
        (
            {"title": ""},
            ['worker.json: "title" must be a non-empty string of at most 256 characters'],
        ),
        (
            {"version": "1 0"},
            ['worker.json: "version" must match ^[0-9A-Za-z][0-9A-Za-z._+-]{0,63}$'],
        ),
        (
            {"version": "Latest"},
            ['worker.json: "version" must not be "latest": that word names the newest version'],
        ),
        (
            {"description": 3, "public": "yes"},
            [
                'worker.json: "description" must be a string',
                'worker.json: "public" must be true or false',
            ],
        ),
    ],
)
def test_worker_json_rules(tmp_path: Path, meta: Any, expected: list[str]) -> None:
    assert problems(tmp_path, {"worker.json": meta}) == expected


# --- ZIP uploads ---------------------------------------------------------------------------


def make_zip(entries: list[tuple[str | zipfile.ZipInfo, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries:
            zf.writestr(name, data)
    return buffer.getvalue()


def package_entries(prefix: str = "") -> list[tuple[str | zipfile.ZipInfo, bytes]]:
    return [
        (f"{prefix}main.py", MAIN.encode()),
        (f"{prefix}input_schema.json", json.dumps({"properties": [PROP]}).encode()),
        (f"{prefix}output_schema.json", json.dumps(OUTPUT).encode()),
    ]


def test_a_zip_of_a_directory_has_that_directory_as_root(tmp_path: Path) -> None:
    data = make_zip(
        [
            ("my-worker/", b""),
            *package_entries("my-worker/"),
            ("__MACOSX/my-worker/._main.py", b"x"),
        ]
    )
    root = extract_zip(data, tmp_path / "x")
    assert root == tmp_path / "x" / "my-worker"
    assert sorted(p.name for p in (tmp_path / "x").iterdir()) == ["my-worker"]
    assert load_package(root).input_schema == {"properties": [PROP]}


def test_a_zip_of_the_files_has_the_destination_as_root(tmp_path: Path) -> None:
    src = tmp_path / "worker.zip"
    src.write_bytes(make_zip([*package_entries(), ("lib/helper.py", b"X = 1\n")]))
    package = load_package(src, extract_to=tmp_path / "out")
    assert package.root == tmp_path / "out"
    assert (package.root / "lib" / "helper.py").read_text() == "X = 1\n"


def test_a_zipped_package_is_validated_like_a_directory(tmp_path: Path) -> None:
    src = tmp_path / "worker.zip"
    src.write_bytes(make_zip(package_entries()[1:]))
    with pytest.raises(InvalidInput) as caught:
        load_package(src, extract_to=tmp_path / "out")
    assert caught.value.details == ["main.py: missing"]


def test_an_executable_bit_survives_and_nothing_else(tmp_path: Path) -> None:
    tool = zipfile.ZipInfo("bin/tool")
    tool.external_attr = (stat.S_IFREG | 0o4777) << 16
    root = extract_zip(make_zip([*package_entries(), (tool, b"#!/bin/sh\n")]), tmp_path / "x")
    assert stat.S_IMODE((root / "bin" / "tool").stat().st_mode) == 0o755
    assert stat.S_IMODE((root / "main.py").stat().st_mode) == 0o644


def _link(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


@pytest.mark.parametrize(
    ("entry", "line"),
    [
        ("../evil.py", "unsafe ZIP entry ../evil.py: path leads outside the package"),
        ("a/../../evil.py", "unsafe ZIP entry a/../../evil.py: path leads outside the package"),
        ("..\\evil.py", "unsafe ZIP entry ..\\evil.py: path leads outside the package"),
        ("/etc/cron.d/evil", "unsafe ZIP entry /etc/cron.d/evil: absolute path"),
        ("C:/evil.py", "unsafe ZIP entry C:/evil.py: absolute path"),
        (_link("secrets"), "unsafe ZIP entry secrets: symbolic link"),
    ],
)
def test_unsafe_entries_are_refused_and_nothing_is_written(
    tmp_path: Path, entry: str | zipfile.ZipInfo, line: str
) -> None:
    dest = tmp_path / "x"
    with pytest.raises(InvalidInput) as caught:
        extract_zip(make_zip([*package_entries(), (entry, b"/etc/passwd")]), dest)
    assert caught.value.message == "invalid worker package"
    assert caught.value.details == [line]
    assert not dest.exists() or not any(dest.iterdir())
    assert not (tmp_path / "evil.py").exists()


def test_too_many_entries_are_refused(tmp_path: Path) -> None:
    data = make_zip([(f"f{i}", b"") for i in range(10_001)])
    with pytest.raises(InvalidInput) as caught:
        extract_zip(data, tmp_path / "x")
    assert caught.value.details == ["the ZIP has 10,001 entries; at most 10,000 are allowed"]


def test_too_much_unpacked_data_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The real limit is 200 MB; the rule is the same at a size a test can afford.
    monkeypatch.setattr(packages, "MAX_ZIP_BYTES", 3 * 1024 * 1024)
    data = make_zip([("a.bin", b"\0" * (2 << 20)), ("b.bin", b"\0" * (2 << 20))])
    assert len(data) < 100_000  # a small upload that unpacks big
    with pytest.raises(InvalidInput) as caught:
        extract_zip(data, tmp_path / "x")
    assert caught.value.details == ["the ZIP unpacks to more than 3 MB"]
    assert not (tmp_path / "x").exists()  # refused before anything was written


def test_a_lying_size_header_does_not_unpack_past_the_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(packages, "MAX_ZIP_BYTES", 1024 * 1024)
    data = bytearray(make_zip([("a.bin", b"\0" * (2 << 20))]))
    # Claim 10 bytes in the central directory (offset 24 of its record) for a 2 MB entry.
    central = data.rfind(b"PK\x01\x02")
    data[central + 24 : central + 28] = (10).to_bytes(4, "little")
    with pytest.raises(InvalidInput) as caught:
        extract_zip(bytes(data), tmp_path / "x")
    assert caught.value.details == ["a.bin: damaged ZIP entry (Bad CRC-32 for file 'a.bin')"]
    assert not any((tmp_path / "x").iterdir())


def test_not_a_zip(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput) as caught:
        extract_zip(b"PK but not really", tmp_path / "x")
    assert caught.value.details == ["not a valid ZIP file: File is not a zip file"]


def test_a_source_that_is_neither(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    with pytest.raises(InvalidInput) as caught:
        load_package(path)
    assert caught.value.details == [f"{path}: not a directory or a .zip file"]
