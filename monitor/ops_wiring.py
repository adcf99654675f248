"""Wiring for the daemon's operations side: hot reload, the HTTP listener, progress.

Called by :mod:`monitor.cli` (which owns files and the environment and passes
them in); kept here so the command module stays a list of commands.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from monitor.channels import build_notifiers
from monitor.config import Config, ConfigError, host_port, load_config
from monitor.health import HealthCheck, OpsServer
from monitor.progress import progress_bar
from monitor.reload import ConfigReloader
from monitor.service import Monitor


def reloader_for(
    monitor: Monitor, *, path: Path, environ: Mapping[str, str], stdout: TextIO,
    interval: float = 1.0,
) -> ConfigReloader[Config]:
    """A reloader that validates ``path`` like startup does and applies it to ``monitor``."""

    def load(text: str) -> Config:
        return load_config(text, source=str(path), environ=environ)

    def apply(config: Config) -> None:
        monitor.apply_config(config, build_notifiers(config, stdout=stdout))

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
    health = HealthCheck(last_tick=lambda: monitor.last_tick, ping=monitor.store.ping)
    server = OpsServer(host=host, port=port, health=health, metrics=monitor.metrics)
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
