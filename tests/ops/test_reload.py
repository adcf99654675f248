"""Hot reload against a real daemon: the operators edit config.yaml while it runs."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path

from monitor.store import Store
from tests.ops.daemon import DATA, Daemon, free_port, http_get, metric, wait_for_http
from tests.support import FeedServer, SlackStandIn

HEAD = """\
database: "sqlite:///{db}"
http:
  listen: 127.0.0.1:{port}
ops_notify: desk
defaults:
  interval: 1m
notifiers:
  desk:
    type: slack
    token: ${{SLACK_BOT_TOKEN}}
    channel: "#world-desk"
    base_url: {slack}
"""

V1 = HEAD + """\
feeds:
  - name: caucasus
    url: {world}
rules:
  - name: csto-exit
    query: CSTO AND withdraw*
"""

# A new rule that matches an item already seen (the quake in 'caucasus') must stay
# quiet about it; the feed's URL changes, so it is polled again at once and brings
# one new item; two feeds are added.
V2 = HEAD + """\
feeds:
  - name: caucasus
    url: {world2}
  - name: asia
    url: {asia}
  - name: region
    url: {region}
rules:
  - name: csto-exit
    query: CSTO AND withdraw*
  - name: quake
    query: earthquake OR aftershock*
  - name: border
    query: '"border villages"'
    feeds: [region]
