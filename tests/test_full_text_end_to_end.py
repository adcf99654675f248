"""End to end with article text: ``wirewatch run --once`` over a teaser feed on loopback.

The feed carries only a headline and a cut-off teaser; the article page around the
story has navigation, "Read also", comments and a "Latest" column (with a motorcycle
that collided with an agricultural machine). Neither headline nor teaser says "CSTO";
the article does, many times.
"""

from __future__ import annotations

import io
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import monitor.pipeline
from monitor.cli import main
from monitor.parse import parse_feed
from monitor.store import FeedSpec, FeedUpdate, NewItem, Store, utcnow
from tests.ops.daemon import descendants, parent_of, survivors
from tests.support import FeedServer, Response

ARTICLES = Path(__file__).parent / "data" / "articles"
HTML = {"Content-Type": "text/html; charset=utf-8"}
TEASER = ("\"There is no other way,\" said Armenia's Prime Minister Pashinyan on the planned "
          "withdrawal from the...")

FEED = """\
<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel>
  <title>Caucasus teasers</title><link>{base}/</link><description>World news</description>
  <item>
    <title>Armenia seeks to distance itself from Russia's military pact</title>
    <link>{base}{path}</link>
    <guid isPermaLink="false">teaser-1</guid>
    <pubDate>Tue, 17 Feb 2026 18:55:33 GMT</pubDate>
    <description>{teaser}</description>
  </item>
</channel></rss>
"""

CONFIG = """\
database: "sqlite:///{db}"
allow_private_article_hosts: true
defaults:
  timeout: 5s
  full_text_timeout: {full_text_timeout}
feeds:
  - name: teasers
    url: {feed}
    full_text: {full_text}
rules:
  - name: csto-exit
    query: CSTO AND withdraw*
  - name: crash-and-pashinyan
    query: motorcycle AND Pashinyan
  - name: gyumri-in-article
    query: "content:Gyumri"
  - name: teaser-words
    query: Pashinyan AND withdrawal
"""


def write_setup(tmp_path: Path, server: FeedServer, *, full_text: bool, path: str = "/story",
                full_text_timeout: str = "10s") -> Path:
    server.serve_feed("/teasers.rss", FEED.format(base=server.origin, path=path,
                                                  teaser=TEASER).encode())
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG.format(db=tmp_path / "w.db", feed=server.url("/teasers.rss"),
                                    full_text="true" if full_text else "false",
                                    full_text_timeout=full_text_timeout))
    return config


