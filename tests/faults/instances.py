"""Real ``wirewatch run`` instances for the fault tests: one feed of three earthquake
reports, one rule, one Slack channel on the stand-in, each instance in a directory
of its own (its config and its output)."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from tests.ops.daemon import Daemon
from tests.support import SlackStandIn

ITEMS = ("q1", "q2", "q3")

CONFIG = """\
database: "{database}"
defaults:
  interval: 1s
  min_interval: 1s
  timeout: 2s
feeds:
  - name: wire
    url: {feed}
notifiers:
  desk:
    type: slack
    token: ${{SLACK_BOT_TOKEN}}
    channel: "#desk"
    base_url: {slack}
rules:
  - name: quake
    query: earthquake
"""


def feed_body() -> bytes:
    """An RSS document with one earthquake report per key of ITEMS."""
    items = "".join(
        f"<item><title>Earthquake report {key}</title><guid>{key}</guid>"
        f"<link>https://news.example/quake/{key}</link>"
        f"<description>An earthquake was felt in region {key}.</description></item>"
        for key in ITEMS)
    return ('<?xml version="1.0"?><rss version="2.0"><channel><title>Wire</title>'
            f"<link>https://news.example/</link><description>d</description>{items}"
            "</channel></rss>").encode()


def start(directory: Path, *, database: str, feed: str, slack: SlackStandIn) -> Daemon:
    directory.mkdir()
    config = directory / "config.yaml"
    config.write_text(CONFIG.format(database=database, feed=feed, slack=slack.base_url))
    # A short feed lease: a feed leased to an instance that died comes back soon.
    return Daemon(config, env={"SLACK_BOT_TOKEN": slack.token or "",
                               "WIREWATCH_FEED_LEASE_SECONDS": "3"})


def sent_items(slack: SlackStandIn) -> Counter[str]:
    """How many messages the channel got for each item."""
    return Counter(re.findall(r"Earthquake report (q\d)", str(m.body["text"]))[0]
                   for m in slack.messages)
