"""`run --once` options that are not a number of seconds are usage errors (exit 2)."""

from __future__ import annotations

import io

import pytest

from monitor.cli import main


@pytest.mark.parametrize("value", ["nan", "inf", "-5", "soon"])
def test_deliver_timeout_must_be_seconds_from_zero(
        value: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--config", "/nonexistent/config.yaml", "run", "--once",
                 "--deliver-timeout", value], stdout=io.StringIO(), stderr=io.StringIO(),
                environ={})
    usage = capsys.readouterr().err  # argparse writes to the process's stderr
    assert code == 2
    assert "argument --deliver-timeout: expected a number of seconds" in usage
    assert repr(value) in usage
