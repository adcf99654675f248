"""`wirewatch feeds | head -1`: a reader that stops early is no crash."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from monitor.store import Store
from tests.ops.daemon import REPO

# The command runs in a process of its own, on the SQLite file made here: the
# PostgreSQL pass must not move that store onto PostgreSQL.
pytestmark = pytest.mark.sqlite_files

CONFIG = """\
database: "sqlite:///{db}"
feeds:
  - name: wire
    url: http://127.0.0.1:9/wire.xml
"""


@pytest.mark.parametrize("command", [["feeds"], ["hits", "--format", "json"], ["stats"]])
def test_output_closed_early_exits_141_without_a_traceback(
        tmp_path: Path, command: list[str]) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG.format(db=tmp_path / "ww.db"))
    Store.open(f"sqlite:///{tmp_path / 'ww.db'}").close()  # reports read an existing one
    process = subprocess.Popen(
        [sys.executable, "-m", "monitor", "--config", str(config), *command],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    # Closed before the interpreter has even started: the first write meets a
    # pipe without a reader, as with `| head` once head has its line.
    process.stdout.close()
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=60) == 141, stderr
    assert stderr == ""
