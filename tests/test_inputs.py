"""A run's input: the worker's fields under parameters.custom, run options under .system."""

from __future__ import annotations

from typing import Any

import pytest

from runyard.services.errors import InvalidInput
from runyard.services.inputs import (
    RunInput,
    schema_properties,
    system_defaults,
    validate_run_input,
)

SCHEMA: dict[str, Any] = {
    "description": "Search a site",
    "concurrency": {"fields": ["start_urls"]},
    "properties": [
        {
            "title": "Keyword",
            "name": "keyword",
            "type": "string",
            "editor": "input",
            "required": True,
        },
        {
            "title": "Max pages",
            "name": "max_pages",
            "type": "integer",
            "editor": "number",
            "default": 5,
            "minimum": 1,
            "maximum": 100,
        },
        {"title": "Ratio", "name": "ratio", "type": "number", "editor": "number", "maximum": 1},
        {"title": "Headless", "name": "headless", "type": "boolean", "editor": "switch"},
        {
            "title": "Language",
            "name": "language",
            "type": "string",
            "editor": "select",
            "options": [{"label": "English", "value": "en"}, {"label": "German", "value": "de"}],
            "default": "en",
        },
        {
            "title": "Category",
            "name": "category",
            "type": "integer",
            "editor": "radio",
            "options": [{"label": "hotel", "value": 1}, {"label": "restaurant", "value": 2}],
        },
        {
            "title": "Sections",
            "name": "sections",
            "type": "array",
            "editor": "checkbox",
            "options": [
                {"label": "Reviews", "value": "reviews"},
                {"label": "Address", "value": "address"},
            ],
            "default": ["reviews"],
        },
        {"title": "Start URLs", "name": "start_urls", "type": "array", "editor": "requestList"},
        {"title": "Terms", "name": "terms", "type": "array", "editor": "stringList"},
        {
            "title": "Profiles",
            "name": "profiles",
            "type": "array",
            "editor": "requestListSource",
            "param_list": [
                {"param": "url", "title": "URL", "required": True},
                {"param": "num_of_posts", "title": "Posts"},
            ],
        },
        {"title": "Since", "name": "since", "type": "string", "editor": "datepicker"},
        {"title": "Cookies", "name": "cookies", "type": "object", "editor": "textarea"},
    ],
}


def run_input(body: Any, **kwargs: Any) -> RunInput:
    kwargs.setdefault("default_timeout", 1800)
    return validate_run_input(body, SCHEMA, **kwargs)


def details_of(body: Any, **kwargs: Any) -> list[str]:
    with pytest.raises(InvalidInput) as caught:
        run_input(body, **kwargs)
    assert caught.value.message == "invalid input"
    return caught.value.details or []


def custom(**fields: Any) -> dict[str, Any]:
    return {"parameters": {"custom": {"keyword": "pizza", **fields}}}


def test_valid_input_gets_defaults_and_keeps_what_was_sent() -> None:
    got = run_input(
        custom(
            ratio=0.5,
            headless=True,
            category=2,
            start_urls=[{"url": "https://a.example"}],
            terms=["a", "b"],
            profiles=[{"url": "https://b.example", "num_of_posts": "10"}],
            cookies={"sid": "x"},
        )
    )
    assert got.custom == {
        "keyword": "pizza",
        "max_pages": 5,
        "ratio": 0.5,
        "headless": True,
        "language": "en",
        "category": 2,
        "sections": ["reviews"],
        "start_urls": [{"url": "https://a.example"}],
        "terms": ["a", "b"],
        "profiles": [{"url": "https://b.example", "num_of_posts": "10"}],
        "cookies": {"sid": "x"},
    }
    assert got.system == {"execute_limit_time_seconds": 1800}


def test_a_filled_default_is_a_copy_not_the_schema_itself() -> None:
    got = run_input(custom())
    got.custom["sections"].append("address")
    assert run_input(custom()).custom["sections"] == ["reviews"]


