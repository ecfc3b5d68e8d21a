"""Schedule maths of saved tasks (spec §6): pure functions of the schedule fields and a clock.

A schedule is a wall-clock time in the server's time zone: daily, weekly on a weekday, monthly
on a day (a day past the month's end means its last day) or once on a date. ``zoneinfo`` does
the DST work: a time that does not exist on a spring-forward day fires at the first instant
after the gap, and one that exists twice on a fall-back day fires once, at its first instant.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

DAILY, WEEKLY, MONTHLY, ONCE = 1, 2, 3, 4
TYPES = {DAILY: "daily", WEEKLY: "weekly", MONTHLY: "monthly", ONCE: "once"}
_TIME = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
MIN_YEAR, MAX_YEAR = 1970, 9998
#: The fields each type needs besides ``schedule_time``.
_NEEDS = {WEEKLY: "schedule_weekday", MONTHLY: "schedule_day", ONCE: "schedule_once_date"}


@dataclass(frozen=True)
class Schedule:
    """The schedule fields of a task; ``None`` for a field that is not set."""

    enabled: bool = False
    type: int | None = None
    time: str | None = None
    weekday: int | None = None
    day: int | None = None
    once_date: str | None = None

    @classmethod
    def of(cls, task: Any) -> Schedule:
        """The schedule of anything with the ``schedule_*`` attributes of a task row."""
        return cls(
            enabled=bool(task.schedule_enabled),
            type=task.schedule_type,
            time=task.schedule_time,
            weekday=task.schedule_weekday,
            day=task.schedule_day,
            once_date=task.schedule_once_date,
        )


def problems(schedule: Schedule) -> list[str]:
    """What is wrong with the fields, one ``details`` line each; empty when they are usable."""
    found: list[str] = []
    if schedule.type is not None and schedule.type not in TYPES:
        found.append("schedule_type: must be 1 (daily), 2 (weekly), 3 (monthly) or 4 (once)")
    if schedule.time is not None and not _TIME.fullmatch(schedule.time):
        found.append("schedule_time: must be HH:mm, 00:00 to 23:59")
    if schedule.weekday is not None and not 1 <= schedule.weekday <= 7:
        found.append("schedule_weekday: must be from 1 (Monday) to 7 (Sunday)")
    if schedule.day is not None and not 1 <= schedule.day <= 31:
        found.append("schedule_day: must be from 1 to 31")
    if schedule.once_date is not None and _parse_date(schedule.once_date) is None:
        found.append(f"schedule_once_date: must be a date YYYY-MM-DD from {MIN_YEAR} to {MAX_YEAR}")
    if schedule.enabled and not found:
        if schedule.type is None:
            found.append("schedule_type: is required when schedule_enabled is 1")
        else:
            needed = [
                "schedule_time",
                *([_NEEDS[schedule.type]] if schedule.type in _NEEDS else []),
            ]
            values = {
                "schedule_time": schedule.time,
                "schedule_weekday": schedule.weekday,
                "schedule_day": schedule.day,
                "schedule_once_date": schedule.once_date,
            }
            found += [
                f"{name}: is required by a {TYPES[schedule.type]} schedule"
                for name in needed
                if values[name] is None
            ]
    return found


def next_occurrence(schedule: Schedule, after: datetime, tz: ZoneInfo) -> datetime | None:
    """The first firing strictly after ``after`` (an aware datetime), as a UTC datetime; None
    if the schedule is disabled, incomplete or a once-schedule whose moment has passed.

    UTC because Python never finds an ambiguous local time equal to anything in another zone.
    """
    if not schedule.enabled or problems(schedule) or schedule.time is None:
        return None
    hour, minute = (int(part) for part in schedule.time.split(":"))
    for day in _candidate_days(schedule, after.astimezone(tz).date()):
        moment = _instant(day, hour, minute, tz).astimezone(UTC)
        if moment > after:
            return moment
    return None


def _candidate_days(schedule: Schedule, start: date) -> list[date]:
    """Days the schedule fires on, in order, from the day before ``start`` (whose time can
    fall after ``after`` in another offset) far enough ahead to hold the next occurrence."""
    first = start - timedelta(days=1)
    if schedule.type == ONCE:
        once = _parse_date(schedule.once_date or "")
        return [once] if once is not None else []
    if schedule.type == MONTHLY:
        days: list[date] = []
        year, month = first.year, first.month
        for _ in range(3):
            last = calendar.monthrange(year, month)[1]
            days.append(date(year, month, min(schedule.day or 1, last)))
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        return days
    span = [first + timedelta(days=n) for n in range(10)]
    if schedule.type == WEEKLY:
        return [d for d in span if d.isoweekday() == schedule.weekday]
    return span


def _instant(day: date, hour: int, minute: int, tz: ZoneInfo) -> datetime:
    """The instant the wall time ``day hour:minute`` names in ``tz``.

    In a gap (spring forward) the wall time does not exist: the first wall minute after it that
    exists is the moment the clocks jumped. In an overlap (fall back) ``fold=0`` is the first.
    """
    wall = datetime(day.year, day.month, day.day, hour, minute)
    # A gap is rarely over an hour; a skipped calendar day (Samoa 2011) is 1,440 minutes.
    for _ in range(2 * 24 * 60):
        moment = wall.replace(tzinfo=tz)
        if moment.astimezone(UTC).astimezone(tz).replace(tzinfo=None) == wall:
            return moment
        wall += timedelta(minutes=1)
    raise ValueError(f"no valid local time near {day} {hour:02}:{minute:02} in {tz}")


def _parse_date(text: str) -> date | None:
    """A ``YYYY-MM-DD`` date between 1970 and 9998: beyond, time-zone arithmetic overflows."""
    if not _DATE.fullmatch(text):
        return None
    try:
        day = date.fromisoformat(text)
    except ValueError:
        return None
    return day if MIN_YEAR <= day.year <= MAX_YEAR else None
