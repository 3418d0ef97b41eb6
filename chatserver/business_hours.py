"""Business hours: a weekly schedule in one time zone, with closed dates. Pure logic, no I/O.

A ``Schedule`` is what admins edit (``GET/PUT /api/v1/business-hours``) and what
the store keeps; ``Hours`` is the same compiled for answering questions about an
instant: ``is_open``, ``next_opening``, ``next_change``.

Rules:

- Each weekday has zero or more intervals ``start``–``end`` in local wall-clock
  time (``HH:MM``). ``end`` may be ``24:00``. An ``end`` at or before ``start``
  runs past midnight into the next day (``22:00``–``02:00``).
- A closed date (local) has no open time at all, including the tail of the
  previous evening's overnight interval.
- Local times are turned into instants with the schedule's time zone, so an
  interval keeps its wall-clock times across daylight saving changes. A local
  time that does not exist (the hour skipped in spring) counts as the instant
  it would be before the change (02:30 becomes 03:30 summer time); one that
  occurs twice (autumn) is its first occurrence.
- Open periods that touch (17:00 end, 17:00 start; an overnight interval and
  the next morning's) are one period: no closing and opening in between.
- A schedule that is not ``enabled`` is always open: that is the default, so a
  server nobody configured behaves as before business hours existed.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

from chatserver.errors import BadRequest
from chatserver.validation import invalid_body

DEFAULT_TIME_ZONE = "Europe/Oslo"
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
MAX_INTERVALS_PER_DAY = 12
MAX_CLOSED_DATES = 1000
# How far ahead to look for the next opening or closing; a schedule open less
# often than this answers None ("not within a year").
HORIZON_DAYS = 400
DAY_MINUTES = 24 * 60

ClockTime = Annotated[str, msgspec.Meta(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$|^24:00$")]
ZoneName = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
DateText = Annotated[str, msgspec.Meta(pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")]
_ZONE_RE = re.compile(r"^[A-Za-z0-9_+\-]+(/[A-Za-z0-9_+\-]+)*$")


class Interval(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    start: ClockTime
    end: ClockTime


DayIntervals = Annotated[list[Interval], msgspec.Meta(max_length=MAX_INTERVALS_PER_DAY)]


class Week(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    monday: DayIntervals = msgspec.field(default_factory=list)
    tuesday: DayIntervals = msgspec.field(default_factory=list)
    wednesday: DayIntervals = msgspec.field(default_factory=list)
    thursday: DayIntervals = msgspec.field(default_factory=list)
    friday: DayIntervals = msgspec.field(default_factory=list)
    saturday: DayIntervals = msgspec.field(default_factory=list)
    sunday: DayIntervals = msgspec.field(default_factory=list)

    def day(self, weekday: int) -> list[Interval]:
        """Intervals of ``weekday`` (0 is Monday, as ``date.weekday()``)."""
        return getattr(self, WEEKDAYS[weekday])  # type: ignore[no-any-return]


class Schedule(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The admins' schedule, as the API and the store have it. ``enabled`` must be said."""

    enabled: bool
    time_zone: ZoneName = DEFAULT_TIME_ZONE
    weekly: Week = msgspec.field(default_factory=Week)
    closed_dates: Annotated[list[DateText], msgspec.Meta(max_length=MAX_CLOSED_DATES)] = (
        msgspec.field(default_factory=list)
    )


ALWAYS_OPEN = Schedule(enabled=False)


def _minutes(text: str) -> int:
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


def zone(name: str) -> ZoneInfo:
    """The time zone called ``name``, or ``BadRequest``."""
    # Checked before ZoneInfo sees it: it would read a path made of the name.
    if not _ZONE_RE.match(name) or ".." in name:
        raise BadRequest(f"time_zone {name!r} is not a time zone name like Europe/Oslo")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise BadRequest(f"time_zone {name!r} is not a time zone this server knows") from None