def test_null_means_not_given() -> None:
    got = run_input(custom(max_pages=None, ratio=None))
    assert got.custom["max_pages"] == 5  # its default
    assert got.custom["ratio"] is None  # no default: passed on as sent


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"max_pages": "5"}, ["parameters.custom.max_pages: must be an integer"]),
        ({"max_pages": True}, ["parameters.custom.max_pages: must be an integer"]),
        ({"max_pages": 2.5}, ["parameters.custom.max_pages: must be an integer"]),
        ({"max_pages": 0}, ["parameters.custom.max_pages: must be at least 1"]),
        ({"max_pages": 101}, ["parameters.custom.max_pages: must be at most 100"]),
        ({"ratio": "0.5"}, ["parameters.custom.ratio: must be a number"]),
        ({"ratio": 2}, ["parameters.custom.ratio: must be at most 1"]),
        ({"headless": "yes"}, ["parameters.custom.headless: must be true or false"]),
        ({"headless": 1}, ["parameters.custom.headless: must be true or false"]),
        ({"language": "fr"}, ['parameters.custom.language: must be one of "en", "de"']),
        ({"category": 3}, ["parameters.custom.category: must be one of 1, 2"]),
        ({"category": "1"}, ["parameters.custom.category: must be an integer"]),
        (
            {"sections": ["reviews", "photos"]},
            ['parameters.custom.sections[1]: must be one of "reviews", "address"'],
        ),
        ({"sections": "reviews"}, ["parameters.custom.sections: must be a list"]),
        (
            {"start_urls": [["https://a"]]},
            ["parameters.custom.start_urls[0]: must be a string or an object"],
        ),
        (
            {"terms": ["a", {"string": "b"}]},
            ["parameters.custom.terms: must not mix strings and objects"],
        ),
        (
            {"profiles": [{"url": ""}, "https://c.example"]},
            [
                "parameters.custom.profiles[0].url: is required",
                "parameters.custom.profiles[1]: must be an object",
            ],
        ),
        ({"since": 20240101}, ["parameters.custom.since: must be a string"]),
        ({"cookies": "sid=x"}, ["parameters.custom.cookies: must be an object"]),
        ({"keyword": "   "}, ["parameters.custom.keyword: must not be empty"]),
        ({"keyword": None}, ["parameters.custom.keyword: is required"]),
    ],
)
def test_each_problem_is_one_line_naming_the_field(
    fields: dict[str, Any], expected: list[str]
) -> None:
    assert details_of(custom(**fields)) == expected


def test_all_problems_are_reported_together() -> None:
    body = {"parameters": {"custom": {"max_pages": 0, "langauge": "en", "headless": "no"}}}
    assert details_of(body) == [
        "parameters.custom.keyword: is required",
        "parameters.custom.max_pages: must be at least 1",
        "parameters.custom.headless: must be true or false",
        "parameters.custom.langauge: unknown field (the worker's fields: keyword, max_pages, "
        "ratio, headless, language, category, sections, start_urls, terms, profiles, "
        "… (12 in all))",
    ]


def test_unknown_field_of_a_worker_without_fields() -> None:
    with pytest.raises(InvalidInput) as caught:
        validate_run_input(
            {"parameters": {"custom": {"q": 1}}}, {"properties": []}, default_timeout=60
        )
    assert caught.value.details == [
        "parameters.custom.q: unknown field (this worker takes no fields)"
    ]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            {"keyword": "pizza"},
            [
                'input: "keyword" is not allowed at the top level; wrap the worker\'s fields as '
                '{"parameters": {"custom": {...}}}'
            ],
        ),
        (
            {"keyword": "pizza", "max_pages": 2, "parameters": {}},
            [
                'input: "keyword", "max_pages" are not allowed at the top level; wrap the '
                'worker\'s fields as {"parameters": {"custom": {...}}}'
            ],
        ),
        (["pizza"], ['input: must be an object like {"parameters": {"custom": {...}}}']),
        ({"parameters": []}, ['parameters: must be an object like {"custom": {...}}']),
        (
            {"parameters": {"custom": {"keyword": "x"}, "options": {}}},
            ["parameters.options: unknown key (allowed: custom, system)"],
        ),
        ({"parameters": {"custom": "keyword=x"}}, ["parameters.custom: must be an object"]),
        (
            {"parameters": {"custom": {"keyword": "x"}, "system": 5}},
            ["parameters.system: must be an object"],
        ),
    ],
)
def test_the_shape_of_input(body: Any, expected: list[str]) -> None:
    assert details_of(body) == expected


@pytest.mark.parametrize("body", [None, {}, {"parameters": None}, {"parameters": {}}])
def test_no_input_is_valid_when_nothing_is_required(body: Any) -> None:
    schema = {"properties": [{"name": "n", "type": "integer", "default": 3}]}
    got = validate_run_input(body, schema, default_timeout=60)
    assert got == RunInput(custom={"n": 3}, system={"execute_limit_time_seconds": 60})


