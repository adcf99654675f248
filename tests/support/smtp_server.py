"""An SMTP server on 127.0.0.1 (aiosmtpd) that collects what it receives.

Modes: `security="none"` (plain), `"starttls"` (STARTTLS required before MAIL) and
`"ssl"` (implicit TLS, as on port 465). TLS uses a certificate for `cert_hosts`
(default 127.0.0.1 and localhost) from a throwaway `trustme` CA; `ca_file` is that
CA's PEM, for clients to verify the server with. `users={"name": "password"}` turns on AUTH.

    with SmtpServer(security="starttls") as smtp:
        ...send with ca_file=smtp.ca_file...
        mail = smtp.wait_for_messages(1)[0]
        assert mail.message["Subject"] == "..."

Failures can be scripted: `smtp.fail_next(451, times=2)` answers the next two messages'
DATA with 451, `fail_next(550, stage="rcpt")` refuses recipients, `fail_next(454,
stage="auth")` answers the next AUTH with 454 (needs `users`). `stop()` and `start()`
keep the port, so a test can take SMTP down and bring it back.
"""

from __future__ import annotations

import email
import email.policy
import errno
import logging
import socket
import ssl
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

__all__ = ["ReceivedMail", "SmtpServer"]


class _DropLoginDataWarning(logging.Filter):
    """aiosmtpd 1.4 warns about its own deprecated `login_data` on every successful AUTH."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "login_data is deprecated" not in record.getMessage()


logging.getLogger("mail.log").addFilter(_DropLoginDataWarning())

Security = Literal["none", "starttls", "ssl"]
Stage = Literal["auth", "mail", "rcpt", "data"]

_DEFAULT_REPLY = {
    421: "421 4.3.2 Service shutting down",
    450: "450 4.2.1 Mailbox busy, try again later",
    451: "451 4.3.0 Temporary local problem, try again later",
    454: "454 4.7.0 Temporary authentication failure",
    452: "452 4.3.1 Insufficient system storage",
    550: "550 5.1.1 Mailbox unavailable",
    552: "552 5.3.4 Message too big",
    553: "553 5.1.3 Mailbox name not allowed",
    554: "554 5.7.1 Message rejected as spam",
}


@dataclass(frozen=True, slots=True)
class ReceivedMail:
    """One message accepted by the server.

    `message` is parsed with `email.policy.default` (so `get_body`, `iter_parts` and
    decoded headers work); `raw` is the bytes as received; `tls` says whether the
    session was encrypted; `login` is the AUTH user, if any.
    """

    mail_from: str
    rcpt_tos: tuple[str, ...]
    message: EmailMessage
    raw: bytes
    tls: bool
    login: str | None
    received_at: float


@dataclass(frozen=True, slots=True)
class _Failure:
    stage: Stage
    reply: str


class _Handler:
    def __init__(self, owner: SmtpServer) -> None:
        self._owner = owner

    async def handle_MAIL(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        failure = self._owner._take_failure("mail")
        if failure:
            return failure
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        failure = self._owner._take_failure("rcpt")
        if failure:
            return failure
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        failure = self._owner._take_failure("data")
        if failure:
            return failure
        raw = envelope.original_content or envelope.content or b""
        if isinstance(raw, str):
            raw = raw.encode()
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        login = session.auth_data if isinstance(session.auth_data, str) else None
        self._owner._record(
            ReceivedMail(
                mail_from=envelope.mail_from or "",
                rcpt_tos=tuple(envelope.rcpt_tos),
                message=message,
                raw=raw,
                # aiosmtpd fills session.ssl only after STARTTLS, not for implicit TLS.
                tls=session.ssl is not None or self._owner.security == "ssl",
                login=login,
                received_at=time.time(),
            )
        )
        return "250 2.0.0 Message accepted for delivery"


class SmtpServer:
    """aiosmtpd on 127.0.0.1 in a background thread; see the module docstring."""

    def __init__(
        self,
        *,
        security: Security = "none",
        users: dict[str, str] | None = None,
        port: int = 0,
        cert_hosts: tuple[str, ...] = ("127.0.0.1", "localhost"),
    ) -> None:
        self.host = "127.0.0.1"
        self.security: Security = security
        self.users = dict(users or {})
        self._port_picked = not port
        self.port = port or _free_port(self.host)
        self._lock = threading.Condition()
        self._messages: list[ReceivedMail] = []
        self._failures: deque[_Failure] = deque()
        self._controller: Controller | None = None
        self._tmp = tempfile.TemporaryDirectory(prefix="wirewatch-smtp-")
        self.ca = trustme.CA()
        self.ca_file = str(Path(self._tmp.name) / "ca.pem")
        self.ca.cert_pem.write_to_path(self.ca_file)
        self._server_cert = self.ca.issue_cert(*cert_hosts)

    # --- lifecycle --------------------------------------------------------------------

    def start(self) -> Self:
        if self._controller is not None:
            return self
        kwargs: dict[str, Any] = {
            "hostname": self.host,
            "port": self.port,
            # A fixed greeting name: the default asks DNS for this machine's FQDN.
            "server_hostname": "smtp.wirewatch.test",
            "ready_timeout": 10.0,
        }
        if self.security == "starttls":
            kwargs["tls_context"] = self._server_tls_context()
            kwargs["require_starttls"] = True
        elif self.security == "ssl":
            kwargs["ssl_context"] = self._server_tls_context()
        if self.users:
            kwargs["authenticator"] = self._authenticate
            # aiosmtpd offers AUTH only after STARTTLS unless told otherwise. It does not
            # count implicit TLS, so that mode lifts the requirement; a plain server with
            # users offers AUTH in clear, like a local relay on loopback.
            kwargs["auth_require_tls"] = self.security == "starttls"
        for attempt in range(3):
            controller = Controller(_Handler(self), **{**kwargs, "port": self.port})
            try:
                controller.start()
                break
            except OSError as exc:
                # The port picked was free when picked; another process can bind it
                # before the server does. Pick again rather than fail the test.
                if exc.errno != errno.EADDRINUSE or not self._port_picked or attempt == 2:
                    raise
                self.port = _free_port(self.host)
        self._controller = controller
        return self

    def stop(self) -> None:
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()

    def close(self) -> None:
        self.stop()
        self._tmp.cleanup()

    @property
    def is_running(self) -> bool:
        return self._controller is not None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- scripting --------------------------------------------------------------------

    def fail_next(
        self, code: int = 451, *, times: int = 1, stage: Stage = "data", reply: str | None = None
    ) -> None:
        """Answer the next `times` commands of `stage` (AUTH, MAIL, RCPT or DATA) with
        `code`."""
        text = reply or _DEFAULT_REPLY.get(code, f"{code} Scripted failure")
        if not text.startswith(str(code)):
            text = f"{code} {text}"
        with self._lock:
            self._failures.extend([_Failure(stage, text)] * times)

    def reset(self) -> None:
        with self._lock:
            self._messages.clear()
            self._failures.clear()

    # --- what was received ------------------------------------------------------------

    @property
    def messages(self) -> list[ReceivedMail]:
        with self._lock:
            return list(self._messages)

    def wait_for_messages(self, count: int, timeout: float = 60.0) -> list[ReceivedMail]:
        """Block until at least `count` messages arrived; raise TimeoutError if not."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self._messages) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"SMTP server got {len(self._messages)} messages, expected {count}"
                    )
                self._lock.wait(remaining)
            return list(self._messages)

    # --- internals --------------------------------------------------------------------

    def _server_tls_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._server_cert.configure_cert(context)
        return context

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        failure = self._take_failure("auth")
        if failure:
            return AuthResult(success=False, handled=False, message=failure)
        if isinstance(auth_data, LoginPassword):
            login = auth_data.login.decode()
            if self.users.get(login) == auth_data.password.decode():
                return AuthResult(success=True, auth_data=login)
        return AuthResult(success=False, handled=False)

    def _take_failure(self, stage: Stage) -> str | None:
        with self._lock:
            for index, failure in enumerate(self._failures):
                if failure.stage == stage:
                    del self._failures[index]
                    return failure.reply
        return None

    def _record(self, mail: ReceivedMail) -> None:
        with self._lock:
            self._messages.append(mail)
            self._lock.notify_all()


def _free_port(host: str) -> int:
    """A port free right now. aiosmtpd's readiness check connects to the configured port,
    so it cannot be given 0; the small race with other binders is acceptable in tests."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])
