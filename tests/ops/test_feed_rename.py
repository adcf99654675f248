"""A feed renamed in config.yaml (same URL) is the same feed: its items are not stored,
matched or reported again, and the stories it alerted get no "Also reported by"."""

from __future__ import annotations

import io
from pathlib import Path

from monitor.cli import main
from monitor.store import Store
from tests.support import FeedServer, SlackStandIn

CONFIG = """\
database: "sqlite:///{db}"
feeds:
  - name: {name}
    url: {url}
notifiers:
  desk:
    type: slack
    token: ${{SLACK_BOT_TOKEN}}
    channel: "#world-desk"
    base_url: {slack}
    story_updates: thread
rules:
  - name: csto
    query: CSTO
"""

RSS = """<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>
<link>https://caucasus.example.org/</link><description>d</description>{items}</channel></rss>"""
ITEM = """<item><title>{title}</title><link>https://caucasus.example.org/{guid}</link>
<guid isPermaLink="false">{guid}</guid><description>{title}.</description></item>"""


def _run(tmp_path: Path, slack: SlackStandIn, *, name: str, url: str) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG.format(db=tmp_path / "w.db", name=name, url=url,
                                    slack=slack.base_url))
    err = io.StringIO()
    assert slack.token is not None
    code = main(["--config", str(config), "run", "--once", "--force", "--deliver-timeout", "5"],
                stdout=io.StringIO(), stderr=err, environ={"SLACK_BOT_TOKEN": slack.token})
    assert code == 0, err.getvalue()


def test_a_renamed_feed_keeps_its_items_and_alerts_only_what_is_new(
    tmp_path: Path, feed_server: FeedServer, slack_standin: SlackStandIn
) -> None:
    first = ITEM.format(title="Armenia leaves CSTO", guid="csto-exit")
    feed_server.serve_feed("/c.rss", RSS.format(items=first).encode())
    url = feed_server.url("/c.rss")
    _run(tmp_path, slack_standin, name="caucasus", url=url)
    assert [m.body["text"].split(" <")[0] for m in slack_standin.messages] == [
        "[csto] Armenia leaves CSTO (caucasus)"]

    second = ITEM.format(title="CSTO summit called off", guid="csto-summit")
    feed_server.serve_feed("/c.rss", RSS.format(items=second + first).encode())
    _run(tmp_path, slack_standin, name="caucasus-news", url=url)

    # Only the new item, under the new name; no second hit, no story update.
    assert [m.body["text"].split(" <")[0] for m in slack_standin.messages] == [
        "[csto] Armenia leaves CSTO (caucasus)", "[csto] CSTO summit called off (caucasus-news)"]
    store = Store.open(f"sqlite:///{tmp_path / 'w.db'}")
    try:
        assert [(f.name, f.enabled) for f in store.feeds()] == [("caucasus-news", True)]
        assert sorted((d["feed"], d["title"]) for d in store.deliveries()) == [
            ("caucasus-news", "Armenia leaves CSTO"), ("caucasus-news", "CSTO summit called off")]
    finally:
        store.close()
