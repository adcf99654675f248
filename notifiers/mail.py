"""Email channel: one multipart/alternative message (text + HTML) per alert over SMTP.

Named `mail`, not `email`, so it never shadows the standard library package.

Transport security (`security`):
- "starttls": connect in clear, then STARTTLS (RFC 3207) before anything else is sent;
  a server that does not offer it is an error, never a silent fall-back to clear text.
- "ssl": implicit TLS from the first byte (RFC 8314, port 465).
- "none": clear text; credentials are refused unless the server is on loopback.
Both TLS modes verify the server's certificate and host name against the system trust
store, or against `ca_file` when given.

Headers are built with `email.message.EmailMessage` under `policy.SMTP`; feed text is
collapsed onto one line first, so a title such as "x\\r\\nBcc: y" stays inside Subject.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import smtplib
import ssl
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from email import policy
from email.header import Header
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import Policy
from email.utils import format_datetime, parseaddr
from typing import Any, Literal

from markupsafe import Markup, escape

from notifiers.base import (
    Alert,
    Digest,
    Notice,
    NotifyError,
    Receipt,
    format_published,
    group_by_rule,
    one_line,
    other_sources_text,
    safe_link,
    severity_flag,
    split_marked,
    strip_control_chars,
)

__all__ = [
    "EmailNotifier",
    "build_digest_email",
    "build_email",
    "build_notice_email",
    "list_id",
    "thread_headers",
]

log = logging.getLogger(__name__)

Security = Literal["starttls", "ssl", "none"]
_SECURITY_MODES = ("starttls", "ssl", "none")

# Subjects longer than this are cut; RFC 5322 §2.1.1 advises lines under 78 characters
# and the header is folded anyway, but a 2 kB subject helps nobody.
_MAX_SUBJECT = 200

# Feed text is stored whole, and a title or link can be megabytes long: in the body
# it made a message bigger than SMTP servers take (552, a permanent failure), losing
# the alert, or a whole digest with it. Slack shows 300 characters of a title.
_MAX_TITLE = 1000
# RFC 9110 §4.1 asks for URIs of at least 8000 octets to be supported; longer ones
# are left out, as the title is then shown without a link.
_MAX_LINK = 8000

# OpenSSL reasons that mean "this is not TLS at all" (security: ssl against a plain or
# STARTTLS port, for instance): a configuration error that retrying will not fix.
_TLS_CONFIG_REASONS = frozenset({"WRONG_VERSION_NUMBER", "UNSUPPORTED_PROTOCOL", "HTTP_REQUEST"})


def _message_id(alert_id: str, domain: str) -> str:
    """A Message-ID derived from the alert id (RFC 5322 §3.6.4).

    The same alert always gets the same Message-ID, so if a send is retried after an
    ambiguous failure (the server took the message but the connection dropped before
    it said so), mail systems that de-duplicate on Message-ID can drop the copy.
    """
    digest = hashlib.sha256(alert_id.encode("utf-8")).hexdigest()[:32]
    return f"<wirewatch.{digest}@{domain}>"


def _domain_of(address: str) -> str:
    domain = address.rpartition("@")[2].strip().strip(">").lower()
    return domain or "wirewatch.invalid"


def list_id(name: str, sender: str) -> str:
    """A List-Id (RFC 2919) per channel, so mail clients can filter wirewatch's alerts."""
    label = "".join(c if c.isalnum() or c == "-" else "-" for c in name.lower()).strip("-")
    return f"wirewatch {label or 'alerts'} <{label or 'alerts'}.wirewatch.{_domain_of(sender)}>"


def thread_headers(earlier: Sequence[str]) -> dict[str, str]:
    """In-Reply-To and References for a message following ``earlier`` Message-IDs
    (oldest first) of the same story (RFC 5322 §3.6.4). Only ids in `<...>` form are
    used, so a stored value can never add a header line."""
    ids = [i for i in (one_line(x) for x in earlier) if i.startswith("<") and i.endswith(">")
           and " " not in i]
    if not ids:
        return {}
    return {"In-Reply-To": ids[-1], "References": " ".join(ids)}


