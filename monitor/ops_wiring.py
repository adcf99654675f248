"""Wiring for the daemon's operations side: hot reload, the HTTP listener, progress.

Called by :mod:`monitor.cli` (which owns files and the environment and passes
them in); kept here so the command module stays a list of commands.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO
from urllib.parse import urlsplit

from monitor.channels import build_notifiers, close_notifiers
from monitor.config import Config, ConfigError, ConfigProblem, host_port, load_config
from monitor.health import HealthCheck, OpsServer
from monitor.logs import Redactor
from monitor.progress import progress_bar
from monitor.reload import ConfigReloader
from monitor.service import Monitor
from notifiers import Notifier


def reloader_for(
    monitor: Monitor, *, path: Path, environ: Mapping[str, str], stdout: TextIO,
    redactor: Redactor | None = None, interval: float = 1.0,
) -> ConfigReloader[Config]:
    """A reloader that validates ``path`` like startup does and applies it to ``monitor``."""

    loaded: list[tuple[Config, dict[str, Notifier]]] = []

    def load(text: str) -> Config:
        config = load_config(text, source=str(path), environ=environ)
        if redactor is not None:  # before anything of the new config can be logged
            redactor.add(config_secrets(config, text=text, environ=environ))
        # Built while loading, so a setting a notifier refuses rejects the edit
        # (ConfigError) like any other problem.
        notifiers = build_notifiers(config, stdout=stdout)
        loaded[:] = [(config, notifiers)]
        return config

    def apply(config: Config) -> None:
        # As at start-up: an edit that turns a rule into one that matches every item
        # (or none) is applied, but must not pass unnoticed.
        for warning in config.warnings:
            logging.getLogger("wirewatch").warning("config warning: %s", warning)
        if loaded and loaded[0][0] is config:
            notifiers = loaded.pop()[1]
        else:
            notifiers = build_notifiers(config, stdout=stdout)
        try:
            monitor.apply_config(config, notifiers)
        except Exception:
            if monitor.config is not config:  # not taken: the retry builds its own
                close_notifiers(notifiers.values())
            raise

    try:
        initial = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        initial = None  # gone since startup: the first readable version is applied
    return ConfigReloader(path=path, load=load, apply=apply, reject=monitor.reject_config,
                          errors=(ConfigError,), initial_text=initial, interval=interval)


def ops_server(monitor: Monitor) -> OpsServer | None:
    """Start the /healthz and /metrics listener when ``http.listen`` is set."""
    http = monitor.config.http
    if http is None:
        return None
    host, port = host_port(http.listen)
    health = HealthCheck(last_tick=lambda: monitor.last_tick, ping=monitor.store.ping,
                         failing=monitor.failing_passes)
    try:
        server = OpsServer(host=host, port=port, health=health, metrics=monitor.metrics)
    except OSError as exc:
        # A port taken by another process (often a second wirewatch) or an address
        # not on this host: the config line is what the operator changes.
        config = monitor.config
        reason = (exc.strerror or str(exc)).lower()
        raise ConfigError([ConfigProblem(
            config.source, config.line_of(("http", "listen")), "http.listen",
            f"cannot listen on {http.listen}: {reason}; stop the process that holds it "
            "or choose another address")]) from exc
    server.start()
    return server


@contextmanager
def progress_for_once(monitor: Monitor, stream: TextIO, *, force: bool) -> Iterator[None]:
    """A bar over the feeds ``run --once`` polls (a first run polls them all)."""
    with progress_bar(stream, total=monitor.due_count(force=force),
                      description="polling feeds") as advance:
        monitor.metrics.on_feed_polled = advance
        try:
            yield
        finally:
            monitor.metrics.on_feed_polled = None


_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-[^}]*)?\}")


def config_secrets(config: Config, *, text: str, environ: Mapping[str, str]) -> set[str]:
    """Every value of ``config`` that must never be printed.

    The values of the ``${VAR}``s the file refers to (whatever key they fill),
    the secret fields of notifiers (token, webhook URL, password) and the
    passwords inside URLs (the database's, a feed's).
    """
    secrets = env_secrets(text, environ=environ)
    for entry in config.notifiers.values():
        for key in ("token", "webhook_url", "password"):
            value = getattr(entry, key, None)
            if value is not None:
                secrets.add(value.get_secret_value())
    for url in (config.database, *(feed.url for feed in config.feeds)):
        password = urlsplit(url).password
        if password:
            secrets.add(password)
    for secret in list(secrets):
        # A webhook URL is a secret as a whole and in its path (the token part).
        path = urlsplit(secret).path if "://" in secret else ""
        if len(path) > 8:
            secrets.add(path)
    return secrets


def env_secrets(text: str, *, environ: Mapping[str, str]) -> set[str]:
    """The values of the ``${VAR}``s a config text refers to (known before it loads)."""
    return {environ[name] for name in _ENV_REFERENCE.findall(text) if name in environ}
