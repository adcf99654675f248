"""EmailNotifier with smtplib against aiosmtpd on loopback (plain, STARTTLS, SSL)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from typing import Any

import pytest

from notifiers import EmailNotifier, Notifier, NotifyError
from notifiers.base import Digest
from notifiers.mail import build_digest_email, build_email
from tests.notifiers.alerts import make_alert
from tests.support import SmtpServer

SENDER = "wirewatch@news.example"
DESK = "desk@news.example"


def mailer(server: SmtpServer, **overrides: Any) -> EmailNotifier:
    options: dict[str, Any] = {
        "name": "desk-mail",
        "host": "127.0.0.1",
        "port": server.port,
        "security": server.security,
        "sender": SENDER,
        "recipients": [DESK, "editor@news.example"],
        "timeout": 5.0,
        "ca_file": server.ca_file,
    }
    options.update(overrides)
    return EmailNotifier(**options)


def parts(message: EmailMessage) -> dict[str, str]:
    text = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert text is not None and html is not None
    return {"text": text.get_content(), "html": html.get_content()}


@pytest.fixture
def smtp_ssl_server() -> Iterator[SmtpServer]:
    with SmtpServer(security="ssl") as server:
        yield server


def test_sends_multipart_text_and_html_with_headers(smtp_server: SmtpServer) -> None:
    notifier = mailer(smtp_server)
    before = datetime.now(UTC).replace(microsecond=0)

    receipt = notifier.send(make_alert())

    (mail,) = smtp_server.messages
    message = mail.message
    assert isinstance(notifier, Notifier)
    assert mail.mail_from == SENDER
    assert mail.rcpt_tos == (DESK, "editor@news.example")
    assert message.get_content_type() == "multipart/alternative"
    assert message["Subject"] == "[wirewatch] csto-exit: Armenia weighs leaving the CSTO"
    assert message["From"] == SENDER
    assert message["To"] == f"{DESK}, editor@news.example"
    assert message["Auto-Submitted"] == "auto-generated"
    assert before <= parsedate_to_datetime(message["Date"]) <= datetime.now(UTC)
    assert receipt.external_id == message["Message-ID"]
    assert message["Message-ID"].startswith("<wirewatch.")
    assert message["Message-ID"].endswith("@news.example>")

    body = parts(message)
    assert "Armenia weighs leaving the CSTO" in body["text"]
    assert "https://news.example/armenia/csto?id=42&lang=en" in body["text"]
    assert "Feed:      regional-wire" in body["text"]
    assert "Rule:      csto-exit" in body["text"]
    assert "Published: 2024-05-01 12:30 UTC" in body["text"]
    assert "to **withdraw** from the **CSTO** on" in body["text"]
    assert (
        '<a href="https://news.example/armenia/csto?id=42&amp;lang=en">'
        "Armenia weighs leaving the CSTO</a>" in body["html"]
    )
    assert (
        "to <mark><strong>withdraw</strong></mark> from the "
        "<mark><strong>CSTO</strong></mark> on" in body["html"]
    )
    assert "<td>regional-wire</td>" in body["html"]


def test_sender_with_a_display_name_as_the_config_allows(smtp_server: SmtpServer) -> None:
    # docs/config.md (and the example config.yaml) write `from: "Name <name@domain>"`.
    notifier = mailer(smtp_server, sender=f'"Newsdesk, Wire" <{SENDER}>')

    notifier.send(make_alert())

    (mail,) = smtp_server.messages
    assert mail.mail_from == SENDER
    assert mail.message["From"].addresses[0].display_name == "Newsdesk, Wire"
    assert mail.message["From"].addresses[0].addr_spec == SENDER
    assert mail.message["Message-ID"].endswith("@news.example>")


def test_message_id_is_stable_per_alert_and_distinct_across_alerts() -> None:
    first = build_email(make_alert(), sender=SENDER, recipients=[DESK])
    again = build_email(make_alert(), sender=SENDER, recipients=[DESK])
    other = build_email(make_alert(alert_id="another"), sender=SENDER, recipients=[DESK])
    assert first["Message-ID"] == again["Message-ID"]
    assert first["Message-ID"] != other["Message-ID"]


@pytest.mark.parametrize(
    "title",
    [
        pytest.param("Breaking\r\nBcc: victim@evil.example", id="crlf"),
        pytest.param("Breaking\nBcc: victim@evil.example", id="lf"),
        pytest.param("Breaking\rBcc: victim@evil.example", id="cr"),
        pytest.param("Breaking\u2028Bcc: victim@evil.example", id="line-separator"),
        pytest.param("Breaking\r\n\r\nBcc: victim@evil.example", id="blank-line-body-split"),
    ],
)
def test_line_breaks_in_title_cannot_add_headers(smtp_server: SmtpServer, title: str) -> None:
    mailer(smtp_server).send(make_alert(title=title))

    (mail,) = smtp_server.messages
    assert mail.message["Bcc"] is None
    assert "victim@evil.example" not in mail.rcpt_tos
    assert mail.message["Subject"] == "[wirewatch] csto-exit: Breaking Bcc: victim@evil.example"
    header_block = mail.raw.split(b"\r\n\r\n", 1)[0]
    assert not any(line.lower().startswith(b"bcc:") for line in header_block.split(b"\r\n"))


@pytest.mark.parametrize(
    ("changes", "in_html", "not_in_html"),
    [
        pytest.param(
            {"title": "<script>alert(1)</script>"},
            "&lt;script&gt;alert(1)&lt;/script&gt;",
            "<script>",
            id="script-in-title",
        ),
        pytest.param(
            {"snippet": "x <img src=x onerror=alert(1)> y", "marks": ((2, 31),)},
            "<strong>&lt;img src=x onerror=alert(1)&gt;</strong>",
            "<img",
            id="markup-in-marked-snippet",
        ),
        pytest.param(
            {"link": 'https://a.example/"><script>x</script>'},
            'href="https://a.example/&#34;&gt;&lt;script&gt;x&lt;/script&gt;"',
            "<script>",
            id="quote-in-link",
        ),
        pytest.param(
            {"link": "javascript:alert(1)"}, "Armenia weighs", "javascript:", id="javascript-link"
        ),
    ],
)
def test_feed_text_is_escaped_in_html(
    changes: dict[str, Any], in_html: str, not_in_html: str
) -> None:
    html = parts(build_email(make_alert(**changes), sender=SENDER, recipients=[DESK]))["html"]
    assert in_html in html
    assert not_in_html not in html


@pytest.mark.parametrize(
    "title",
    [
        pytest.param('윤 대통령 "북한 도발 즉각 대응" 지시 한미 연합훈련 확대 검토 국방부 발표',
                     id="korean"),
        pytest.param('북한, 동해상으로 탄도미사일 발사…합참 "정밀 분석 중" 한미 정보당국 긴밀 공조',
                     id="korean-2"),
        pytest.param("中国宣布 CSTO 新措施 🚨 — 北京", id="chinese-emoji"),
        pytest.param("Überschwemmung in Zürich: Pegel steigt " * 4, id="german-long"),
        pytest.param("إيران تعلن انسحابها من منظمة معاهدة الأمن الجماعي بعد اجتماع طارئ",
                     id="arabic"),
    ],
)
def test_non_ascii_subject_arrives_with_every_space(smtp_server: SmtpServer, title: str) -> None:
    mailer(smtp_server).send(make_alert(title=title))

    (mail,) = smtp_server.messages
    assert mail.message["Subject"] == f"[wirewatch] csto-exit: {' '.join(title.split())}"
    header_block = mail.raw.split(b"\r\n\r\n", 1)[0]
    assert header_block.isascii()
    assert max(len(line) for line in header_block.split(b"\r\n")) <= 78


def test_long_title_is_cut_in_the_subject() -> None:
    message = build_email(make_alert(title="word " * 200), sender=SENDER, recipients=[DESK])
    subject = message["Subject"]
    assert len(subject) <= 200
    assert subject.endswith("…")


def test_a_megabyte_title_or_link_does_not_make_a_message_servers_refuse() -> None:
    # Whole in the body, a 1 MB title and link made a 4.5 MB message; servers
    # refuse oversized mail permanently (552), and a digest took its neighbours along.
    title = "Budget vote " * 100_000
    link = "https://news.example/a?" + "x" * 1_000_000
    alert = make_alert(title=title, link=link)
    message = build_email(alert, sender=SENDER, recipients=[DESK])
    digest = build_digest_email(Digest(digest_id="d", kind="digest", title="Digest",
                                       alerts=(alert, make_alert(alert_id="2"))),
                                sender=SENDER, recipients=[DESK])
    for built in (message, digest):
        assert len(built.as_bytes()) < 20_000
        body = parts(built)
        assert "Budget vote Budget vote" in body["text"] and "…" in body["text"]
        assert "https://news.example/a?" not in body["html"]
    assert "Armenia weighs leaving the CSTO" in parts(digest)["text"]  # the other alert


def test_starttls_verifies_the_certificate_and_logs_in() -> None:
    with SmtpServer(security="starttls", users={"wire": "s3cret"}) as server:
        mailer(server, username="wire", password="s3cret").send(make_alert())
        (mail,) = server.messages
    assert mail.tls is True
    assert mail.login == "wire"


def test_starttls_server_without_credentials(smtp_starttls_server: SmtpServer) -> None:
    mailer(smtp_starttls_server).send(make_alert())
    assert [m.tls for m in smtp_starttls_server.messages] == [True]


def test_implicit_ssl(smtp_ssl_server: SmtpServer) -> None:
    mailer(smtp_ssl_server).send(make_alert())
    assert [m.tls for m in smtp_ssl_server.messages] == [True]


@pytest.mark.parametrize("security", ["starttls", "ssl"])
def test_certificate_from_an_unknown_ca_fails_permanently(security: str) -> None:
    """Permanent, not retryable: a certificate that does not verify is a configuration or
    security problem (wrong CA, wrong host, interception) that waiting will not fix, and
    it must reach an operator now rather than after hours of silent retries."""
    with SmtpServer(security=security) as server, SmtpServer() as stranger:  # type: ignore[arg-type]
        notifier = mailer(server, ca_file=stranger.ca_file)
        with pytest.raises(NotifyError) as caught:
            notifier.send(make_alert())
        assert server.messages == []
    assert caught.value.retryable is False
    assert "did not verify" in str(caught.value)
    assert "ca_file" in str(caught.value)


def test_host_name_must_match_the_certificate() -> None:
    with SmtpServer(security="starttls", cert_hosts=("mail.other.example",)) as server:
        with pytest.raises(NotifyError) as caught:
            mailer(server).send(make_alert())
        assert server.messages == []
    assert caught.value.retryable is False
    assert "did not verify" in str(caught.value)
    assert "mismatch" in str(caught.value).lower()


def test_starttls_requested_but_not_offered_never_falls_back(smtp_server: SmtpServer) -> None:
    with pytest.raises(NotifyError) as caught:
        mailer(smtp_server, security="starttls").send(make_alert())
    assert caught.value.retryable is False
    assert "does not offer STARTTLS" in str(caught.value)
    assert smtp_server.messages == []


def test_ssl_against_a_starttls_port_is_a_configuration_error(
    smtp_starttls_server: SmtpServer,
) -> None:
    with pytest.raises(NotifyError) as caught:
        mailer(smtp_starttls_server, security="ssl").send(make_alert())
    assert caught.value.retryable is False
    assert "security: ssl" in str(caught.value)


@pytest.mark.parametrize(
    ("code", "stage", "retryable", "reason"),
    [
        pytest.param(451, "data", True, "451 4.3.0", id="451-data"),
        pytest.param(452, "data", True, "452", id="452-data"),
        pytest.param(421, "mail", True, "421", id="421-mail"),
        pytest.param(450, "rcpt", True, "450", id="450-rcpt"),
        pytest.param(550, "data", False, "550 5.1.1", id="550-data"),
        pytest.param(554, "data", False, "554 5.7.1", id="554-data"),
        pytest.param(553, "mail", False, "553", id="553-mail"),
        pytest.param(550, "rcpt", False, "550", id="550-rcpt"),
    ],
)
def test_smtp_replies_map_to_notify_error(
    smtp_server: SmtpServer, code: int, stage: str, retryable: bool, reason: str
) -> None:
    # Both recipients are refused when the failure is at RCPT.
    smtp_server.fail_next(code, stage=stage, times=2 if stage == "rcpt" else 1)  # type: ignore[arg-type]

    with pytest.raises(NotifyError) as caught:
        mailer(smtp_server).send(make_alert())

    assert caught.value.retryable is retryable
    assert reason in str(caught.value)
    assert str(caught.value).startswith("email 'desk-mail': ")
    assert smtp_server.messages == []


def test_after_a_451_the_next_attempt_is_delivered(smtp_server: SmtpServer) -> None:
    smtp_server.fail_next(451)
    notifier = mailer(smtp_server)
    with pytest.raises(NotifyError):
        notifier.send(make_alert())
    notifier.send(make_alert())
    assert len(smtp_server.messages) == 1


def test_one_refused_recipient_still_counts_as_sent(smtp_server: SmtpServer) -> None:
    smtp_server.fail_next(550, stage="rcpt")  # refuses only the first recipient
    receipt = mailer(smtp_server).send(make_alert())
    (mail,) = smtp_server.messages
    assert mail.rcpt_tos == ("editor@news.example",)
    assert receipt.external_id == mail.message["Message-ID"]


def test_wrong_password_is_permanent_and_secret_free() -> None:
    with SmtpServer(security="starttls", users={"wire": "s3cret"}) as server:
        with pytest.raises(NotifyError) as caught:
            mailer(server, username="wire", password="wrong-pass").send(make_alert())
        assert server.messages == []
    assert caught.value.retryable is False
    assert "login refused" in str(caught.value)
    assert "wrong-pass" not in str(caught.value)


def test_server_down_is_retryable_and_recovers_on_restart(smtp_server: SmtpServer) -> None:
    notifier = mailer(smtp_server)
    smtp_server.stop()
    with pytest.raises(NotifyError) as caught:
        notifier.send(make_alert())
    assert caught.value.retryable is True
    assert "will retry" in str(caught.value)

    smtp_server.start()  # same port
    notifier.send(make_alert())
    assert len(smtp_server.messages) == 1


@pytest.mark.parametrize(
    ("options", "message"),
    [
        pytest.param({"security": "tls"}, "`security` must be one of", id="bad-security"),
        pytest.param({"recipients": []}, "`to` needs at least one", id="no-recipients"),
        pytest.param({"sender": "not-an-address"}, "`from` 'not-an-address'", id="bad-sender"),
        pytest.param(
            {"recipients": ["a@b.example\r\nBcc: x@y.example"]}, "`to`", id="crlf-in-recipient"
        ),
        pytest.param({"username": "u"}, "both `username` and `password`", id="half-credentials"),
        pytest.param(
            {"host": "smtp.news.example", "security": "none", "username": "u", "password": "p"},
            "clear text",
            id="password-in-clear-to-remote",
        ),
        pytest.param({"ca_file": "/nonexistent/ca.pem"}, "cannot load `ca_file`", id="ca-file"),
    ],
)
def test_bad_configuration_is_refused(
    smtp_starttls_server: SmtpServer, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match="email 'desk-mail'") as caught:
        mailer(smtp_starttls_server, **options)
    assert message in str(caught.value)


@pytest.mark.parametrize("code", [454, 421])
def test_a_temporary_login_failure_is_retried_not_failed(code: int) -> None:
    # RFC 4954 §6: 454 "Temporary authentication failure" (the auth backend is down);
    # it said "check username and password" and failed the alert for good.
    with SmtpServer(users={"wire": "s3cret"}) as server:
        # smtplib tries each mechanism offered (PLAIN, LOGIN) before giving up.
        server.fail_next(code, stage="auth", times=2)
        notifier = mailer(server, username="wire", password="s3cret")
        with pytest.raises(NotifyError) as caught:
            notifier.send(make_alert())
        assert caught.value.retryable is True
        assert str(code) in str(caught.value)
        assert "check username and password" not in str(caught.value)
        notifier.send(make_alert())
        assert [m.login for m in server.messages] == ["wire"]


def test_recipients_deferred_with_452_get_the_message_in_another_transaction(
    smtp_server: SmtpServer,
) -> None:
    # A server takes only so many recipients per message and answers 452 for the rest
    # (RFC 5321 §4.5.3.1.10): the client sends those another copy. They were dropped
    # with a log line while the alert counted as sent.
    smtp_server.fail_next(452, stage="rcpt")  # the first recipient, once
    receipt = mailer(smtp_server).send(make_alert())
    mails = smtp_server.messages
    assert sorted(r for mail in mails for r in mail.rcpt_tos) == sorted(
        [DESK, "editor@news.example"])
    assert {mail.message["Message-ID"] for mail in mails} == {receipt.external_id}