def _shown_title(title: str) -> str:
    """The title on one line, cut to ``_MAX_TITLE`` characters, or "(no title)"."""
    # Cut before collapsing too: one_line takes a second over a few megabytes.
    title = one_line(title[: 4 * _MAX_TITLE])
    if len(title) > _MAX_TITLE:
        title = title[: _MAX_TITLE - 1].rstrip() + "…"
    return title or "(no title)"


def _shown_link(link: str | None) -> str | None:
    """The link when it is a safe http(s) URL of a sane length."""
    return safe_link(link) if link and len(link) <= _MAX_LINK else None


def _text_body(alert: Alert) -> str:
    snippet = "".join(
        f"**{piece}**" if marked else piece
        for piece, marked in split_marked(alert.snippet, alert.marks)
    )
    link = _shown_link(alert.link)
    lines = [
        _shown_title(alert.title),
        "",
    ]
    if link:
        lines += [link, ""]
    lines += [
        f"Feed:      {one_line(alert.feed)}",
        f"Rule:      {one_line(alert.rule)}",
        f"Published: {format_published(alert.published_at)}",
    ]
    if alert.severity != "normal":
        lines.append(f"Severity:  {one_line(alert.severity)}")
    if alert.other_sources:
        lines.append(f"Also:      {other_sources_text(alert)}")
    if snippet.strip():
        lines += ["", one_line(snippet)]
    lines += ["", "-- ", "Sent by wirewatch."]
    return "\n".join(lines) + "\n"


def _html_body(alert: Alert) -> str:
    """Every piece of feed text goes through markupsafe's `escape`; the only markup is
    ours. The link is only an <a> when it is an http(s) URL."""
    title = escape(_shown_title(alert.title))
    link = _shown_link(alert.link)
    headline = Markup('<a href="{}">{}</a>').format(link, title) if link else title
    # HTML folds runs of whitespace itself, so the snippet keeps its offsets (and the
    # marks stay aligned); only control characters are dropped.
    snippet = Markup("").join(
        Markup("<mark><strong>{}</strong></mark>").format(strip_control_chars(piece))
        if marked
        else escape(strip_control_chars(piece))
        for piece, marked in split_marked(alert.snippet, alert.marks)
    )
    rows = [
        ("Feed", one_line(alert.feed)),
        ("Rule", one_line(alert.rule)),
        ("Published", format_published(alert.published_at)),
    ]
    if alert.severity != "normal":
        rows.append(("Severity", one_line(alert.severity)))
    if alert.other_sources:
        rows.append(("Also", other_sources_text(alert)))
    details = Markup("").join(
        Markup('<tr><th align="left" style="padding-right:1em">{}</th><td>{}</td></tr>').format(
            label, value
        )
        for label, value in rows
    )
    snippet_html = Markup("<p>{}</p>").format(snippet) if snippet.strip() else Markup("")
    return str(
        Markup(
            '<!DOCTYPE html>\n<html><head><meta charset="utf-8"></head>'
            '<body style="font-family:sans-serif">'
            '<h2 style="font-size:1.1em">{}</h2>{}<table>{}</table>'
            '<p style="color:#777;font-size:0.8em">Sent by wirewatch.</p>'
            "</body></html>\n"
        ).format(headline, snippet_html, details)
    )


class _EncodedSubject(str):
    """A non-ASCII Subject that folds itself as RFC 2047 encoded words.

    `policy.SMTP`'s own folder (CPython 3.11) drops the space at a fold between two
    encoded words, and decoders join adjacent encoded words without one (RFC 2047
    §6.2), so a Korean or Chinese headline reached the reader with words glued
    together ("핵 협상 진전" as "핵 협상진전"). `email.header.Header` keeps every
    space inside an encoded word. The policy uses an object as the header itself when
    it has a matching `name`, and folds it with its `fold`.
    """

    name = "Subject"

    def fold(self, *, policy: Policy) -> str:
        encoded = Header(str(self), "utf-8", header_name=self.name).encode(
            linesep=policy.linesep)
        return f"{self.name}: {encoded}{policy.linesep}"


