"""``Config``: the whole validated configuration, and the views of it the running service
reads (the notifiers that run, a feed's interval, which rules watch a feed).

``load_config`` builds it with its rules compiled; a Config made by hand compiles them on
first use.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Annotated

from pydantic import BaseModel, Field, PrivateAttr, field_validator

from monitor.config.problems import line_for
from monitor.config.sections import (
    TAG_PREFIX,
    Concurrency,
    ConsoleConfig,
    Defaults,
    FeedConfig,
    HttpConfig,
    NotifierConfig,
    Retention,
    RuleConfig,
)
from monitor.config.values import MODEL_CONFIG, Duration, check_one_line, empty_as, invalid
from monitor.yamlsource import Path
from rules import RuleSet, RuleSpec, compile_rules

#: Name of the notifier that runs when `notifiers:` is empty or missing.
CONSOLE_NOTIFIER = "console"


class Config(BaseModel):
    """A validated configuration. Build it with ``load_config``.

    ``ruleset`` holds the compiled rules; ``warnings`` lists rendered warnings
    (``config.yaml:31: rules[2].query: <message>``) that do not stop wirewatch.
    """

    model_config = MODEL_CONFIG

    database: str = Field("sqlite:///wirewatch.db", repr=False)
    #: How long a claimed feed stays leased to one instance (docs/scaling.md);
    #: None: twice ``defaults.timeout`` plus a minute (Poller.feed_lease).
    feed_lease: Duration | None = None
    user_agent: str | None = None
    defaults: Annotated[Defaults, empty_as(Defaults)] = Defaults()
    concurrency: Annotated[Concurrency, empty_as(Concurrency)] = Concurrency()
    ops_notify: str | None = None
    #: Article fetches (feeds with full_text) in flight at once, over all hosts.
    full_text_concurrency: int = Field(default=4, ge=1)
    #: Let article links reach loopback/private/link-local addresses (intranets, tests).
    allow_private_article_hosts: bool = False
    lists: Annotated[dict[str, list[str]], empty_as(dict)] = {}
    feeds: Annotated[list[FeedConfig], empty_as(list), Field(min_length=1)]
    notifiers: Annotated[dict[str, NotifierConfig], empty_as(dict)] = {}
    rules: Annotated[list[RuleConfig], empty_as(list)] = []
    http: HttpConfig | None = None
    retention: Annotated[Retention, empty_as(Retention)] = Retention()

    _source: str = PrivateAttr(default="<config>")
    _lines: Mapping[Path, int] = PrivateAttr(default_factory=dict)
    _ruleset: RuleSet | None = PrivateAttr(default=None)
    _warnings: tuple[str, ...] = PrivateAttr(default=())

    @field_validator("database")
    @classmethod
    def _database_is_a_url(cls, value: str) -> str:
        scheme = re.match(r"([A-Za-z][A-Za-z0-9+.-]*)://", value)
        if not scheme:
            raise invalid(
                "expected an SQLAlchemy URL like sqlite:///wirewatch.db "
                "or postgresql+psycopg://user@host/dbname"
            )
        # The store's queries are written for these two; any other URL would fail
        # at start-up instead of here (and postgres:// is a common slip).
        if scheme.group(1).lower().partition("+")[0] not in ("sqlite", "postgresql"):
            raise invalid(
                "wirewatch stores its data in SQLite or PostgreSQL: expected a URL like "
                "sqlite:///wirewatch.db or postgresql+psycopg://user@host/dbname"
            )
        return value

    @field_validator("user_agent")
    @classmethod
    def _user_agent_one_line(cls, value: str | None) -> str | None:
        return None if value is None else check_one_line(value)

    # -- derived views -------------------------------------------------------

    @property
    def source(self) -> str:
        return self._source

    @property
    def ruleset(self) -> RuleSet:
        """The compiled rules (compiled at load; compiled on first use if built by hand)."""
        if self._ruleset is None:
            self._ruleset = compile_rules(self._rule_specs(), lists=self.lists)
        return self._ruleset

    @property
    def warnings(self) -> tuple[str, ...]:
        return self._warnings

    def line_of(self, path: Path) -> int | None:
        """The line a key path such as ``("feeds", 2, "url")`` was written on (or its parent's)."""
        return line_for(self._lines, path)

    def effective_notifiers(self) -> dict[str, NotifierConfig]:
        """The notifiers that run: those configured, or the implicit console notifier."""
        if self.notifiers:
            return dict(self.notifiers)
        return {CONSOLE_NOTIFIER: ConsoleConfig(type="console")}

    def notifiers_for(self, rule: RuleConfig) -> list[str]:
        if rule.notify is not None:
            return list(rule.notify)
        return list(self.effective_notifiers())

    def rule_applies_to(self, rule: RuleConfig, feed: FeedConfig) -> bool:
        if rule.feeds is None:
            return True
        return any(
            feed.name == ref or (ref.startswith(TAG_PREFIX) and ref[len(TAG_PREFIX) :] in feed.tags)
            for ref in rule.feeds
        )

    def feed_interval_bounds(self, feed: FeedConfig) -> tuple[timedelta, timedelta]:
        """(min_interval, max_interval) for a feed: its own, else the defaults."""
        low = feed.min_interval or self.defaults.min_interval
        high = feed.max_interval or self.defaults.max_interval
        return low, high

    def feed_interval(self, feed: FeedConfig) -> timedelta:
        """The feed's polling interval (its own or the default), kept within its bounds."""
        low, high = self.feed_interval_bounds(feed)
        wanted = feed.interval or self.defaults.interval
        return min(max(wanted, low), high)

    def enabled_feeds(self) -> list[FeedConfig]:
        return [feed for feed in self.feeds if feed.enabled]

    def feed_named(self, name: str) -> FeedConfig | None:
        return next((feed for feed in self.feeds if feed.name == name), None)

    def rule_named(self, name: str) -> RuleConfig | None:
        return next((rule for rule in self.rules if rule.name == name), None)

    def _rule_specs(self) -> list[RuleSpec]:
        return [
            RuleSpec(rule.name, rule.query, self.line_of(("rules", index, "query")))
            for index, rule in enumerate(self.rules)
        ]
