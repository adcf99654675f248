"""``load_config``: config text in, a complete ``Config`` or a ``ConfigError`` out.

It runs the passes in turn (reading the YAML, validating the models, the cross checks,
compiling the rules) and raises with every problem they found together. It never touches
files or the process environment; only ``cli.py`` does.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import ValidationError

from monitor.config.checks import CrossChecks
from monitor.config.model import Config
from monitor.config.problems import ConfigError, ConfigProblem, render_path
from monitor.config.reporting import Loading, kind_of
from monitor.yamlsource import read_yaml


def load_config(text: str, *, source: str, environ: Mapping[str, str]) -> Config:
    """Validate config text; return the Config or raise ConfigError listing every problem.

    ``source`` names the text in messages (usually the file path); ``environ`` supplies
    ``${VAR}`` values. Rules are compiled here, so a Config that loads can run.
    """
    document = read_yaml(text, environ=environ)
    loading = Loading(source, document.lines, document.expanded, document.hashtag_comments,
                      document.block_lines)
    for found in document.problems:
        loading.add_problem(
            ConfigProblem(source, found.line, render_path(found.path), found.message)
        )
        # A value that could not be read stands in as "" or None; do not report it twice.
        loading.unreadable.add(found.path)
    data = document.data
    if data is None and not document.problems:
        loading.add_problem(
            ConfigProblem(source, None, "", "the file is empty; it needs at least a 'feeds:' list")
        )
    elif data is not None and not isinstance(data, dict):
        loading.add((), f"expected a mapping of settings at the top, got {kind_of(data)}")
    if loading.problems and not isinstance(data, dict):
        raise ConfigError(loading.sorted_problems())

    config: Config | None = None
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors():
            loading.add_pydantic(error, data)
    checks = CrossChecks(loading, data)
    checks.run()
    ruleset = checks.compiled_rules()
    if loading.problems or config is None or ruleset is None:
        raise ConfigError(loading.sorted_problems(), loading.warnings)
    config._source = source
    config._lines = dict(document.lines)
    config._ruleset = ruleset
    config._warnings = tuple(loading.warnings)
    return config
