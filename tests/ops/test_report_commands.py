"""The commands that only read the database (feeds, hits, stats) run in a shell that
lacks the daemon's secrets; anything else wrong with the config still stops them."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from monitor.cli import main
from monitor.store import Store

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
    Store.open(f"sqlite:///{tmp_path / 'ww.db'}").close()  # the daemon ran before
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


@pytest.mark.parametrize("command", [["feeds"], ["hits"], ["stats"], ["rules", "backtest", "csto"]])
def test_a_report_on_a_database_file_that_does_not_exist_says_so(
        tmp_path: Path, command: list[str]) -> None:
    # A mistyped path in `database` made each report create an empty database and
    # answer with nothing at all, leaving the stray file behind.
    config = tmp_path / "config.yaml"
    missing = tmp_path / "wirewatch-typo.db"
    config.write_text(CONFIG.format(database=f"sqlite:///{missing}"))
    code, out, err = cli(config, *command, environ={"SLACK_BOT_TOKEN": "xoxb-1"})
    assert code == 1, out
    assert (f"wirewatch: no database at {missing}: check `database` in the config "
            "(`wirewatch run` creates it on its first start)") in err
    assert not missing.exists()
