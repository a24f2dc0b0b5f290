"""Budget periods: ``daily``, ``weekly`` (from Monday), ``monthly`` — calendar-aligned in the configured
time zone, daylight-saving changes included — and ``total`` (one period forever).

:class:`PeriodClock` answers "which period contains this instant" in a few comparisons: it keeps the
current window of every period kind and only does calendar arithmetic when an instant falls outside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

PERIODS = ("daily", "weekly", "monthly", "total")
KEY_GRACE_S = 2 * 86400  # a period's counters outlive its end by this much (status, late settlements)


@dataclass(slots=True, frozen=True)
class Window:
    """``[start, end)`` in epoch seconds; ``end`` None for ``total``."""

    start: float
    end: float | None

    def contains(self, at: float) -> bool:
        return self.start <= at and (self.end is None or at < self.end)

    @property
    def start_ms(self) -> int:
        return int(self.start * 1000)

    @property
    def end_ms(self) -> int:
        """-1 for a window without end."""
        return -1 if self.end is None else int(self.end * 1000)

    @property
    def expire_at_ms(self) -> int:
        """When the window's counters may be dropped (0: never)."""
        return 0 if self.end is None else int((self.end + KEY_GRACE_S) * 1000)


TOTAL = Window(0.0, None)


def _midnight(day: date, tz: ZoneInfo) -> float:
    return datetime(day.year, day.month, day.day, tzinfo=tz).timestamp()


def period_window(period: str, at: float, tz: ZoneInfo) -> Window:
    """The window of ``period`` that contains the instant ``at`` (epoch seconds)."""
    if period == "total":
        return TOTAL
    today = datetime.fromtimestamp(at, tz).date()
    if period == "daily":
        first, following = today, today + timedelta(days=1)
    elif period == "weekly":
        first = today - timedelta(days=today.weekday())
        following = first + timedelta(days=7)
    elif period == "monthly":
        first = today.replace(day=1)
        following = date(first.year + first.month // 12, first.month % 12 + 1, 1)
    else:
        raise ValueError(f"unknown period {period!r}")
    start, end = _midnight(first, tz), _midnight(following, tz)
    if not start <= at < end:  # a zone whose midnight is skipped by a DST jump: widen to contain `at`
        start, end = min(start, at), max(end, at + 1)
    return Window(start, end)


def iso(at: float, tz: ZoneInfo) -> str:
    """ISO 8601 of an instant in the configured zone."""
    return datetime.fromtimestamp(at, tz).isoformat()


def resets_at(window: Window, tz: ZoneInfo) -> str | None:
    """ISO 8601 of the window's end in the configured zone (None: never resets)."""
    return None if window.end is None else iso(window.end, tz)


class PeriodClock:
    __slots__ = ("_current", "tz")

    def __init__(self, tz: ZoneInfo) -> None:
        self.tz = tz
        self._current: dict[str, Window] = {}

    def window(self, period: str, at: float) -> Window:
        current = self._current.get(period)
        if current is not None and current.contains(at):
            return current
        window = period_window(period, at, self.tz)
        if current is None or window.start > current.start:
            self._current[period] = window
        return window
