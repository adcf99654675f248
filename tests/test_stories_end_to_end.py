"""End to end: one story in three feeds alerts once per rule and channel, then updates.

Three local feeds carry the same story, each polled by its own ``run --once --force``
(a new Monitor each time, so every poll is also a restart on the same database):

1. ``caucasus`` links the article with utm_ parameters;
2. ``region`` links its AMP copy (``amp.`` host, ``/amp/`` path);
3. ``syndication`` carries the wire copy under an edited headline, on another site.

Two rules match every copy. Expected: one top-level alert per rule per channel from
the first poll; then, for each later source, a ``chat.update`` of each original
message on the ``edit`` channel, a thread reply (``thread_ts`` = the original ts) on
the ``thread`` channel, and a mail in each alert's thread (In-Reply-To = its
Message-ID). A final forced poll of all three feeds changes nothing.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

from monitor.cli import main
from monitor.store import Store
from tests.support import FeedServer, SlackStandIn, SmtpServer

LEAD = ("Armenia will not take part in events of the Russian-led Collective Security "
        "Treaty Organization, Prime Minister Nikol Pashinyan said on Wednesday, as Yerevan "
        "distances itself from Moscow after Russia failed to defend it.")
RHINE = "Authorities in Cologne and Koblenz expect the river to peak on Friday."
TITLE = "Armenia seeks to distance itself from Russia's military pact"
EDITED = "Armenia seeks distance from Russia-led military pact — report"

CONFIG = """\
database: "sqlite:///{db}"
feeds:
  - name: caucasus
    url: {caucasus}
  - name: region
    url: {region}
  - name: syndication
    url: {syndication}
notifiers:
  desk:
    type: slack
    token: ${{SLACK_BOT_TOKEN}}
    channel: "#world-desk"
    base_url: {slack}
    story_updates: edit
  night:
    type: slack
    token: ${{SLACK_BOT_TOKEN}}
    channel: "#night-desk"
    base_url: {slack}
    story_updates: thread
  editors:
    type: email
    host: 127.0.0.1
    port: {smtp_port}
    security: none
    from: wirewatch@newsroom.test
    to: [editors@newsroom.test]
rules:
  - name: csto
    query: CSTO OR "Collective Security"
  - name: armenia-russia
    query: Armenia AND (Russia OR Moscow)
