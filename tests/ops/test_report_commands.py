"""The commands that only read the database (feeds, hits, stats) run in a shell that
lacks the daemon's secrets; anything else wrong with the config still stops them."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from monitor.cli import main

CONFIG = """\
database: "{database}"
feeds:
  - name: wire
    url: http://127.0.0.1:1/feed
rules:
  - name: csto
    query: CSTO
notifiers:
  desk:
    type: slack
    channel: "#desk"
    token: ${{SLACK_BOT_TOKEN}}
"""


def cli(config: Path, *args: str, environ: dict[str, str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(["--config", str(config), *args], stdout=out, stderr=err, environ=environ)
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("command", [["feeds"], ["hits"], ["stats"]])
def test_reports_run_without_the_daemons_secrets(tmp_path: Path, command: list[str]) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG.format(database=f"sqlite:///{tmp_path / 'ww.db'}"))
    code, out, err = cli(config, *command, "--format", "json", environ={})
    assert code == 0, err
    json.loads(out)
    # The daemon itself still needs them.
    code, _, err = cli(config, "run", "--once", environ={})
    assert code == 1
    assert "environment variable SLACK_BOT_TOKEN is not set" in err


def test_reports_still_need_the_database_and_a_valid_config(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG.format(database="${DATABASE_URL}"))
    code, _, err = cli(config, "hits", environ={})
    assert code == 1
    assert "database: environment variable DATABASE_URL is not set" in err
    config.write_text(CONFIG.format(database=f"sqlite:///{tmp_path / 'ww.db'}")
                      .replace("query: CSTO", "query: CSTO AND"))
    code, _, err = cli(config, "hits", environ={})
    assert code == 1
    assert "expected a term after AND" in err
