"""The start-run form: a worker's input_schema.json as controls, and the post back as JSON.

Most tests go the way a browser does: render the controls with the real template, submit the
HTML as a browser would (``submit``), and read the post back with ``forms.parse``.
"""

from __future__ import annotations

import copy
from html.parser import HTMLParser
from typing import Any

import pytest
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from runyard.console import forms
from runyard.services.errors import InvalidInput
from runyard.services.inputs import validate_run_input
from runyard.services.packages import input_schema_problems

URLS_PARAMS = [
    {"param": "url", "title": "Profile URL", "required": True},
    {"param": "num_of_posts", "title": "Posts", "placeholder": "all"},
]
SCHEMA: dict[str, Any] = {
    "properties": [
        {
            "title": "Keyword",
            "name": "keyword",
            "type": "string",
            "editor": "input",
            "description": "What to search for.",
            "required": True,
            "default": "pizza",
        },
        {
            "title": "Notes",
            "name": "notes",
            "type": "string",
            "editor": "textarea",
            "default": "line one\nline two",
        },
        {
            "title": "Max pages",
            "name": "max_pages",
            "type": "integer",
            "editor": "number",
            "minimum": 1,
            "maximum": 500,
            "default": 10,
        },
        {"title": "Ratio", "name": "ratio", "type": "number", "editor": "number", "default": 0.5},
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
            "name": "category",
            "type": "integer",
            "editor": "radio",
            "options": [{"label": "Hotel", "value": 1}, {"label": "Restaurant", "value": 2}],
            "default": 2,
        },
        {
            "title": "Sections",
            "name": "sections",
            "type": "array",
            "editor": "checkbox",
            "options": [
                {"label": "Reviews", "value": "reviews"},
                {"label": "Address", "value": "address"},
                {"label": "Photos", "value": "photos"},
            ],
            "default": ["reviews", "photos"],
        },
        {
            "title": "Skip closed",
            "name": "skip_closed",
            "type": "boolean",
            "editor": "checkbox",
            "default": True,
        },
        {
            "title": "Respect robots.txt",
            "name": "robots",
            "type": "boolean",
            "editor": "switch",
            "default": True,
            "sectionCaption": "Politeness",
            "sectionDescription": "How the crawler treats sites.",
        },
        {
            "title": "Since",
            "name": "since",
            "type": "string",
            "editor": "datepicker",
            "default": "2024-05-31",
        },
        {
            "title": "Start URLs",
            "name": "start_urls",
            "type": "array",
            "editor": "requestList",
            "required": True,
            "default": [{"url": "https://example.com/"}, {"url": "https://example.org/a?b=1&c=2"}],
            "sectionCaption": "Sources",
        },
        {
            "title": "Profiles",
            "name": "profiles",
            "type": "array",
            "editor": "requestListSource",
            "param_list": URLS_PARAMS,
            "default": [{"url": "https://www.instagram.com/espn", "num_of_posts": "10"}],
        },
        {
            "title": "Search terms",
            "name": "terms",
            "type": "array",
            "editor": "stringList",
            "default": [{"string": "restaurant"}, {"string": "school"}],
        },
        {
            "title": "Headers",
            "name": "headers",
            "type": "object",
            "editor": "json",
            "default": {"Accept": "text/html", "X-Depth": 2},
        },
        {
            "title": "Sort",
            "name": "sort",
            "type": "string",
            "editor": "radioGroup",
            "options": [{"label": "Newest", "value": "new"}, {"label": "Oldest", "value": "old"}],
            "default": "new",
        },
        {
            "title": "Parts",
            "name": "parts",
            "type": "array",
            "editor": "checkboxGroup",
            "options": [{"label": "A", "value": "a"}, {"label": "B", "value": "b"}],
            "default": ["a"],
        },
        {
            "title": "Region",
            "name": "region",
            "type": "string",
            "options": [{"label": "Europe", "value": "eu"}, {"label": "Asia", "value": "as"}],
        },
        {"title": "Limit", "name": "limit", "type": "integer", "default": 5},
        {"title": "Verbose", "name": "verbose", "type": "boolean"},
        {"title": "Extra", "name": "extra", "type": "object"},
        {"title": "Label", "name": "label", "type": "string"},
    ]
}
DEFAULTS = {p["name"]: p["default"] for p in SCHEMA["properties"] if "default" in p}
#: A value other than the default for every field, each an edge of its editor.
VALUES: dict[str, Any] = {
    "keyword": 'tacos <b>"&"</b>',
    "notes": "\nstarts with a line break\n\n  and keeps its spaces  ",
    "max_pages": 500,
    "ratio": 2.25,
    "language": "zh",
    "category": 1,
    "sections": [],
    "skip_closed": False,
    "robots": False,
    "since": "2023-01-02",
    "start_urls": [{"url": "https://a.example/"}],
    "profiles": [
        {"url": "https://a.example/1", "num_of_posts": ""},
        {"url": "https://a.example/2", "num_of_posts": "3"},
    ],
    "terms": [{"string": "two words"}],
    "headers": {"nested": {"list": [1, 2.5, None, True, "ü"]}},
    "sort": "old",
    "parts": ["a", "b"],
    "region": "eu",
    "limit": 0,
    "verbose": True,
    "extra": {"k": "v"},
    "label": "",
}

