"""The wirewatch configuration: pydantic models of config.yaml, validated once at load.

``load_config(text, source=..., environ=...)`` either returns a complete, frozen ``Config``
whose rules are already compiled, or raises ``ConfigError`` listing *every* problem found,
in file order, each with its file, line and key path::

    config.yaml:14: rules[1].query: expected a term after AND
    config.yaml:20: feeds[3]: missing required key 'url'

The loader never touches files or the process environment (only ``cli.py`` does); it is
given the text, a name for it and an environment mapping.

Exceptions::

    ConfigError          .problems: list[ConfigProblem], one per line of str()

Messages never repeat the value of a secret field (``token``, ``password``,
``webhook_url``, ``database``) nor any value that took text from the environment.

One module per job, each importing only those listed above it::

    problems     ConfigProblem, ConfigError; a key path as a line and as printed text
    values       readers of single values (durations, sizes, cron lines, time zones)
    sections     one model per section: Defaults, FeedConfig, SlackConfig, RuleConfig, ...
    model        Config, the whole, and the views of it the running service reads
    reporting    Loading: collects problems, words pydantic's errors for the reader
    checks       checks that span sections, and the compilation of rule queries
    loading      load_config, which runs all of the above on one text
"""

from __future__ import annotations

from monitor.config.loading import load_config
from monitor.config.model import CONSOLE_NOTIFIER, Config
from monitor.config.problems import ConfigError, ConfigProblem
from monitor.config.sections import (
    Concurrency,
    ConsoleConfig,
    Defaults,
    EmailConfig,
    FeedConfig,
    HttpConfig,
    NotifierConfig,
    Retention,
    RuleConfig,
    SlackConfig,
    host_port,
)

__all__ = [
    "CONSOLE_NOTIFIER",
    "Concurrency",
    "Config",
    "ConfigError",
    "ConfigProblem",
    "ConsoleConfig",
    "Defaults",
    "EmailConfig",
    "FeedConfig",
    "HttpConfig",
    "NotifierConfig",
    "Retention",
    "RuleConfig",
    "SlackConfig",
    "host_port",
    "load_config",
]