def validate(schedule: Schedule) -> Schedule:
    """``schedule`` checked beyond its shape, with closed dates sorted and unique.

    Raises ``BadRequest`` naming what is wrong: an unknown time zone, a date that
    does not exist, an interval that starts at ``24:00`` or has no length, or two
    intervals of one day that overlap.
    """
    zone(schedule.time_zone)
    for weekday, name in enumerate(WEEKDAYS):
        spans = []
        for interval in schedule.weekly.day(weekday):
            start, end = _minutes(interval.start), _minutes(interval.end)
            if start == DAY_MINUTES:
                raise BadRequest(f"{name}: an interval cannot start at 24:00")
            if start == end:
                raise BadRequest(f"{name}: {interval.start}-{interval.end} has no length")
            spans.append((start, end if end > start else end + DAY_MINUTES, interval))
        spans.sort(key=lambda s: s[0])
        for (_, end_a, a), (start_b, _, b) in itertools.pairwise(spans):
            if start_b < end_a:
                raise BadRequest(
                    f"{name}: {a.start}-{a.end} overlaps {b.start}-{b.end}; make them one"
                )
    days = set()
    for text in schedule.closed_dates:
        try:
            days.add(date.fromisoformat(text))
        except ValueError:
            raise BadRequest(f"closed date {text!r} is not a date like 2026-12-24") from None
    return msgspec.structs.replace(schedule, closed_dates=[d.isoformat() for d in sorted(days)])


def parse(body: bytes | str) -> Schedule:
    """A schedule from JSON (the API's body, the store's row), checked; or ``BadRequest``."""
    try:
        schedule = msgspec.json.decode(body, type=Schedule)
    except msgspec.ValidationError as exc:
        raise invalid_body(exc, Schedule) from None
    except msgspec.DecodeError:
        raise BadRequest("the body is not valid JSON") from None
    return validate(schedule)