QUOTES = "Expecting property name enclosed in double quotes"
ENV = Environment(
    loader=PackageLoader("runyard.console", "templates"),
    autoescape=select_autoescape(default=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
MACRO = ENV.from_string('{% from "_fields.html" import input_fields %}{{ input_fields(f, p) }}')


def render(fields: list[forms.Field], problems: dict[str, list[str]] | None = None) -> str:
    return MACRO.render(f=fields, p=problems or {})


class Page(HTMLParser):
    """What a browser makes of the rendered controls: the post, and the elements to check."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.post: dict[str, list[str]] = {}
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.label_for: dict[str, str] = {}
        self.legends = 0
        self.fieldsets = 0
        self._label: tuple[str, list[str]] | None = None
        self._textarea: tuple[str, list[str]] | None = None
        self._select: tuple[str, bool, list[tuple[str, bool]]] | None = None
        self.feed(html)
        self.close()

    def _add(self, name: str | None, value: str) -> None:
        if name:
            self.post.setdefault(name, []).append(value)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.elements.append((tag, a))
        if tag == "input":
            kind = a.get("type") or "text"
            if kind in ("checkbox", "radio"):
                if "checked" in a:
                    self._add(a.get("name"), a.get("value") or "on")
            else:
                self._add(a.get("name"), a.get("value") or "")
        elif tag == "textarea":
            self._textarea = (a.get("name") or "", [])
        elif tag == "select":
            self._select = (a.get("name") or "", "multiple" in a, [])
        elif tag == "option" and self._select is not None:
            self._select[2].append((a.get("value") or "", "selected" in a))
        elif tag == "label":
            self._label = (a.get("for") or "", [])
        elif tag == "fieldset":
            self.fieldsets += 1
        elif tag == "legend":
            self.legends += 1

    def handle_data(self, data: str) -> None:
        if self._textarea is not None:
            self._textarea[1].append(data)
        if self._label is not None:
            self._label[1].append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "textarea" and self._textarea is not None:
            name, chunks = self._textarea
            text = "".join(chunks)
            # HTML drops one line break right after <textarea>.
            self._add(name, text[1:] if text.startswith("\n") else text)
            self._textarea = None
        elif tag == "select" and self._select is not None:
            name, multiple, options = self._select
            chosen = [value for value, selected in options if selected]
            if not multiple and not chosen and options:
                chosen = [options[0][0]]  # a single select always posts one option
            for value in chosen:
                self._add(name, value)
            self._select = None
        elif tag == "label" and self._label is not None:
            self.label_for[self._label[0]] = "".join(self._label[1])
            self._label = None

    def controls(self) -> list[dict[str, str | None]]:
        return [
            a
            for tag, a in self.elements
            if tag in ("select", "textarea") or (tag == "input" and a.get("type") != "hidden")
        ]

    def by_id(self, id_: str) -> dict[str, str | None]:
        found = [a for _, a in self.elements if a.get("id") == id_]
        assert len(found) == 1, id_
        return found[0]


def submit(
    schema: dict[str, Any], values: dict[str, Any] | None = None, /, **changes: list[str]
) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """Show the form, change fields as a user would (posted name without "custom."), post it."""
    post = Page(render(forms.fields(schema, values))).post
    for name, posted in changes.items():
        post[f"custom.{name}"] = posted
    return forms.parse(schema, post)


def schema_of(*props: dict[str, Any]) -> dict[str, Any]:
    schema = {"properties": list(props)}
    assert input_schema_problems(schema) == []  # every schema here registers
    return schema


def field(fields: list[forms.Field], name: str) -> forms.Field:
    return next(f for f in fields if f.name == name)


def run_custom(schema: dict[str, Any], custom: dict[str, Any]) -> dict[str, Any]:
    body = {"parameters": {"custom": custom}}
    return validate_run_input(body, schema, default_timeout=60).custom


# --- what each property becomes -------------------------------------------------------------


def test_the_schema_of_these_tests_registers() -> None:
    assert input_schema_problems(SCHEMA) == []


@pytest.mark.parametrize(
    ("name", "editor"),
    [
        ("keyword", "input"),
        ("notes", "textarea"),
        ("max_pages", "number"),
        ("language", "select"),
        ("category", "radio"),
        ("sections", "checkbox"),
        ("skip_closed", "checkbox"),
        ("robots", "switch"),
        ("since", "datepicker"),
        ("start_urls", "requestList"),
        ("profiles", "requestListSource"),
        ("terms", "stringList"),
        ("headers", "json"),
        ("sort", "radio"),  # radioGroup
        ("parts", "checkbox"),  # checkboxGroup
        ("region", "select"),  # no editor, options
        ("limit", "number"),  # no editor, integer
        ("verbose", "switch"),  # no editor, boolean
        ("extra", "json"),  # no editor, object
        ("label", "input"),  # no editor, string
    ],
)
def test_each_property_gets_its_editor(name: str, editor: str) -> None:
    assert field(forms.fields(SCHEMA), name).editor == editor


def test_a_field_carries_what_its_label_and_section_need() -> None:
    shown = forms.fields(SCHEMA)
    keyword = field(shown, "keyword")
    assert (keyword.title, keyword.description, keyword.required, keyword.type) == (
        "Keyword",
        "What to search for.",
        True,
        "string",
    )
    assert keyword.input_name == "custom.keyword"
    sections = [(f.name, f.section_caption, f.section_description) for f in shown]
    assert [s for s in sections if s[1]] == [
        ("robots", "Politeness", "How the crawler treats sites."),
        ("start_urls", "Sources", ""),
    ]


def test_without_values_every_control_shows_its_default() -> None:
    shown = forms.fields(SCHEMA)
    assert field(shown, "keyword").text == "pizza"
    assert field(shown, "notes").text == "line one\nline two"
    assert field(shown, "max_pages").text == "10"
    assert field(shown, "ratio").text == "0.5"
    assert field(shown, "language").selected == (0,)
    assert field(shown, "category").selected == (1,)
    assert field(shown, "sections").selected == (0, 2)
    assert field(shown, "skip_closed").checked is True
    assert field(shown, "robots").checked is True
    assert field(shown, "since").text == "2024-05-31"
    assert field(shown, "start_urls").text == "https://example.com/\nhttps://example.org/a?b=1&c=2"
    assert field(shown, "terms").text == "restaurant\nschool"
    assert field(shown, "headers").text == '{\n  "Accept": "text/html",\n  "X-Depth": 2\n}'
    rows = field(shown, "profiles").rows
    assert [[c.value for c in r.cells] for r in rows] == [
        ["https://www.instagram.com/espn", "10"],
        ["", ""],  # one blank row to add to, without script
    ]
    assert [c.name for c in rows[1].cells] == [
        "custom.profiles.1.url",
        "custom.profiles.1.num_of_posts",
    ]
    assert field(shown, "region").selected == ()
    assert field(shown, "verbose").checked is False
    assert field(shown, "extra").text == ""


def test_values_are_shown_instead_of_defaults_and_missing_ones_fall_back() -> None:
    shown = forms.fields(SCHEMA, {"keyword": "sushi", "sections": [], "max_pages": None})
    assert field(shown, "keyword").text == "sushi"
    assert field(shown, "sections").selected == ()  # an empty choice stays empty
    assert field(shown, "max_pages").text == "10"  # null: the server would apply the default
    assert field(shown, "notes").text == "line one\nline two"


# --- round trips ----------------------------------------------------------------------------


def test_posting_the_untouched_form_gives_the_defaults() -> None:
    custom, problems = submit(SCHEMA)
    assert problems == {}
    # Fields without a default: a switch is off, a string box is "", the rest left out.
    assert custom == {**DEFAULTS, "verbose": False, "label": ""}
    assert run_custom(SCHEMA, custom) == custom


def test_posting_a_shown_value_gives_it_back_unchanged() -> None:
    custom, problems = submit(SCHEMA, copy.deepcopy(VALUES))
    assert problems == {}
    assert custom == VALUES
    assert run_custom(SCHEMA, custom) == VALUES


def test_types_of_option_values_survive_the_form() -> None:
    schema = schema_of(
        {
            "name": "mixed",
            "type": "array",
            "editor": "select",
            "options": [
                {"label": "one", "value": 1},
                {"label": "quoted one", "value": "1"},
                {"label": "yes", "value": True},
                {"label": "half", "value": 0.5},
            ],
        },
        {
            "name": "flag",
            "type": "boolean",
            "editor": "radio",
            "options": [{"label": "Yes", "value": True}, {"label": "No", "value": False}],
            "default": True,
        },
    )
    shown = forms.fields(schema, {"mixed": ["1", True], "flag": False})
    assert field(shown, "mixed").selected == (1, 2)
    assert field(shown, "mixed").multiple is True
    assert field(shown, "flag").selected == (1,)
    custom, _ = submit(schema, {"mixed": ["1", True], "flag": False})
    assert custom == {"mixed": ["1", True], "flag": False}
    custom, _ = submit(schema, **{"mixed": ["0", "3"], "flag": ["0"]})
    assert custom == {"mixed": [1, 0.5], "flag": True}
    custom, _ = submit(schema, mixed=[])
    assert custom["mixed"] == []


def test_a_refused_form_shows_the_text_as_typed() -> None:
    post = Page(render(forms.fields(SCHEMA))).post
    post["custom.headers"] = ['{"Accept": ']
    post["custom.max_pages"] = ["ten"]
    custom, problems = forms.parse(SCHEMA, post)
    assert set(problems) == {"headers", "max_pages"}
    shown = forms.fields(SCHEMA, custom, form=post)
    assert field(shown, "headers").text == '{"Accept": '
    assert (field(shown, "max_pages").text, field(shown, "max_pages").input_type) == ("ten", "text")
    assert field(shown, "language").selected == (0,)
    again = Page(render(shown, problems)).post
    assert again["custom.headers"] == ['{"Accept": ']


# --- text, numbers, JSON -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "expected"),
    [("7", 7), ("-3", -3), ("3.0", 3), ("1e3", 1000), (" 42 ", 42)],
)
def test_whole_numbers(typed: str, expected: int) -> None:
    custom, problems = submit(SCHEMA, max_pages=[typed])
    assert problems == {}
    assert custom["max_pages"] == expected
    assert type(custom["max_pages"]) is int


@pytest.mark.parametrize(
    ("typed", "expected"),
    [("2", 2), ("2.5", 2.5), ("-.5", -0.5), ("1e-3", 0.001)],
)
def test_numbers_keep_integers_integers(typed: str, expected: float) -> None:
    custom, _ = submit(SCHEMA, ratio=[typed])
    assert custom["ratio"] == expected
    assert type(custom["ratio"]) is type(expected)


@pytest.mark.parametrize(
    ("name", "typed", "message"),
    [
        ("max_pages", "3.5", "must be a whole number"),
        ("max_pages", "ten", "must be a whole number"),
        ("ratio", "1,5", "must be a number"),
        ("ratio", "nan", "must be a number"),
        ("ratio", "1e999", "must be a number of a size a computer can hold"),
        ("limit", "1" * 65, "must be a whole number of at most 64 characters"),
    ],
)
def test_unreadable_numbers_are_named(name: str, typed: str, message: str) -> None:
    custom, problems = submit(SCHEMA, **{name: [typed]})
    assert problems == {name: [message]}
    assert name not in custom


def test_an_empty_number_is_left_out_and_the_server_applies_the_default() -> None:
    custom, problems = submit(SCHEMA, max_pages=[""], limit=["  "])
    assert problems == {}
    assert "max_pages" not in custom
    assert "limit" not in custom
    assert run_custom(SCHEMA, custom)["max_pages"] == 10


def test_text_is_kept_as_typed_and_empty_text_is_empty() -> None:
    custom, _ = submit(SCHEMA, keyword=["  spaced  "], notes=["a\r\nb\r\n"], label=[""])
    assert custom["keyword"] == "  spaced  "
    assert custom["notes"] == "a\nb\n"  # the browser's CRLF, as the worker expects it
    assert custom["label"] == ""


def test_json_in_a_json_editor() -> None:
    custom, problems = submit(SCHEMA, headers=['{"a": [1, 2.5, null]}'], extra=["[]"])
    assert problems == {}
    assert custom["headers"] == {"a": [1, 2.5, None]}
    assert custom["extra"] == []
    custom, problems = submit(SCHEMA, headers=["  "])
    assert "headers" not in custom
    assert problems == {}


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("x", "not valid JSON: Expecting value (line 1, column 1)"),
        ("{'a': 1}", f"not valid JSON: {QUOTES} (line 1, column 2)"),
        ('{\n  "a": 1\n  "b": 2\n}', "not valid JSON: Expecting ',' delimiter (line 3, column 3)"),
        ('{"a": NaN}', "not valid JSON: NaN is not a JSON value"),
    ],
)
def test_bad_json_says_where(typed: str, message: str) -> None:
    schema = schema_of({"name": "cfg", "type": "object", "editor": "json"})
    custom, problems = forms.parse(schema, {"custom.cfg": [typed]})
    assert problems == {"cfg": [message]}
    assert custom == {}


def test_typed_values_in_input_and_textarea_editors() -> None:
    schema = schema_of(
        {"name": "n", "type": "integer", "editor": "input"},
        {"name": "b", "type": "boolean", "editor": "input"},
        {"name": "tags", "type": "array", "editor": "input", "default": ["a"]},
        {"name": "fields", "type": "object", "editor": "textarea", "default": {"title": "h1"}},
    )
    shown = forms.fields(schema)
    assert field(shown, "tags").text == '["a"]'
    assert field(shown, "fields").text == '{\n  "title": "h1"\n}'  # a textarea gets it indented
    custom, problems = submit(schema, n=["12"], b=["True"])
    assert problems == {}
    assert custom == {"n": 12, "b": True, "tags": ["a"], "fields": {"title": "h1"}}
    custom, problems = submit(schema, n=[""], b=["maybe"], fields=["{"])
    assert "n" not in custom
    assert problems == {
        "b": ["must be true or false"],
        "fields": [f"not valid JSON: {QUOTES} (line 1, column 2)"],
    }


# --- choices and tick boxes ----------------------------------------------------------------


def test_unticked_boxes_are_false_and_ticked_ones_true() -> None:
    custom, _ = submit(SCHEMA, skip_closed=[], robots=[], verbose=["true"])
    assert (custom["skip_closed"], custom["robots"], custom["verbose"]) == (False, False, True)


def test_a_checkbox_group_gives_the_ticked_values_in_option_order() -> None:
    custom, _ = submit(SCHEMA, sections=["2", "0"], parts=[])
    assert custom["sections"] == ["reviews", "photos"]
    assert custom["parts"] == []


def test_nothing_chosen_leaves_a_choice_out() -> None:
    custom, problems = submit(SCHEMA, region=[""], category=[])
    assert problems == {}
    assert "region" not in custom
    assert "category" not in custom
    assert run_custom(SCHEMA, custom)["category"] == 2  # the default, applied by the server


def test_a_choice_that_is_not_on_the_form_is_refused() -> None:
    _, problems = submit(SCHEMA, language=["7"], sections=["x"])
    assert problems == {
        "language": ["is not one of the choices"],
        "sections": ["is not one of the choices"],
    }


# --- dates -----------------------------------------------------------------------------------


def test_dates_are_written_as_the_worker_asks() -> None:
    schema = schema_of(
        {"name": "iso", "type": "string", "editor": "datepicker"},
        {
            "name": "eu",
            "type": "string",
            "editor": "datepicker",
            "valueFormat": "DD/MM/YYYY",
            "default": "31/05/2024",
        },
    )
    eu = field(forms.fields(schema), "eu")
    assert (eu.input_type, eu.text) == ("date", "2024-05-31")  # what a date box shows
    custom, problems = submit(schema, iso=["2024-02-29"])
    assert problems == {}
    assert custom == {"iso": "2024-02-29", "eu": "31/05/2024"}
    custom, _ = submit(schema, iso=[""], eu=["2023-12-01"])
    assert custom == {"eu": "01/12/2023"}
    _, problems = submit(schema, iso=["2023-02-30"], eu=["tomorrow"])
    assert problems == {
        "iso": ["must be a date like 2024-05-31"],
        "eu": ["must be a date like 31/05/2024"],
    }


def test_a_relative_date_is_kept_in_a_text_box() -> None:
    schema = schema_of(
        {
            "name": "newer",
            "type": "string",
            "editor": "datepicker",
            "dateType": "absoluteOrRelative",
            "default": "7 days",
        }
    )
    shown = field(forms.fields(schema), "newer")
    assert (shown.input_type, shown.text) == ("text", "7 days")
    assert submit(schema) == ({"newer": "7 days"}, {})


# --- lists and tables ------------------------------------------------------------------------


def test_list_entries_are_lines_and_blank_lines_are_dropped() -> None:
    custom, _ = submit(
        SCHEMA,
        start_urls=["https://a.example/\r\n\r\n  https://b.example/  \r\n"],
        terms=["one\n\ntwo"],
    )
    assert custom["start_urls"] == [{"url": "https://a.example/"}, {"url": "https://b.example/"}]
    assert custom["terms"] == [{"string": "one"}, {"string": "two"}]


@pytest.mark.parametrize(
    ("editor", "default", "expected"),
    [
        ("requestList", None, [{"url": "x"}, {"url": "y"}]),
        ("stringList", None, ["x", "y"]),
        ("requestList", ["https://d.example/"], ["x", "y"]),
        ("stringList", [{"string": "d"}], [{"string": "x"}, {"string": "y"}]),
        ("stringList", [{"url": "d"}], [{"url": "x"}, {"url": "y"}]),
    ],
)
def test_list_entries_take_the_shape_of_the_default(
    editor: str, default: list[Any] | None, expected: list[Any]
) -> None:
    prop: dict[str, Any] = {"name": "items", "type": "array", "editor": editor}
    if default is not None:
        prop["default"] = default
    custom, _ = submit(schema_of(prop), items=["x\ny"])
    assert custom == {"items": expected}


def test_list_entries_take_the_shape_of_the_current_value_first() -> None:
    schema = schema_of(
        {"name": "urls", "type": "array", "editor": "requestList", "default": [{"url": "d"}]}
    )
    custom, _ = submit(schema, {"urls": ["https://saved.example/"]}, urls=["a\nb"])
    assert custom == {"urls": ["a", "b"]}


def test_a_list_that_lines_cannot_hold_is_edited_as_json_and_kept() -> None:
    saved = [{"url": "https://a.example/", "method": "POST"}, {"url": "https://b.example/"}]
    schema = schema_of({"name": "urls", "type": "array", "editor": "requestList"})
    shown = field(forms.fields(schema, {"urls": saved}), "urls")
    assert shown.editor == "json"
    assert submit(schema, {"urls": saved}) == ({"urls": saved}, {})
    multiline = ["first\nsecond"]
    assert submit(schema, {"urls": multiline}) == ({"urls": multiline}, {})


def test_table_rows_blank_rows_dropped_and_added_rows_read() -> None:
    post = Page(render(forms.fields(SCHEMA))).post
    assert post["custom.profiles.1.url"] == [""]  # the blank row
    # What the page's "Add row" makes: rows numbered on, as many as the user wants.
    post["custom.profiles.2.url"] = ["  "]
    post["custom.profiles.2.num_of_posts"] = [""]
    post["custom.profiles.3.url"] = [" https://c.example "]
    post["custom.profiles.3.num_of_posts"] = ["5"]
    post["custom.profiles.10.url"] = ["https://d.example"]
    custom, problems = forms.parse(SCHEMA, post)
    assert problems == {}
    assert custom["profiles"] == [
        {"url": "https://www.instagram.com/espn", "num_of_posts": "10"},
        {"url": "https://c.example", "num_of_posts": "5"},
        {"url": "https://d.example", "num_of_posts": ""},
    ]


def test_an_emptied_table_is_an_empty_list() -> None:
    post = Page(render(forms.fields(SCHEMA))).post
    post["custom.profiles.0.url"] = [""]
    post["custom.profiles.0.num_of_posts"] = [""]
    custom, _ = forms.parse(SCHEMA, post)
    assert custom["profiles"] == []


def test_a_table_row_with_numbers_or_other_keys_is_edited_as_json() -> None:
    schema = schema_of(
        {"name": "src", "type": "array", "editor": "requestListSource", "param_list": URLS_PARAMS}
    )
    saved = [{"url": "https://a.example/", "num_of_posts": 10}]
    shown = field(forms.fields(schema, {"src": saved}), "src")
    assert (shown.editor, shown.rows) == ("json", ())
    assert submit(schema, {"src": saved}) == ({"src": saved}, {})


# --- problems ------------------------------------------------------------------------------


def test_problems_of_the_validator_are_sorted_by_field() -> None:
    assert forms.problems_by_field(
        [
            "parameters.custom.profiles[2].url: is required",
            "parameters.custom.profiles[3]: must be an object",
            "parameters.custom.max_pages: must be at least 1",
            "parameters.custom.keyword: must not be empty",
            "parameters.custom.nope: unknown field (the worker's fields: a, b)",
            "parameters.custom: must be an object",
            "parameters.system.memory: must be an integer from 64 to 1048576 (MB)",
        ]
    ) == {
        "profiles": ["[2].url: is required", "[3]: must be an object"],
        "max_pages": ["must be at least 1"],
        "keyword": ["must not be empty"],
        "nope": ["unknown field (the worker's fields: a, b)"],
        "": [
            "parameters.custom: must be an object",
            "parameters.system.memory: must be an integer from 64 to 1048576 (MB)",
        ],
    }


def test_the_validators_problems_show_next_to_their_fields() -> None:
    custom, problems = submit(
        SCHEMA,
        keyword=["   "],
        max_pages=["0"],
        **{"profiles.0.url": [""]},
    )
    assert problems == {}
    with pytest.raises(InvalidInput) as caught:
        run_custom(SCHEMA, custom)
    problems = forms.problems_by_field(caught.value.details or [])
    assert problems == {
        "keyword": ["must not be empty"],
        "max_pages": ["must be at least 1"],
        "profiles": ["[0].url: is required"],
    }
    page = Page(render(forms.fields(SCHEMA, custom), problems))
    keyword = page.by_id("custom-keyword")
    assert keyword["aria-invalid"] == "true"
    assert keyword["aria-describedby"] == "custom-keyword-hint custom-keyword-problem"
    assert page.by_id("custom-keyword-problem")["class"] == "problem"
    assert page.by_id("custom-max_pages")["aria-invalid"] == "true"
    # Only the cell the message names is marked, not the whole table.
    assert page.by_id("custom-profiles-0-0")["aria-invalid"] == "true"
    assert "aria-invalid" not in page.by_id("custom-profiles-0-1")
    assert "aria-invalid" not in page.by_id("custom-language")


# --- the rendered HTML -------------------------------------------------------------------


def test_every_control_has_a_label_and_every_reference_resolves() -> None:
    html = render(forms.fields(SCHEMA), {"sort": ["pick one"], "profiles": ["must be a list"]})
    page = Page(html)
    ids = [a.get("id") for _, a in page.elements if a.get("id")]
    assert len(ids) == len(set(ids))
    for control in page.controls():
        assert control.get("id") in page.label_for, control
        assert (control.get("name") or "").startswith("custom.")
    for _, a in page.elements:
        for ref in (a.get("aria-describedby") or "").split():
            assert ref in ids
    assert page.label_for["custom-profiles-0-0"] == "Profile URL, row 1"
    assert page.label_for["custom-sections-2"] == "Photos"
    assert "style=" not in html
    assert "<script" not in html


def test_groups_are_fieldsets_with_legends() -> None:
    page = Page(render(forms.fields(SCHEMA)))
    # radio, checkbox group, table, radioGroup, checkboxGroup
    assert page.fieldsets == page.legends == 5
    group = page.by_id("custom-sections")
    assert "required" not in group
    html = render(forms.fields(SCHEMA))
    assert "<legend>Profiles</legend>" in html
    assert '<th scope="col">Profile URL <span class="required">(required)</span></th>' in html


def test_required_fields_are_marked_and_checked_by_the_browser() -> None:
    html = render(forms.fields(SCHEMA))
    page = Page(html)
    assert (
        '<label for="custom-keyword">Keyword <span class="required">(required)</span></label>'
        in html
    )
    assert "required" in page.by_id("custom-keyword")
    assert "required" in page.by_id("custom-start_urls")
    assert "required" not in page.by_id("custom-notes")
    # Cells of a table are not: the blank row would stop every post.
    assert "required" not in page.by_id("custom-profiles-1-0")


def test_a_switch_is_a_checkbox_with_the_switch_role() -> None:
    page = Page(render(forms.fields(SCHEMA)))
    robots = page.by_id("custom-robots")
    assert (robots["type"], robots["role"], robots["value"]) == ("checkbox", "switch", "true")
    assert "checked" in robots


def test_number_and_date_boxes_let_the_browser_help() -> None:
    page = Page(render(forms.fields(SCHEMA)))
    max_pages = page.by_id("custom-max_pages")
    assert (max_pages["type"], max_pages["step"], max_pages["min"], max_pages["max"]) == (
        "number",
        "1",
        "1",
        "500",
    )
    assert page.by_id("custom-ratio")["step"] == "any"
    assert page.by_id("custom-since")["type"] == "date"


def test_an_optional_choice_can_be_unset_and_a_required_one_asks() -> None:
    schema = schema_of(
        {
            "name": "color",
            "type": "string",
            "editor": "radio",
            "options": [{"label": "Red", "value": "r"}],
        },
        {
            "name": "size",
            "type": "string",
            "editor": "select",
            "required": True,
            "options": [{"label": "S", "value": "s"}],
        },
    )
    html = render(forms.fields(schema, {"color": "r"}))
    assert '<label for="custom-color-none">Not set</label>' in html
    assert '<option value="">Choose…</option>' in html
    assert submit(schema, {"color": "r"}, color=[""]) == ({}, {})


def test_schema_text_is_escaped() -> None:
    evil = '<script>alert("x")</script>'
    schema = schema_of(
        {
            "title": evil,
            "name": "q",
            "type": "string",
            "description": evil,
            "default": evil,
            "sectionCaption": evil,
            "sectionDescription": evil,
        },
        {
            "title": "Pick",
            "name": "pick",
            "type": "string",
            "editor": "select",
            "options": [{"label": evil, "value": evil}],
        },
    )
    html = render(forms.fields(schema), {"q": [evil]})
    assert "<script" not in html
    # Title, description, value, section caption and description, problem, option label.
    assert html.count("&lt;script&gt;") == 7
    assert Page(html).post["custom.q"] == [evil]  # and the value arrives as typed
