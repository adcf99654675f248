"""Delivery keys in config.yaml: burst, digest, timezone, quiet_hours, mention, and the
policy built from them. Broken values with the exact message `wirewatch check` prints."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest

from monitor.config import ConfigError, load_config
from monitor.digest import DigestSchedule
from monitor.flood import Burst
from monitor.holds import policy_from_config
from monitor.quiet import QuietHours

FEED = """\
feeds:
  - name: bbc
    url: https://example.org/bbc.xml
"""

FULL = FEED + """\
notifiers:
  desk:
    type: slack
    token: xoxb-1
    channel: "#news"
    mention: "@here"
    burst: {max: 5, window: 30m}
    quiet_hours: {from: "22:00", to: "06:00", timezone: Europe/Berlin}
  editors:
    type: email
    host: smtp.example.org
    from: wirewatch@example.org
    to: [desk@example.org]
    digest: "0 8 * * *"
    timezone: Europe/Berlin
  screen:
    type: console
rules:
  - name: weekly
    query: budget
    digest: "0 9 * * mon"
    timezone: America/New_York
  - name: war
    query: invasion
    severity: critical
"""


def load(text: str):  # type: ignore[no-untyped-def]
    return load_config(text, source="config.yaml", environ={})


def test_defaults_apply_when_the_keys_are_absent() -> None:
    config = load(FEED + "notifiers:\n  screen:\n    type: console\n")
    entry = config.notifiers["screen"]
    assert (entry.burst.max, entry.burst.window) == (10, timedelta(minutes=10))
    assert (entry.digest, entry.timezone, entry.quiet_hours) == (None, None, None)
    policy = policy_from_config(config)
    assert policy.channels["screen"].burst == Burst(max=10, window=timedelta(minutes=10))
    assert policy.rule_digests == {}


def test_every_delivery_key_is_read_into_the_policy() -> None:
    config = load(FULL)
    assert config.notifiers["desk"].mention == "@here"
    policy = policy_from_config(config)
    desk, editors, screen = (policy.channels[n] for n in ("desk", "editors", "screen"))
    assert desk.burst == Burst(max=5, window=timedelta(minutes=30))
    assert desk.quiet == QuietHours(start=time(22, 0), end=time(6, 0),
                                    timezone="Europe/Berlin")
    assert desk.digest is None
    assert editors.digest == DigestSchedule("0 8 * * *", "Europe/Berlin")
    assert screen.quiet is None and screen.digest is None
    assert policy.rule_digests == {
        "weekly": DigestSchedule("0 9 * * mon", "America/New_York", rule="weekly"),
    }
    assert config.rule_named("war").severity == "critical"


@pytest.mark.parametrize(
    ("name", "notifier", "rule", "severity", "at", "batch_prefix"),
    [
        ("rule digest wins over everything", "desk", "weekly", "critical",
         datetime(2026, 3, 4, 12, tzinfo=UTC), "digest:2026-03-09T09:00:00-04:00:weekly"),
        ("channel digest", "editors", "war", "critical",
         datetime(2026, 3, 4, 12, tzinfo=UTC), "digest:2026-03-05T08:00:00+01:00"),
        ("quiet hours hold normal alerts", "desk", "news", "normal",
         datetime(2026, 3, 4, 22, tzinfo=UTC), "quiet:2026-03-05T06:00:00+01:00"),
        ("quiet hours let critical through", "desk", "war", "critical",
         datetime(2026, 3, 4, 22, tzinfo=UTC), None),
        ("daytime goes out at once", "desk", "news", "normal",
         datetime(2026, 3, 4, 12, tzinfo=UTC), None),
    ],
)
def test_hold_decisions(
    name: str, notifier: str, rule: str, severity: str, at: datetime, batch_prefix: str | None
) -> None:
    policy = policy_from_config(load(FULL))
    hold = policy.hold_for(notifier=notifier, rule=rule, severity=severity, now=at,
                           admitted_since=lambda *_: (0, None))
    assert (hold.batch if hold else None) == batch_prefix, name


def test_burst_holds_past_max_until_the_window_ends() -> None:
    policy = policy_from_config(load(FULL))
    first = datetime(2026, 3, 4, 12, tzinfo=UTC)
    now = first + timedelta(minutes=3)
    under = policy.hold_for(notifier="desk", rule="news", severity="normal", now=now,
                            admitted_since=lambda *_: (4, first))
    over = policy.hold_for(notifier="desk", rule="news", severity="normal", now=now,
                           admitted_since=lambda *_: (5, first))
    assert under is None
    assert over is not None and over.until == first + timedelta(minutes=30)
    assert over.batch == f"burst:{(first + timedelta(minutes=30)).isoformat()}:news"


SLACK = FEED + "notifiers:\n  desk:\n    type: slack\n    token: xoxb-1\n    channel: '#n'\n"


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("bad cron", SLACK + "    digest: 'every morning'\n",
         "config.yaml:9: notifiers.desk.digest: expected a crontab line of 5 fields like "
         "\"0 8 * * *\" (Wrong number of fields; got 2, expected 5), got 'every morning'"),
        ("unknown time zone", SLACK + "    timezone: Europe/Berlim\n",
         "config.yaml:9: notifiers.desk.timezone: unknown time zone; use an IANA name like "
         "Europe/Berlin or UTC, got 'Europe/Berlim'"),
        ("quiet hours time", SLACK + "    quiet_hours: {from: '10pm', to: '06:00'}\n",
         "config.yaml:9: notifiers.desk.quiet_hours.from: expected a time of day like "
         "22:00, got '10pm'"),
        ("quiet hours missing to", SLACK + "    quiet_hours: {from: '22:00'}\n",
         "config.yaml:9: notifiers.desk.quiet_hours: missing required key 'to'"),
        ("burst max below 1", SLACK + "    burst: {max: 0}\n",
         "config.yaml:9: notifiers.desk.burst.max: must be at least 1, got 0"),
        ("burst window not a duration", SLACK + "    burst: {window: soon}\n",
         "config.yaml:9: notifiers.desk.burst.window: expected a duration like 30s, 5m, 2h "
         "or 1d, got 'soon'"),
        ("mention not Slack syntax", SLACK + "    mention: '@desk-team'\n",
         "config.yaml:9: notifiers.desk.mention: expected \"@here\", \"@channel\", "
         "\"@everyone\", a user id like \"<@U0123ABC>\" or a group like "
         "\"<!subteam^S0123ABC>\", got '@desk-team'"),
        ("mention on email", FEED + "notifiers:\n  m:\n    type: email\n    host: h\n"
         "    from: a@b.org\n    to: [c@d.org]\n    mention: '@here'\n",
         "config.yaml:10: notifiers.m.mention: unknown key 'mention'"),
        ("rule digest", FEED + "rules:\n  - name: r\n    query: x\n    digest: '0 25 * * *'\n",
         "config.yaml:7: rules[0].digest: expected a crontab line of 5 fields like "
         "\"0 8 * * *\" (Error validating expression '25': the last value (25) is higher "
         "than the maximum value (23)), got '0 25 * * *'"),
    ],
)
def test_broken_delivery_keys(name: str, text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(text)
    assert str(caught.value).startswith(expected), name