class Hours:
    """A checked ``Schedule``, compiled to answer questions about instants."""

    def __init__(self, schedule: Schedule) -> None:
        self.schedule = schedule
        self.enabled = schedule.enabled
        self.tz = zone(schedule.time_zone)
        # Per weekday, (start, end) in minutes from that day's midnight; an overnight
        # interval ends past 1440.
        self._week: tuple[tuple[tuple[int, int], ...], ...] = tuple(
            tuple(
                sorted(
                    (s, e if e > s else e + DAY_MINUTES)
                    for s, e in (
                        (_minutes(i.start), _minutes(i.end)) for i in schedule.weekly.day(day)
                    )
                )
            )
            for day in range(7)
        )
        self._closed = frozenset(date.fromisoformat(d) for d in schedule.closed_dates)

    # ------------------------------------------------------------ questions

    def is_open(self, now: datetime) -> bool:
        if not self.enabled:
            return True
        return any(start <= now < end for start, end in self._periods_around(now))

    def next_opening(self, now: datetime) -> datetime | None:
        """The first instant at or after ``now`` when it is open: ``now`` itself while open;
        None when it does not open within ``HORIZON_DAYS``."""
        if not self.enabled:
            return now
        for start, end in self._periods_from(self._local_date(now) - timedelta(days=1)):
            if end > now:
                return max(start, now)
        return None

    def next_change(self, now: datetime) -> datetime | None:
        """The next instant after ``now`` at which it opens or closes; None when nothing
        changes within ``HORIZON_DAYS`` (always open, never open)."""
        if not self.enabled:
            return None
        for start, end in self._periods_from(self._local_date(now) - timedelta(days=1)):
            if start > now:
                return start
            if end > now:
                # Open now: it closes at ``end``, unless open without end within the horizon.
                return end if end < self._horizon_end(now) else None
        return None

    # ------------------------------------------------------------ periods

    def _local_date(self, now: datetime) -> date:
        return now.astimezone(self.tz).date()

    def _horizon_end(self, now: datetime) -> datetime:
        return self._wall(self._local_date(now) + timedelta(days=HORIZON_DAYS), 0)

    def _wall(self, day: date, minutes: int) -> datetime:
        """The instant (UTC) at local wall-clock time ``minutes`` after ``day``'s midnight."""
        day += timedelta(days=minutes // DAY_MINUTES)
        minutes %= DAY_MINUTES
        local = datetime(day.year, day.month, day.day, minutes // 60, minutes % 60, tzinfo=self.tz)
        return local.astimezone(UTC)

    def _pieces(self, day: date) -> list[tuple[int, int]]:
        """Open time within local ``day``, as minute ranges within [0, 1440]."""
        if day in self._closed:
            return []
        # The previous evening's overnight intervals spill into this day's first hours.
        pieces = [
            (0, e - DAY_MINUTES)
            for _, e in self._week[(day - timedelta(days=1)).weekday()]
            if e > DAY_MINUTES
        ]
        pieces += [(s, min(e, DAY_MINUTES)) for s, e in self._week[day.weekday()]]
        return sorted(pieces)

    def _day_periods(self, day: date) -> Iterator[tuple[datetime, datetime]]:
        for start, end in self._pieces(day):
            yield self._wall(day, start), self._wall(day, end)

    def _periods_from(self, first: date) -> Iterator[tuple[datetime, datetime]]:
        """Open periods, as UTC instants, from local ``first`` on for ``HORIZON_DAYS``, with
        periods that touch or overlap merged into one."""
        current: tuple[datetime, datetime] | None = None
        for offset in range(HORIZON_DAYS + 2):
            for start, end in self._day_periods(first + timedelta(days=offset)):
                if end <= start:
                    continue  # a wall-clock range the DST change swallowed
                if current is not None and start <= current[1]:
                    current = (current[0], max(current[1], end))
                    continue
                if current is not None:
                    yield current
                current = (start, end)
        if current is not None:
            yield current

    def _periods_around(self, now: datetime) -> Iterator[tuple[datetime, datetime]]:
        local = self._local_date(now)
        for offset in (-1, 0, 1):
            yield from self._day_periods(local + timedelta(days=offset))


# ---------------------------------------------------------------- the automatic reply

_WEEKDAY_NAMES = {
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
    "nb": ("mandag", "tirsdag", "onsdag", "torsdag", "fredag", "lørdag", "søndag"),
}
_MONTH_NAMES = {
    "en": (
        "January", "February", "March", "April", "May", "June", "July", "August",
        "September", "October", "November", "December",
    ),
    "nb": (
        "januar", "februar", "mars", "april", "mai", "juni", "juli", "august",
        "september", "oktober", "november", "desember",
    ),
}  # fmt: skip
_CLOSED_TEXT = {
    "en": (
        "We are closed right now. Someone will answer {when} ({zone} time).",
        "We are closed right now. Someone will answer as soon as we can.",
        "today at {time}",
        "tomorrow at {time}",
        "on {weekday} {day} {month} at {time}",
    ),
    "nb": (
        "Vi har stengt nå. Noen svarer deg {when} (tidssone {zone}).",
        "Vi har stengt nå. Noen svarer deg så snart vi kan.",
        "i dag kl. {time}",
        "i morgen kl. {time}",
        "{weekday} {day}. {month} kl. {time}",
    ),
}


def language(locale: str | None) -> str:
    """``nb`` for Norwegian locales (``nb``, ``no``, ``nn``, ``nb-NO`` …), else ``en``."""
    return "nb" if re.match(r"^(nb|no|nn)\b", (locale or "").lower()) else "en"


def closed_reply(hours: Hours, now: datetime, locale: str | None) -> str:
    """What the automatic reply says outside hours: when someone will answer, in the
    visitor's language and the schedule's time zone."""
    lang = language(locale)
    with_time, without, today, tomorrow, later = _CLOSED_TEXT[lang]
    opening = hours.next_opening(now)
    if opening is None:
        return without
    local = opening.astimezone(hours.tz)
    days = (local.date() - now.astimezone(hours.tz).date()).days
    pattern = today if days <= 0 else tomorrow if days == 1 else later
    when = pattern.format(
        time=f"{local.hour:02d}:{local.minute:02d}",
        weekday=_WEEKDAY_NAMES[lang][local.weekday()],
        day=local.day,
        month=_MONTH_NAMES[lang][local.month - 1],
    )
    return with_time.format(when=when, zone=hours.schedule.time_zone)
