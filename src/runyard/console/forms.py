"""The start-run form: a worker's ``input_schema.json`` as HTML controls, and the post back as JSON.

``fields`` describes one control per schema property (``_fields.html`` renders them); ``parse``
turns the posted form into the ``custom`` dict a run receives; ``problems_by_field`` sorts the
``details`` lines of ``services.inputs.validate_run_input`` by field, to show each next to its
control. Nothing here speaks HTTP.

Every posted name starts with ``custom.`` so none clashes with the page's own fields (``csrf``,
``title``, ...). A property's control posts ``custom.<name>``; a table row's cell posts
``custom.<name>.<row>.<param>``; list editors add a hidden ``custom.<name>.shape``.

What a user types, and what the worker gets:

- **input / textarea**: for a string property, the text as typed (an empty box is ``""``, which
  the worker receives — the default does not come back). For other types the text is parsed:
  integer and number as below, boolean as ``true``/``false``, array and object as JSON; an
  empty box is left out, so the server applies the default. A textarea shows an array or
  object as indented JSON. Line breaks arrive as ``\\n``, whatever the browser sent.
- **number**: a whole number for type integer (``3.5`` is refused; ``3.0`` and ``1e3`` are
  whole), an integer or a decimal for type number (``2`` gives 2, ``2.5`` gives 2.5). Empty is
  left out.
- **select / radio**: the chosen option's value with its JSON type (the form posts the option's
  position, so option 1 stays 1, "1" stays "1" and true stays true). Nothing chosen is left
  out. A select of type array lets several be chosen and gives their list, ``[]`` for none.
- **checkbox**: type array is a group of tick boxes giving the ticked values in option order
  (``[]`` for none); type boolean is one tick box giving true or false.
- **switch**: true when ticked, false when not (an unticked box posts nothing).
- **datepicker**: a date box; the date is sent as ``valueFormat`` asks (tokens ``YYYY``, ``MM``,
  ``DD``; ``YYYY-MM-DD`` without one). A saved value that is no such date (``dateType``
  ``absoluteOrRelative`` allows ``7 days``) is shown in a text box instead, so it is not lost.
  Empty is left out.
- **stringList / requestList**: a textarea, one entry per line; lines are trimmed and blank ones
  dropped. Entries are shaped like the current value's items, else the default's: objects
  ``{"url": ...}`` / ``{"string": ...}`` when those are objects, plain strings when strings;
  with neither, requestList gives ``{"url": ...}`` objects and stringList plain strings.
- **requestListSource**: a table with a column per ``param_list`` entry and a row per item, plus
  one blank row (the page's script adds more). A row whose cells are all blank is dropped;
  cells are trimmed strings, a blank cell in a kept row is ``""``.
- **json**: a textarea of indented JSON; parsed; empty is left out.

A list or table whose current value one line or cell per entry could not show exactly (an item
with several keys, a string with a line break, a number in a table cell) is shown as JSON
instead, so saving an unchanged form does not change it — but for one thing: a table row
missing one of the ``param_list`` keys comes back with that key as ``""``.

A property without an editor gets one from its type: string → input, integer/number → number,
boolean → switch, array/object → json, and select whenever it has options. ``radioGroup`` and
``checkboxGroup`` are old spellings of radio and checkbox.

``parse`` reports only what cannot be read (bad JSON, a letter in a number); the server's
validator then applies the schema's rules (required, minimum, options).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from runyard.services.inputs import LIST_EDITORS, TYPES, is_number, option_values
from runyard.services.packages import EDITORS

__all__ = [
    "Cell",
    "Choice",
    "Column",
    "Field",
    "Row",
    "fields",
    "parse",
    "problems_by_field",
    "small_whole",
]

PREFIX = "custom."
_LEGACY = {"radioGroup": "radio", "checkboxGroup": "checkbox"}
#: Shapes of a list editor's entries, posted in the hidden ``custom.<name>.shape``.
_TEXT_SHAPE, _KEY_SHAPE, _JSON_SHAPE, _ROWS_SHAPE = "text", "key:", "json", "rows"
_INT_RE = re.compile(r"[+-]?\d+")
_NUMBER_RE = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_ISO_DATE_RE = re.compile(r"(\d{4})-(\d{2})-(\d{2})")
#: Past this a "number" is a paste gone wrong, and int() of it would only burn CPU.
_MAX_NUMBER_CHARS = 64
_DETAIL_RE = re.compile(r"parameters\.custom\.([A-Za-z_][A-Za-z0-9_]*)((?:\[\d+\][^:]*)?): (.*)")


@dataclass(frozen=True)
class Choice:
    """One option of a select, radio group or checkbox group; ``index`` is what the form posts."""

    index: int
    label: str
    value: Any
    selected: bool
    id: str


@dataclass(frozen=True)
class Column:
    """One ``param_list`` entry of a requestListSource table."""

    param: str
    title: str
    required: bool
    description: str
    placeholder: str


@dataclass(frozen=True)
class Cell:
    """One text box of a requestListSource table."""

    param: str
    name: str
    id: str
    value: str


@dataclass(frozen=True)
class Row:
    """One row of a requestListSource table; ``index`` is its number in the posted names."""

    index: int
    cells: tuple[Cell, ...]


@dataclass(frozen=True)
class Field:
    """One schema property as the form shows it.

    ``editor`` is one of ``EDITORS`` (legacy spellings mapped, missing ones chosen from the
    type, lists that cannot be shown line by line turned to ``json``). What the control shows
    is in the attribute of its kind: ``text`` for the text boxes (input, textarea, number,
    datepicker, the list editors, json), ``checked`` for switch and a single checkbox,
    ``choices``/``selected`` for select, radio and checkbox groups, ``rows`` for
    requestListSource. ``value`` is the current value itself (None when there is none).
    """

    name: str
    title: str
    description: str
    editor: str
    type: str
    required: bool
    #: Set on the first field of a section (``sectionCaption``); "" elsewhere.
    section_caption: str
    section_description: str
    value: Any
    input_name: str
    id: str
    hint_id: str
    problem_id: str
    #: A short note on how to fill the control in ("One URL per line."); "" when none.
    help: str
    placeholder: str
    text: str
    #: Visible rows of a textarea, from the text's length.
    lines: int
    #: ``type`` of an ``<input>``: text, number or date.
    input_type: str
    step: str
    minimum: int | float | None
    maximum: int | float | None
    checked: bool
    choices: tuple[Choice, ...]
    selected: tuple[int, ...]
    multiple: bool
    #: A select gets an empty first option, a radio group a "Not set" one, when no option
    #: needs to be chosen.
    blank_choice: bool
    columns: tuple[Column, ...]
    rows: tuple[Row, ...]
    #: Value of the hidden ``<input_name>.shape`` field; "" when the editor posts none.
    shape: str


def fields(
    input_schema: Mapping[str, Any],
    values: Mapping[str, Any] | None = None,
    *,
    form: Mapping[str, list[str]] | None = None,
) -> list[Field]:
    """The controls of the form, in schema order.

    ``values`` is the current input (a saved task's, or what ``parse`` made of a refused post);
    a property missing from it, or null, shows its default — what the server would apply.
    Without ``values`` every property shows its default. ``form`` is the refused post itself:
    text boxes then show the text as typed, so a typo in JSON is there to fix, not replaced.
    """
    result: list[Field] = []
    for prop in _properties(input_schema):
        name = prop["name"]
        value = values.get(name) if values is not None else None
        if value is None:
            value = prop.get("default")
        typed = shape = None
        if form is not None:
            posted = form.get(PREFIX + name)
            typed = posted[0] if posted else None
            posted = form.get(f"{PREFIX}{name}.shape")
            shape = posted[0] if posted else None
        result.append(_field(prop, value, typed, shape))
    return result


def parse(
    input_schema: Mapping[str, Any], form: Mapping[str, list[str]]
) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """The posted form as ``custom``, and what could not be read, by property name."""
    custom: dict[str, Any] = {}
    problems: dict[str, list[str]] = {}
    for prop in _properties(input_schema):
        name = prop["name"]
        try:
            value = _parse_one(prop, form)
        except _Unreadable as exc:
            problems.setdefault(name, []).append(str(exc))
            continue
        if value is not _OMIT:
            custom[name] = value
    return custom, problems


def problems_by_field(details: list[str]) -> dict[str, list[str]]:
    """``validate_run_input``'s details lines by the custom field they are about.

    ``parameters.custom.urls[2].url: is required`` becomes ``{"urls": ["[2].url: is
    required"]}``; a line about no one field (the run options, the input as a whole) goes under
    ``""``.
    """
    result: dict[str, list[str]] = {}
    for line in details:
        match = _DETAIL_RE.fullmatch(line)
        if match is None:
            result.setdefault("", []).append(line)
            continue
        name, sub, reason = match.groups()
        result.setdefault(name, []).append(f"{sub}: {reason}" if sub else reason)
    return result


# --- what a property is --------------------------------------------------------------------


def _properties(input_schema: Mapping[str, Any]) -> list[dict[str, Any]]:
    props = input_schema.get("properties") if isinstance(input_schema, Mapping) else None
    if not isinstance(props, list):
        return []
    return [p for p in props if isinstance(p, dict) and isinstance(p.get("name"), str)]


def _type(prop: Mapping[str, Any]) -> str:
    type_ = prop.get("type")
    return type_ if isinstance(type_, str) and type_ in TYPES else "string"


def _editor(prop: Mapping[str, Any]) -> str:
    """The editor to show; schemas that registered always name one that fits their type."""
    editor = prop.get("editor")
    if isinstance(editor, str):
        editor = _LEGACY.get(editor, editor)
        if editor in EDITORS:
            return editor
    if option_values(prop):
        return "select"
    return {
        "integer": "number",
        "number": "number",
        "boolean": "switch",
        "array": "json",
        "object": "json",
    }.get(_type(prop), "input")


def _text_key(prop: Mapping[str, Any], key: str) -> str:
    value = prop.get(key)
    return value if isinstance(value, str) else ""


def _options(prop: Mapping[str, Any]) -> list[tuple[str, Any]]:
    options = prop.get("options")
    if not isinstance(options, list):
        return []
    result = []
    for option in options:
        if isinstance(option, Mapping) and "value" in option:
            label = option.get("label")
            value = option["value"]
            result.append((label if isinstance(label, str) else _json(value), value))
    return result


def _columns(prop: Mapping[str, Any]) -> list[Column]:
    params = prop.get("param_list")
    columns: list[Column] = []
    seen: set[str] = set()
    for param in params if isinstance(params, list) else []:
        if not isinstance(param, Mapping):
            continue
        key = param.get("param")
        if not isinstance(key, str) or not key or key in seen:
            continue
        seen.add(key)
        title = param.get("title")
        columns.append(
            Column(
                param=key,
                title=title if isinstance(title, str) and title else key,
                required=param.get("required") is True,
                description=_text_key(param, "description"),
                placeholder=_text_key(param, "placeholder"),
            )
        )
    return columns


def _same(a: Any, b: Any) -> bool:
    # Python has True == 1 and 1 == 1.0; an option 1 is not true, nor is "1" the number 1.
    if isinstance(a, bool) != isinstance(b, bool) or isinstance(a, str) != isinstance(b, str):
        return False
    return bool(a == b)


# --- fields --------------------------------------------------------------------------------


def _field(prop: dict[str, Any], value: Any, typed: str | None, typed_shape: str | None) -> Field:
    name = prop["name"]
    type_ = _type(prop)
    editor = _editor(prop)
    id_ = f"custom-{name}"
    attrs: dict[str, Any] = {
        "name": name,
        "title": _text_key(prop, "title") or name,
        "description": _text_key(prop, "description"),
        "editor": editor,
        "type": type_,
        "required": prop.get("required") is True,
        "section_caption": _text_key(prop, "sectionCaption"),
        "section_description": (
            _text_key(prop, "sectionDescription") if _text_key(prop, "sectionCaption") else ""
        ),
        "value": value,
        "input_name": PREFIX + name,
        "id": id_,
        "hint_id": f"{id_}-hint",
        "problem_id": f"{id_}-problem",
        "help": "",
        "placeholder": _text_key(prop, "placeholder"),
        "text": "",
        "lines": 0,
        "input_type": "text",
        "step": "",
        "minimum": None,
        "maximum": None,
        "checked": False,
        "choices": (),
        "selected": (),
        "multiple": False,
        "blank_choice": False,
        "columns": (),
        "rows": (),
        "shape": "",
    }
    if editor in ("select", "radio") or (editor == "checkbox" and type_ == "array"):
        _choices_attrs(prop, attrs, value, type_)
    elif editor in ("switch", "checkbox"):
        attrs["checked"] = value is True
    elif editor == "number":
        attrs["input_type"] = "number"
        attrs["step"] = "1" if type_ == "integer" else "any"
        attrs["minimum"] = prop["minimum"] if is_number(prop.get("minimum")) else None
        attrs["maximum"] = prop["maximum"] if is_number(prop.get("maximum")) else None
        attrs["text"] = _as_text(value, pretty=False)
    elif editor == "datepicker":
        _date_attrs(prop, attrs, value)
    elif editor in LIST_EDITORS:
        _list_attrs(prop, attrs, value, editor)
    elif editor == "requestListSource":
        _table_attrs(prop, attrs, value)
    elif editor == "json":
        attrs.update(text=_json(value, indent=2) if value is not None else "", help="JSON.")
    else:  # input, textarea
        attrs["text"] = _as_text(value, pretty=editor == "textarea")
        if type_ in ("array", "object"):
            attrs["help"] = "JSON."
        elif type_ == "boolean":
            attrs["help"] = "true or false."
    if typed is not None:
        _show_typed(attrs, editor, typed, typed_shape)
    if attrs["editor"] in ("textarea", "json", *LIST_EDITORS):
        attrs["lines"] = min(max(attrs["text"].count("\n") + 2, 3), 15)
    return Field(**attrs)


def _show_typed(attrs: dict[str, Any], editor: str, typed: str, typed_shape: str | None) -> None:
    """Show a refused post's text as typed, in the box it was typed into."""
    if editor in (*LIST_EDITORS, "requestListSource"):
        if typed_shape == _JSON_SHAPE:
            attrs.update(editor="json", shape=_JSON_SHAPE, help="JSON.", text=typed)
        elif attrs["shape"] != _JSON_SHAPE and editor != "requestListSource":
            attrs["text"] = typed
        return
    if editor not in ("input", "textarea", "number", "datepicker", "json"):
        return  # choices and tick boxes come back whole through ``values``
    attrs["text"] = typed
    # A date or number box would show a text it cannot read as empty: show it in a text box.
    if editor == "datepicker" and typed.strip() and _read_date(typed.strip(), None) is None:
        attrs["input_type"] = "text"
    if editor == "number" and typed.strip() and not _NUMBER_RE.fullmatch(typed.strip()):
        attrs["input_type"] = "text"


def _choices_attrs(prop: dict[str, Any], attrs: dict[str, Any], value: Any, type_: str) -> None:
    options = _options(prop)
    many = type_ == "array"
    chosen = value if many and isinstance(value, list) else [value]
    selected: list[int] = []
    for index, (_, option) in enumerate(options):
        if any(_same(option, item) for item in chosen if item is not None):
            selected.append(index)
            if not many:
                break  # a repeated option value (refused at upload) selects only the first
    choices = tuple(
        Choice(index=i, label=label, value=v, selected=i in selected, id=f"{attrs['id']}-{i}")
        for i, (label, v) in enumerate(options)
    )
    attrs.update(
        choices=choices,
        selected=tuple(selected),
        multiple=many,
        blank_choice=not many and (not selected or prop.get("default") is None),
    )


def _date_attrs(prop: dict[str, Any], attrs: dict[str, Any], value: Any) -> None:
    fmt = _value_format(prop)
    shown = _read_date(value, fmt) if isinstance(value, str) else None
    if shown is None and isinstance(value, str):
        shown = _read_date(value, None)
    if shown is not None:
        attrs.update(input_type="date", text=shown.isoformat())
    else:
        # A relative date ("7 days") or a format a date box cannot show: keep it as text.
        help_ = f"A date as {fmt or 'YYYY-MM-DD'}."
        if _relative_dates(prop):
            help_ = f"A date as {fmt or 'YYYY-MM-DD'}, or a relative one."
        attrs.update(
            input_type="date" if value is None else "text",
            text="" if value is None else _as_text(value, pretty=False),
            help="" if value is None else help_,
        )


def _list_attrs(prop: dict[str, Any], attrs: dict[str, Any], value: Any, editor: str) -> None:
    if value is not None and not isinstance(value, list):
        shape = _JSON_SHAPE  # not a list at all: shown as it is, for the server to refuse
    elif value:
        shape = _list_shape(value)
    else:
        shape = _default_shape(prop, editor)
    if shape == _JSON_SHAPE:
        attrs.update(editor="json", shape=shape, help="JSON.", text=_as_text(value, pretty=True))
        return
    items = value if isinstance(value, list) else []
    key = shape[len(_KEY_SHAPE) :] if shape.startswith(_KEY_SHAPE) else ""
    lines = [item[key] if key else item for item in items]
    kind = "URL" if editor == "requestList" else "entry"
    attrs.update(shape=shape, text="\n".join(lines), help=f"One {kind} per line.")


def _default_shape(prop: Mapping[str, Any], editor: str) -> str:
    """How entries are shaped when the current value has none to copy: like the default's."""
    default = prop.get("default")
    shape = _list_shape(default) if isinstance(default, list) and default else _JSON_SHAPE
    if shape == _JSON_SHAPE:
        return _KEY_SHAPE + "url" if editor == "requestList" else _TEXT_SHAPE
    return shape


def _list_shape(items: list[Any]) -> str:
    """How a list's items are shown one per line, or ``json`` when lines cannot hold them."""
    if all(isinstance(item, str) and _fits_line(item) for item in items):
        return _TEXT_SHAPE
    if not all(isinstance(item, dict) and len(item) == 1 for item in items):
        return _JSON_SHAPE
    keys = {next(iter(item)) for item in items}
    if len(keys) != 1:
        return _JSON_SHAPE
    key = keys.pop()
    if not all(isinstance(item[key], str) and _fits_line(item[key]) for item in items):
        return _JSON_SHAPE
    return _KEY_SHAPE + str(key)


def _fits_line(text: str) -> bool:
    # Lines are trimmed and blank ones dropped when posted: such an entry would change.
    return bool(text) and text == text.strip() and "\n" not in text and "\r" not in text


def _table_attrs(prop: dict[str, Any], attrs: dict[str, Any], value: Any) -> None:
    columns = _columns(prop)
    items = value if isinstance(value, list) else []
    params = {c.param for c in columns}
    fits = (
        bool(columns)
        and (value is None or isinstance(value, list))
        and all(
            isinstance(item, dict)
            and set(item) <= params
            and all(
                cell is None or (isinstance(cell, str) and _fits_cell(cell))
                for cell in item.values()
            )
            for item in items
        )
    )
    if not fits:
        attrs.update(
            editor="json",
            shape=_JSON_SHAPE,
            help="JSON: a list of objects.",
            text=_as_text(value, pretty=True),
        )
        return
    rows = [
        _row(attrs, index, columns, item)
        for index, item in enumerate([*items, {}])  # the blank row works without script
    ]
    attrs.update(
        shape=_ROWS_SHAPE, columns=tuple(columns), rows=tuple(rows), help="Blank rows are left out."
    )


def _fits_cell(text: str) -> bool:
    return text == text.strip() and "\n" not in text and "\r" not in text


def _row(attrs: Mapping[str, Any], index: int, columns: list[Column], item: Any) -> Row:
    cells = tuple(
        Cell(
            param=column.param,
            name=f"{attrs['input_name']}.{index}.{column.param}",
            id=f"{attrs['id']}-{index}-{col}",
            value=item.get(column.param) or "",
        )
        for col, column in enumerate(columns)
    )
    return Row(index=index, cells=cells)


def _as_text(value: Any, *, pretty: bool) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return _json(value, indent=2 if pretty and isinstance(value, list | dict) else None)


def _json(value: Any, indent: int | None = None) -> str:
    return json.dumps(value, ensure_ascii=False, indent=indent)


# --- parse ---------------------------------------------------------------------------------


class _Unreadable(ValueError):
    """A posted text that is not a value of its field's type; the message is shown as is."""


_OMIT: Any = object()


def _parse_one(prop: dict[str, Any], form: Mapping[str, list[str]]) -> Any:
    name = PREFIX + prop["name"]
    type_ = _type(prop)
    editor = _editor(prop)
    posted = form.get(name, [])
    text = posted[0] if posted else ""
    if editor in ("select", "radio") or (editor == "checkbox" and type_ == "array"):
        return _parse_choices(prop, posted, many=type_ == "array")
    if editor in ("switch", "checkbox"):
        return bool(posted)
    if editor in (*LIST_EDITORS, "requestListSource"):
        shape_posted = form.get(f"{name}.shape", [])
        shape = shape_posted[0] if shape_posted else ""
        if shape == _JSON_SHAPE:
            return _parse_typed(_lines(text), "array", json_only=True)
        if editor == "requestListSource":
            return _parse_rows(prop, form)
        return _parse_list(prop, text, editor, shape)
    if editor == "datepicker":
        return _parse_date(prop, text.strip())
    if editor == "number":
        return _parse_typed(text, "integer" if type_ == "integer" else "number")
    if editor == "json":
        return _parse_typed(_lines(text), type_, json_only=True)
    # input, textarea
    text = _lines(text)
    if type_ == "string":
        return text
    return _parse_typed(text, type_)


def _lines(text: str) -> str:
    # Browsers post a textarea's line breaks as CRLF; workers expect \n.
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _parse_typed(text: str, type_: str, *, json_only: bool = False) -> Any:
    text = text.strip()
    if not text:
        return _OMIT
    if json_only or type_ in ("array", "object"):
        try:
            return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite)
        except json.JSONDecodeError as exc:
            raise _Unreadable(
                f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
            ) from None
        except ValueError as exc:
            raise _Unreadable(f"not valid JSON: {exc}") from None
        except RecursionError:
            raise _Unreadable("not valid JSON: nested too deeply") from None
    if type_ == "boolean":
        lowered = text.lower()
        if lowered in ("true", "false"):
            return lowered == "true"
        raise _Unreadable("must be true or false")
    return _parse_number(text, whole=type_ == "integer")


def _refuse_constant(token: str) -> Any:
    raise ValueError(f"{token} is not a JSON value")


def _finite(token: str) -> float:
    number = float(token)
    if not math.isfinite(number):
        raise ValueError(f"{token} is too large a number")
    return number


def small_whole(text: str, digits: int = 9) -> int | None:
    """``text`` as a whole number of at most ``digits`` ASCII digits, else None: a form's
    indexes and counts (``str.isdigit`` also passes "²", which ``int`` refuses)."""
    return int(text) if re.fullmatch(f"[0-9]{{1,{digits}}}", text) else None


def _parse_number(text: str, *, whole: bool) -> int | float:
    wanted = "must be a whole number" if whole else "must be a number"
    if len(text) > _MAX_NUMBER_CHARS:
        raise _Unreadable(f"{wanted} of at most {_MAX_NUMBER_CHARS} characters")
    if _INT_RE.fullmatch(text):
        return int(text)
    if not _NUMBER_RE.fullmatch(text):
        raise _Unreadable(wanted)
    number = float(text)
    if not math.isfinite(number):
        raise _Unreadable(f"{wanted} of a size a computer can hold")
    if whole:
        if not number.is_integer():
            raise _Unreadable(wanted)
        return int(number)
    return number


def _parse_choices(prop: dict[str, Any], posted: list[str], *, many: bool) -> Any:
    options = _options(prop)
    chosen: set[int] = set()
    for text in posted:
        if not text:
            continue  # the empty option, or "Not set"
        index = small_whole(text)
        if index is None or index >= len(options):
            raise _Unreadable("is not one of the choices")  # a stale or forged form
        chosen.add(index)
    values = [options[i][1] for i in sorted(chosen)]
    if many:
        return values
    return values[0] if values else _OMIT


def _parse_list(prop: dict[str, Any], text: str, editor: str, shape: str) -> list[Any]:
    if shape != _TEXT_SHAPE and not shape.startswith(_KEY_SHAPE):
        shape = _default_shape(prop, editor)  # a post without the hidden field
    entries = [line.strip() for line in _lines(text).split("\n") if line.strip()]
    if shape.startswith(_KEY_SHAPE) and len(shape) > len(_KEY_SHAPE):
        key = shape[len(_KEY_SHAPE) :]
        return [{key: entry} for entry in entries]
    return entries


def _parse_rows(prop: dict[str, Any], form: Mapping[str, list[str]]) -> list[dict[str, str]]:
    prefix = f"{PREFIX}{prop['name']}."
    indexes = sorted(
        {
            index
            for key in form
            if key.startswith(prefix)
            for index in [small_whole(key[len(prefix) :].partition(".")[0])]
            if index is not None
        }
    )
    params = [c.param for c in _columns(prop)]
    rows: list[dict[str, str]] = []
    for index in indexes:
        row = {}
        for param in params:
            posted = form.get(f"{prefix}{index}.{param}", [])
            row[param] = posted[0].strip() if posted else ""
        if any(row.values()):
            rows.append(row)
    return rows


def _value_format(prop: Mapping[str, Any]) -> str | None:
    """``valueFormat`` when this form can write it (YYYY, MM and DD with separators)."""
    fmt = prop.get("valueFormat")
    if not isinstance(fmt, str):
        return None
    rest = fmt
    for token in ("YYYY", "MM", "DD"):
        if rest.count(token) != 1:
            return None
        rest = rest.replace(token, "")
    return None if any(ch.isalnum() for ch in rest) else fmt


def _date_pattern(fmt: str) -> re.Pattern[str]:
    pattern = re.escape(fmt)
    for token, group in (
        ("YYYY", r"(?P<y>\d{4})"),
        ("MM", r"(?P<m>\d{1,2})"),
        ("DD", r"(?P<d>\d{1,2})"),
    ):
        pattern = pattern.replace(token, group)
    return re.compile(pattern)


def _read_date(text: str, fmt: str | None) -> date | None:
    if fmt is None:
        match = _ISO_DATE_RE.fullmatch(text)
        parts = match.groups() if match else None
    else:
        found = _date_pattern(fmt).fullmatch(text)
        parts = (found["y"], found["m"], found["d"]) if found else None
    if parts is None:
        return None
    try:
        return date(int(parts[0]), int(parts[1]), int(parts[2]))
    except ValueError:
        return None


def _write_date(day: date, fmt: str | None) -> str:
    if fmt is None:
        return day.isoformat()
    return (
        fmt.replace("YYYY", f"{day.year:04d}")
        .replace("MM", f"{day.month:02d}")
        .replace("DD", f"{day.day:02d}")
    )


def _parse_date(prop: dict[str, Any], text: str) -> Any:
    if not text:
        return _OMIT
    fmt = _value_format(prop)
    day = _read_date(text, None)  # what a date box posts
    if day is not None:
        return _write_date(day, fmt)
    if fmt is not None and _read_date(text, fmt) is not None:
        return text  # typed into the text box of a browser without a date picker
    if _relative_dates(prop):
        return text
    raise _Unreadable(f"must be a date like {_write_date(date(2024, 5, 31), fmt)}")


def _relative_dates(prop: Mapping[str, Any]) -> bool:
    """CoreClaw's ``dateType`` ``absoluteOrRelative`` also takes texts such as ``7 days``."""
    date_type = prop.get("dateType")
    return isinstance(date_type, str) and "relative" in date_type.lower()
