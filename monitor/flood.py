"""Flood control: past ``max`` alerts of one rule within ``window`` on one channel, the
rest wait and go out as one summary ("12 more matches for <rule>") when the window ends.

Huginn marks overflow items as seen and never sends them (huginn PR #1553); here the
overflow is held in the database with its batch, so it survives a restart and reaches
the channel, folded into one message.

The window slides: it starts with the oldest alert the rule sent on its own within the
last ``window``, and ends ``window`` after it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True, slots=True)
class Burst:
    max: int = 10
    window: timedelta = timedelta(minutes=10)

    def summary_time(self, *, sent_alone: int, first_sent_at: datetime | None) -> datetime | None:
        """When the summary for an alert over the limit is sent, or None if it may go alone.

        ``sent_alone`` alerts of the rule went out on their own within the window, the
        first at ``first_sent_at``.
        """
        if sent_alone < self.max or first_sent_at is None:
            return None
        return first_sent_at + self.window


def burst_batch(rule: str, until: datetime) -> str:
    """The batch key of a flood summary: one per rule and window."""
    return f"burst:{until.isoformat()}:{rule}"