"""

BROKEN = V2 + """\
  - name: bad-syntax
    query: CSTO AND (withdraw
  - name: bad-channel
    query: rates
    notify: [nobody]
"""

# Fixed: the broken rules are gone, 'asia' is removed, a rule matching an old item
# ('rates') is added (nothing is alerted for it), a console notifier and a list are
# added, and 'quake' now uses the list; the feed moves again and brings a tremor.
V4 = HEAD + """\
  out:
    type: console
lists:
  quakes: [earthquake, aftershock*, tremor]
feeds:
  - name: caucasus
    url: {world3}
  - name: region
    url: {region}
rules:
  - name: csto-exit
    query: CSTO AND withdraw*
  - name: quake
    query: "@quakes"
  - name: rates
    query: rates
"""

NEW_ITEM = """\
  <item>
    <title>Aftershocks rattle southern Turkey</title>
    <link>https://news.example.org/2026/02/aftershocks</link>
    <guid isPermaLink="false">cd-1004</guid>
    <pubDate>Wed, 18 Feb 2026 07:00:00 GMT</pubDate>
    <description>Residents spent the night outdoors.</description>
  </item>
</channel>"""


TREMOR = """\
  <item>
    <title>Tremor felt in Yerevan</title>
    <link>https://news.example.org/2026/02/tremor</link>
    <guid isPermaLink="false">cd-1005</guid>
    <pubDate>Wed, 18 Feb 2026 09:00:00 GMT</pubDate>
    <description>No damage was reported.</description>
  </item>
</channel>"""


def _write(path: Path, text: str) -> float:
    # Write then rename, as editors do, so the daemon never reads half a file.
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(path)
    return time.monotonic()


def _eventually(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"no {what} within {timeout}s"
        time.sleep(0.1)


def _metrics_once(port: int, name: str, value: float) -> str:
    """/metrics once the sample ``name`` has reached ``value``."""
    text = ""

    def reached() -> bool:
        nonlocal text
        text = http_get(f"http://127.0.0.1:{port}/metrics")[1]
        return metric(text, name) >= value

    _eventually(reached, f"{name} >= {value}")
    return text


def _rules_alerted(slack: SlackStandIn) -> list[str]:
    texts = [m.body.get("text", "") for m in slack.messages]
    return sorted(rule for text in texts for rule in ("csto-exit", "quake", "border", "rates")
                  if f"{rule}" in text and "rejected" not in text)


def test_edits_apply_live_without_realerting_and_broken_edits_are_refused(
    tmp_path: Path, feed_server: FeedServer, slack_standin: SlackStandIn
) -> None:
    world = (DATA / "world.rss").read_text()
    feed_server.serve_file("/world.rss", DATA / "world.rss")
    world2 = world.replace("</channel>", NEW_ITEM)
    feed_server.serve_feed("/world2.rss", world2.encode())
    feed_server.serve_feed("/world3.rss", world2.replace("</channel>", TREMOR).encode())
    feed_server.serve_file("/asia.json", DATA / "asia.json",
                           content_type="application/feed+json")
    feed_server.serve_file("/region.atom", DATA / "region.atom",
                           content_type="application/atom+xml")
    port = free_port()
    values = dict(db=tmp_path / "w.db", port=port, slack=slack_standin.base_url,
                  world=feed_server.url("/world.rss"), world2=feed_server.url("/world2.rss"),
                  world3=feed_server.url("/world3.rss"),
                  asia=feed_server.url("/asia.json"), region=feed_server.url("/region.atom"))
    config = tmp_path / "config.yaml"
    config.write_text(V1.format(**values))
    assert slack_standin.token is not None
    daemon = Daemon(config, env={"SLACK_BOT_TOKEN": slack_standin.token})
    try:
        slack_standin.wait_for_messages(1, timeout=60)
        assert wait_for_http(f"http://127.0.0.1:{port}/healthz")[0] == 200

        # Added and changed feeds and rules, applied without a restart.
        written = _write(config, V2.format(**values))
        applied = daemon.wait_for_log("config reloaded", timeout=60)
        assert applied - written < 5.0
        slack_standin.wait_for_messages(4, timeout=60)
        time.sleep(2)
        assert _rules_alerted(slack_standin) == ["border", "csto-exit", "quake", "quake"]
        quake_titles = sorted(m.body["text"] for m in slack_standin.messages
                              if "quake" in m.body["text"])
        assert not any("Strong earthquake shakes southern Turkey" in t for t in quake_titles)
        assert len(feed_server.requests_to("/world2.rss")) == 1
        # Slack has the fourth message before the daemon has its answer and counts the
        # send: on a busy machine that may come after the pause above.
        metrics = _metrics_once(port, 'wirewatch_deliveries_total{notifier="desk",outcome="sent"}',
                                4)
        assert metric(metrics, 'wirewatch_hits_total{rule="quake"}') == 2
        assert metric(metrics, 'wirewatch_hits_total{rule="border"}') == 1
        assert metric(metrics, 'wirewatch_polls_total{outcome="new"}') == 4
        assert metric(metrics, 'wirewatch_new_items_total') == 3 + 1 + 2 + 2
        assert metric(metrics, 'wirewatch_deliveries_total{notifier="desk",outcome="sent"}') == 4
        assert metric(metrics, 'wirewatch_alert_latency_seconds_count{since="first_seen"}') == 4
        assert metric(metrics, 'wirewatch_alert_latency_seconds_count{since="published"}') == 4
        assert metric(metrics, 'wirewatch_fetch_duration_seconds_count') == 4
        assert metric(metrics, 'wirewatch_scheduler_lag_seconds_count') == 4
        assert metric(metrics, 'wirewatch_outbox_depth') == 0
        assert metric(metrics, 'wirewatch_failing_feeds') == 0

        # A broken edit: rejected whole, every problem logged, reported once.
        _write(config, BROKEN.format(**values))
        daemon.wait_for_log("config reload rejected", timeout=60)
        (notice,) = [m for m in slack_standin.wait_for_messages(5, timeout=60)
                     if "rejected" in str(m.body)]
        log = daemon.stderr
        assert (f"{config}:29: rules[3].query: rule 'bad-syntax': unbalanced parenthesis "
                "opened at column 10\n  CSTO AND (withdraw\n                    ^\n") in log
        assert f"{config}:32: rules[4].notify[0]: unknown notifier 'nobody'" in log
        assert "bad-syntax" in str(notice.body) and "nobody" in str(notice.body)
        time.sleep(3)  # the file is still broken: no second report
        assert daemon.stderr.count("config reload rejected") == 1
        assert len([m for m in slack_standin.messages if "rejected" in str(m.body)]) == 1
        status, _ = http_get(f"http://127.0.0.1:{port}/healthz")
        assert status == 200

        # Fixed (and a feed removed, a rule added that matches an old item).
        _write(config, V4.format(**values))
        daemon.wait_for_log("config reloaded", count=2, timeout=60)
        slack_standin.wait_for_messages(6, timeout=60)
        # The console channel prints the tremor in the same pass, not necessarily first.
        _eventually(lambda: "Tremor felt in Yerevan" in daemon.stdout, "the console alert")
        time.sleep(3)
        # Only the tremor, on both notifiers; 'rates' stays quiet about old items.
        assert len(slack_standin.messages) == 6
        assert "Tremor felt in Yerevan" in slack_standin.messages[-1].body["text"]
        assert "Tremor felt in Yerevan" in daemon.stdout
        assert "Central bank holds rates" not in daemon.stdout
        _, metrics = http_get(f"http://127.0.0.1:{port}/metrics")
        assert metric(metrics, 'wirewatch_config_reloads_total{outcome="applied"}') == 2
        assert metric(metrics, 'wirewatch_config_reloads_total{outcome="rejected"}') == 1

        # SIGHUP re-reads the file even though it did not change.
        daemon.process.send_signal(signal.SIGHUP)
        daemon.wait_for_log("config reloaded", count=3, timeout=60)
        assert daemon.stop() == 0, daemon.stderr
    finally:
        daemon.close()

    store = Store.open(f"sqlite:///{tmp_path / 'w.db'}")
    try:
        feeds = {f.name: f for f in store.feeds()}
        assert not feeds["asia"].enabled and feeds["caucasus"].enabled
        assert {d["status"] for d in store.deliveries()} == {"sent"}
    finally:
        store.close()


WARNED = """\
database: "sqlite:///{db}"
defaults:
  interval: 1m
notifiers:
  out:
    type: console
feeds:
  - name: caucasus
    url: {world}
rules:
  - name: csto-exit
    query: CSTO AND withdraw*
"""


def test_a_reload_logs_the_warnings_of_the_config_it_applies(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    feed_server.serve_file("/world.rss", DATA / "world.rss")
    values = dict(db=tmp_path / "w.db", world=feed_server.url("/world.rss"))
    config = tmp_path / "config.yaml"
    config.write_text(WARNED.format(**values))
    daemon = Daemon(config, env={})
    try:
        daemon.wait_for_log("feed=caucasus", timeout=60)
        assert "config warning" not in daemon.stderr
        edited = WARNED.replace("CSTO AND withdraw*", "NOT sport")
        _write(config, edited.format(**values))
        daemon.wait_for_log("config reloaded", timeout=60)
        assert (f"config warning: {config}:12: rules[0].query: rule 'csto-exit': matches nearly "
                "every item"
                in daemon.stderr)
        assert daemon.stop() == 0, daemon.stderr
    finally:
        daemon.close()
