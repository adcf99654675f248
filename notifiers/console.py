"""Console channel: one readable block per alert on a text stream (stdout by default).

It is what runs when no notifier is configured, and what an operator reads in a
terminal, so feed text is stripped of control characters (no ANSI escapes from a feed
can repaint the screen) and matched words are shown as **word**.
"""

from __future__ import annotations

import threading
from typing import TextIO

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
    severity_flag,
    split_marked,
    strip_control_chars,
)

__all__ = ["ConsoleNotifier"]


def render_console(alert: Alert) -> str:
    """The block printed for one alert, ending with a blank line."""
    snippet = "".join(
        f"**{piece}**" if marked else piece
        for piece, marked in split_marked(alert.snippet, alert.marks)
    )
    lines = [f"[wirewatch] {one_line(alert.rule)}"]
    if alert.severity != "normal":
        lines[0] += f" ({one_line(alert.severity)})"
    lines += [
        f"  title:     {one_line(alert.title) or '(no title)'}",
        f"  link:      {one_line(alert.link) if alert.link else '(none)'}",
        f"  feed:      {one_line(alert.feed)}",
        f"  published: {format_published(alert.published_at)}",
    ]
    if alert.other_sources:
        lines.append(f"  also:      {other_sources_text(alert)}")
    if snippet.strip():
        lines.append(f"  snippet:   {one_line(snippet)}")
    return "\n".join(lines) + "\n\n"


def render_console_notice(notice: Notice) -> str:
    """The block printed for one operational notice, ending with a blank line."""
    lines = [f"[wirewatch ops] {one_line(notice.title) or '(no title)'}"]
    lines += [f"  {line}" for line in strip_control_chars(notice.body).strip().splitlines()]
    return "\n".join(lines) + "\n\n"


def render_console_digest(digest: Digest) -> str:
    """A digest or summary block: the title, then the alerts grouped by rule."""
    lines = [f"[wirewatch] {one_line(digest.title)}"]
    for rule, alerts in group_by_rule(digest.alerts):
        lines.append(f"  {one_line(rule)} ({len(alerts)})")
        for alert in alerts:
            link = one_line(alert.link) if alert.link else "(no link)"
            title = one_line(alert.title) or "(no title)"
            lines.append(f"    - {severity_flag(alert)}{title} <{link}> ({one_line(alert.feed)})")
            if alert.other_sources:
                lines.append(f"      also: {other_sources_text(alert)}")
    return "\n".join(lines) + "\n\n"


class ConsoleNotifier:
    """Writes alerts to `stream`, flushing after each so a pipe or log sees it at once."""

    def __init__(self, *, name: str, stream: TextIO) -> None:
        self.name = name
        self.pacing_key: str | None = None
        self.min_interval = 0.0
        self._stream = stream
        # Workers may send concurrently; one lock keeps each block in one piece.
        self._lock = threading.Lock()

    def send(self, alert: Alert) -> Receipt:
        return self._write(render_console(alert))

    def send_notice(self, notice: Notice) -> Receipt:
        return self._write(render_console_notice(notice))

    def send_digest(self, digest: Digest) -> Receipt:
        return self._write(render_console_digest(digest))

    def _write(self, block: str) -> Receipt:
        try:
            with self._lock:
                self._stream.write(block)
                self._stream.flush()
        except (OSError, ValueError) as exc:  # ValueError: write to a closed file
            raise NotifyError(
                f"console {self.name!r}: cannot write to the output stream ({exc})",
                retryable=False,
            ) from exc
        return Receipt(external_id=None)

    def close(self) -> None:
        """The stream belongs to the caller (usually stdout); leave it open."""
