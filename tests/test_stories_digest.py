"""A story held for a digest: the digest lists the sources known when it is sent, and
only sources after that produce story updates (an immediate alert: the same).

One story, first seen in feed ``a`` at 07:00 (Berlin), then in ``b`` (07:04) and ``c``
(07:09) while its alert waits for the 08:00 digest; ``d`` carries it at 08:30. Real
Slack stand-in (reached by slack-sdk) and aiosmtpd, a fake wall clock (time-machine),
SQLite and PostgreSQL. The deliverer and the story desk run on the default clock,
which time-machine moves.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import time_machine

from monitor.delivery import Deliverer, alert_for
from monitor.digest import DigestSchedule
from monitor.holds import ChannelPolicy, DeliveryPolicy
from monitor.pacing import Pacer
from monitor.store import FeedSpec, FeedUpdate, NewHit, NewItem, Store
from monitor.story_desk import StoryDesk, send_story_updates
from notifiers import Alert, Digest, EmailNotifier, Notifier, Receipt, SlackNotifier
from tests.dbs import database_url, postgres_url  # noqa: F401  (fixtures)
from tests.support import SlackStandIn, SmtpServer

BERLIN = ZoneInfo("Europe/Berlin")
TITLE = "Armenia seeks to distance itself from Russia's military pact"
LEAD = "Armenia will not take part in events of the Russian-led Collective Security Treaty."
DAILY = "0 8 * * *"


def berlin(hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 3, 2, hour, minute, tzinfo=BERLIN)


def policy_for(where: str) -> DeliveryPolicy:
    """The 08:00 digest as the rule's own schedule, or as both channels'."""
    if where == "rule":
        return DeliveryPolicy(rule_digests={"csto": DigestSchedule(DAILY, "Europe/Berlin",
                                                                   rule="csto")})
    schedule = DigestSchedule(DAILY, "Europe/Berlin")
    return DeliveryPolicy(channels={"desk": ChannelPolicy(digest=schedule),
                                    "mail": ChannelPolicy(digest=schedule)})


def poll(store: Store, desk: StoryDesk, feed: str,
         notifiers: tuple[str, ...] = ("desk", "mail")) -> None:
    """``feed`` carries the story now (the same article, its own tracking parameters);
    rule csto matches it for ``notifiers``."""

    def match(items: Sequence[NewItem]) -> list[NewHit]:
        return [NewHit(rule="csto", item_key=i.item_key, severity="normal", matched_terms=(),
                       snippet=i.summary, marks=(), notifiers=notifiers) for i in items]

    now = datetime.now(UTC)
    feed_id = next(s.id for s in store.due_feeds(now=now, force=True) if s.name == feed)
    item = NewItem(item_key=f"{feed}-1", guid=f"{feed}-1",
                   link=f"https://caucasus.example/armenia-csto?utm_source={feed}",
                   title=TITLE, summary=LEAD, content="", author="", categories=(),
                   published_at=now)
    store.store_poll(feed_id, [item], match=match, stories=desk, update_=FeedUpdate(
        polled_at=now, next_poll_at=now + timedelta(minutes=5), status=200, error=None))


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:  # noqa: F811
    opened = Store.open(database_url)
    opened.sync_feeds([FeedSpec(n, f"http://127.0.0.1:1/{n}") for n in "abcd"],
                      now=berlin(6).astimezone(UTC))
    yield opened
    opened.close()


def notifiers_for(slack: SlackStandIn, smtp: SmtpServer) -> dict[str, Notifier]:
    return {
        "desk": SlackNotifier(name="desk", channel="#desk", token=slack.token,
                              base_url=slack.base_url),
        "mail": EmailNotifier(name="mail", host="127.0.0.1", port=smtp.port, security="none",
                              sender="wirewatch@newsroom.test",
                              recipients=["editors@newsroom.test"]),
    }


def deliver(store: Store, notifiers: dict[str, Notifier], policy: DeliveryPolicy) -> None:
    asyncio.run(Deliverer(store=store, notifiers=notifiers, instance_id="test:1",
                          policy=policy, pacer=Pacer(scale=0.0)).deliver_due())


def slack_also(message: dict[str, object]) -> list[str]:
    """The "Also:" lines of a Slack digest's entries."""
    sections = [b["text"]["text"] for b in message["blocks"]  # type: ignore[attr-defined]
                if b["type"] == "section"]
    return [line.strip() for text in sections for line in text.splitlines()
            if line.strip().startswith("Also:")]


