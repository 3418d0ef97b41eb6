"""Business hours as pure logic: open or closed at an instant, the next opening and change,
across daylight saving changes in Europe/Oslo, closed dates and overnight intervals; the
checks on an admin's schedule; the automatic reply's wording in English and Norwegian."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from chatserver.business_hours import (
    ALWAYS_OPEN,
    WEEKDAYS,
    Hours,
    closed_reply,
    language,
    parse,
)
from chatserver.errors import BadRequest

OSLO = ZoneInfo("Europe/Oslo")


def oslo(*args: int) -> datetime:
    """An instant given as Oslo wall-clock time (the first occurrence, if there are two)."""
    return datetime(*args, tzinfo=OSLO).astimezone(UTC)  # type: ignore[misc]


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def hours(
    weekly: dict[str, list[tuple[str, str]]],
    *,
    closed: list[str] | None = None,
    zone: str = "Europe/Oslo",
    enabled: bool = True,
) -> Hours:
    body: dict[str, Any] = {
        "enabled": enabled,
        "time_zone": zone,
        "weekly": {d: [{"start": s, "end": e} for s, e in spans] for d, spans in weekly.items()},
        "closed_dates": closed or [],
    }
    return Hours(parse(json.dumps(body)))


OFFICE = {day: [("09:00", "17:00")] for day in WEEKDAYS[:5]}
EVERY_DAY = {day: [("09:00", "17:00")] for day in WEEKDAYS}


def test_without_a_schedule_it_is_always_open() -> None:
    """The default (nothing configured, or not enabled) is open at every instant and never
    changes, so a server nobody configured behaves as before."""
    for h in (Hours(ALWAYS_OPEN), hours(OFFICE, enabled=False)):
        for instant in (utc(2026, 1, 1), utc(2026, 7, 4, 23, 59), oslo(2026, 3, 29, 2, 30)):
            assert h.is_open(instant)
            assert h.next_opening(instant) == instant
            assert h.next_change(instant) is None


def test_office_hours_on_a_weekday() -> None:
    """Mon–Fri 09:00–17:00 Oslo time: the start is in, the end is out, nights and weekends
    are closed, and the next opening and change are the right instants."""
    h = hours(OFFICE)
    wednesday = (2026, 11, 25)
    assert not h.is_open(oslo(*wednesday, 8, 59))
    assert h.is_open(oslo(*wednesday, 9, 0))
    assert h.is_open(oslo(*wednesday, 16, 59))
    assert not h.is_open(oslo(*wednesday, 17, 0))
    assert h.next_opening(oslo(*wednesday, 7, 0)) == oslo(*wednesday, 9, 0)
    assert h.next_change(oslo(*wednesday, 7, 0)) == oslo(*wednesday, 9, 0)
    assert h.next_change(oslo(*wednesday, 12, 0)) == oslo(*wednesday, 17, 0)
    assert h.next_opening(oslo(*wednesday, 12, 0)) == oslo(*wednesday, 12, 0)
    # Friday evening: next opening is Monday morning.
    assert not h.is_open(oslo(2026, 11, 28, 12, 0))  # Saturday
    assert h.next_opening(oslo(2026, 11, 27, 17, 0)) == oslo(2026, 11, 30, 9, 0)
    # Winter: 09:00 in Oslo is 08:00 UTC.
    assert oslo(*wednesday, 9, 0) == utc(*wednesday, 8, 0)


def test_wall_clock_hours_survive_the_spring_daylight_saving_change() -> None:
    """Oslo moves from +01:00 to +02:00 at 02:00 on 29 March 2026: 09:00 is 08:00 UTC the
    day before and 07:00 UTC on the day; an interval across the skipped hour is an hour
    shorter, and one inside it (02:15–02:45) is taken as the same wall-clock times before the
    change: 03:15–03:45 summer time."""
    h = hours(EVERY_DAY)
    assert h.next_opening(oslo(2026, 3, 28, 18, 0)) == utc(2026, 3, 29, 7, 0)
    assert oslo(2026, 3, 28, 9, 0) == utc(2026, 3, 28, 8, 0)
    assert h.is_open(utc(2026, 3, 29, 7, 0))
    assert not h.is_open(utc(2026, 3, 29, 6, 59))
    assert h.next_change(utc(2026, 3, 29, 12, 0)) == utc(2026, 3, 29, 15, 0)

    night = hours({"sunday": [("01:00", "04:00")]})
    start = night.next_opening(utc(2026, 3, 28, 12, 0))
    assert start == utc(2026, 3, 29, 0, 0)
    assert night.next_change(start) == utc(2026, 3, 29, 2, 0)  # two real hours, not three

    gap = hours({"sunday": [("02:15", "02:45")]})
    assert gap.next_opening(utc(2026, 3, 28, 12, 0)) == utc(2026, 3, 29, 1, 15)
    assert gap.next_change(utc(2026, 3, 29, 1, 15)) == utc(2026, 3, 29, 1, 45)


def test_wall_clock_hours_survive_the_autumn_daylight_saving_change() -> None:
    """Back to +01:00 at 03:00 on 25 October 2026: 09:00 is 07:00 UTC the day before and
    08:00 UTC on the day; an interval across the repeated hour lasts an hour longer."""
    h = hours(EVERY_DAY)
    assert h.next_opening(oslo(2026, 10, 24, 18, 0)) == utc(2026, 10, 25, 8, 0)
    assert h.is_open(utc(2026, 10, 24, 7, 0))
    assert not h.is_open(utc(2026, 10, 25, 7, 30))
    night = hours({"sunday": [("01:00", "04:00")]})
    start = night.next_opening(utc(2026, 10, 24, 12, 0))
    assert start == utc(2026, 10, 24, 23, 0)
    assert night.next_change(start) == utc(2026, 10, 25, 3, 0)  # four real hours


def test_closed_dates_have_no_open_time() -> None:
    """Christmas Eve (a Thursday) is closed all day; the next opening is the day after, or
    after a run of closed dates. Dates are the schedule's local dates."""
    h = hours(OFFICE, closed=["2026-12-24", "2026-12-25"])
    assert not h.is_open(oslo(2026, 12, 24, 10, 0))
    assert h.is_open(oslo(2026, 12, 23, 10, 0))
    assert h.next_opening(oslo(2026, 12, 23, 18, 0)) == oslo(2026, 12, 28, 9, 0)
    assert h.next_change(oslo(2026, 12, 23, 12, 0)) == oslo(2026, 12, 23, 17, 0)