def run(config: Path, *args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(["--config", str(config), *args], stdout=out, stderr=err, environ={})
    return code, out.getvalue(), err.getvalue()


def fired(config: Path) -> list[str]:
    store = Store.open(f"sqlite:///{config.parent / 'w.db'}")
    try:
        return sorted(d["rule"] for d in store.deliveries())
    finally:
        store.close()


def feeds_json(config: Path) -> dict[str, object]:
    code, out, err = run(config, "feeds", "--format", "json")
    assert code == 0, err
    (record,) = json.loads(out)
    return record  # type: ignore[no-any-return]


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with FeedServer() as server:
        server.set_route("/story", Response(headers=HTML,
                                            body=(ARTICLES / "armenia-csto.html").read_bytes()))
        yield server


def test_full_text_matches_the_story_and_not_the_page_around_it(
        tmp_path: Path, server: FeedServer) -> None:
    config = write_setup(tmp_path, server, full_text=True)
    code, out, err = run(config, "run", "--once")
    assert code == 0, err
    assert fired(config) == ["csto-exit", "gyumri-in-article", "teaser-words"]
    assert out.count("csto-exit") == 1 and "crash-and-pashinyan" not in out
    assert len(server.requests_to("/story")) == 1
    record = feeds_json(config)
    assert (record["full_text_failures"], record["last_full_text_failure"]) == (0, None)

    # Again, forced: the item is not new, nothing is fetched or alerted twice.
    code, out, err = run(config, "run", "--once", "--force")
    assert code == 0, err
    assert out == "" and "0 new items" in err
    assert fired(config) == ["csto-exit", "gyumri-in-article", "teaser-words"]
    assert len(server.requests_to("/story")) == 1


def test_without_full_text_the_teaser_alone_does_not_fire(
        tmp_path: Path, server: FeedServer) -> None:
    config = write_setup(tmp_path, server, full_text=False)
    code, _out, err = run(config, "run", "--once")
    assert code == 0, err
    assert fired(config) == ["teaser-words"]
    assert server.requests_to("/story") == []


@pytest.mark.parametrize(
    ("case", "route", "timeout", "reason"),
    [
        ("article missing", None, "10s", "HTTP 404"),
        ("paywall", Response(headers=HTML, body=(ARTICLES / "paywalled.html").read_bytes()),
         "10s", "paywall"),
        ("consent wall", Response(headers=HTML, body=(ARTICLES / "consent-wall.html").read_bytes()),
         "10s", "too little text extracted"),
        ("not HTML", Response(headers={"Content-Type": "application/pdf"}, body=b"%PDF-1.7"),
         "10s", "not an HTML page (application/pdf)"),
        ("slower than full_text_timeout",
         Response(headers=HTML, body=(ARTICLES / "armenia-csto.html").read_bytes(), delay=3),
         "1s", "timed out after 1s (full_text_timeout)"),
    ],
)
def test_failures_fall_back_to_the_feed_text_with_the_reason(
        tmp_path: Path, server: FeedServer, case: str, route: Response | None, timeout: str,
        reason: str) -> None:
    if route is not None:
        server.set_route("/broken", route)
    config = write_setup(tmp_path, server, full_text=True, path="/broken",
                         full_text_timeout=timeout)
    code, _out, err = run(config, "run", "--once")
    assert code == 0, err
    # Matched once, on title and teaser: the teaser rule fires, the article-only ones cannot.
    assert fired(config) == ["teaser-words"], case
    record = feeds_json(config)
    assert record["full_text_failures"] == 1
    assert reason in str(record["last_full_text_failure"]), record
    assert reason in err  # logged as well


def test_a_page_that_takes_too_long_to_extract_is_cut_off_at_the_deadline(
        tmp_path: Path, server: FeedServer) -> None:
    """A 9 MiB table takes about 20 s of CPU to extract; full_text_timeout is 2s. The item
    is matched on the feed text at the deadline, and the run ends then: no extraction
    goes on after it (a thread used to, and the run waited for it at exit)."""
    row = b"<tr><td>Row of the casualty table</td><td>Gyumri</td></tr>\n"
    body = (b"<html><body><article><table>" + row * (9 * 2**20 // len(row))
            + b"</table></article></body></html>")
    server.set_route("/huge", Response(headers=HTML, body=body))
    config = write_setup(tmp_path, server, full_text=True, path="/huge", full_text_timeout="2s")
    before = descendants(os.getpid())
    started = time.monotonic()
    code, _out, err = run(config, "run", "--once")
    took = time.monotonic() - started
    assert code == 0, err
    assert fired(config) == ["teaser-words"]
    assert feeds_json(config)["last_full_text_failure"] == "timed out after 2s (full_text_timeout)"
    assert took < 20, f"run --once took {took:.1f}s"  # 30 s and more when extraction ran on
    # The run closed its extraction workers: none is left, busy or idle. (The forkserver
    # that started them, a child of this process, serves the process's lifetime.)
    workers = {(pid, started) for pid, started in descendants(os.getpid()) - before
               if parent_of(pid) != os.getpid()}
    assert survivors(workers, timeout=5) == {}


def test_switch_off_refuses_the_loopback_article_and_falls_back(
        tmp_path: Path, server: FeedServer) -> None:
    config = write_setup(tmp_path, server, full_text=True)
    config.write_text(config.read_text().replace("allow_private_article_hosts: true",
                                                 "allow_private_article_hosts: false"))
    code, _out, err = run(config, "run", "--once")
    assert code == 0, err
    assert fired(config) == ["teaser-words"]
    assert server.requests_to("/story") == []
    assert "refused: 127.0.0.1, a loopback address" in str(
        feeds_json(config)["last_full_text_failure"])


def test_an_item_left_awaiting_by_a_crash_is_matched_by_the_next_run(
        tmp_path: Path, server: FeedServer) -> None:
    """A process stored the item (awaiting its text) and died before matching it."""
    config = write_setup(tmp_path, server, full_text=True)
    store = Store.open(f"sqlite:///{tmp_path / 'w.db'}")
    now = utcnow()
    store.sync_feeds([FeedSpec(name="teasers", url=server.url("/teasers.rss"))], now=now)
    feed = store.feed("teasers")
    assert feed is not None
    body = FEED.format(base=server.origin, path="/story", teaser=TEASER).encode()
    (parsed,) = parse_feed(body, url=server.url("/teasers.rss"),
                           content_type="application/rss+xml").items
    item = NewItem(item_key=parsed.item_key, guid=parsed.guid, link=parsed.link,
                   title=parsed.title, summary=parsed.summary, content=parsed.content,
                   author=parsed.author, categories=parsed.categories, published_at=now)
    store.store_poll(feed.id, [item], awaiting_text=True, match=lambda items: [],
                     update_=FeedUpdate(polled_at=now, next_poll_at=now, status=200, error=None))
    store.close()
    assert fired(config) == []

    code, out, err = run(config, "run", "--once")
    assert code == 0, err
    assert "0 new items" in err  # the feed brought nothing new: the sweep did the matching
    assert fired(config) == ["csto-exit", "gyumri-in-article", "teaser-words"]
    assert len(server.requests_to("/story")) == 1

    code, out, err = run(config, "run", "--once", "--force")
    assert code == 0 and out == ""
    assert len(server.requests_to("/story")) == 1


def test_an_article_is_matched_off_the_event_loop(
        tmp_path: Path, server: FeedServer, monkeypatch: pytest.MonkeyPatch) -> None:
    # A spy, not a stand-in: the real matching runs, and the test notes which thread ran
    # it. Matching (and explaining) megabytes of article text on the event loop would
    # stall every poll and send meanwhile.
    real = monitor.pipeline.match_items
    threads: list[bool] = []

    def noting(*args: object, **kwargs: object) -> object:
        threads.append(threading.current_thread() is threading.main_thread())
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(monitor.pipeline, "match_items", noting)
    config = write_setup(tmp_path, server, full_text=True)
    code, _out, err = run(config, "run", "--once")
    assert code == 0, err
    assert fired(config) == ["csto-exit", "gyumri-in-article", "teaser-words"]
    assert threads == [False], "the article was matched on the event loop's thread"