def _new_message(subject: str, *, sender: str, recipients: Sequence[str],
                 now: datetime | None, message_key: str) -> EmailMessage:
    """The headers every wirewatch mail carries; ``subject`` is already one line."""
    message = EmailMessage(policy=policy.SMTP)
    if len(subject) > _MAX_SUBJECT:
        subject = subject[: _MAX_SUBJECT - 1].rstrip() + "…"
    message["Subject"] = subject if subject.isascii() else _EncodedSubject(subject)
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Date"] = format_datetime((now or datetime.now(UTC)).astimezone(UTC))
    # Derived from the alert, so a resend after a crash carries the same id.
    message["Message-ID"] = _message_id(message_key, _domain_of(sender))
    # RFC 3834 §5: marks the mail as machine-made, so vacation responders stay quiet.
    message["Auto-Submitted"] = "auto-generated"
    return message


def build_email(
    alert: Alert, *, sender: str, recipients: Sequence[str], now: datetime | None = None
) -> EmailMessage:
    """The message for one alert: headers safe against CR/LF, text and HTML parts."""
    message = _new_message(
        f"[wirewatch] {one_line(alert.rule)}: {_shown_title(alert.title)}",
        sender=sender, recipients=recipients, now=now, message_key=alert.alert_id)
    message["X-Wirewatch-Rule"] = one_line(alert.rule)
    message["X-Wirewatch-Feed"] = one_line(alert.feed)
    if alert.severity != "normal":
        message["X-Wirewatch-Severity"] = one_line(alert.severity)
    for header, value in thread_headers(alert.thread).items():
        message[header] = value
    message.set_content(_text_body(alert))
    message.add_alternative(_html_body(alert), subtype="html")
    return message


def build_digest_email(
    digest: Digest, *, sender: str, recipients: Sequence[str], now: datetime | None = None
) -> EmailMessage:
    """One message listing many alerts grouped by rule: text and HTML parts."""
    message = _new_message(f"[wirewatch] {one_line(digest.title)}", sender=sender,
                           recipients=recipients, now=now,
                           message_key=f"digest:{digest.digest_id}")
    groups = group_by_rule(digest.alerts)
    text = [one_line(digest.title), ""]
    html_groups: list[Markup] = []
    for rule, alerts in groups:
        text.append(f"{one_line(rule)} ({len(alerts)})")
        items: list[Markup] = []
        for alert in alerts:
            title = _shown_title(alert.title)
            link = _shown_link(alert.link)
            others = other_sources_text(alert)
            flag = severity_flag(alert)
            text.append(f"  - {flag}{title} ({one_line(alert.feed)})"
                        + (f"\n    {link}" if link else "")
                        + (f"\n    Also: {others}" if others else ""))
            label = Markup('<a href="{}">{}</a>').format(link, title) if link else escape(title)
            if flag:
                label = Markup("<strong>{}</strong>{}").format(flag, label)
            also = Markup("<br><small>Also: {}</small>").format(others) if others else Markup("")
            items.append(Markup("<li>{} <small>({})</small>{}</li>").format(
                label, one_line(alert.feed), also))
        text.append("")
        html_groups.append(Markup("<h3>{} ({})</h3><ul>{}</ul>").format(
            one_line(rule), len(alerts), Markup("").join(items)))
    text += ["-- ", "Sent by wirewatch."]
    message.set_content("\n".join(text) + "\n")
    message.add_alternative(str(Markup(
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8"></head>'
        '<body style="font-family:sans-serif"><h2 style="font-size:1.1em">{}</h2>{}'
        '<p style="color:#777;font-size:0.8em">Sent by wirewatch.</p></body></html>\n'
    ).format(one_line(digest.title), Markup("").join(html_groups))), subtype="html")
    return message


