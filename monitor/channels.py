"""Config entries → notifier instances: the one registry of alert channels.

Adding a channel means a module in ``notifiers/``, its config model, and one
line in ``_BUILDERS`` here.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TextIO

from monitor.config import Config, ConsoleConfig, EmailConfig, SlackConfig
from notifiers import ConsoleNotifier, EmailNotifier, Notifier, SlackNotifier


def _secret(value: Any) -> str | None:
    return value.get_secret_value() if value is not None else None


def _slack(name: str, entry: SlackConfig, _stdout: TextIO) -> Notifier:
    return SlackNotifier(
        name=name,
        channel=entry.channel,
        token=_secret(entry.token),
        webhook_url=_secret(entry.webhook_url),
        base_url=entry.base_url,
        mention=entry.mention,
    )


def _email(name: str, entry: EmailConfig, _stdout: TextIO) -> Notifier:
    return EmailNotifier(
        name=name,
        host=entry.host,
        port=entry.port or 0,
        security=entry.security,
        username=entry.username,
        password=_secret(entry.password),
        sender=entry.from_,
        recipients=list(entry.to),
        ca_file=entry.ca_file,
    )


def _console(name: str, _entry: ConsoleConfig, stdout: TextIO) -> Notifier:
    return ConsoleNotifier(name=name, stream=stdout)


_BUILDERS: dict[type, Callable[[str, Any, TextIO], Notifier]] = {
    SlackConfig: _slack,
    EmailConfig: _email,
    ConsoleConfig: _console,
}


def build_notifiers(config: Config, *, stdout: TextIO | None = None) -> dict[str, Notifier]:
    stream = stdout or sys.stdout
    return {
        name: _BUILDERS[type(entry)](name, entry, stream)
        for name, entry in config.effective_notifiers().items()
    }
