"""The store on real SQLite files and a real PostgreSQL database."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert
from sqlmodel import SQLModel

from monitor.store import (
    FAILED,
    HELD,
    PENDING,
    SENT,
    FeedSpec,
    FeedUpdate,
    NewHit,
    NewItem,
    Store,
)
from tests.dbs import database_url, postgres_url  # noqa: F401  (fixtures)

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def item(key: str, title: str = "t") -> NewItem:
    return NewItem(item_key=key, guid=key, link=f"https://example.org/{key}", title=title,
                   summary="", content="", author="", categories=("world",), published_at=None)


def success(now: datetime = T0) -> FeedUpdate:
    return FeedUpdate(polled_at=now, next_poll_at=now + timedelta(minutes=5), status=200,
                      error=None, etag='"v1"', last_modified=None, body_hash="h")


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:  # noqa: F811
    opened = Store.open(database_url)
    opened.sync_feeds([FeedSpec("dw", "http://127.0.0.1:1/dw"),
                       FeedSpec("bbc", "http://127.0.0.1:1/bbc")], now=T0)
    yield opened
    opened.close()


def hits_for(rule: str, notifiers: Sequence[str] = ("slack",)
             ) -> Callable[[Sequence[NewItem]], list[NewHit]]:
    def match(new_items: Sequence[NewItem]) -> list[NewHit]:
        return [NewHit(rule=rule, item_key=i.item_key, severity="normal", matched_terms=(),
                       snippet=i.title, marks=(), notifiers=tuple(notifiers))
                for i in new_items]
    return match


def test_only_really_new_items_reach_matching(store: Store) -> None:
    dw = store.feed("dw")
    assert dw is not None
    seen: list[list[str]] = []

    def record(new_items: Sequence[NewItem]) -> list[NewHit]:
        seen.append([i.item_key for i in new_items])
        return []

    store.store_poll(dw.id, [item("a"), item("b")], update_=success(), match=record)
    store.store_poll(dw.id, [item("b"), item("c"), item("c")], update_=success(), match=record)
    assert seen == [["a", "b"], ["c"]]
    state = store.feed("dw")
    assert state is not None and state.items_total == 3 and state.etag == '"v1"'


def test_the_same_key_in_another_feed_is_another_item(store: Store) -> None:
    dw, bbc = store.feed("dw"), store.feed("bbc")
    assert dw and bbc
    assert store.store_poll(dw.id, [item("a")], update_=success(), match=hits_for("r"))
    assert store.store_poll(bbc.id, [item("a")], update_=success(), match=hits_for("r"))


def test_a_hit_is_stored_with_one_delivery_per_notifier(store: Store) -> None:
    dw = store.feed("dw")
    assert dw is not None
    hit_ids = store.store_poll(dw.id, [item("a", "CSTO")], update_=success(),
                               match=hits_for("csto", ("slack", "mail")))
    assert len(hit_ids) == 1
    rows = store.deliveries()
    assert sorted(r["notifier"] for r in rows) == ["mail", "slack"]
    assert {r["status"] for r in rows} == {PENDING}


def test_claims_lease_and_expire(store: Store) -> None:
    dw = store.feed("dw")
    assert dw is not None
    store.store_poll(dw.id, [item("a"), item("b")], update_=success(), match=hits_for("r"))
    first = store.claim_deliveries(now=T0, lease=timedelta(minutes=2), claimer="one")
    assert len(first) == 2
    # Claimed rows are not handed out again while the lease holds...
    assert store.claim_deliveries(now=T0 + timedelta(minutes=1), lease=timedelta(minutes=2),
                                  claimer="two") == []
    store.mark_sent(first[0].id, external_id="C1:1.0", now=T0)
    # ...but a claim whose holder died expires, and another process takes it over.
    taken_over = store.claim_deliveries(now=T0 + timedelta(minutes=3),
                                        lease=timedelta(minutes=2), claimer="two")
    assert [d.id for d in taken_over] == [first[1].id]
    assert taken_over[0].attempts == 2


def test_retry_waits_for_its_time_and_failure_is_final(store: Store) -> None:
    dw = store.feed("dw")
    assert dw is not None
    store.store_poll(dw.id, [item("a")], update_=success(), match=hits_for("r"))
    (claimed,) = store.claim_deliveries(now=T0, lease=timedelta(minutes=2), claimer="x")
    store.schedule_retry(claimed.id, at=T0 + timedelta(seconds=30), reason="HTTP 500")
    assert store.claim_deliveries(now=T0 + timedelta(seconds=29), lease=timedelta(minutes=2),
                                  claimer="x") == []
    (again,) = store.claim_deliveries(now=T0 + timedelta(seconds=30),
                                      lease=timedelta(minutes=2), claimer="x")
    store.mark_failed(again.id, reason="channel_not_found")
    assert store.claim_deliveries(now=T0 + timedelta(days=1), lease=timedelta(minutes=2),
                                  claimer="x") == []
    (row,) = store.deliveries()
    assert row["status"] == FAILED and row["last_error"] == "channel_not_found"


def test_release_gives_back_only_this_processs_claims(store: Store) -> None:
    dw = store.feed("dw")
    assert dw is not None
    store.store_poll(dw.id, [item("a"), item("b")], update_=success(), match=hits_for("r"))
    store.claim_deliveries(now=T0, lease=timedelta(minutes=2), claimer="one", limit=1)
    store.claim_deliveries(now=T0, lease=timedelta(minutes=2), claimer="two", limit=1)
    assert store.release_claims(now=T0, claimer="one") == 1
    counts = store.delivery_counts()
    assert (counts.pending, counts.sending, counts.sent) == (1, 1, 0)


def test_sync_feeds_disables_removed_and_resets_changed_url(store: Store) -> None:
    dw = store.feed("dw")
    assert dw is not None
    store.store_poll(dw.id, [item("a")], update_=success(), match=hits_for("r"))
    later = T0 + timedelta(hours=1)
    store.sync_feeds([FeedSpec("dw", "http://127.0.0.1:1/dw-new")], now=later)
    dw_after, bbc_after = store.feed("dw"), store.feed("bbc")
    assert dw_after and bbc_after
    assert dw_after.url.endswith("dw-new") and dw_after.etag is None
    assert dw_after.next_poll_at == later
    assert bbc_after.status == "disabled" and bbc_after.disabled_reason == "removed from config"
    assert store.due_feeds(now=later) == [dw_after]


def test_sent_is_recorded_with_external_id(store: Store) -> None:
    dw = store.feed("dw")
    assert dw is not None
    store.store_poll(dw.id, [item("a")], update_=success(), match=hits_for("r"))
    (claimed,) = store.claim_deliveries(now=T0, lease=timedelta(minutes=2), claimer="x")
    store.mark_sent(claimed.id, external_id="C123:1700000000.000100", now=T0)
    (row,) = store.deliveries()
    assert (row["status"], row["external_id"]) == (SENT, "C123:1700000000.000100")


def test_a_poll_of_more_entries_than_one_statement_can_bind(store: Store) -> None:
    # PostgreSQL binds at most 65,535 parameters per statement: one INSERT of every
    # new item (11 columns each) failed for a feed listing 6,000 entries, every poll.
    dw = store.feed("dw")
    assert dw is not None
    keys = [f"k{i}" for i in range(6000)]
    seen: list[str] = []

    def record(new_items: Sequence[NewItem]) -> list[NewHit]:
        seen.extend(i.item_key for i in new_items)
        return []

    store.store_poll(dw.id, [item(k) for k in keys], update_=success(), match=record,
                     awaiting_text=True)
    assert seen == keys
    assert store.count_items() == 6000
    state = store.feed("dw")
    assert state is not None and state.items_total == 6000


def test_iter_items_pages_past_one_batch_in_id_order(store: Store) -> None:
    dw, bbc = store.feed("dw"), store.feed("bbc")
    assert dw and bbc
    store.store_poll(dw.id, [item("a"), item("b"), item("c")], update_=success(),
                     match=lambda _: [])
    later = T0 + timedelta(hours=1)
    store.store_poll(bbc.id, [item("d"), item("e")], update_=success(later), match=lambda _: [])
    paged = [(i.feed_name, i.item_key) for i in store.iter_items(since=T0, batch_size=2)]
    assert paged == [("dw", "a"), ("dw", "b"), ("dw", "c"), ("bbc", "d"), ("bbc", "e")]
    assert [i.item_key for i in store.iter_items(since=later, batch_size=1)] == ["d", "e"]


def _held_digest_of(store: Store, count: int) -> None:
    """``count`` alerts of one rule held for one digest batch, written in bulk."""
    dw = store.feed("dw")
    assert dw is not None
    with store._engine.begin() as connection:
        tables = SQLModel.metadata.tables
        connection.execute(insert(tables["items"]), [
            dict(id=i, feed_id=dw.id, item_key=f"k{i}", title=f"t{i}", first_seen_at=T0)
            for i in range(1, count + 1)])
        connection.execute(insert(tables["hits"]), [
            dict(id=i, rule="broad", item_id=i, created_at=T0) for i in range(1, count + 1)])
        connection.execute(insert(tables["deliveries"]), [
            dict(id=i, hit_id=i, notifier="slack", status=HELD, batch="digest:0800",
                 next_attempt_at=T0, created_at=T0) for i in range(1, count + 1)])


def test_a_digest_of_more_rows_than_one_statement_can_bind(store: Store) -> None:
    # A broad rule over thousands of feeds can hold more alerts for one digest than
    # PostgreSQL binds in one statement (65,535): the batch's IN lists failed, and the
    # digest never went out nor was marked failed. (SQLite builds differ, 32,766 to
    # 250,000; there a few chunks check the chunked queries give every row.)
    count = 2_500 if store._dialect == "sqlite" else 66_000
    _held_digest_of(store, count)
    rows = store.claim_batch(now=T0, lease=timedelta(minutes=2), claimer="x")
    assert len(rows) == count and rows[-1].title == f"t{count}"
    store.mark_batch_failed([r.id for r in rows], reason="Slack refused it")
    assert store.delivery_counts().failed == count
    hits = store.hit_records(since=T0 - timedelta(hours=1), limit=count)
    assert len(hits) == count and {h["deliveries"]["slack"] for h in hits} == {FAILED}
