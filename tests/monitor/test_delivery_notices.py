"""The ops-notice outbox: one notice per episode key, sent like alerts, never looping."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta

import pytest

from monitor.delivery import Deliverer
from monitor.store import FAILED, PENDING, SENT, FeedSpec, FeedUpdate, NewHit, NewItem, Store
from notifiers import (
    Alert,
    ConsoleNotifier,
    Digest,
    EmailNotifier,
    Notice,
    Notifier,
    NotifyError,
    Receipt,
    SlackNotifier,
)
from tests.dbs import database_url, postgres_url  # noqa: F401  (fixtures)
from tests.support import SlackStandIn, SmtpServer

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:  # noqa: F811
    opened = Store.open(database_url)
    yield opened
    opened.close()


class Recording:
    """A channel that records alerts and notices, failing as scripted."""

    def __init__(self, name: str, *, fail: NotifyError | None = None,
                 fail_notices: NotifyError | None = None) -> None:
        self.name = name
        self.fail = fail
        self.fail_notices = fail_notices
        self.alerts: list[Alert] = []
        self.notices: list[Notice] = []

    def send(self, alert: Alert) -> Receipt:
        if self.fail:
            raise self.fail
        self.alerts.append(alert)
        return Receipt(external_id=alert.alert_id)

    def send_notice(self, notice: Notice) -> Receipt:
        if self.fail_notices:
            raise self.fail_notices
        self.notices.append(notice)
        return Receipt(external_id=notice.notice_id)

    def send_digest(self, digest: Digest) -> Receipt:
        raise AssertionError("no digest is due in these tests")

    def close(self) -> None:
        pass


def store_hits(store: Store, notifiers: Sequence[str], count: int = 1) -> None:
    store.sync_feeds([FeedSpec("dw", "http://127.0.0.1:1/dw")], now=T0)
    feed = store.feed("dw")
    assert feed is not None
    items = [NewItem(item_key=f"k{i}", guid=None, link=f"https://example.org/{i}",
                     title=f"Item {i}", summary="", content="", author="", categories=(),
                     published_at=None) for i in range(count)]

    def match(new: Sequence[NewItem]) -> list[NewHit]:
        return [NewHit(rule="csto", item_key=i.item_key, severity="normal", matched_terms=(),
                       snippet=i.title, marks=(), notifiers=tuple(notifiers)) for i in new]

    store.store_poll(feed.id, items, match=match, update_=FeedUpdate(
        polled_at=T0, next_poll_at=T0 + timedelta(minutes=5), status=200, error=None))


def test_queue_notice_is_once_per_key(store: Store) -> None:
    first = store.queue_notice(key="feed-silent:dw:1", notifier="ops", title="dw is silent",
                               body="no items for 6h", now=T0)
    again = store.queue_notice(key="feed-silent:dw:1", notifier="ops", title="dw is silent",
                               body="still", now=T0 + timedelta(hours=1))
    other = store.queue_notice(key="feed-silent:dw:2", notifier="ops", title="dw is silent",
                               body="again", now=T0 + timedelta(hours=2))
    assert (first, again, other) == (True, False, True)
    assert [n["key"] for n in store.notices()] == ["feed-silent:dw:1", "feed-silent:dw:2"]
    assert store.notices()[0]["body"] == "no items for 6h"


def test_notices_are_claimed_sent_and_retried(store: Store) -> None:
    store.queue_notice(key="k", notifier="ops", title="t", body="b", now=T0)
    ops = Recording("ops", fail_notices=NotifyError("down", retryable=True, retry_after=30))
    deliverer = Deliverer(store=store, notifiers={"ops": ops}, instance_id="a",
                          clock=lambda: T0)
    summary = asyncio.run(deliverer.deliver_due())
    assert summary.retrying == 1
    [row] = store.notices()
    assert row["status"] == PENDING and row["last_error"] == "down"
    assert store.next_notice_due() == T0 + timedelta(seconds=30)

    ops.fail_notices = None
    later = Deliverer(store=store, notifiers={"ops": ops}, instance_id="a",
                      clock=lambda: T0 + timedelta(seconds=31))
    assert asyncio.run(later.deliver_due()).sent == 1
    assert [n.title for n in ops.notices] == ["t"]
    assert store.notices()[0]["status"] == SENT


@pytest.mark.parametrize(
    ("name", "error", "clock_offset", "reported"),
    [
        ("permanent error reported at once",
         NotifyError("channel_not_found", retryable=False), timedelta(0), True),
        ("transient error within max_age is retried, not reported",
         NotifyError("HTTP 500", retryable=True), timedelta(hours=1), False),
        ("transient error past max_age is reported",
         NotifyError("HTTP 500", retryable=True), timedelta(hours=25), True),
    ],
)
def test_a_delivery_that_finally_fails_is_reported_once_on_ops(
    store: Store, name: str, error: NotifyError, clock_offset: timedelta, reported: bool
) -> None:
    store_hits(store, ["desk"], count=2)
    desk, ops = Recording("desk", fail=error), Recording("ops")
    deliverer = Deliverer(store=store, notifiers={"desk": desk, "ops": ops}, instance_id="a",
                          clock=lambda: T0 + clock_offset, ops_notifier="ops")
    asyncio.run(deliverer.deliver_due())
    asyncio.run(deliverer.deliver_due())  # a second pass must not report again
    expected = 2 if reported else 0
    assert len(ops.notices) == expected, name
    assert len(store.notices()) == expected
    if reported:
        assert "csto" in ops.notices[0].title and "desk" in ops.notices[0].title
        assert str(error) in ops.notices[0].body
        assert {d["status"] for d in store.deliveries()} == {FAILED}


def test_the_ops_channel_never_reports_on_itself(store: Store) -> None:
    store_hits(store, ["ops"])
    store.queue_notice(key="feed-silent:dw", notifier="ops", title="dw silent", body="",
                       now=T0)
    broken = NotifyError("invalid_auth", retryable=False)
    ops = Recording("ops", fail=broken, fail_notices=broken)
    deliverer = Deliverer(store=store, notifiers={"ops": ops}, instance_id="a",
                          clock=lambda: T0, ops_notifier="ops")
    for _ in range(3):
        asyncio.run(deliverer.deliver_due())
    # The failed alert is not turned into a notice; the failed notice neither.
    assert [n["key"] for n in store.notices()] == ["feed-silent:dw"]
    assert store.notices()[0]["status"] == FAILED
    assert store.deliveries()[0]["status"] == FAILED


def test_without_ops_notify_failures_are_only_logged(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    store_hits(store, ["desk"])
    desk = Recording("desk", fail=NotifyError("not_in_channel", retryable=False))
    deliverer = Deliverer(store=store, notifiers={"desk": desk}, instance_id="a",
                          clock=lambda: T0)
    asyncio.run(deliverer.deliver_due())
    assert store.notices() == []
    assert "not_in_channel" in caplog.text


def test_notices_reach_every_real_channel(
    tmp_path: object, slack_standin: SlackStandIn, smtp_server: SmtpServer
) -> None:
    store = Store.open(f"sqlite:///{tmp_path}/n.db")
    stream = io.StringIO()
    channels: dict[str, Notifier] = {
        "screen": ConsoleNotifier(name="screen", stream=stream),
        "desk": SlackNotifier(name="desk", channel="#ops", token=slack_standin.token,
                              base_url=slack_standin.base_url),
        "mail": EmailNotifier(name="mail", host=smtp_server.host, port=smtp_server.port,
                              security="none", sender="wirewatch@newsroom.test",
                              recipients=["ops@newsroom.test"]),
    }
    title = "Feed <dw> is silent & failing"
    for name in channels:
        store.queue_notice(key=f"k-{name}", notifier=name, title=title,
                           body="Last item 6h ago.\r\nBcc: evil@example.org", now=T0)
    deliverer = Deliverer(store=store, notifiers=channels, instance_id="a", clock=lambda: T0)
    assert asyncio.run(deliverer.deliver_due()).sent == 3
    store.close()

    assert "[wirewatch ops] Feed <dw> is silent & failing" in stream.getvalue()
    [call] = slack_standin.messages
    assert call.body["text"].startswith("*Feed &lt;dw&gt; is silent &amp; failing*\n")
    [mail] = smtp_server.messages
    assert mail.message["Subject"] == f"[wirewatch ops] {title}"
    assert mail.message["Bcc"] is None
    assert "Last item 6h ago." in mail.message.get_content()