def build_notice_email(
    notice: Notice, *, sender: str, recipients: Sequence[str], now: datetime | None = None
) -> EmailMessage:
    """A plain-text message for the operators, subject "[wirewatch ops] <title>"."""
    message = _new_message(f"[wirewatch ops] {one_line(notice.title) or '(no title)'}",
                           sender=sender, recipients=recipients, now=now,
                           message_key=f"notice:{notice.notice_id}")
    if notice.severity != "normal":
        message["X-Wirewatch-Severity"] = one_line(notice.severity)
    body = strip_control_chars(notice.body).strip()
    message.set_content(f"{one_line(notice.title)}\n\n{body}\n\n-- \nSent by wirewatch.\n")
    return message


def _is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _check_address(name: str, what: str, address: str) -> str:
    """An addr-spec from config ("desk@example.org"); display names are not accepted so
    the header can never be confused by quoting."""
    address = address.strip()
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain or any(c.isspace() or c in '<>,;"' for c in address):
        raise ValueError(f"email {name!r}: `{what}` {address!r} is not an email address")
    try:
        Address(addr_spec=address)
    except (ValueError, IndexError) as exc:
        raise ValueError(f"email {name!r}: `{what}` {address!r} is not an email address") from exc
    return address


def _check_sender(name: str, value: str) -> tuple[str, str]:
    """``from`` as the From header and the envelope sender: ``desk@example.org`` or
    ``Desk <desk@example.org>``, as the config accepts. The header is rebuilt from the
    parsed parts, so a display name is quoted by the email package, never as written."""
    if "\r" in value or "\n" in value:
        raise ValueError(f"email {name!r}: `from` {value!r} is not an email address")
    display, address = parseaddr(value.strip())
    address = _check_address(name, "from", address or value)
    if not display:
        return address, address
    return str(Address(display_name=display, addr_spec=address)), address