def test_no_input_names_the_required_fields() -> None:
    assert details_of(None) == ["parameters.custom.keyword: is required"]


def test_system_options_are_checked_and_defaulted() -> None:
    body = {
        "parameters": {
            "custom": {"keyword": "x"},
            "system": {
                "max_total_traffic": 0,
                "cpus": 0.125,
                "memory": 512,
                "proxy_region": "US",
                "max_total_charge": 0,
            },
        }
    }
    got = run_input(body, default_timeout=900, proxy_regions=["US", "DE"])
    # The order of SYSTEM_KEYS, whatever order they were sent in.
    assert list(got.system.items()) == [
        ("execute_limit_time_seconds", 900),
        ("memory", 512),
        ("cpus", 0.125),
        ("proxy_region", "US"),
        ("max_total_charge", 0),
        ("max_total_traffic", 0),
    ]


def test_an_empty_proxy_region_means_no_proxy() -> None:
    body = {"parameters": {"custom": {"keyword": "x"}, "system": {"proxy_region": ""}}}
    assert run_input(body).system == {"execute_limit_time_seconds": 1800}


@pytest.mark.parametrize(
    ("system", "regions", "expected"),
    [
        (
            {"execute_limit_time_seconds": 0},
            (),
            "parameters.system.execute_limit_time_seconds: "
            "must be an integer from 1 to 2592000 (seconds)",
        ),
        (
            {"execute_limit_time_seconds": "60"},
            (),
            "parameters.system.execute_limit_time_seconds: "
            "must be an integer from 1 to 2592000 (seconds)",
        ),
        (
            {"memory": 32},
            (),
            "parameters.system.memory: must be an integer from 64 to 1048576 (MB)",
        ),
        (
            {"memory": 512.5},
            (),
            "parameters.system.memory: must be an integer from 64 to 1048576 (MB)",
        ),
        ({"cpus": 0}, (), "parameters.system.cpus: must be a number greater than 0"),
        ({"cpus": True}, (), "parameters.system.cpus: must be a number greater than 0"),
        (
            {"max_total_charge": -1},
            (),
            "parameters.system.max_total_charge: must be a number from 0 to 2^63-1",
        ),
        (
            {"max_total_traffic": 1.5},
            (),
            "parameters.system.max_total_traffic: must be an integer from 0 to 2^63-1 (bytes)",
        ),
        (
            {"proxy_region": "FR"},
            ("US", "DE"),
            'parameters.system.proxy_region: unknown region "FR" (known: DE, US)',
        ),
        (
            {"proxy_region": "US"},
            (),
            "parameters.system.proxy_region: no proxy regions are configured on this server",
        ),
        (
            {"memory_bytes": 512},
            (),
            "parameters.system.memory_bytes: unknown key (allowed: execute_limit_time_seconds, "
            "memory, cpus, proxy_region, max_total_charge, max_total_traffic)",
        ),
    ],
)
def test_system_problems(system: dict[str, Any], regions: tuple[str, ...], expected: str) -> None:
    body = {"parameters": {"custom": {"keyword": "x"}, "system": system}}
    assert details_of(body, proxy_regions=regions) == [expected]


def test_custom_and_system_problems_come_together() -> None:
    body = {"parameters": {"custom": {}, "system": {"memory": 1}}}
    assert details_of(body) == [
        "parameters.custom.keyword: is required",
        "parameters.system.memory: must be an integer from 64 to 1048576 (MB)",
    ]


def test_long_option_lists_are_shortened() -> None:
    schema = {
        "properties": [
            {
                "name": "lang",
                "type": "string",
                "editor": "select",
                "options": [{"label": str(i), "value": f"l{i}"} for i in range(30)],
            }
        ]
    }
    with pytest.raises(InvalidInput) as caught:
        validate_run_input({"parameters": {"custom": {"lang": "xx"}}}, schema, default_timeout=1)
    assert caught.value.details == [
        'parameters.custom.lang: must be one of "l0", "l1", "l2", "l3", "l4", "l5", "l6", '
        '"l7", "l8", "l9", … (30 options)'
    ]


def test_worker_detail_parameters() -> None:
    props = schema_properties(SCHEMA)
    assert [p["name"] for p in props] == [p["name"] for p in SCHEMA["properties"]]
    props[0]["title"] = "changed"
    assert SCHEMA["properties"][0]["title"] == "Keyword"  # a copy: the stored schema is safe
    assert schema_properties({"properties": {"a": {}}}) == []
    assert system_defaults(600) == {"execute_limit_time_seconds": 600}
