"""Go methods that expr lets expressions call on ``time.Time`` and ``time.Duration`` values
(``now().Year()``, ``(now() - t).Seconds()``, ``date("2024-01-02").Format("Jan 2")``…).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, tzinfo
from typing import TypeVar

from .errors import Fail
from .golang import Duration, format_duration, format_time, go_type

__all__ = ["method", "to_duration_ns"]


def to_duration_ns(delta: timedelta) -> int:
    return (delta.days * 86400 + delta.seconds) * 10**9 + delta.microseconds * 1000


_T = TypeVar("_T")


def _need(value: object, kind: type[_T], name: str) -> _T:
    if not isinstance(value, kind) or isinstance(value, bool):
        raise Fail(f"{name}: cannot use {go_type(value)} as argument")
    return value


def _time_methods(t: datetime) -> dict[str, Callable[..., object]]:
    def add_date(years: int, months: int, days: int) -> datetime:
        month0 = t.month - 1 + int(_need(months, int, "AddDate"))
        year = t.year + int(_need(years, int, "AddDate")) + month0 // 12
        base = t.replace(year=year, month=month0 % 12 + 1, day=1)
        return base + timedelta(days=t.day - 1 + int(_need(days, int, "AddDate")))

    def truncate(d: Duration) -> datetime:
        step = _need(d, Duration, "Truncate").ns // 1000
        if step <= 0:
            return t
        micros = to_duration_ns(t - datetime(1, 1, 1, tzinfo=t.tzinfo)) // 1000
        return t - timedelta(microseconds=micros % step)

    return {
        "Year": lambda: t.year,
        "Month": lambda: t.month,
        "Day": lambda: t.day,
        "Hour": lambda: t.hour,
        "Minute": lambda: t.minute,
        "Second": lambda: t.second,
        "Nanosecond": lambda: t.microsecond * 1000,
        "Weekday": lambda: (t.weekday() + 1) % 7,
        "YearDay": lambda: t.timetuple().tm_yday,
        "Unix": lambda: int(t.timestamp() // 1),
        "UnixMilli": lambda: to_duration_ns(t - datetime(1970, 1, 1, tzinfo=UTC)) // 10**6,
        "UnixNano": lambda: to_duration_ns(t - datetime(1970, 1, 1, tzinfo=UTC)),
        "Format": lambda layout: format_time(t, str(_need(layout, str, "Format"))),
        "String": lambda: format_time(t, "2006-01-02 15:04:05.999999999 -0700 MST"),
        "Sub": lambda other: Duration(to_duration_ns(t - _need(other, datetime, "Sub"))),
        "Add": lambda d: t + timedelta(microseconds=_need(d, Duration, "Add").ns // 1000),
        "AddDate": add_date,
        "Before": lambda other: t < _need(other, datetime, "Before"),
        "After": lambda other: t > _need(other, datetime, "After"),
        "Equal": lambda other: t == _need(other, datetime, "Equal"),
        "In": lambda zone: t.astimezone(_need(zone, tzinfo, "In")),  # type: ignore[type-abstract]  # isinstance against the abstract tzinfo is what is meant
        "UTC": lambda: t.astimezone(UTC),
        "Local": lambda: t.astimezone(UTC),
        "IsZero": lambda: t.replace(tzinfo=None) == datetime(1, 1, 1),
        "Truncate": truncate,
    }


def _duration_methods(d: Duration) -> dict[str, Callable[..., object]]:
    def round_to(m: Duration) -> Duration:
        step = _need(m, Duration, "Round").ns
        if step <= 0:
            return d
        q, r = divmod(abs(d.ns), step)
        q += 1 if r * 2 >= step else 0
        return Duration(q * step * (1 if d.ns >= 0 else -1))

    def truncate(m: Duration) -> Duration:
        step = _need(m, Duration, "Truncate").ns
        if step <= 0:
            return d
        return Duration(int(d.ns / step) * step)

    return {
        "Hours": lambda: d.ns / 3.6e12,
        "Minutes": lambda: d.ns / 6e10,
        "Seconds": lambda: d.ns / 1e9,
        "Milliseconds": lambda: int(d.ns / 10**6),
        "Microseconds": lambda: int(d.ns / 10**3),
        "Nanoseconds": lambda: d.ns,
        "String": lambda: format_duration(d.ns),
        "Abs": lambda: Duration(abs(d.ns)),
        "Round": round_to,
        "Truncate": truncate,
    }


def method(value: object, name: str) -> Callable[..., object] | None:
    """The bound Go method ``name`` of a time value, or None when ``value`` has no such method."""
    if isinstance(value, datetime):
        return _time_methods(value).get(name)
    if isinstance(value, Duration):
        return _duration_methods(value).get(name)
    if isinstance(value, tzinfo) and name == "String":
        return lambda: str(value)
    return None
