"""Loading valid configs: defaults, derived views, environment expansion, the example file."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

import rules
from monitor.config import (
    CONSOLE_NOTIFIER,
    Config,
    ConfigError,
    ConsoleConfig,
    EmailConfig,
    SlackConfig,
    load_config,
)

REPO = Path(__file__).resolve().parents[2]

FEEDS = """\
feeds:
  - name: bbc
    url: https://example.org/bbc.xml
    tags: [europe, wire]
  - name: dw
    url: https://example.org/dw.xml
    interval: 30m
    tags: [europe]
  - name: own
    url: http://127.0.0.1:8080/feed.json
    interval: 5s
    min_interval: 1s
    enabled: false
"""


def load(text: str, **environ: str) -> Config:
    return load_config(text, source="config.yaml", environ=environ)


def test_example_config_at_repo_root_loads_without_secrets() -> None:
    text = (REPO / "config.yaml").read_text(encoding="utf-8")
    config = load_config(text, source="config.yaml", environ={})
    assert config.warnings == ()
    assert len(config.feeds) >= 3
    assert len(config.rules) >= 3
    assert config.effective_notifiers() == {CONSOLE_NOTIFIER: ConsoleConfig(type="console")}
    assert len(config.ruleset) == len(config.rules)
    assert config.database == "sqlite:///wirewatch.db"


def test_example_config_rule_matches_the_csto_story() -> None:
    text = (REPO / "config.yaml").read_text(encoding="utf-8")
    config = load_config(text, source="config.yaml", environ={})
    item = rules.Document(
        title="Armenia signals exit",
        content="Pashinyan expressed his intentions to withdraw from the CSTO",
    )
    assert [hit.rule for hit in config.ruleset.match(item)] == ["csto-exit"]


def test_defaults_when_only_feeds_are_given() -> None:
    config = load("feeds:\n  - name: bbc\n    url: https://example.org/bbc.xml\n")
    assert config.database == "sqlite:///wirewatch.db"
    assert config.user_agent is None
    assert config.feed_lease is None  # derived from defaults.timeout (Poller.feed_lease)
    assert config.ops_notify is None
    assert config.defaults.interval == timedelta(minutes=5)
    assert config.defaults.timeout == timedelta(seconds=20)
    assert config.defaults.min_interval == timedelta(seconds=60)
    assert config.defaults.max_interval == timedelta(days=1)
    assert config.defaults.max_bytes == 10 * 1024 * 1024
    assert config.defaults.alert_after == timedelta(hours=6)
    assert config.concurrency.global_ == 50
    assert config.concurrency.per_host == 2
    assert config.lists == {}
    assert config.notifiers == {}
    assert config.rules == []
    feed = config.feeds[0]
    assert (feed.interval, feed.tags, feed.expect_every, feed.enabled) == (None, [], None, True)


def test_polling_keys_are_read() -> None:
    config = load(
        "user_agent: newsdesk-monitor/1.0\n"
        "concurrency: {global: 8, per_host: 1}\n"
        "defaults: {interval: 1h30m, min_interval: 10m, max_interval: 2d, max_bytes: 512KiB,"
        " alert_after: 12h}\n"
        "notifiers:\n  ops:\n    type: console\n"
        "ops_notify: ops\n"
        "feeds:\n  - name: bbc\n    url: https://example.org/bbc.xml\n    expect_every: 12h\n"
    )
    assert config.user_agent == "newsdesk-monitor/1.0"
    assert (config.concurrency.global_, config.concurrency.per_host) == (8, 1)
    assert config.defaults.interval == timedelta(hours=1, minutes=30)
    assert config.defaults.max_interval == timedelta(days=2)
    assert config.defaults.max_bytes == 512 * 1024
    assert config.defaults.alert_after == timedelta(hours=12)
    assert config.ops_notify == "ops"
    assert config.feeds[0].expect_every == timedelta(hours=12)


@pytest.mark.parametrize(("written", "expected"), [
    ("feed_lease: 2m\n", timedelta(minutes=2)),
    ("feed_lease: 20s\n", timedelta(seconds=20)),  # as long as the default timeout: allowed
    ("defaults: {timeout: 5s}\nfeed_lease: 5s\n", timedelta(seconds=5)),
], ids=["minutes", "equal to the timeout", "short with a short timeout"])
def test_feed_lease_is_read(written: str, expected: timedelta) -> None:
    config = load(written + "feeds:\n  - name: bbc\n    url: https://example.org/bbc.xml\n")
    assert config.feed_lease == expected


INTERVALS = [
    ("own interval", "dw", timedelta(minutes=30)),
    ("default interval", "bbc", timedelta(minutes=5)),
    ("own interval allowed by its own min_interval", "own", timedelta(seconds=5)),
]


@pytest.mark.parametrize(
    ("feed_name", "expected"), [c[1:] for c in INTERVALS], ids=[c[0] for c in INTERVALS]
)
def test_feed_interval(feed_name: str, expected: timedelta) -> None:
    config = load(FEEDS)
    feed = config.feed_named(feed_name)
    assert feed is not None
    assert config.feed_interval(feed) == expected


INTERVAL_WARNINGS = [
    (
        "feed interval below the default min_interval",
        "feeds:\n  - name: bbc\n    url: https://example.org/a.xml\n    interval: 10s\n",
        (timedelta(minutes=1), (timedelta(minutes=1), timedelta(days=1))),
        "config.yaml:4: feeds[0].interval: the interval of feed 'bbc' (10s) is below "
        "min_interval (1m); it will be polled every 1m (lower min_interval to allow it)",
    ),
    (
        "feed max_interval below the default interval",
        "feeds:\n  - name: bbc\n    url: https://example.org/a.xml\n    max_interval: 2m\n",
        (timedelta(minutes=2), (timedelta(minutes=1), timedelta(minutes=2))),
        "config.yaml:2: feeds[0]: the interval of feed 'bbc' (5m) is above max_interval (2m); "
        "it will be polled every 2m",
    ),
    (
        "default interval out of bounds is reported once, not per feed",
        "defaults: {interval: 2d}\n"
        "feeds:\n  - name: bbc\n    url: https://example.org/a.xml\n"
        "  - name: dw\n    url: https://example.org/b.xml\n",
        (timedelta(days=1), (timedelta(minutes=1), timedelta(days=1))),
        "config.yaml:1: defaults.interval: the default interval (2d) is above max_interval "
        "(1d); it will be polled every 1d",
    ),
]


@pytest.mark.parametrize(
    ("text", "effective", "warning"),
    [c[1:] for c in INTERVAL_WARNINGS],
    ids=[c[0] for c in INTERVAL_WARNINGS],
)
def test_interval_outside_its_bounds_is_clamped_with_a_warning(
    text: str, effective: tuple[timedelta, tuple[timedelta, timedelta]], warning: str
) -> None:
    config = load(text)
    feed = config.feeds[0]
    assert (config.feed_interval(feed), config.feed_interval_bounds(feed)) == effective
    assert config.warnings == (warning,)


def test_enabled_feeds_leave_out_disabled_ones() -> None:
    assert [feed.name for feed in load(FEEDS).enabled_feeds()] == ["bbc", "dw"]


RULE_SCOPES = [
    ("no feeds key: every feed", None, ["bbc", "dw", "own"]),
    ("by name", "[dw]", ["dw"]),
    ("by tag", "[tag:wire]", ["bbc"]),
    ("name and tag together", "[own, tag:europe]", ["bbc", "dw", "own"]),
]


@pytest.mark.parametrize(
    ("feeds", "expected"), [c[1:] for c in RULE_SCOPES], ids=[c[0] for c in RULE_SCOPES]
)
def test_rule_applies_to(feeds: str | None, expected: list[str]) -> None:
    scope = f"    feeds: {feeds}\n" if feeds else ""
    config = load(FEEDS + "rules:\n  - name: r\n    query: CSTO\n" + scope)
    rule = config.rules[0]
    assert [f.name for f in config.feeds if config.rule_applies_to(rule, f)] == expected


def test_without_notifiers_the_implicit_console_gets_every_rule() -> None:
    config = load(FEEDS + "notifiers:\nrules:\n  - name: r\n    query: CSTO\n")
    assert config.notifiers == {}
    assert list(config.effective_notifiers()) == [CONSOLE_NOTIFIER]
    assert config.notifiers_for(config.rules[0]) == [CONSOLE_NOTIFIER]


def test_rules_go_to_all_notifiers_unless_they_name_some() -> None:
    config = load(
        FEEDS + "notifiers:\n  desk:\n    type: console\n  wire:\n"
        "    type: slack\n    webhook_url: https://hooks.example.org/T1\n"
        "rules:\n  - name: all\n    query: CSTO\n"
        "  - name: some\n    query: NATO\n    notify: [wire]\n    severity: critical\n"
    )
    assert list(config.effective_notifiers()) == ["desk", "wire"]
    assert config.notifiers_for(config.rule_named("all")) == ["desk", "wire"]  # type: ignore[arg-type]
    some = config.rule_named("some")
    assert some is not None
    assert (config.notifiers_for(some), some.severity) == (["wire"], "critical")
    assert isinstance(config.notifiers["wire"], SlackConfig)


EMAIL_PORTS = [
    ("starttls by default", "", 587),
    ("ssl", "    security: ssl\n", 465),
    ("none", "    security: none\n", 25),
    ("explicit port wins", "    security: ssl\n    port: 2465\n", 2465),
]


@pytest.mark.parametrize(
    ("extra", "port"), [c[1:] for c in EMAIL_PORTS], ids=[c[0] for c in EMAIL_PORTS]
)
def test_email_port_follows_security(extra: str, port: int) -> None:
    config = load(
        FEEDS + "notifiers:\n  mail:\n    type: email\n    host: smtp.example.org\n"
        "    from: wirewatch <wirewatch@example.org>\n    to: [desk@example.org]\n" + extra
    )
    mail = config.notifiers["mail"]
    assert isinstance(mail, EmailConfig)
    assert (mail.port, mail.from_, mail.to) == (
        port,
        "wirewatch <wirewatch@example.org>",
        ["desk@example.org"],
    )


ENVIRONMENT = [
    ("set variable", "${CHANNEL}", {"CHANNEL": "#wire"}, "#wire"),
    ("default when unset", "${CHANNEL:-#news}", {}, "#news"),
    ("default when empty, as in the shell", "${CHANNEL:-#news}", {"CHANNEL": ""}, "#news"),
    ("set variable beats the default", "${CHANNEL:-#news}", {"CHANNEL": "#wire"}, "#wire"),
    ("inside other text", "'#desk-${DESK}'", {"DESK": "world"}, "#desk-world"),
    ("$${ writes a literal ${", "'#$${DESK}'", {"DESK": "world"}, "#${DESK}"),
    ("a lone $ is kept", "'#cost$'", {}, "#cost$"),
]


@pytest.mark.parametrize(
    ("written", "environ", "expected"),
    [c[1:] for c in ENVIRONMENT],
    ids=[c[0] for c in ENVIRONMENT],
)
def test_environment_expansion(written: str, environ: dict[str, str], expected: str) -> None:
    config = load_config(
        FEEDS + f"notifiers:\n  desk:\n    type: slack\n    token: t\n    channel: {written}\n",
        source="config.yaml",
        environ=environ,
    )
    slack = config.notifiers["desk"]
    assert isinstance(slack, SlackConfig)
    assert slack.channel == expected


def test_expanded_numbers_and_booleans_are_typed() -> None:
    config = load(
        "feeds:\n  - name: bbc\n    url: https://example.org/bbc.xml\n    enabled: ${ENABLED}\n"
        "concurrency:\n  global: ${GLOBAL}\n",
        ENABLED="false",
        GLOBAL="12",
    )
    assert (config.feeds[0].enabled, config.concurrency.global_) == (False, 12)


def test_anchors_and_merge_keys() -> None:
    config = load(
        "defaults: &d {interval: 10m}\n"
        "feeds:\n"
        "  - <<: *d\n    name: bbc\n    url: https://example.org/bbc.xml\n    tags: &t [wire]\n"
        "  - <<: *d\n    name: dw\n    url: https://example.org/dw.xml\n    interval: 1h\n"
        "    tags: *t\n"
    )
    assert [feed.interval for feed in config.feeds] == [timedelta(minutes=10), timedelta(hours=1)]
    assert [feed.tags for feed in config.feeds] == [["wire"], ["wire"]]
    # The key written on the feed keeps its own line, not the anchor's.
    assert config.line_of(("feeds", 1, "interval")) == 10


def test_line_of_maps_paths_back_to_the_file() -> None:
    config = load(FEEDS + "rules:\n  - name: r\n    query: CSTO\n")
    assert config.source == "config.yaml"
    assert config.line_of(("feeds", 1, "interval")) == 7
    assert config.line_of(("rules", 0, "query")) == 16
    assert config.line_of(("feeds", 0, "no-such-key")) == 2


def test_rule_warnings_are_not_errors() -> None:
    config = load(FEEDS + "rules:\n  - name: never\n    query: CSTO AND NOT CSTO\n")
    assert config.warnings == (
        "config.yaml:16: rules[0].query: rule 'never': can never match: "
        "it requires a term and also excludes it",
    )


def test_a_hashtag_that_yaml_reads_as_a_comment_is_a_warning() -> None:
    config = load(FEEDS + "rules:\n  - name: metoo\n    query: CSTO #MeToo rally\n"
                  "  - name: commented\n    query: CSTO  # the treaty organisation\n"
                  "  - name: quoted\n    query: 'CSTO #MeToo'\n")
    assert config.rules[0].query == "CSTO"
    assert config.warnings == (
        "config.yaml:16: rules[0].query: rule 'metoo': the query stops before "
        "'#MeToo rally': in YAML a '#' after a space starts a comment; quote the whole "
        "query to search for it (query: \"CSTO #MeToo rally\")",
    )


def test_config_is_frozen() -> None:
    config = load(FEEDS)
    with pytest.raises(ValueError):
        config.feeds[0].name = "other"


def test_error_is_raised_for_an_unknown_list_even_with_other_lists_broken() -> None:
    with pytest.raises(ConfigError) as raised:
        load(FEEDS + "lists:\n  csto: CSTO\nrules:\n  - name: r\n    query: '@nato'\n")
    assert [p.path for p in raised.value.problems] == ["lists.csto", "rules[0].query"]


def test_a_list_written_as_one_term_is_not_unknown_to_its_rules() -> None:
    # `csto: CSTO` is reported as not a list; its rule must not add "unknown list @csto".
    with pytest.raises(ConfigError) as raised:
        load(FEEDS + "lists:\n  csto: CSTO\nrules:\n  - name: r\n    query: '@csto'\n")
    assert [p.path for p in raised.value.problems] == ["lists.csto"]