def parts(mail: EmailMessage) -> tuple[str, str]:
    plain = mail.get_body(("plain",)).get_content().replace("\r\n", "\n")  # type: ignore[union-attr]
    html = mail.get_body(("html",)).get_content()  # type: ignore[union-attr]
    return plain, html


@pytest.mark.parametrize("where", ["rule", "notifier"])
@pytest.mark.parametrize("mode", ["thread", "edit"])
def test_digest_lists_the_sources_known_when_sent_and_later_ones_update_once(
    store: Store, slack_standin: SlackStandIn, smtp_server: SmtpServer, where: str, mode: str,
) -> None:
    policy = policy_for(where)
    notifiers = notifiers_for(slack_standin, smtp_server)
    with time_machine.travel(berlin(7), tick=False) as clock:
        desk = StoryDesk.load(store, update_modes={"desk": mode, "mail": "thread"})
        poll(store, desk, "a")
        deliver(store, notifiers, policy)
        for minute, feed in ((4, "b"), (9, "c")):
            clock.move_to(berlin(7, minute))
            poll(store, desk, feed)
            deliver(store, notifiers, policy)
        assert slack_standin.calls == [] and smtp_server.messages == []

        clock.move_to(berlin(8))
        deliver(store, notifiers, policy)
        [digest] = slack_standin.messages
        assert digest.body["text"] == "Digest: 1 match since 2026-03-02 06:00 UTC"
        # The entry is feed a's hit; b and c joined its story before the digest went out.
        assert slack_also(digest.body) == ["Also: b (+4 min), c (+9 min)"]
        [mail] = smtp_server.messages
        plain, html = parts(mail.message)
        assert "\n    Also: b (+4 min), c (+9 min)\n" in plain
        assert "<small>Also: b (+4 min), c (+9 min)</small>" in html
        # Both sources are in the digest: their updates are dropped, nothing else is sent.
        assert len(slack_standin.calls) == 1 and len(smtp_server.messages) == 1
        updates = store.story_updates()
        assert len(updates) == 4  # (b, c) x (desk, mail)
        assert {(u["status"], u["last_error"]) for u in updates} == {
            ("sent", "listed in the original alert")}

        # A fourth source after the digest: exactly one update per channel.
        clock.move_to(berlin(8, 30))
        poll(store, desk, "d")
        deliver(store, notifiers, policy)
        clock.move_to(berlin(9))
        deliver(store, notifiers, policy)

    desk_ts = digest.response["ts"]  # type: ignore[index]
    # An edit would turn the digest into this one story: a thread reply instead,
    # naming the story among the digest's entries.
    assert slack_standin.calls_to("chat.update") == []
    [reply] = slack_standin.calls[1:]
    assert reply.method == "chat.postMessage" and reply.ok
    assert reply.body["thread_ts"] == desk_ts
    assert reply.body["text"] == f"Also reported by: d (+1 h 30 min): {TITLE}"
    [follow_up] = smtp_server.messages[1:]
    assert follow_up.message["In-Reply-To"] == mail.message["Message-ID"]
    plain, html = parts(follow_up.message)
    assert "Also:      b (+4 min), c (+9 min), d (+1 h 30 min)" in plain
    assert "b (+4 min), c (+9 min), d (+1 h 30 min)" in html
    assert len(store.story_updates()) == 6


