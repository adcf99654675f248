"""Report and rule options past the calendar: one usage error naming the option, never
an OverflowError traceback. Run through ``main`` on real SQLite and PostgreSQL stores."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from monitor.cli import main
from monitor.store import Store
from tests.dbs import database_url, postgres_url  # noqa: F401  (fixtures)

TOO_LONG = "a duration must be at most 36500d (about 100 years)"


def _cli(database: str, tmp_path: Path, *args: str) -> tuple[int, str, str]:
    config = tmp_path / "config.yaml"
    config.write_text(f'database: "{database}"\nfeeds:\n  - name: dw\n'
                      "    url: http://127.0.0.1:1/dw\n"
                      "rules:\n  - name: csto\n    query: CSTO\n")
    out, err = io.StringIO(), io.StringIO()
    code = main([*args, "--config", str(config)], stdout=out, stderr=err, environ={})
    return code, out.getvalue(), err.getvalue()


CASES = [
    # now - 99999999d is before year 1: OverflowError out of parse_since.
    ("hits since before year 1", ["hits", "--since", "99999999d"], TOO_LONG),
    # timedelta() itself overflowed while reading the option.
    ("hits since beyond a timedelta", ["hits", "--since", "999999999999d"], TOO_LONG),
    ("backtest since before year 1", ["rules", "backtest", "csto", "--since", "3000000d"],
     TOO_LONG),
    ("backtest since beyond a timedelta",
     ["rules", "backtest", "csto", "--since", "999999999999d"], TOO_LONG),
    # Reached the database driver, which failed on it: "StatementError: OverflowError".
    ("hits since an ISO time past 9999 in UTC", ["hits", "--since", "9999-12-31T23:00-05:00"],
     "'9999-12-31T23:00-05:00' is outside the dates wirewatch can handle "
     "(years 1 to 9999 in UTC)"),
]


@pytest.mark.parametrize(("argv", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_an_option_past_the_calendar_is_a_usage_error(
        database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],  # noqa: F811
        argv: list[str], message: str) -> None:
    code, _, _ = _cli(database_url, tmp_path, *argv)
    # argparse reports usage errors on the process's stderr itself.
    err = capsys.readouterr().err
    assert code == 2, err
    assert f"argument --since: {message}" in err
    assert "Traceback" not in err


def test_the_longest_since_still_reads_the_store(database_url: str,  # noqa: F811
                                                 tmp_path: Path) -> None:
    Store.open(database_url).close()  # reports read a database the daemon made
    code, out, err = _cli(database_url, tmp_path, "hits", "--since", "36500d",
                          "--format", "json")
    assert (code, out.strip(), err) == (0, "[]", "")
    code, out, err = _cli(database_url, tmp_path, "rules", "backtest", "csto",
                          "--since", "36500d")
    assert code == 0, err
    assert "0 of 0 items since" in out


@pytest.mark.parametrize(("argv", "message"), [
    # date.fromordinal(): "ordinal must be >= 1", with a traceback.
    (["stats", "--days", "99999999"], "argument --days: must be at most 36500, got 99999999"),
    # timedelta(seconds=1e20): "Python int too large to convert to C int".
    (["run", "--once", "--deliver-timeout", "1e20"],
     "argument --deliver-timeout: expected at most 3153600000 seconds (about 100 years), "
     "got '1e20'"),
    # Past 64 bits: "OverflowError: Python int too large to convert to SQLite INTEGER".
    (["hits", "--limit", "99999999999999999999"],
     "argument --limit: must be at most 1000000000, got 99999999999999999999"),
    (["rules", "backtest", "csto", "--examples", "99999999999999999999"],
     "argument --examples: expected a whole number from 0 to 10000, got "
     "'99999999999999999999'"),
], ids=["stats days before year 1", "deliver timeout beyond a timedelta",
        "hits limit beyond 64 bits", "backtest examples beyond 64 bits"])
def test_a_count_of_days_or_seconds_past_the_calendar_is_a_usage_error(
        database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],  # noqa: F811
        argv: list[str], message: str) -> None:
    code, _, _ = _cli(database_url, tmp_path, *argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert message in err
    assert "Traceback" not in err
