"""A run's input: ``{"parameters": {"custom": {...}, "system": {...}}}`` (spec §3).

``custom`` is checked against the worker's CoreClaw ``input_schema.json`` (a ``properties``
list); ``system`` holds the platform's run options. Every problem becomes one ``details`` line
naming the field, so a caller can fix all of them in one go.

The value rules here are also what ``packages`` applies to a schema's ``default`` values, so a
default that registers is always a value a run would accept.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from runyard.services.errors import InvalidInput

TYPES = ("string", "integer", "number", "boolean", "array", "object")
#: Editors whose array items are free-form entries: plain strings or objects (``{"url": …}``,
#: ``{"string": …}``), one shape per list — CoreClaw splits runs on these and refuses a mix.
LIST_EDITORS = frozenset({"stringList", "requestList"})
SYSTEM_KEYS = (
    "execute_limit_time_seconds",
    "memory",
    "cpus",
    "proxy_region",
    "max_total_charge",
    "max_total_traffic",
)
MIN_MEMORY_MB = 64
#: Past this many options a "must be one of" line lists the first few and the count.
_SHOWN_OPTIONS = 10
_WRAP_HINT = 'wrap the worker\'s fields as {"parameters": {"custom": {...}}}'


@dataclass(frozen=True)
class RunInput:
    """A run's validated input: what the worker receives, and the run options with defaults."""

    custom: dict[str, Any]
    system: dict[str, Any]


def validate_run_input(
    body_input: Mapping[str, Any] | None,
    input_schema: Mapping[str, Any],
    *,
    default_timeout: int,
    proxy_regions: Collection[str] = (),
) -> RunInput:
    """Check ``input`` of ``POST /workers/{id}/runs``; raise ``InvalidInput`` listing every problem.

    ``custom`` gets the schema's defaults for fields the caller left out (or sent as null);
    ``system`` gets ``execute_limit_time_seconds = default_timeout`` unless given.
    """
    if body_input is None:
        body_input = {}
    if not isinstance(body_input, Mapping):
        raise InvalidInput(
            "invalid input",
            details=['input: must be an object like {"parameters": {"custom": {...}}}'],
        )
    flat = [key for key in body_input if key != "parameters"]
    if flat:
        # The hosted service's older API took worker fields at the top level; checking them
        # against nothing would only add noise, so this one line says what to change.
        names = ", ".join(json.dumps(key) for key in flat)
        verb = "is" if len(flat) == 1 else "are"
        raise InvalidInput(
            "invalid input",
            details=[f"input: {names} {verb} not allowed at the top level; {_WRAP_HINT}"],
        )

    problems: list[str] = []
    parameters = body_input.get("parameters")
    if parameters is None:
        parameters = {}
    if not isinstance(parameters, Mapping):
        raise InvalidInput(
            "invalid input", details=['parameters: must be an object like {"custom": {...}}']
        )
    for key in parameters:
        if key not in ("custom", "system"):
            problems.append(f"parameters.{key}: unknown key (allowed: custom, system)")

    custom: dict[str, Any] = {}
    raw_custom = parameters.get("custom")
    if isinstance(raw_custom, Mapping):
        custom = _validate_custom(raw_custom, _properties(input_schema), problems)
    elif raw_custom is None:
        custom = _validate_custom({}, _properties(input_schema), problems)
    else:
        problems.append("parameters.custom: must be an object")

    system = system_defaults(default_timeout)
    raw_system = parameters.get("system")
    if isinstance(raw_system, Mapping):
        system.update(_validate_system(raw_system, proxy_regions, problems))
    elif raw_system is not None:
        problems.append("parameters.system: must be an object")

    if problems:
        raise InvalidInput("invalid input", details=problems)
    return RunInput(custom=custom, system=system)


