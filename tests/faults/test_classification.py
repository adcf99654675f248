"""Transient or permanent, end to end: the real channels against the Slack stand-in and
aiosmtpd, through the outbox. A permanent failure fails at once with the server's
reason and is reported on ops; a transient one is retried."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.delivery import Backoff, Deliverer
from monitor.holds import ChannelPolicy, DeliveryPolicy
from monitor.store import FAILED, PENDING, SENT, Store
from notifiers import ConsoleNotifier, EmailNotifier, Notifier, SlackNotifier
from tests.faults.outbox import store_hits
from tests.support import SlackStandIn, SmtpServer


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(f"sqlite:///{tmp_path / 'classify.db'}")
    yield opened
    opened.close()


def slack_channel(standin: SlackStandIn, _smtp: SmtpServer) -> Notifier:
    return SlackNotifier(name="desk", channel="#desk", token=standin.token,
                         base_url=standin.base_url)


def mail_channel(_standin: SlackStandIn, smtp: SmtpServer) -> Notifier:
    return EmailNotifier(name="desk", host=smtp.host, port=smtp.port, security="none",
                         sender="wirewatch@newsroom.test", recipients=["desk@newsroom.test"])


Script = Callable[[SlackStandIn, SmtpServer], None]

CASES: list[tuple[str, Callable[[SlackStandIn, SmtpServer], Notifier], Script, str, str]] = [
    ("slack invalid_auth", slack_channel,
     lambda s, _: s.fail_next(error="invalid_auth"), FAILED, "invalid_auth"),
    ("slack channel_not_found", slack_channel,
     lambda s, _: s.fail_next(error="channel_not_found"), FAILED, "channel_not_found"),
    ("slack not_in_channel", slack_channel,
     lambda s, _: s.fail_next(error="not_in_channel"), FAILED, "not_in_channel"),
    ("slack 429", slack_channel,
     lambda s, _: s.fail_next(status=429, headers={"Retry-After": "30"}), PENDING,
     "rate limited"),
    ("slack 503", slack_channel, lambda s, _: s.fail_next(status=503), PENDING, "HTTP 503"),
    ("slack ok:false internal_error", slack_channel,
     lambda s, _: s.fail_next(error="internal_error"), PENDING, "internal_error"),
    ("smtp 451 on DATA", mail_channel, lambda _, m: m.fail_next(451), PENDING, "451"),
    ("smtp 421 on MAIL", mail_channel, lambda _, m: m.fail_next(421, stage="mail"), PENDING,
     "421"),
    ("smtp 554 on DATA", mail_channel, lambda _, m: m.fail_next(554), FAILED, "554"),
    ("smtp rejected address", mail_channel, lambda _, m: m.fail_next(550, stage="rcpt"),
     FAILED, "550"),
    ("smtp server down", mail_channel, lambda _, m: m.stop(), PENDING, "will retry"),
]


@pytest.mark.parametrize(("name", "channel", "script", "status", "reason"), CASES,
                         ids=[c[0] for c in CASES])
def test_failure_classification_end_to_end(
    store: Store, slack_standin: SlackStandIn, smtp_server: SmtpServer, name: str,
    channel: Callable[[SlackStandIn, SmtpServer], Notifier], script: Script, status: str,
    reason: str,
) -> None:
    script(slack_standin, smtp_server)
    now = datetime.now(UTC)
    store_hits(store, rule="csto", notifiers=["desk"], keys=["k1"], now=now)
    ops = io.StringIO()
    deliverer = Deliverer(
        store=store,
        notifiers={"desk": channel(slack_standin, smtp_server),
                   "ops": ConsoleNotifier(name="ops", stream=ops)},
        instance_id="test:1", ops_notifier="ops", backoff=Backoff(first=timedelta(hours=1)),
        policy=DeliveryPolicy(channels={"desk": ChannelPolicy(burst=None)}),
    )
    asyncio.run(deliverer.deliver_due())

    [row] = store.deliveries()
    assert row["status"] == status, name
    assert reason in (row["last_error"] or ""), row
    if status == FAILED:
        # Reported once on ops, with the server's reason.
        assert ops.getvalue().count("[wirewatch ops]") == 1
        assert reason in ops.getvalue()
    else:
        assert ops.getvalue() == ""
        assert store.next_delivery_due() is not None
        assert store.next_delivery_due() > now + timedelta(seconds=20)  # type: ignore[operator]


def test_recipients_refused_while_others_got_the_alert_are_reported(
    store: Store, smtp_server: SmtpServer,
) -> None:
    # The alert reached one recipient, so it counts as sent (a retry would give that
    # one a second copy); the one refused for good is reported on ops, not only logged.
    smtp_server.fail_next(550, stage="rcpt")  # the first recipient
    now = datetime.now(UTC)
    store_hits(store, rule="csto", notifiers=["desk"], keys=["k1"], now=now)
    ops = io.StringIO()
    desk = EmailNotifier(name="desk", host=smtp_server.host, port=smtp_server.port,
                         security="none", sender="wirewatch@newsroom.test",
                         recipients=["gone@newsroom.test", "desk@newsroom.test"])
    deliverer = Deliverer(
        store=store, notifiers={"desk": desk, "ops": ConsoleNotifier(name="ops", stream=ops)},
        instance_id="test:1", ops_notifier="ops",
        policy=DeliveryPolicy(channels={"desk": ChannelPolicy(burst=None)}),
    )
    asyncio.run(deliverer.deliver_due())

    [row] = store.deliveries()
    assert row["status"] == SENT
    assert [m.rcpt_tos for m in smtp_server.messages] == [("desk@newsroom.test",)]
    assert ops.getvalue().count("[wirewatch ops]") == 1
    assert "gone@newsroom.test" in ops.getvalue() and "550" in ops.getvalue()
