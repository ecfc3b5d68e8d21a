"""Schedule maths: the next occurrence of each type, month ends, leap years and DST."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from runyard.services.schedules import Schedule, next_occurrence, problems


def daily(at: str) -> Schedule:
    return Schedule(enabled=True, type=1, time=at)


def weekly(weekday: int, at: str) -> Schedule:
    return Schedule(enabled=True, type=2, time=at, weekday=weekday)


def monthly(day: int, at: str) -> Schedule:
    return Schedule(enabled=True, type=3, time=at, day=day)


def once(on: str, at: str) -> Schedule:
    return Schedule(enabled=True, type=4, time=at, once_date=on)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


CASES = [
    # (zone, schedule, after (UTC), next (UTC) or None)
    ("UTC", daily("09:00"), "2024-03-10 08:00", "2024-03-10 09:00"),
    ("UTC", daily("09:00"), "2024-03-10 09:00", "2024-03-11 09:00"),  # strictly after
    ("UTC", daily("00:00"), "2024-12-31 23:59", "2025-01-01 00:00"),
    ("UTC", daily("23:59"), "2024-02-28 23:59:30", "2024-02-29 23:59"),
    ("UTC", weekly(1, "10:30"), "2024-01-03 00:00", "2024-01-08 10:30"),  # Wed → Mon
    ("UTC", weekly(1, "10:30"), "2024-01-08 10:29", "2024-01-08 10:30"),
    ("UTC", weekly(1, "10:30"), "2024-01-08 10:30", "2024-01-15 10:30"),
    ("UTC", weekly(7, "08:00"), "2024-12-30 00:00", "2025-01-05 08:00"),  # Sunday, new year
    ("UTC", monthly(31, "09:00"), "2024-02-01 00:00", "2024-02-29 09:00"),  # leap year
    ("UTC", monthly(31, "09:00"), "2023-02-01 00:00", "2023-02-28 09:00"),
    ("UTC", monthly(30, "09:00"), "2100-02-01 00:00", "2100-02-28 09:00"),  # not a leap year
    ("UTC", monthly(29, "09:00"), "2000-02-01 00:00", "2000-02-29 09:00"),  # a leap year
    ("UTC", monthly(31, "09:00"), "2024-04-01 00:00", "2024-04-30 09:00"),
    ("UTC", monthly(31, "09:00"), "2024-01-31 12:00", "2024-02-29 09:00"),
    ("UTC", monthly(31, "09:00"), "2024-02-29 09:00", "2024-03-31 09:00"),
    ("UTC", monthly(15, "12:00"), "2024-12-20 00:00", "2025-01-15 12:00"),
    ("UTC", monthly(1, "00:00"), "2024-01-01 00:00", "2024-02-01 00:00"),
    ("UTC", once("2024-05-01", "12:00"), "2024-04-30 00:00", "2024-05-01 12:00"),
    ("UTC", once("2024-05-01", "12:00"), "2024-05-01 12:00", None),
    ("UTC", once("2024-05-01", "12:00"), "2025-01-01 00:00", None),
    # The zone decides the day: 08:00 in Tokyo is 23:00 UTC the day before.
    ("Asia/Tokyo", daily("08:00"), "2024-01-01 00:00", "2024-01-01 23:00"),
    ("Asia/Tokyo", once("2024-01-02", "08:00"), "2024-01-01 00:00", "2024-01-01 23:00"),
    ("America/New_York", weekly(5, "22:00"), "2024-01-05 00:00", "2024-01-06 03:00"),
    # Paris springs forward on 2024-03-31 at 02:00 CET → 03:00 CEST (01:00 UTC): 02:30 does
    # not exist that day and fires when the clocks jump.
    ("Europe/Paris", daily("02:30"), "2024-03-30 12:00", "2024-03-31 01:00"),
    ("Europe/Paris", daily("02:30"), "2024-03-31 01:00", "2024-04-01 00:30"),
    ("Europe/Paris", daily("02:00"), "2024-03-30 12:00", "2024-03-31 01:00"),
    ("Europe/Paris", daily("03:00"), "2024-03-30 12:00", "2024-03-31 01:00"),
    # Paris falls back on 2024-10-27 at 03:00 CEST → 02:00 CET: 02:30 happens twice, fires once.
    ("Europe/Paris", daily("02:30"), "2024-10-26 12:00", "2024-10-27 00:30"),
    ("Europe/Paris", daily("02:30"), "2024-10-27 00:30", "2024-10-28 01:30"),
    ("Europe/Paris", monthly(31, "02:30"), "2024-03-01 00:00", "2024-03-31 01:00"),
    # New York: 2024-03-10 02:00 EST → 03:00 EDT; 2024-11-03 02:00 EDT → 01:00 EST.
    ("America/New_York", daily("02:15"), "2024-03-09 12:00", "2024-03-10 07:00"),
    ("America/New_York", weekly(7, "02:30"), "2024-03-04 00:00", "2024-03-10 07:00"),
    ("America/New_York", daily("01:30"), "2024-11-02 12:00", "2024-11-03 05:30"),
    ("America/New_York", daily("01:30"), "2024-11-03 05:30", "2024-11-04 06:30"),
    ("America/New_York", once("2024-11-03", "01:30"), "2024-11-03 05:30", None),
    ("America/New_York", once("2024-03-10", "02:30"), "2024-03-01 00:00", "2024-03-10 07:00"),
]


@pytest.mark.parametrize(("zone", "schedule", "after", "expected"), CASES)
def test_next_occurrence(zone: str, schedule: Schedule, after: str, expected: str | None) -> None:
    found = next_occurrence(schedule, utc(after), ZoneInfo(zone))
    assert found == (None if expected is None else utc(expected))


def test_occurrences_of_a_year_fire_once_each() -> None:
    """Walking a DST year occurrence by occurrence: one firing per local day, none twice."""
    tz = ZoneInfo("Europe/Paris")
    moment = utc("2024-01-01 00:00")
    days = []
    while True:
        found = next_occurrence(daily("02:30"), moment, tz)
        assert found is not None and found > moment
        if found.year > 2024:
            break
        days.append(found.astimezone(tz).date())
        moment = found
    assert len(days) == len(set(days)) == 366


def test_disabled_and_incomplete_schedules_never_fire() -> None:
    after = utc("2024-01-01 00:00")
    tz = ZoneInfo("UTC")
    assert next_occurrence(Schedule(type=1, time="09:00"), after, tz) is None
    assert next_occurrence(Schedule(enabled=True, type=2, time="09:00"), after, tz) is None
    assert next_occurrence(Schedule(enabled=True, type=1), after, tz) is None


PROBLEMS = [
    (daily("09:00"), []),
    (Schedule(), []),
    (Schedule(type=9), ["schedule_type"]),
    (Schedule(time="9:00"), ["schedule_time"]),
    (Schedule(time="24:00"), ["schedule_time"]),
    (Schedule(time="12:60"), ["schedule_time"]),
    (Schedule(weekday=0), ["schedule_weekday"]),
    (Schedule(weekday=8), ["schedule_weekday"]),
    (Schedule(day=0), ["schedule_day"]),
    (Schedule(day=32), ["schedule_day"]),
    (Schedule(once_date="2024-02-30"), ["schedule_once_date"]),
    (Schedule(once_date="2024-5-1"), ["schedule_once_date"]),
    (Schedule(enabled=True), ["schedule_type"]),
    (Schedule(enabled=True, type=1), ["schedule_time"]),
    (Schedule(enabled=True, type=2, time="09:00"), ["schedule_weekday"]),
    (Schedule(enabled=True, type=3, time="09:00"), ["schedule_day"]),
    (Schedule(enabled=True, type=4), ["schedule_time", "schedule_once_date"]),
    (Schedule(type=2, time="09:00"), []),  # disabled: incomplete is fine
]


@pytest.mark.parametrize(("schedule", "fields"), PROBLEMS)
def test_problems(schedule: Schedule, fields: list[str]) -> None:
    found = problems(schedule)
    assert [line.split(":")[0] for line in found] == fields, found
