"""The running view of a config: what each feed polls with, which rules apply.

Built once per (re)load from a validated :class:`monitor.config.Config`, so the
hot paths never consult pydantic models or resolve tags again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from monitor.cadence import Cadence
from monitor.config import Config
from rules import RuleSet


@dataclass(frozen=True, slots=True)
class FeedPlan:
    name: str
    url: str
    tags: tuple[str, ...]
    timeout: timedelta
    cadence: Cadence
    rules: frozenset[str] | None  # None: every rule applies
    expect_every: timedelta | None = None  # ops alert when nothing new for this long
    full_text: bool = False  # match on the article text (monitor.article)
    full_text_timeout: timedelta = timedelta(seconds=30)  # how long matching waits for it


@dataclass(frozen=True, slots=True)
class RulePlan:
    name: str
    severity: str
    notify: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Plan:
    feeds: dict[str, FeedPlan]
    rules: dict[str, RulePlan]
    ruleset: RuleSet
    max_bytes: int
    concurrency: int
    notifiers: tuple[str, ...]
    per_host: int = 2
    alert_after: timedelta = timedelta(hours=6)
    ops_notify: str | None = None  # the notifier for ops alerts; None: log them only
    user_agent: str | None = None
    full_text_concurrency: int = 4
    allow_private_article_hosts: bool = False


def plan_from_config(config: Config) -> Plan:
    rule_plans = {
        r.name: RulePlan(name=r.name, severity=r.severity, notify=tuple(config.notifiers_for(r)))
        for r in config.rules
    }
    feeds: dict[str, FeedPlan] = {}
    for feed in config.enabled_feeds():
        applicable = [r.name for r in config.rules if config.rule_applies_to(r, feed)]
        scoped = None if len(applicable) == len(config.rules) else frozenset(applicable)
        low, high = config.feed_interval_bounds(feed)
        feeds[feed.name] = FeedPlan(
            name=feed.name,
            url=feed.url,
            tags=tuple(feed.tags),
            timeout=config.defaults.timeout,
            cadence=Cadence(
                interval=config.feed_interval(feed), min_interval=low, max_interval=high
            ),
            rules=scoped,
            expect_every=feed.expect_every,
            full_text=feed.full_text,
            full_text_timeout=feed.full_text_timeout or config.defaults.full_text_timeout,
        )
    return Plan(
        feeds=feeds,
        rules=rule_plans,
        ruleset=config.ruleset,
        max_bytes=config.defaults.max_bytes,
        concurrency=config.concurrency.global_,
        notifiers=tuple(config.effective_notifiers()),
        per_host=config.concurrency.per_host,
        alert_after=config.defaults.alert_after,
        ops_notify=config.ops_notify,
        user_agent=config.user_agent,
        full_text_concurrency=config.full_text_concurrency,
        allow_private_article_hosts=config.allow_private_article_hosts,
    )
