"""Alert channels: one module per channel behind the `Notifier` protocol.

Public names: `Alert`, `Notice`, `Receipt`, `NotifyError`, `Notifier`, and the channels
`ConsoleNotifier`, `SlackNotifier`, `EmailNotifier`.
"""

from __future__ import annotations

from notifiers.base import Alert, Digest, Notice, Notifier, NotifyError, Receipt
from notifiers.console import ConsoleNotifier
from notifiers.mail import EmailNotifier
from notifiers.slack import SlackNotifier

__all__ = [
    "Alert",
    "ConsoleNotifier",
    "Digest",
    "EmailNotifier",
    "Notice",
    "Notifier",
    "NotifyError",
    "Receipt",
    "SlackNotifier",
]
