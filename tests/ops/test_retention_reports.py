"""Retention and the operator reports, on real SQLite files and a real PostgreSQL."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, select

from monitor.cli import main
from monitor.store import (
    ArticleRow,
    FeedSpec,
    FeedUpdate,
    ItemRow,
    NewHit,
    NewItem,
    Store,
    StoryItemRow,
    StoryRow,
)
from tests.dbs import database_url, postgres_url  # noqa: F401  (fixtures)

NOW = datetime.now(UTC).replace(microsecond=0)


def _item(key: str, title: str) -> NewItem:
    return NewItem(item_key=key, guid=key, link=f"https://example.org/{key}", title=title,
                   summary=f"summary of {title}", content="body", author="", categories=(),
                   published_at=None)


def _poll(store: Store, feed: str, keys: Sequence[str], *, at: datetime,
          rule: str | None = None, notifiers: Sequence[str] = ("desk",)) -> list[int]:
    state = store.feed(feed)
    assert state is not None

    def match(new_items: Sequence[NewItem]) -> list[NewHit]:
        if rule is None:
            return []
        return [NewHit(rule=rule, item_key=i.item_key, severity="normal", matched_terms=(),
                       snippet=i.title, marks=(), notifiers=tuple(notifiers))
                for i in new_items]

    update = FeedUpdate(polled_at=at, next_poll_at=at + timedelta(minutes=5), status=200,
                        error=None, body_hash=f"h-{at.isoformat()}")
    return store.store_poll(state.id, [_item(k, f"title {k}") for k in keys], update_=update,
                            match=match)


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:  # noqa: F811
    opened = Store.open(database_url)
    opened.sync_feeds([FeedSpec("dw", "http://127.0.0.1:1/dw"),
                       FeedSpec("bbc", "http://127.0.0.1:1/bbc")], now=NOW - timedelta(days=200))
    yield opened
    opened.close()


def _mark_all_sent(store: Store, *, at: datetime) -> None:
    for claimed in store.claim_deliveries(now=at, lease=timedelta(minutes=2), claimer="t",
                                          limit=1000):
        store.mark_sent(claimed.id, external_id=None, now=at)


def test_retention_keeps_what_is_young_or_still_referenced(store: Store) -> None:
    old, middle, young = NOW - timedelta(days=120), NOW - timedelta(days=45), NOW
    _poll(store, "dw", ["old-plain"], at=old)                        # no hit: pruned
    _poll(store, "dw", ["old-hit"], at=old, rule="csto")             # delivery 120 d old: pruned
    _mark_all_sent(store, at=old)
    _poll(store, "bbc", ["mid-hit"], at=middle, rule="csto")         # delivery kept: item kept
    _mark_all_sent(store, at=middle)
    _poll(store, "bbc", ["mid-pending"], at=middle, rule="csto")     # unsent: never pruned
    _poll(store, "dw", ["mid-plain"], at=middle)                     # no hit, 45 d: pruned
    _poll(store, "dw", ["young"], at=young, rule="quake")

    counts = store.prune(items_before=NOW - timedelta(days=30),
                         deliveries_before=NOW - timedelta(days=90))

    assert (counts["deliveries"], counts["hits"], counts["items"]) == (1, 1, 3)
    left = {item.item_key for item in store.iter_items(since=NOW - timedelta(days=365))}
    assert left == {"mid-hit", "mid-pending", "young"}
    assert {d["item_key"]: d["status"] for d in store.deliveries()} == {
        "mid-hit": "sent", "mid-pending": "pending", "young": "pending"}
    # Pruning again finds nothing more.
    again = store.prune(items_before=NOW - timedelta(days=30),
                        deliveries_before=NOW - timedelta(days=90))
    assert (again["deliveries"], again["hits"], again["items"]) == (0, 0, 0)


def _cli(database: str, tmp_path: Path, *args: str) -> tuple[int, str, str]:
    config = tmp_path / "config.yaml"
    config.write_text(f'database: "{database}"\nfeeds:\n  - name: dw\n'
                      "    url: http://127.0.0.1:1/dw\n")
    out, err = io.StringIO(), io.StringIO()
    code = main([*args, "--config", str(config)], stdout=out, stderr=err, environ={})
    return code, out.getvalue(), err.getvalue()


def test_hits_json_contract_and_filters(store: Store, database_url: str,  # noqa: F811
                                        tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    _poll(store, "dw", ["a1"], at=NOW - timedelta(days=3), rule="csto")
    _poll(store, "dw", ["a2"], at=NOW - timedelta(hours=2), rule="csto",
          notifiers=("desk", "mail"))
    _poll(store, "bbc", ["b1"], at=NOW - timedelta(hours=1), rule="quake")
    _mark_all_sent(store, at=NOW - timedelta(minutes=30))

    code, out, err = _cli(database_url, tmp_path, "hits", "--format", "json")
    assert code == 0, err
    records = json.loads(out)
    assert [(r["rule"], r["feed"], r["item_key"]) for r in records] == [
        ("quake", "bbc", "b1"), ("csto", "dw", "a2")]  # newest first, last 24 h
    assert set(records[0]) == {"id", "created_at", "rule", "severity", "feed", "title", "link",
                               "item_key", "published_at", "deliveries"}
    assert records[1]["deliveries"] == {"desk": "sent", "mail": "sent"}

    code, out, _ = _cli(database_url, tmp_path, "hits", "--rule", "csto", "--since", "7d",
                        "--format", "json")
    assert [r["item_key"] for r in json.loads(out)] == ["a2", "a1"]

    code, out, _ = _cli(database_url, tmp_path, "hits", "--since", "7d")
    assert code == 0 and "csto" in out and "quake" in out and "desk:sent" in out

    code, _, _ = _cli(database_url, tmp_path, "hits", "--since", "yesterday")
    # argparse reports usage errors on the process's stderr itself.
    assert code == 2 and "expected a duration like 24h or 7d" in capsys.readouterr().err


def test_hits_table_shows_bracketed_titles_as_written(store: Store, database_url: str,  # noqa: F811
                                                     tmp_path: Path) -> None:
    # rich reads "[...]" in a cell as markup: a stray "[/b]" in a feed's title made
    # `wirewatch hits` fail with MarkupError, and "[b]" vanished from the title.
    title = "Budget [/b] vote [b]live[/b] [link=https://evil.example]x"
    state = store.feed("dw")
    assert state is not None
    at = NOW - timedelta(hours=1)
    store.store_poll(
        state.id, [_item("t1", title)],
        update_=FeedUpdate(polled_at=at, next_poll_at=at + timedelta(minutes=5), status=200,
                           error=None, body_hash="h"),
        match=lambda items: [NewHit(rule="budget", item_key="t1", severity="normal",
                                    matched_terms=(), snippet="", marks=(), notifiers=())])
    code, out, err = _cli(database_url, tmp_path, "hits")
    assert code == 0, err
    assert title in out


def test_stats_counts_per_day(store: Store, database_url: str,  # noqa: F811
                              tmp_path: Path) -> None:
    two_days_ago = NOW - timedelta(days=2)
    _poll(store, "dw", ["a1", "a2", "a3"], at=two_days_ago, rule="csto")
    _mark_all_sent(store, at=two_days_ago)
    _poll(store, "bbc", ["b1", "b2"], at=NOW)
    _poll(store, "bbc", ["b3"], at=NOW, rule="quake")

    code, out, err = _cli(database_url, tmp_path, "stats", "--format", "json")
    assert code == 0, err
    stats = json.loads(out)
    days = {row["day"]: row for row in stats["days"]}
    assert days[two_days_ago.date().isoformat()] == {
        "day": two_days_ago.date().isoformat(), "items": 3, "hits": 3,
        "deliveries": {"sent": 3}}
    assert days[NOW.date().isoformat()]["items"] == 3
    assert days[NOW.date().isoformat()]["deliveries"] == {"pending": 1}
    assert stats["totals"] == {"items": 6, "hits": 4, "deliveries": {"pending": 1, "sent": 3}}
    assert stats["outbox_depth"] == 1 and stats["feeds"]["total"] == 2

    code, out, _ = _cli(database_url, tmp_path, "stats", "--days", "1", "--format", "json")
    assert json.loads(out)["totals"]["items"] == 3
    code, out, _ = _cli(database_url, tmp_path, "stats")
    assert code == 0 and "ITEMS" in out and "total" in out


def test_retention_prunes_whole_stories_and_article_text_only(store: Store) -> None:
    old, young = NOW - timedelta(days=60), NOW - timedelta(hours=1)
    _poll(store, "dw", ["s1-a"], at=old)
    _poll(store, "bbc", ["s1-b"], at=old)
    _poll(store, "dw", ["s2-a"], at=old)
    _poll(store, "bbc", ["s2-b"], at=young)   # keeps story 2, and so s2-a, alive
    with Session(store.engine) as session:
        ids = {row.item_key: row.id for row in session.exec(select(ItemRow))
               if row.id is not None}
        for story, keys in ((1, ("s1-a", "s1-b")), (2, ("s2-a", "s2-b"))):
            first = ids[keys[0]]
            session.add(StoryRow(id=story, first_item_id=first, first_feed="dw",
                                 first_seen_at=old, title=f"story {story}"))
            session.flush()
            for key in keys:
                session.add(StoryItemRow(story_id=story, item_id=ids[key], feed="dw",
                                         reason="first", seen_at=old))
        session.add(ArticleRow(item_id=ids["s1-a"], feed_id=1, requested_at=old,
                               text="the article"))
        session.commit()

    counts = store.prune(items_before=NOW - timedelta(days=30),
                         deliveries_before=NOW - timedelta(days=90))

    assert (counts["stories"], counts["story_items"], counts["items"],
            counts["article_texts"]) == (1, 2, 2, 1)
    left = {item.item_key for item in store.iter_items(since=NOW - timedelta(days=365))}
    assert left == {"s2-a", "s2-b"}
    with Session(store.engine) as session:
        assert [row.id for row in session.exec(select(StoryRow))] == [2]
