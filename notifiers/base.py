"""The alert contract shared by every channel, and the text helpers they all need.

Exception tree of this package::

    NotifyError          one delivery attempt failed
                         .retryable   True: try again later (the outbox schedules it)
                         .retry_after seconds the channel asked us to wait, if it said so

Channels never retry on their own: a failed `send` raises `NotifyError` at once and the
outbox decides when to try again, so a slow or rate-limited channel never blocks a worker.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable
from urllib.parse import urlsplit

__all__ = [
    "Alert",
    "Digest",
    "Notice",
    "Notifier",
    "NotifyError",
    "Receipt",
    "format_published",
    "group_by_rule",
    "one_line",
    "safe_link",
    "split_marked",
    "strip_control_chars",
]


@dataclass(frozen=True, slots=True)
class Alert:
    """One hit to deliver on one channel.

    `title` and `snippet` come straight from a feed and are untrusted: every channel
    escapes them for its own format. `marks` are `(start, end)` character spans in
    `snippet` that matched the rule; channels emphasise them.
    """

    alert_id: str
    rule: str
    title: str
    link: str | None
    feed: str
    published_at: datetime | None
    snippet: str
    marks: tuple[tuple[int, int], ...] = ()
    severity: str = "normal"
    #: Other feeds that carried the same story (filled once stories exist).
    other_sources: tuple[str, ...] = ()
    #: Receipts (`Receipt.external_id`) of earlier messages of the same story on this
    #: channel, oldest first: email threads under them with In-Reply-To/References.
    thread: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Digest:
    """Several alerts in one message: a scheduled digest, the catch-up after quiet hours,
    or the summary of a flood ("12 more matches for <rule>").

    `kind` is "digest", "quiet" or "burst"; `title` is ours (it names the rule, which
    comes from the config, and counts); the alerts carry untrusted feed text as usual.
    """

    digest_id: str
    kind: str
    title: str
    alerts: tuple[Alert, ...]


def group_by_rule(alerts: tuple[Alert, ...]) -> list[tuple[str, list[Alert]]]:
    """The alerts grouped by rule, rules in order of first appearance."""
    groups: dict[str, list[Alert]] = {}
    for alert in alerts:
        groups.setdefault(alert.rule, []).append(alert)
    return list(groups.items())


@dataclass(frozen=True, slots=True)
class Notice:
    """An operational message for the people who run wirewatch (not an alert).

    Feed health, a delivery that finally failed, and similar: `title` is one line,
    `body` plain text; both may quote feed text or server replies and are escaped by
    each channel like feed text. `notice_id` is unique per notice (it seeds the email
    Message-ID).
    """

    notice_id: str
    title: str
    body: str
    severity: str = "normal"


@dataclass(frozen=True, slots=True)
class Receipt:
    """What the channel gave back for a delivered alert (Slack "channel:ts", Message-ID).

    `problem` says what went wrong although the message went out (an email some
    recipients refused): not worth a retry, which would repeat it to the others, but
    worth telling the operators.
    """

    external_id: str | None
    problem: str | None = None


class NotifyError(Exception):
    """A delivery attempt failed; the message names the channel and the fix."""

    def __init__(self, message: str, *, retryable: bool, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.retry_after = retry_after

    def __repr__(self) -> str:
        return (
            f"NotifyError({self.message!r}, retryable={self.retryable!r}, "
            f"retry_after={self.retry_after!r})"
        )


@runtime_checkable
class Notifier(Protocol):
    """One alert channel. `send` blocks; the pipeline calls it from a worker thread."""

    name: str

    def send(self, alert: Alert) -> Receipt: ...

    def send_notice(self, notice: Notice) -> Receipt: ...

    def send_digest(self, digest: Digest) -> Receipt: ...

    def close(self) -> None: ...


# --- text helpers shared by the channels -------------------------------------------------

_KEEP_CONTROLS = frozenset("\t\n")


def strip_control_chars(text: str) -> str:
    """Drop control and format characters except tab and newline.

    Feed text can carry ANSI escape sequences (ESC is a C0 control) that would repaint a
    terminal, and bidi overrides (category Cf) that make text read differently than it
    is stored; neither belongs in an alert.
    """
    return "".join(
        ch for ch in text if ch in _KEEP_CONTROLS or unicodedata.category(ch) not in ("Cc", "Cf")
    )


def one_line(text: str) -> str:
    """Collapse every run of whitespace (CR, LF, tabs, U+2028...) into one space.

    `str.split()` with no argument splits on all Unicode whitespace, which is what keeps
    a title like "x\\r\\nBcc: y" on a single header line.
    """
    # Whitespace first: CR, LF and friends are control characters too, and must become a
    # space rather than vanish and glue two words together.
    return " ".join(strip_control_chars(" ".join(text.split())).split())


def severity_flag(alert: Alert) -> str:
    """"[critical] " or "[high] " before a digest entry, else "".

    A digest sends at its own time, without the critical mention, so the entries that
    would have gone out loud must at least stand out among the rest.
    """
    severity = one_line(alert.severity)
    return f"[{severity}] " if severity in ("high", "critical") else ""


def other_sources_text(alert: Alert) -> str:
    """The story's other sources on one line: "DW (first), Reuters (+4 min)" ("" if none).

    Every channel shows this after "Also"; each formats and escapes it its own way.
    """
    return ", ".join(one_line(source) for source in alert.other_sources)


def _normalised_marks(length: int, marks: tuple[tuple[int, int], ...]) -> list[tuple[int, int]]:
    """Clip marks to the text, drop empty ones, and merge overlaps, in order."""
    clipped = ((max(0, start), min(length, end)) for start, end in marks)
    spans = sorted((start, end) for start, end in clipped if end > start)
    merged: list[tuple[int, int]] = []
    for start, end in spans:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def split_marked(text: str, marks: tuple[tuple[int, int], ...]) -> list[tuple[str, bool]]:
    """Cut `text` into `(piece, is_marked)` runs following `marks`.

    Marks are clipped to the text and merged when they overlap, so a channel can render
    them without checking them again. Whitespace at the edges of a marked run is moved
    outside it, because Slack's `*bold*` (and a tidy `<strong>`) needs the emphasis to hug
    the word.
    """
    pieces: list[tuple[str, bool]] = []

    def add(piece: str, marked: bool) -> None:
        if not piece:
            return
        if pieces and pieces[-1][1] == marked:
            pieces[-1] = (pieces[-1][0] + piece, marked)
        else:
            pieces.append((piece, marked))

    cursor = 0
    for start, end in _normalised_marks(len(text), marks):
        add(text[cursor:start], False)
        marked = text[start:end]
        core = marked.strip()
        if core:
            lead = marked[: len(marked) - len(marked.lstrip())]
            trail = marked[len(marked.rstrip()) :]
            add(lead, False)
            add(core, True)
            add(trail, False)
        else:
            add(marked, False)
        cursor = end
    add(text[cursor:], False)
    return pieces


def format_published(published_at: datetime | None) -> str:
    """Render as "2024-05-01 12:00 UTC", or "unknown" when the feed gave no date.

    The contract says aware UTC; a naive value is read as UTC rather than local time so
    the same item never shows two different times on two machines.
    """
    if published_at is None:
        return "unknown"
    if published_at.tzinfo is None:
        published_at = published_at.replace(tzinfo=UTC)
    return published_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def safe_link(link: str | None) -> str | None:
    """The link if it is an absolute http(s) URL, else None.

    Feed links are untrusted: a `javascript:` or `data:` URL must never become a
    clickable link in an alert. Whitespace and control characters are refused too,
    since no valid URL contains them raw and they could break out of a Slack `<...>`.
    """
    if not link:
        return None
    link = link.strip()
    if any(ch.isspace() or unicodedata.category(ch) in ("Cc", "Cf") for ch in link):
        return None
    try:
        parts = urlsplit(link)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    return link
