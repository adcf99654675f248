"""Quiet hours: a daily window, in a time zone, when only critical alerts go out.

``from: "22:00", to: "06:00"`` spans midnight; the window is [from, to), read on the
wall clock of ``timezone``, so it follows daylight-saving changes. What is held during
the window goes out as one catch-up digest when it ends.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo


@dataclass(frozen=True, slots=True)
class QuietHours:
    start: time
    end: time
    timezone: str = "UTC"

    def window_end(self, now: datetime) -> datetime | None:
        """The end of the quiet window ``now`` falls in (aware), or None outside one."""
        zone = ZoneInfo(self.timezone)
        local = now.astimezone(zone)
        clock = local.time().replace(tzinfo=None)
        if self.start == self.end:
            return None  # an empty window: never quiet
        if self.start < self.end:
            inside = self.start <= clock < self.end
            end_day = local.date()
        else:  # spans midnight
            inside = clock >= self.start or clock < self.end
            end_day = local.date() + timedelta(days=1) if clock >= self.start else local.date()
        if not inside:
            return None
        # fold=0 and a round trip through UTC settle wall times that a DST change
        # skips or repeats.
        end = datetime.combine(end_day, self.end, tzinfo=zone)
        if end.astimezone(UTC) <= now.astimezone(UTC):
            # The clock went back and ``now`` is in the repeated hour, after the first
            # occurrence of the end time: the window ends at its second occurrence.
            end = end.replace(fold=1)
        return end.astimezone(zone)


def quiet_batch(until: datetime) -> str:
    return f"quiet:{until.isoformat()}"


def parse_clock(value: str) -> time:
    """ "22:00" → time(22, 0); raises ValueError on anything else."""
    hours, sep, minutes = value.partition(":")
    if not sep or not (hours.isdigit() and minutes.isdigit()) or len(minutes) != 2:
        raise ValueError(f"expected a time of day like 22:00, got {value!r}")
    return time(int(hours), int(minutes))
