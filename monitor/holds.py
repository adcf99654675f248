"""Whether an alert goes out now, or waits for a batch message, and which.

Checked once per delivery row, when it is first claimed, in this order:

1. the rule has a ``digest`` → held for the rule's next digest run;
2. the channel has a ``digest`` → held for the channel's next digest run;
3. the channel is in ``quiet_hours`` and the alert is below ``critical`` → held for
   the catch-up digest at the end of the window;
4. the rule already sent ``burst.max`` alerts alone on the channel within
   ``burst.window`` → held for the flood summary at the end of the window;
5. otherwise it goes out alone (and counts towards the burst limit).

A held row keeps its batch key in the database, so holding survives a restart.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from monitor.config import Config
from monitor.digest import DigestSchedule
from monitor.flood import Burst, burst_batch
from monitor.quiet import QuietHours, parse_clock, quiet_batch

#: (notifier, rule, since) → (alerts sent alone since then, when the first was sent)
AdmittedSince = Callable[[str, str, datetime], tuple[int, datetime | None]]

BATCH_KINDS = ("digest", "quiet", "burst")


@dataclass(frozen=True, slots=True)
class Hold:
    batch: str
    until: datetime


@dataclass(frozen=True, slots=True)
class ChannelPolicy:
    burst: Burst | None = field(default_factory=Burst)
    digest: DigestSchedule | None = None
    quiet: QuietHours | None = None


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    channels: dict[str, ChannelPolicy] = field(default_factory=dict)
    rule_digests: dict[str, DigestSchedule] = field(default_factory=dict)

    def hold_for(
        self,
        *,
        notifier: str,
        rule: str,
        severity: str,
        now: datetime,
        admitted_since: AdmittedSince,
    ) -> Hold | None:
        """The batch this alert waits for, or None when it goes out now."""
        channel = self.channels.get(notifier, ChannelPolicy())
        for schedule in (self.rule_digests.get(rule), channel.digest):
            if schedule is not None:
                until = schedule.next_run(now)
                return Hold(batch=schedule.batch(until), until=until)
        if channel.quiet is not None and severity != "critical":
            end = channel.quiet.window_end(now)
            if end is not None:
                return Hold(batch=quiet_batch(end), until=end)
        if channel.burst is not None:
            sent, first = admitted_since(notifier, rule, now - channel.burst.window)
            summary_at = channel.burst.summary_time(sent_alone=sent, first_sent_at=first)
            if summary_at is not None:
                return Hold(batch=burst_batch(rule, summary_at), until=summary_at)
        return None


def batch_kind(batch: str) -> str:
    """"digest", "quiet" or "burst", from a batch key."""
    return batch.partition(":")[0]


def policy_from_config(config: Config) -> DeliveryPolicy:
    channels: dict[str, ChannelPolicy] = {}
    for name, entry in config.effective_notifiers().items():
        zone = entry.timezone or "UTC"
        quiet = None
        if entry.quiet_hours is not None:
            quiet = QuietHours(
                start=parse_clock(entry.quiet_hours.from_),
                end=parse_clock(entry.quiet_hours.to),
                timezone=entry.quiet_hours.timezone or zone,
            )
        channels[name] = ChannelPolicy(
            burst=Burst(max=entry.burst.max, window=entry.burst.window),
            digest=DigestSchedule(entry.digest, zone) if entry.digest else None,
            quiet=quiet,
        )
    rule_digests = {
        rule.name: DigestSchedule(rule.digest, rule.timezone or "UTC", rule=rule.name)
        for rule in config.rules
        if rule.digest
    }
    return DeliveryPolicy(channels=channels, rule_digests=rule_digests)
