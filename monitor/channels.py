"""Config entries → notifier instances: the one registry of alert channels.

Adding a channel means a module in ``notifiers/``, its config model, and one
line in ``_BUILDERS`` here.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterable
from typing import Any, TextIO

from monitor.config import (
    Config,
    ConfigError,
    ConfigProblem,
    ConsoleConfig,
    EmailConfig,
    SlackConfig,
)
from notifiers import ConsoleNotifier, EmailNotifier, Notifier, SlackNotifier

log = logging.getLogger("wirewatch.channels")


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
    """One notifier per config entry, or ConfigError listing every entry a notifier
    refuses (e.g. a ``ca_file`` that cannot be loaded): the config's own checks do not
    read files, so this is where such a setting is first found wrong, and it must be
    reported as a config problem (exit 1, a rejected reload), not a crash."""
    stream = stdout or sys.stdout
    built: dict[str, Notifier] = {}
    problems: list[ConfigProblem] = []
    for name, entry in config.effective_notifiers().items():
        try:
            built[name] = _BUILDERS[type(entry)](name, entry, stream)
        except ValueError as exc:
            path = ("notifiers", name)
            problems.append(ConfigProblem(config.source, config.line_of(path),
                                          f"notifiers.{name}", str(exc)))
    if problems:
        close_notifiers(built.values())
        raise ConfigError(problems)
    return built


def close_notifiers(notifiers: Iterable[Notifier]) -> None:
    for notifier in notifiers:
        try:
            notifier.close()
        except Exception:  # closing must not mask the real outcome
            log.exception("notifier=%s close failed", notifier.name)