def test_overnight_intervals_run_into_the_next_day() -> None:
    """Friday 22:00–02:00 is open until 02:00 on Saturday, unless Saturday is a closed date;
    an interval ending at 24:00 and the next day's from 00:00 are one period."""
    h = hours({"friday": [("22:00", "02:00")]})
    assert h.is_open(oslo(2026, 11, 27, 23, 0))
    assert h.is_open(oslo(2026, 11, 28, 1, 59))
    assert not h.is_open(oslo(2026, 11, 28, 2, 0))
    assert h.next_change(oslo(2026, 11, 27, 23, 0)) == oslo(2026, 11, 28, 2, 0)
    cut = hours({"friday": [("22:00", "02:00")]}, closed=["2026-11-28"])
    assert cut.is_open(oslo(2026, 11, 27, 23, 0))
    assert not cut.is_open(oslo(2026, 11, 28, 1, 0))
    assert cut.next_change(oslo(2026, 11, 27, 23, 0)) == oslo(2026, 11, 28, 0, 0)

    joined = hours({"monday": [("20:00", "24:00")], "tuesday": [("00:00", "08:00")]})
    assert joined.next_change(oslo(2026, 11, 30, 21, 0)) == oslo(2026, 12, 1, 8, 0)


def test_touching_intervals_are_one_period() -> None:
    """09:00–12:00 and 12:00–17:00: no closing at noon, so visitors hear of no change."""
    h = hours({"monday": [("12:00", "17:00"), ("09:00", "12:00")]})
    assert h.is_open(oslo(2026, 11, 30, 12, 0))
    assert h.next_change(oslo(2026, 11, 30, 10, 0)) == oslo(2026, 11, 30, 17, 0)


def test_open_around_the_clock_and_never_open() -> None:
    """Every day 00:00–24:00 is open with no change ahead; an enabled schedule without
    intervals never opens: no next opening, no change."""
    always = hours({day: [("00:00", "24:00")] for day in WEEKDAYS})
    assert always.is_open(oslo(2026, 3, 29, 2, 30))
    assert always.next_change(utc(2026, 6, 1)) is None
    never = hours({})
    assert not never.is_open(utc(2026, 6, 1))
    assert never.next_opening(utc(2026, 6, 1)) is None
    assert never.next_change(utc(2026, 6, 1)) is None


def test_another_time_zone() -> None:
    """The same wall-clock hours in Asia/Tokyo open at another instant."""
    tokyo = hours(OFFICE, zone="Asia/Tokyo")
    assert tokyo.next_opening(utc(2026, 11, 24, 12, 0)) == utc(2026, 11, 25, 0, 0)


