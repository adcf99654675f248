"""Log lines: readable by default, JSON for log shippers; fixed keys; secrets redacted.

Log calls across wirewatch name things with fixed snake_case keys written into
the message (``log.info("feed=%s new_items=%d", ...)``). The JSON formatter
lifts the fixed keys (:data:`FIXED_KEYS`) out of such a message into fields of
their own, so a shipper can index ``feed`` or ``rule`` without parsing text;
``extra={"feed": ...}`` works too.

Secrets (tokens, webhook URLs, passwords, the values of ``${VAR}``s in the
config) must never reach a log, an error message or ``check`` output. The
:class:`Redactor` holds the secret values known so far and masks them in every
formatted line and, through :class:`RedactingStream`, in everything the CLI
writes to stdout and stderr.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, TextIO

FIXED_KEYS = ("feed", "rule", "notifier", "item_key")
MASK = "***"
#: Shorter values are not treated as secrets: masking "1" or "on" everywhere would
#: make logs unreadable, and such values protect nothing.
MIN_SECRET_LENGTH = 6

_ANY_PLACEHOLDER = re.compile(r"%[-#0 +]*\d*(?:\.\d+)?[sdrfi]")


class Redactor:
    """The secret values known so far; :meth:`redact` masks every one of them."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._secrets: frozenset[str] = frozenset()
        self._pattern: re.Pattern[str] | None = None
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        wanted = {s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH}
        with self._lock:
            if wanted <= self._secrets:
                return
            self._secrets = self._secrets | wanted
            # Longest first, so a URL is masked whole before a token inside it.
            ordered = sorted(self._secrets, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(s) for s in ordered))

    def redact(self, text: str) -> str:
        pattern = self._pattern
        if pattern is None or not text:
            return text
        return pattern.sub(MASK, text)


def fixed_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The fixed keys of a record: from ``extra=``, else from ``key=%s`` in its format."""
    fields = {key: getattr(record, key) for key in FIXED_KEYS if hasattr(record, key)}
    if isinstance(record.msg, str) and isinstance(record.args, tuple) and record.args:
        placeholders = list(_ANY_PLACEHOLDER.finditer(record.msg))
        if len(placeholders) == len(record.args):
            for match, value in zip(placeholders, record.args, strict=True):
                key = _key_before(record.msg, match.start())
                if key in FIXED_KEYS and key not in fields:
                    fields[key] = value
    return fields


def _key_before(msg: str, placeholder_at: int) -> str | None:
    # "feed=%s": the key is the word right before '=' that touches the placeholder.
    if placeholder_at == 0 or msg[placeholder_at - 1] != "=":
        return None
    start = placeholder_at - 1
    while start > 0 and (msg[start - 1].isalnum() or msg[start - 1] == "_"):
        start -= 1
    return msg[start:placeholder_at - 1] or None


class JsonFormatter(logging.Formatter):
    def __init__(self, redactor: Redactor | None = None) -> None:
        super().__init__()
        self._redactor = redactor or Redactor()

    def format(self, record: logging.LogRecord) -> str:
        redact = self._redactor.redact
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        for key, value in fixed_fields(record).items():
            entry[key] = redact(str(value))
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        return redact(json.dumps(entry, ensure_ascii=False))


class TextFormatter(logging.Formatter):
    def __init__(self, redactor: Redactor | None = None) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")
        self._redactor = redactor or Redactor()

    def format(self, record: logging.LogRecord) -> str:
        return self._redactor.redact(super().format(record))


class RedactingStream:
    """A text stream that masks known secrets in everything written through it."""

    def __init__(self, stream: TextIO, redactor: Redactor) -> None:
        self._stream = stream
        self._redactor = redactor

    def write(self, text: str) -> int:
        self._stream.write(self._redactor.redact(text))
        return len(text)

    def flush(self) -> None:
        self._stream.flush()

    def isatty(self) -> bool:
        return bool(getattr(self._stream, "isatty", lambda: False)())

    def fileno(self) -> int:
        return self._stream.fileno()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def configure_logging(*, level: str, fmt: str, stream: TextIO,
                      redactor: Redactor | None = None) -> Redactor:
    """Send wirewatch's logs to ``stream``; returns the redactor to tell secrets to."""
    redactor = redactor or Redactor()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter(redactor) if fmt == "json" else TextFormatter(redactor))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Third-party chatter (every HTTP request, every scheduler tick) drowns the
    # lines an operator needs.
    for noisy in ("httpx", "httpcore", "apscheduler", "slack_sdk", "mail.log", "asyncio",
                  "alembic"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    return redactor
