"""A run's input as the console's forms post it: the worker's fields and the run options."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.datastructures import FormData

from runyard.console import forms
from runyard.services import InvalidInput

#: Run options the forms offer (``parameters.system``), with their labels and units.
RUN_OPTIONS = (
    ("execute_limit_time_seconds", "Time limit", "seconds"),
    ("memory", "Memory", "MB"),
)


@dataclass
class InputForm:
    """What an input form shows: its fields, the run options, and the problems found."""

    fields: list[forms.Field]
    system: dict[str, Any]
    problems: dict[str, list[str]] = field(default_factory=dict)

    @property
    def has_problems(self) -> bool:
        return any(self.problems.values())


def input_form(schema: Mapping[str, Any], value: Mapping[str, Any] | None = None) -> InputForm:
    """The form for ``schema``, showing ``value`` (a run input) or else the defaults."""
    parameters = (value or {}).get("parameters") or {}
    return InputForm(
        fields=forms.fields(schema, parameters.get("custom") if value is not None else None),
        system=dict(parameters.get("system") or {}),
    )


def posted_fields(form: FormData) -> dict[str, list[str]]:
    """Every posted text field; a file sent where the form has text is no value at all."""
    return {key: [v for v in form.getlist(key) if isinstance(v, str)] for key in form}


def read_input(
    schema: Mapping[str, Any], form: FormData, saved_system: Mapping[str, Any] | None = None
) -> tuple[dict[str, Any], InputForm]:
    """The run input a form posted, and the form to show again if it has problems.

    Run options the form does not show (a cost cap set over the API, say) are kept from
    ``saved_system``: saving a task from the console never drops them.
    """
    posted = posted_fields(form)
    custom, problems = forms.parse(schema, posted)
    shown_keys = {key for key, _, _ in RUN_OPTIONS}
    system = {k: v for k, v in (saved_system or {}).items() if k not in shown_keys}
    for key, label, _unit in RUN_OPTIONS:
        text = (posted.get(f"system.{key}") or [""])[0].strip()
        if not text:
            continue
        number = forms.small_whole(text)
        if number is not None:
            system[key] = number
        else:
            problems.setdefault(f"system.{key}", []).append(f"{label}: must be a whole number")
    value = {"parameters": {"custom": custom, "system": system}}
    shown = InputForm(
        fields=forms.fields(schema, custom, form=posted), system=system, problems=problems
    )
    return value, shown


def refused(shown: InputForm, exc: InvalidInput) -> InputForm:
    """``shown`` with the service's reasons for refusing its input, each at its field."""
    details = list(exc.details or ()) or [exc.message]
    by_field = forms.problems_by_field(
        [line for line in details if not line.startswith("parameters.system.")]
    )
    for line in details:
        if line.startswith("parameters.system."):
            key, _, reason = line.removeprefix("parameters.system.").partition(": ")
            by_field.setdefault(f"system.{key}", []).append(reason)
    for name, lines in by_field.items():
        shown.problems.setdefault(name, []).extend(lines)
    return shown