def schema_properties(input_schema: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The schema's field definitions as ``GET /workers/{id}`` shows them (a private copy)."""
    return copy.deepcopy(_properties(input_schema))


def system_defaults(default_timeout: int) -> dict[str, Any]:
    """Run options a run gets when it names none (``parameters.system`` of the worker detail)."""
    return {"execute_limit_time_seconds": default_timeout}


def value_problems(prop: Mapping[str, Any], value: Any) -> list[tuple[str, str]]:
    """What is wrong with ``value`` for one schema property, as ``(sub-path, reason)`` pairs.

    The sub-path is ``""`` for the value itself, ``"[2]"`` for an array item or ``"[2].url"``
    for a key of one; callers put their own prefix in front. ``None`` is not handled here: the
    callers decide what a missing value means.
    """
    type_ = prop.get("type")
    if type_ not in TYPES:
        return []
    wrong = type_problem(type_, value)
    if wrong:
        return [("", wrong)]
    problems: list[tuple[str, str]] = []
    options = option_values(prop)
    editor = prop.get("editor")
    if type_ == "array":
        if options is not None:
            problems += [
                (f"[{i}]", _one_of(options))
                for i, item in enumerate(value)
                if not _is_option(item, options)
            ]
        elif editor in LIST_EDITORS:
            problems += _list_items(value)
        elif editor == "requestListSource":
            problems += _source_items(prop, value)
    elif options is not None and not _is_option(value, options):
        problems.append(("", _one_of(options)))
    if type_ in ("integer", "number"):
        minimum, maximum = prop.get("minimum"), prop.get("maximum")
        if is_number(minimum) and value < minimum:
            problems.append(("", f"must be at least {_show(minimum)}"))
        if is_number(maximum) and value > maximum:
            problems.append(("", f"must be at most {_show(maximum)}"))
    return problems


def option_values(prop: Mapping[str, Any]) -> list[Any] | None:
    """The allowed values of a property with ``options``, or None when it has none."""
    options = prop.get("options")
    if not isinstance(options, list) or not options:
        return None
    return [o["value"] for o in options if isinstance(o, Mapping) and "value" in o]


def is_empty(value: Any) -> bool:
    """What a required field may not be: CoreClaw refuses blank strings and empty lists too."""
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, list | dict):
        return not value
    return False


# --- custom ------------------------------------------------------------------------------


def _properties(input_schema: Mapping[str, Any]) -> list[dict[str, Any]]:
    props = input_schema.get("properties") if isinstance(input_schema, Mapping) else None
    if not isinstance(props, list):
        return []
    return [p for p in props if isinstance(p, dict) and isinstance(p.get("name"), str)]


def _validate_custom(
    given: Mapping[str, Any], props: list[dict[str, Any]], problems: list[str]
) -> dict[str, Any]:
    known = {p["name"]: p for p in props}
    result: dict[str, Any] = {}
    for prop in props:
        name = prop["name"]
        path = f"parameters.custom.{name}"
        value = given.get(name)
        if value is None:
            # A form that leaves a field blank often sends null: it means "not given".
            if prop.get("default") is not None:
                result[name] = copy.deepcopy(prop["default"])
            elif prop.get("required") is True:
                problems.append(f"{path}: is required")
            elif name in given:
                result[name] = None
            continue
        found = value_problems(prop, value)
        problems += [f"{path}{sub}: {reason}" for sub, reason in found]
        if not found and prop.get("required") is True and is_empty(value):
            problems.append(f"{path}: must not be empty")
        result[name] = value
    unknown = [key for key in given if key not in known]
    if unknown:
        if not known:
            hint = "this worker takes no fields"
        else:
            names = ", ".join(list(known)[:_SHOWN_OPTIONS])
            if len(known) > _SHOWN_OPTIONS:
                names += f", … ({len(known)} in all)"
            hint = f"the worker's fields: {names}"
        problems += [f"parameters.custom.{key}: unknown field ({hint})" for key in unknown]
    return result


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
#: Upper bounds of system parameters: past them a value is a mistake, not a wish.
MAX_TIMEOUT_SECONDS = 30 * 24 * 3600
MAX_MEMORY_MB = 1024 * 1024


def type_problem(type_: str, value: Any) -> str | None:
    if type_ == "string":
        ok = isinstance(value, str)
    elif type_ in ("integer", "number"):
        ok = (
            isinstance(value, int) and not isinstance(value, bool)
            if type_ == "integer"
            else is_number(value)
        )
        if ok and isinstance(value, int) and not INT64_MIN <= value <= INT64_MAX:
            return "must fit in 64 bits"
    elif type_ == "boolean":
        ok = isinstance(value, bool)
    elif type_ == "array":
        ok = isinstance(value, list)
    else:
        ok = isinstance(value, dict)
    return None if ok else _TYPE_REASONS[type_]