"""


def rss(items: list[tuple[str, str, str]]) -> bytes:
    entries = "".join(
        f"<item><title>{title}</title><link>{link.replace('&', '&amp;')}</link>"
        f"<guid isPermaLink=\"false\">{guid}</guid>"
        f"<description>{RHINE if 'Rhine' in title else LEAD}</description>"
        f"<pubDate>Wed, 18 Feb 2026 09:00:00 GMT</pubDate></item>"
        for title, link, guid in items
    )
    return (f'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>'
            f"<link>https://example.org/</link><description>d</description>{entries}"
            f"</channel></rss>").encode()


FIRST = (TITLE,
         "https://caucasus.example.org/2026/02/armenia-csto?utm_source=rss&utm_medium=feed",
         "caucasus-1")
AMP = (TITLE, "https://amp.caucasus.example.org/2026/02/armenia-csto/amp/", "region-77")
SYNDICATED = (EDITED, "https://wire.example.net/world/2026-02-18/armenia-pact", "synd-5")
UNRELATED = ("Flood warnings issued for towns along the Rhine", "https://region.example/flood",
             "region-78")


def run_once(config: Path, environ: dict[str, str]) -> str:
    err = io.StringIO()
    code = main(["--config", str(config), "run", "--once", "--force"],
                stdout=io.StringIO(), stderr=err, environ=environ)
    assert code == 0, err.getvalue()
    return err.getvalue()


def test_one_alert_per_rule_and_channel_then_updates(
    tmp_path: Path, feed_server: FeedServer, slack_standin: SlackStandIn,
    smtp_server: SmtpServer,
) -> None:
    for path in ("/caucasus.rss", "/region.rss", "/syndication.rss"):
        feed_server.serve_feed(path, rss([]), content_type="application/rss+xml")
    config = tmp_path / "config.yaml"
    database = tmp_path / "wirewatch.db"
    config.write_text(CONFIG.format(
        db=database, caucasus=feed_server.url("/caucasus.rss"),
        region=feed_server.url("/region.rss"), syndication=feed_server.url("/syndication.rss"),
        slack=slack_standin.base_url, smtp_port=smtp_server.port,
    ))
    assert slack_standin.token is not None
    environ = {"SLACK_BOT_TOKEN": slack_standin.token, "PATH": os.environ.get("PATH", "")}
    desk = slack_standin.channel_id("#world-desk")
    night = slack_standin.channel_id("#night-desk")

    # 1. The first source: one alert per rule on each channel.
    feed_server.serve_feed("/caucasus.rss", rss([FIRST]), content_type="application/rss+xml")
    run_once(config, environ)
    posted = slack_standin.calls_to("chat.postMessage")
    assert len(posted) == 4 and all("thread_ts" not in c.body for c in posted)
    originals = {(c.response["channel"], _rule(c.body["text"])):  # type: ignore[index]
                 c.response["ts"] for c in posted}  # type: ignore[index]
    assert set(originals) == {(ch, rule) for ch in (desk, night)
                              for rule in ("csto", "armenia-russia")}
    mails = smtp_server.messages
    assert len(mails) == 2 and all(m.message["In-Reply-To"] is None for m in mails)
    mail_ids = {_rule(m.message["Subject"]): m.message["Message-ID"] for m in mails}

    # 2. The AMP copy in another feed (and an unrelated item, which alerts nobody).
    feed_server.serve_feed("/region.rss", rss([AMP, UNRELATED]),
                           content_type="application/rss+xml")
    run_once(config, environ)
    # 3. The syndicated copy under an edited headline.
    feed_server.serve_feed("/syndication.rss", rss([SYNDICATED]),
                           content_type="application/rss+xml")
    run_once(config, environ)

    # No new top-level alert anywhere.
    top_level = [c for c in slack_standin.calls_to("chat.postMessage")
                 if "thread_ts" not in c.body]
    assert len(top_level) == 4

    # "edit" channel: each original message updated once per later source, in place.
    updates = slack_standin.calls_to("chat.update")
    assert all(c.ok and c.body["channel"] == desk for c in updates)
    assert sorted((c.body["ts"], _also(c)) for c in updates) == sorted(
        # The alert is caucasus's own (the first source): the others follow it.
        [(originals[(desk, rule)], ("region (+0 min)",))
         for rule in ("csto", "armenia-russia")]
        + [(originals[(desk, rule)], ("region (+0 min)", "syndication (+0 min)"))
           for rule in ("csto", "armenia-russia")]
    )

    # "thread" channel: one reply per later source under each original.
    replies = [c for c in slack_standin.calls_to("chat.postMessage") if "thread_ts" in c.body]
    assert all(c.ok and c.body["channel"] == night for c in replies)
    assert sorted((c.body["thread_ts"], c.body["text"]) for c in replies) == sorted(
        (originals[(night, rule)], f"Also reported by: {source} (+0 min)")
        for rule in ("csto", "armenia-russia") for source in ("region", "syndication")
    )

    # Email: a reply in each alert's thread per later source.
    replies_mail = smtp_server.messages[2:]
    assert len(replies_mail) == 4
    assert sorted((_rule(m.message["Subject"]), m.message["In-Reply-To"])
                  for m in replies_mail) == sorted(
        (rule, mail_ids[rule]) for rule in ("csto", "armenia-russia") for _ in range(2))

    # The database: one story with three sources, each item in exactly one story.
    store = Store.open(f"sqlite:///{database}")
    try:
        stories = store.stories()
        story = next(s for s in stories if len(s["items"]) > 1)
        assert [(i["feed"], i["reason"]) for i in story["items"]] == [
            ("caucasus", "first"), ("region", "url"), ("syndication", "similar")]
        assert sum(len(s["items"]) for s in stories) == 4  # + the unrelated item, alone
        assert all(u["status"] == "sent" for u in store.story_updates())
    finally:
        store.close()

    # 4. Every feed polled again by a new process state: nothing new is sent.
    calls, sent_mails = len(slack_standin.calls), len(smtp_server.messages)
    assert "0 new items" in run_once(config, environ)
    assert len(slack_standin.calls) == calls and len(smtp_server.messages) == sent_mails


def _rule(text: str) -> str:
    for rule in ("armenia-russia", "csto"):
        if rule in text:
            return rule
    raise AssertionError(f"no rule named in {text!r}")


def _also(call: object) -> tuple[str, ...]:
    """The sources named in the "Also:" context line of a chat.update."""
    blocks = call.body.get("blocks") or []  # type: ignore[attr-defined]
    for block in blocks:
        if block.get("type") == "context":
            text = block["elements"][0]["text"]
            if text.startswith("Also: "):
                return tuple(text[len("Also: "):].split(", "))
    return ()