class PollWhileSending(SlackNotifier):
    """The Slack notifier, with another source of the story stored a minute later
    while a digest or an alert is on its way (another instance's poll, say)."""

    def __init__(self, *, during: Callable[[], None], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._during = during

    def send_digest(self, digest: Digest) -> Receipt:
        self._during()
        return super().send_digest(digest)

    def send(self, alert: Alert) -> Receipt:
        self._during()
        return super().send(alert)


DIGEST_AT_8 = DeliveryPolicy(channels={"desk": ChannelPolicy(
    digest=DigestSchedule(DAILY, "Europe/Berlin"))})


def story_from_a_then_b_while_sending(store: Store, slack_standin: SlackStandIn,
                                      clock: time_machine.Traveller, *,
                                      b_fetched_before: bool = False) -> PollWhileSending:
    """Feed a carries the story now; the Slack notifier returned stores feed b's copy
    while its first message is on its way: fetched a minute later, or (``b_fetched_
    before``) a minute before the message's slot came two minutes on, as by a poll that
    was still parsing and matching while the message's sources were read."""
    desk = StoryDesk.load(store, update_modes={"desk": "thread"})

    def another_source() -> None:
        clock.shift(timedelta(minutes=-1 if b_fetched_before else 1))
        poll(store, desk, "b", ("desk",))
        if b_fetched_before:
            clock.shift(timedelta(minutes=1))

    poll(store, desk, "a", ("desk",))
    if b_fetched_before:
        clock.shift(timedelta(minutes=2))
    return PollWhileSending(during=another_source, name="desk", channel="#desk",
                            token=slack_standin.token, base_url=slack_standin.base_url)


def reply_to_the_only_message(slack_standin: SlackStandIn) -> str:
    """The text of the one thread reply to the one message, which did not name b: b was
    not known when its sources were read, so b gets its reply rather than being dropped
    as "listed in the original alert"."""
    original, reply = slack_standin.messages
    assert "Also" not in str(original.body)
    assert reply.body["thread_ts"] == original.response["ts"]  # type: ignore[index]
    return str(reply.body["text"])


def test_a_source_stored_while_the_digest_is_sent_gets_its_update(
    store: Store, slack_standin: SlackStandIn,
) -> None:
    with time_machine.travel(berlin(7), tick=False) as clock:
        slack = story_from_a_then_b_while_sending(store, slack_standin, clock)
        deliver(store, {"desk": slack}, DIGEST_AT_8)
        clock.move_to(berlin(8))
        deliver(store, {"desk": slack}, DIGEST_AT_8)
    assert reply_to_the_only_message(slack_standin) == (
        f"Also reported by: b (+1 h 1 min): {TITLE}")


def test_a_source_stored_while_an_alert_is_sent_gets_its_update(
    store: Store, slack_standin: SlackStandIn,
) -> None:
    with time_machine.travel(berlin(7), tick=False) as clock:
        slack = story_from_a_then_b_while_sending(store, slack_standin, clock)
        deliver(store, {"desk": slack}, DeliveryPolicy())
        clock.shift(timedelta(minutes=1))
        deliver(store, {"desk": slack}, DeliveryPolicy())
    assert reply_to_the_only_message(slack_standin) == "Also reported by: b (+1 min)"


def test_a_source_fetched_before_an_alert_went_out_but_stored_after_gets_its_update(
    store: Store, slack_standin: SlackStandIn,
) -> None:
    """b was seen before the alert's send time yet not named in it: the update is sent
    (judged by what the message named, not by comparing times)."""
    with time_machine.travel(berlin(7), tick=False) as clock:
        slack = story_from_a_then_b_while_sending(store, slack_standin, clock,
                                                  b_fetched_before=True)
        deliver(store, {"desk": slack}, DeliveryPolicy())
        clock.shift(timedelta(minutes=1))
        deliver(store, {"desk": slack}, DeliveryPolicy())
    assert reply_to_the_only_message(slack_standin) == "Also reported by: b (+1 min)"
    assert [(u["status"], u["last_error"]) for u in store.story_updates()] == [("sent", None)]


def test_a_source_fetched_before_a_digest_went_out_but_stored_after_gets_its_update(
    store: Store, slack_standin: SlackStandIn,
) -> None:
    with time_machine.travel(berlin(7, 56), tick=False) as clock:
        slack = story_from_a_then_b_while_sending(store, slack_standin, clock,
                                                  b_fetched_before=True)
        deliver(store, {"desk": slack}, DIGEST_AT_8)  # 07:58: held for the 08:00 digest
        clock.move_to(berlin(8))
        deliver(store, {"desk": slack}, DIGEST_AT_8)  # b stored during the send, seen 07:59
        clock.move_to(berlin(8, 1))
        deliver(store, {"desk": slack}, DIGEST_AT_8)
    assert reply_to_the_only_message(slack_standin) == f"Also reported by: b (+3 min): {TITLE}"


def test_an_alert_sent_before_messages_recorded_their_sources_is_judged_by_its_time(
    store: Store, slack_standin: SlackStandIn,
) -> None:
    """A delivery marked sent without what it named (an earlier version's row, NULL
    after migration 0004): a source seen before it went out counts as named, one seen
    after it gets its update."""
    slack = SlackNotifier(name="desk", channel="#desk", token=slack_standin.token,
                          base_url=slack_standin.base_url)
    with time_machine.travel(berlin(7), tick=False) as clock:
        desk = StoryDesk.load(store, update_modes={"desk": "thread"})
        poll(store, desk, "a", ("desk",))
        [claimed] = store.claim_deliveries(now=datetime.now(UTC), lease=timedelta(minutes=2),
                                           claimer="test:1")
        receipt = slack.send(alert_for(claimed))
        clock.shift(timedelta(minutes=2))
        store.mark_sent(claimed.id, external_id=receipt.external_id, now=datetime.now(UTC))
        clock.shift(timedelta(minutes=-1))
        poll(store, desk, "b", ("desk",))  # seen at 07:01, before the 07:02 send
        clock.shift(timedelta(minutes=2))
        poll(store, desk, "c", ("desk",))  # seen at 07:03, after it
        deliver(store, {"desk": slack}, DeliveryPolicy())

    assert [(u["status"], u["last_error"]) for u in store.story_updates()] == [
        ("sent", "listed in the original alert"), ("sent", None)]
    _alert, reply = slack_standin.messages
    assert reply.body["text"] == "Also reported by: c (+3 min)"


def test_an_update_waits_for_its_digest_without_counting_or_churning(
    store: Store, slack_standin: SlackStandIn, smtp_server: SmtpServer,
) -> None:
    """An update behind an alert held for the 08:00 digest is looked at again at 08:00,
    not every half minute all night, and its waiting is not counted as attempts."""
    notifiers = notifiers_for(slack_standin, smtp_server)
    policy = policy_for("notifier")
    with time_machine.travel(berlin(7), tick=False) as clock:
        desk = StoryDesk.load(store, update_modes={"desk": "thread", "mail": "thread"})
        poll(store, desk, "a")
        deliver(store, notifiers, policy)
        clock.move_to(berlin(7, 4))
        poll(store, desk, "b")
        deliver(store, notifiers, policy)
        waiting = store.story_updates()
        assert [(u["status"], u["last_error"]) for u in waiting] == [
            ("pending", "waiting for the original alert")] * 2
        assert {u["next_attempt_at"] for u in waiting} == {berlin(8).astimezone(UTC)}
        assert {u["attempts"] for u in waiting} == {0}

        for minute in (5, 30, 59):  # passes before the digest leave them alone
            clock.move_to(berlin(7, minute))
            deliver(store, notifiers, policy)
        assert store.story_updates() == waiting
        assert slack_standin.calls == [] and smtp_server.messages == []

        clock.move_to(berlin(8))
        deliver(store, notifiers, policy)
    # b is in the digest: both updates are settled as listed, one attempt each.
    assert [(u["status"], u["last_error"], u["attempts"]) for u in store.story_updates()] == [
        ("sent", "listed in the original alert", 1)] * 2


def test_updates_obey_a_retry_after_and_hold_back_the_channel(
    store: Store, slack_standin: SlackStandIn, smtp_server: SmtpServer,
) -> None:
    """Slack rate-limits the first of two updates with Retry-After: 30. The other update
    of that channel waits too, and neither goes out before the 30 s are up (they were
    retried at once, and the next one sent straight into the limit)."""
    notifiers = {"desk": notifiers_for(slack_standin, smtp_server)["desk"]}
    immediate = DeliveryPolicy()
    with time_machine.travel(berlin(7), tick=False) as clock:
        desk = StoryDesk.load(store, update_modes={"desk": "thread"})
        poll(store, desk, "a", notifiers=("desk",))
        deliver(store, notifiers, immediate)
        assert len(slack_standin.calls_to("chat.postMessage")) == 1  # the alert
        clock.move_to(berlin(7, 4))
        poll(store, desk, "b", notifiers=("desk",))
        poll(store, desk, "c", notifiers=("desk",))
        slack_standin.fail_next(status=429, headers={"Retry-After": "30"})
        deliver(store, notifiers, immediate)
        assert len(slack_standin.calls_to("chat.postMessage")) == 2  # only the refused one
        paused_until = (berlin(7, 4) + timedelta(seconds=30)).astimezone(UTC)
        assert [(u["status"], u["next_attempt_at"]) for u in store.story_updates()] == [
            ("pending", paused_until)] * 2

        clock.move_to(berlin(7, 4) + timedelta(seconds=29))
        deliver(store, notifiers, immediate)
        assert len(slack_standin.calls_to("chat.postMessage")) == 2
        clock.move_to(berlin(7, 4) + timedelta(seconds=30))
        deliver(store, notifiers, immediate)
    replies = slack_standin.calls_to("chat.postMessage")[2:]
    assert [r.body["text"].split(" (")[0] for r in replies] == [
        "Also reported by: b", "Also reported by: c"]
    assert [u["status"] for u in store.story_updates()] == ["sent", "sent"]


def test_updates_past_the_pass_budget_are_given_back_for_the_next_pass(
    store: Store, slack_standin: SlackStandIn, smtp_server: SmtpServer,
) -> None:
    """A paced channel's backlog of updates must not hold the delivery pass (and every
    channel's next alerts) for long: past the budget, claimed updates go back unsent
    and unleased, with no attempt counted."""
    notifiers = {"desk": notifiers_for(slack_standin, smtp_server)["desk"]}
    with time_machine.travel(berlin(7), tick=False) as clock:
        desk = StoryDesk.load(store, update_modes={"desk": "thread"})
        poll(store, desk, "a", notifiers=("desk",))
        deliver(store, notifiers, DeliveryPolicy())
        clock.move_to(berlin(7, 4))
        for feed in "bcd":
            poll(store, desk, feed, notifiers=("desk",))
        done = asyncio.run(send_story_updates(store, notifiers, original_alert=alert_for,
                                              claimer="test:1", budget=0.0))
        assert (done.sent, done.retrying, done.failed) == (0, 0, 0)
        now = berlin(7, 4).astimezone(UTC)
        assert [(u["status"], u["attempts"], u["next_attempt_at"])
                for u in store.story_updates()] == [("pending", 0, now)] * 3
        deliver(store, notifiers, DeliveryPolicy())  # claimable at once: no lease left
    assert [u["status"] for u in store.story_updates()] == ["sent"] * 3
    assert len(slack_standin.calls_to("chat.postMessage")) == 4