class EmailNotifier:
    """Sends each alert as one email to every recipient, one SMTP session per alert."""

    def __init__(
        self,
        *,
        name: str,
        host: str,
        port: int,
        security: Security,
        username: str | None = None,
        password: str | None = None,
        sender: str,
        recipients: Sequence[str],
        timeout: float = 20.0,
        ca_file: str | None = None,
    ) -> None:
        if security not in _SECURITY_MODES:
            raise ValueError(
                f"email {name!r}: `security` must be one of starttls, ssl, none; got {security!r}"
            )
        if not recipients:
            raise ValueError(f"email {name!r}: `to` needs at least one address")
        if (username is None) != (password is None):
            raise ValueError(f"email {name!r}: give both `username` and `password`, or neither")
        if username is not None and security == "none" and not _is_loopback(host):
            raise ValueError(
                f"email {name!r}: refusing to send the password in clear text to {host}; "
                "use security: starttls or ssl"
            )
        self.name = name
        # No pacing of our own: the SMTP server queues and pushes back with 4xx.
        self.pacing_key: str | None = None
        self.min_interval = 0.0
        self.host = host
        self.port = port or (465 if security == "ssl" else 587 if security == "starttls" else 25)
        self.security: Security = security
        #: The From header; the envelope sender is the bare address.
        self.sender, self._envelope_sender = _check_sender(name, sender)
        self.recipients = tuple(_check_address(name, "to", r) for r in recipients)
        self._username = username
        self._password = password
        self._timeout = timeout
        self._tls: ssl.SSLContext | None = None
        if security != "none":
            try:
                self._tls = ssl.create_default_context(cafile=ca_file)
            except (OSError, ssl.SSLError) as exc:
                raise ValueError(
                    f"email {name!r}: cannot load `ca_file` {ca_file!r} ({exc}); "
                    "it must be a PEM file of CA certificates"
                ) from exc

    def send(self, alert: Alert) -> Receipt:
        message = build_email(alert, sender=self.sender, recipients=self.recipients)
        message["List-Id"] = list_id(self.name, self.sender)
        return self._submit(message)

    def send_digest(self, digest: Digest) -> Receipt:
        message = build_digest_email(digest, sender=self.sender, recipients=self.recipients)
        message["List-Id"] = list_id(self.name, self.sender)
        return self._submit(message)

    def send_notice(self, notice: Notice) -> Receipt:
        return self._submit(
            build_notice_email(notice, sender=self.sender, recipients=self.recipients)
        )

    def _submit(self, message: EmailMessage) -> Receipt:
        try:
            refused = self._deliver(message)
        except NotifyError:
            raise
        except smtplib.SMTPRecipientsRefused as exc:
            raise self._refused(exc) from exc
        except smtplib.SMTPAuthenticationError as exc:
            if 400 <= exc.smtp_code < 500:
                # 454 "Temporary authentication failure" (RFC 4954 §6), 421: the server
                # could not check the password just now; it may well be right.
                raise self._from_reply(exc.smtp_code, exc.smtp_error) from exc
            raise NotifyError(
                f"email {self.name!r}: login refused by {self.host} "
                f"({exc.smtp_code} {_reason(exc.smtp_error)}); check username and password",
                retryable=False,
            ) from exc
        except smtplib.SMTPNotSupportedError as exc:
            if "STARTTLS" in str(exc):
                fix = (
                    f"{self.host} does not offer STARTTLS and wirewatch never falls back to "
                    "clear text; use `security: ssl` for an implicit-TLS port, or enable "
                    "STARTTLS on the server"
                )
            else:
                fix = (
                    f"{self.host} does not offer AUTH on this connection; remove "
                    "`username`/`password`, or check `security` (many servers offer AUTH "
                    "only over TLS)"
                )
            raise NotifyError(f"email {self.name!r}: {fix}", retryable=False) from exc
        except smtplib.SMTPResponseException as exc:
            raise self._from_reply(exc.smtp_code, exc.smtp_error) from exc
        except ssl.SSLCertVerificationError as exc:
            # Permanent: a certificate that does not verify is a configuration or
            # security problem (wrong CA, wrong host name, expired certificate, or an
            # interception). Retrying hides it; failing loudly gets someone to fix it.
            raise NotifyError(
                f"email {self.name!r}: the certificate of {self.host} did not verify "
                f"({exc.verify_message}); set `ca_file` to the CA that signed it, or fix "
                "the server's certificate",
                retryable=False,
            ) from exc
        except ssl.SSLError as exc:
            if exc.reason in _TLS_CONFIG_REASONS:
                raise NotifyError(
                    f"email {self.name!r}: {self.host}:{self.port} does not speak TLS the way "
                    f"`security: {self.security}` expects ({exc.reason}); port 465 uses ssl, "
                    "587 uses starttls",
                    retryable=False,
                ) from exc
            raise self._unreachable(exc) from exc
        except (smtplib.SMTPException, OSError) as exc:
            # Connection refused or reset, DNS failure, timeout, server hung up.
            raise self._unreachable(exc) from exc
        problem = None
        if refused:
            details = "; ".join(f"{address}: {code} {_reason(msg)}"
                                for address, (code, msg) in refused.items())
            problem = (f"email {self.name!r}: sent, but {self.host} refused some recipients "
                       f"({details}); check the `to` addresses")
        return Receipt(external_id=str(message["Message-ID"]), problem=problem)

    def _deliver(self, message: EmailMessage) -> dict[str, tuple[int, Any]]:
        """Send ``message`` to every recipient; the recipients refused (the others got it)."""
        smtp: smtplib.SMTP
        if self.security == "ssl":
            smtp = smtplib.SMTP_SSL(self.host, self.port, timeout=self._timeout, context=self._tls)
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self._timeout)
        try:
            smtp.ehlo()
            if self.security == "starttls":
                # starttls() raises SMTPNotSupportedError when the server does not offer
                # it: never fall back to clear text.
                smtp.starttls(context=self._tls)
                smtp.ehlo()
            if self._username is not None and self._password is not None:
                smtp.login(self._username, self._password)
            refused = smtp.send_message(
                message, from_addr=self._envelope_sender, to_addrs=list(self.recipients)
            )
            refused = self._send_deferred(smtp, message, refused)
            if refused:
                # Some recipients took it: retrying would send them a second copy, so the
                # delivery counts as sent and the refusals are reported.
                log.warning(
                    "channel=%s refused_recipients=%s",
                    self.name,
                    ",".join(f"{a}:{code}" for a, (code, _msg) in refused.items()),
                )
            return refused
        finally:
            # The message is already accepted (or the error is already raised): a
            # failing QUIT must not change the outcome.
            try:
                smtp.quit()
            except (smtplib.SMTPException, OSError):
                smtp.close()

    def _send_deferred(
        self, smtp: smtplib.SMTP, message: EmailMessage, refused: Mapping[str, tuple[int, Any]]
    ) -> dict[str, tuple[int, Any]]:
        """Send the recipients a transaction deferred (4xx) another copy in the same
        session, while each copy reaches some; what stays refused is returned.

        A server that takes only so many recipients per message answers 452 for the
        rest, and RFC 5321 §4.5.3.1.10 has the client send them in a new transaction.
        The message is already accepted for the others, so nothing here may raise: a
        retry of the whole delivery would send them a second copy.
        """
        # Each round reaches one more recipient at least, or ends: a transaction that
        # reaches none raises SMTPRecipientsRefused.
        while True:
            deferred = [a for a, (code, _msg) in refused.items() if 400 <= code < 500]
            if not deferred:
                return dict(refused)
            try:
                again = smtp.send_message(message, from_addr=self._envelope_sender,
                                          to_addrs=deferred)
            except smtplib.SMTPRecipientsRefused as exc:
                return {**refused, **exc.recipients}
            except smtplib.SMTPResponseException as exc:
                return {**refused, **{a: (exc.smtp_code, exc.smtp_error) for a in deferred}}
            except (smtplib.SMTPException, OSError) as exc:
                return {**refused, **{a: (421, str(exc).encode()) for a in deferred}}
            refused = {a: v for a, v in refused.items() if a not in deferred} | again

    def _from_reply(self, code: int, reply: bytes | str) -> NotifyError:
        reason = _reason(reply)
        # RFC 5321 §4.2.1: 4yz is a transient failure, 5yz a permanent one.
        if 400 <= code < 500:
            return NotifyError(
                f"email {self.name!r}: {self.host} deferred the message ({code} {reason}); "
                "will retry",
                retryable=True,
            )
        return NotifyError(
            f"email {self.name!r}: {self.host} rejected the message ({code} {reason}); "
            "check `from`, `to`, `security` and the server's policy",
            retryable=False,
        )

    def _refused(self, exc: smtplib.SMTPRecipientsRefused) -> NotifyError:
        codes = {address: code for address, (code, _msg) in exc.recipients.items()}
        details = "; ".join(
            f"{address}: {code} {_reason(msg)}" for address, (code, msg) in exc.recipients.items()
        )
        retryable = all(400 <= code < 500 for code in codes.values())
        fix = "will retry" if retryable else "check the `to` addresses"
        return NotifyError(
            f"email {self.name!r}: every recipient was refused ({details}); {fix}",
            retryable=retryable,
        )

    def _unreachable(self, exc: BaseException) -> NotifyError:
        kind = "timed out" if isinstance(exc, TimeoutError) else "failed"
        return NotifyError(
            f"email {self.name!r}: connection to {self.host}:{self.port} {kind} "
            f"({type(exc).__name__}: {exc}); will retry",
            retryable=True,
        )

    def close(self) -> None:
        """One SMTP session per alert: nothing stays open between sends."""


def _reason(reply: bytes | str) -> str:
    text = reply.decode("utf-8", errors="replace") if isinstance(reply, bytes) else reply
    return one_line(text)[:300]