_TYPE_REASONS = {
    "string": "must be a string",
    "integer": "must be an integer",
    "number": "must be a number",
    "boolean": "must be true or false",
    "array": "must be a list",
    "object": "must be an object",
}


def is_number(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return math.isfinite(value)


def _is_option(value: Any, options: list[Any]) -> bool:
    # ``True == 1`` in Python; an option 1 must not accept true, nor "1" accept 1.
    return any(
        value == option and isinstance(value, bool) == isinstance(option, bool)
        for option in options
        if isinstance(option, str) == isinstance(value, str)
    )


def _one_of(options: list[Any]) -> str:
    shown = ", ".join(json.dumps(o, ensure_ascii=False) for o in options[:_SHOWN_OPTIONS])
    if len(options) > _SHOWN_OPTIONS:
        shown += f", … ({len(options)} options)"
    return f"must be one of {shown}"


def _show(number: Any) -> str:
    return json.dumps(number)


def _list_items(items: list[Any]) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    shapes: set[type] = set()
    for i, item in enumerate(items):
        if isinstance(item, str | dict):
            shapes.add(type(item))
        else:
            problems.append((f"[{i}]", "must be a string or an object"))
    if len(shapes) > 1:
        problems.append(("", "must not mix strings and objects"))
    return problems


def _source_items(prop: Mapping[str, Any], items: list[Any]) -> list[tuple[str, str]]:
    params = prop.get("param_list")
    required = [
        p["param"]
        for p in (params if isinstance(params, list) else [])
        if isinstance(p, Mapping) and isinstance(p.get("param"), str) and p.get("required") is True
    ]
    problems: list[tuple[str, str]] = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            problems.append((f"[{i}]", "must be an object"))
            continue
        problems += [
            (f"[{i}].{param}", "is required") for param in required if is_empty(item.get(param))
        ]
    return problems


# --- system ------------------------------------------------------------------------------


def _validate_system(
    given: Mapping[str, Any], proxy_regions: Collection[str], problems: list[str]
) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in given.items():
        path = f"parameters.system.{key}"
        if key not in SYSTEM_KEYS:
            problems.append(f"{path}: unknown key (allowed: {', '.join(SYSTEM_KEYS)})")
            continue
        if value is None or (key == "proxy_region" and value == ""):
            continue  # not given: the default (or no proxy) applies
        reason = _system_problem(key, value, proxy_regions)
        if reason:
            problems.append(f"{path}: {reason}")
        else:
            result[key] = value
    return {key: result[key] for key in SYSTEM_KEYS if key in result}


def _system_problem(key: str, value: Any, proxy_regions: Collection[str]) -> str | None:
    is_int = isinstance(value, int) and not isinstance(value, bool)
    if key == "execute_limit_time_seconds":
        if is_int and 1 <= value <= MAX_TIMEOUT_SECONDS:
            return None
        return f"must be an integer from 1 to {MAX_TIMEOUT_SECONDS} (seconds)"
    if key == "memory":
        if is_int and MIN_MEMORY_MB <= value <= MAX_MEMORY_MB:
            return None
        return f"must be an integer from {MIN_MEMORY_MB} to {MAX_MEMORY_MB} (MB)"
    if key == "cpus":
        return None if is_number(value) and value > 0 else "must be a number greater than 0"
    if key == "max_total_charge":
        if is_number(value) and 0 <= value <= INT64_MAX:
            return None
        return "must be a number from 0 to 2^63-1"
    if key == "max_total_traffic":
        if is_int and 0 <= value <= INT64_MAX:
            return None
        return "must be an integer from 0 to 2^63-1 (bytes)"
    # proxy_region
    if not proxy_regions:
        return "no proxy regions are configured on this server"
    if not isinstance(value, str) or value not in proxy_regions:
        known = ", ".join(sorted(proxy_regions))
        return f"unknown region {json.dumps(value)} (known: {known})"
    return None
