"""The SMTP server collects mail, scripts failures and survives a restart."""

from __future__ import annotations

import smtplib
import ssl

import pytest

from tests.support import SmtpServer

MESSAGE = b"From: a@x.example\r\nTo: b@x.example\r\nSubject: hi\r\n\r\nbody\r\n"


def test_collects_parsed_messages_with_envelope(smtp_server: SmtpServer) -> None:
    with smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=5) as client:
        client.sendmail("a@x.example", ["b@x.example", "c@x.example"], MESSAGE)
    (mail,) = smtp_server.wait_for_messages(1, timeout=2)
    assert mail.mail_from == "a@x.example"
    assert mail.rcpt_tos == ("b@x.example", "c@x.example")
    assert mail.message["Subject"] == "hi"
    assert mail.tls is False and mail.login is None


def test_starttls_is_required_and_verifiable(smtp_starttls_server: SmtpServer) -> None:
    server = smtp_starttls_server
    with (
        smtplib.SMTP(server.host, server.port, timeout=5) as client,
        pytest.raises(smtplib.SMTPSenderRefused),
    ):
        client.sendmail("a@x.example", ["b@x.example"], MESSAGE)
    with smtplib.SMTP(server.host, server.port, timeout=5) as client:
        client.starttls(context=ssl.create_default_context(cafile=server.ca_file))
        client.sendmail("a@x.example", ["b@x.example"], MESSAGE)
    assert [m.tls for m in server.messages] == [True]


def test_failures_are_scripted_per_stage(smtp_server: SmtpServer) -> None:
    smtp_server.fail_next(451, times=1)
    smtp_server.fail_next(550, stage="rcpt")
    with smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=5) as client:
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            client.sendmail("a@x.example", ["b@x.example"], MESSAGE)
        with pytest.raises(smtplib.SMTPDataError) as deferred:
            client.sendmail("a@x.example", ["b@x.example"], MESSAGE)
        client.sendmail("a@x.example", ["b@x.example"], MESSAGE)
    assert deferred.value.smtp_code == 451
    assert len(smtp_server.messages) == 1


def test_stop_and_start_on_the_same_port(smtp_server: SmtpServer) -> None:
    port = smtp_server.port
    smtp_server.stop()
    with pytest.raises(ConnectionRefusedError):
        smtplib.SMTP(smtp_server.host, port, timeout=2)
    smtp_server.start()
    assert smtp_server.port == port
    with smtplib.SMTP(smtp_server.host, port, timeout=5) as client:
        client.sendmail("a@x.example", ["b@x.example"], MESSAGE)
    assert len(smtp_server.messages) == 1


def test_wait_for_messages_times_out_clearly(smtp_server: SmtpServer) -> None:
    with pytest.raises(TimeoutError, match="got 0 messages, expected 1"):
        smtp_server.wait_for_messages(1, timeout=0.1)
