"""Digests: a cron schedule that replaces immediate alerts with one message per run.

``digest: "0 8 * * *"`` with ``timezone: Europe/Berlin`` on a rule or a notifier: each
hit is held until the schedule next fires and then goes out in one message listing the
hits since the last digest, grouped by rule. APScheduler's CronTrigger computes the
times (:func:`monitor.scheduler.next_fire_time`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from monitor.scheduler import next_fire_time


@dataclass(frozen=True, slots=True)
class DigestSchedule:
    cron: str
    timezone: str = "UTC"
    #: The rule whose own schedule this is; None for a notifier-wide digest.
    rule: str | None = None

    def next_run(self, after: datetime) -> datetime:
        return next_fire_time(self.cron, self.timezone, after=after)

    def batch(self, until: datetime) -> str:
        """The batch key: one digest per schedule run (and per rule for a rule's own)."""
        if self.rule is None:
            return f"digest:{until.isoformat()}"
        return f"digest:{until.isoformat()}:{self.rule}"
