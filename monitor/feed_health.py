"""Ops notices about feeds: failing for too long, working again, silent, gone.

Pure decisions over a feed's stored state; the poller queues what they return
on the ops outbox. Each notice's ``key`` names its episode (the feed and when
the episode began), and the outbox stores a key once, so "one alert per
episode" holds even across restarts and several instances.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from monitor.durations import format_duration
from monitor.store import FeedState


@dataclass(frozen=True, slots=True)
class OpsNotice:
    key: str
    title: str
    body: str
    severity: str = "normal"


def _iso(value: datetime) -> str:
    return value.isoformat(timespec="seconds")


def failing_notice(
    state: FeedState, *, error: str, now: datetime, alert_after: timedelta
) -> OpsNotice | None:
    """After a failed poll: alert once the feed has failed for ``alert_after``.

    ``state`` is the feed as it was before this poll.
    """
    if state.failure_alerted_at is not None:
        return None
    since = state.failing_since or now
    if now - since < alert_after:
        return None
    failures = state.consecutive_failures + 1
    return OpsNotice(
        key=f"feed-failing:{state.name}:{_iso(since)}",
        title=f"Feed '{state.name}' has been failing for {format_duration(now - since)}",
        body=(f"{failures} polls in a row failed since {_iso(since)}.\n"
              f"Last error: {error}\nURL: {state.fetch_url}"),
        severity="high",
    )


def recovery_notice(state: FeedState, *, now: datetime) -> OpsNotice | None:
    """After a successful poll: the failing episode we alerted about is over."""
    if state.failure_alerted_at is None or state.failing_since is None:
        return None
    return OpsNotice(
        key=f"feed-recovered:{state.name}:{_iso(state.failing_since)}",
        title=f"Feed '{state.name}' works again",
        body=(f"Polled successfully at {_iso(now)} after failing since "
              f"{_iso(state.failing_since)} ({state.consecutive_failures} failed polls)."),
    )


def silence_notice(
    state: FeedState, *, now: datetime, expect_every: timedelta | None
) -> OpsNotice | None:
    """After a poll that brought nothing new: alert when silent past ``expect_every``."""
    if expect_every is None or state.silence_alerted_at is not None:
        return None
    since = state.last_new_item_at or state.created_at
    if since is None or now - since < expect_every:
        return None
    what = "no new item" if state.last_new_item_at else "no item at all"
    return OpsNotice(
        key=f"feed-silent:{state.name}:{_iso(since)}",
        title=f"Feed '{state.name}' has published nothing new for {format_duration(now - since)}",
        body=(f"{what.capitalize()} since {_iso(since)}; the config expects one every "
              f"{format_duration(expect_every)}.\nURL: {state.fetch_url}"),
    )


def gone_notice(state: FeedState, *, reason: str) -> OpsNotice:
    return OpsNotice(
        key=f"feed-gone:{state.name}:{state.fetch_url}",
        title=f"Feed '{state.name}' is gone and was disabled",
        body=(f"{reason}\nURL: {state.fetch_url}\nGive the feed a new URL in the config "
              "(or remove it); wirewatch will not poll it again until then."),
        severity="high",
    )