BAD_SCHEDULES: list[tuple[Any, str]] = [
    ({}, "enabled"),
    ({"enabled": "yes"}, "enabled"),
    ({"enabled": True, "time_zone": "Mars/Olympus"}, "time zone"),
    ({"enabled": True, "time_zone": "../../etc/passwd"}, "time zone"),
    ({"enabled": True, "time_zone": ""}, "time_zone"),
    ({"enabled": True, "time_zone": "x" * 65}, "time_zone"),
    ({"enabled": True, "time_zone": 1}, "time_zone"),
    ({"enabled": True, "weekly": {"funday": []}}, "funday"),
    ({"enabled": True, "weekly": {"monday": [{"start": "9:00", "end": "17:00"}]}}, "start"),
    ({"enabled": True, "weekly": {"monday": [{"start": "09:00", "end": "24:01"}]}}, "end"),
    ({"enabled": True, "weekly": {"monday": [{"start": "09:00"}]}}, "end"),
    ({"enabled": True, "weekly": {"monday": [{"start": "24:00", "end": "02:00"}]}}, "24:00"),
    ({"enabled": True, "weekly": {"monday": [{"start": "09:00", "end": "09:00"}]}}, "length"),
    (
        {
            "enabled": True,
            "weekly": {
                "monday": [{"start": "09:00", "end": "12:00"}, {"start": "11:00", "end": "13:00"}]
            },
        },
        "overlaps",
    ),
    (
        {
            "enabled": True,
            "weekly": {
                "monday": [{"start": "22:00", "end": "02:00"}, {"start": "23:00", "end": "23:30"}]
            },
        },
        "overlaps",
    ),
    ({"enabled": True, "weekly": {"monday": [{"start": "09:00", "end": "10:00"}] * 13}}, "12"),
    ({"enabled": True, "weekly": {"monday": "09-17"}}, "monday"),
    ({"enabled": True, "closed_dates": ["2026-02-30"]}, "2026-02-30"),
    ({"enabled": True, "closed_dates": ["24.12.2026"]}, "closed_dates"),
    ({"enabled": True, "closed_dates": ["2026-12-24"] * 1001}, "closed_dates"),
    ({"enabled": True, "opening": "always"}, "opening"),
    ([], "object"),
]


@pytest.mark.parametrize(("body", "says"), BAD_SCHEDULES)
def test_a_bad_schedule_is_refused_saying_why(body: Any, says: str) -> None:
    """Wrong types, unknown fields and days, times that are not HH:MM, unknown time zones,
    impossible dates, empty or overlapping intervals: ``BadRequest`` naming the problem."""
    with pytest.raises(BadRequest) as caught:
        parse(json.dumps(body))
    assert says in caught.value.message
    assert caught.value.code == "bad_request"


def test_not_json_is_refused() -> None:
    """A body that is not JSON at all is ``BadRequest`` too."""
    with pytest.raises(BadRequest):
        parse(b"{enabled: true")


def test_a_good_schedule_is_kept_with_closed_dates_sorted_and_unique() -> None:
    """Defaults fill what is left out; closed dates come back sorted, once each."""
    schedule = parse(
        json.dumps({"enabled": True, "closed_dates": ["2026-12-25", "2026-12-24", "2026-12-25"]})
    )
    assert schedule.time_zone == "Europe/Oslo"
    assert schedule.closed_dates == ["2026-12-24", "2026-12-25"]
    assert schedule.weekly.monday == []


def test_language_of_a_locale() -> None:
    """Norwegian locales (nb, no, nn, with a region or not) answer in Norwegian; others and
    none in English."""
    assert [language(x) for x in ("nb", "nb-NO", "no", "NN-no", "nn")] == ["nb"] * 5
    assert [language(x) for x in ("en-US", "de", "", None, "nbx")] == ["en"] * 5


def test_the_automatic_reply_says_when_someone_answers() -> None:
    """Today, tomorrow or a weekday and date, with the time and zone, in the visitor's
    language; without any opening ahead, "as soon as we can"."""
    h = hours(OFFICE)
    early = oslo(2026, 11, 25, 7, 30)  # Wednesday
    assert closed_reply(h, early, "en-GB") == (
        "We are closed right now. Someone will answer today at 09:00 (Europe/Oslo time)."
    )
    assert closed_reply(h, early, "nb-NO") == (
        "Vi har stengt nå. Noen svarer deg i dag kl. 09:00 (tidssone Europe/Oslo)."
    )
    evening = oslo(2026, 11, 25, 18, 0)
    assert "tomorrow at 09:00" in closed_reply(h, evening, "en")
    assert "i morgen kl. 09:00" in closed_reply(h, evening, "nb")
    friday = oslo(2026, 11, 27, 18, 0)
    assert "on Monday 30 November at 09:00" in closed_reply(h, friday, "en")
    assert "mandag 30. november kl. 09:00" in closed_reply(h, friday, "no")
    # The time is the schedule's, whatever the visitor's clock: 09:00 Oslo, not 08:00 UTC.
    assert "09:00" in closed_reply(h, friday + timedelta(hours=1), None)
    never = hours({})
    assert closed_reply(never, friday, "en") == (
        "We are closed right now. Someone will answer as soon as we can."
    )
    assert closed_reply(never, friday, "nb") == "Vi har stengt nå. Noen svarer deg så snart vi kan."
