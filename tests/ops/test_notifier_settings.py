"""A notifier setting the config accepts but the notifier refuses when it is built
(an unloadable ``ca_file``): a config problem with file and line, never a traceback."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import pytest

from monitor.cli import main
from monitor.config import load_config
from monitor.ops_wiring import reloader_for
from monitor.service import Monitor
from monitor.store import Store

CONFIG = """\
database: "sqlite:///{db}"
feeds:
  - name: wire
    url: http://127.0.0.1:9/wire.xml
notifiers:
  mail:
    type: email
    host: 127.0.0.1
    security: starttls
    ca_file: {ca_file}
    from: wirewatch@example.org
    to: [desk@example.org]
"""

PROBLEM = ("config.yaml:6: notifiers.mail: email 'mail': cannot load `ca_file` "
           "'/nonexistent/ca.pem'")


def _run(tmp_path: Path, *argv: str) -> tuple[int, str]:
    (tmp_path / "config.yaml").write_text(
        CONFIG.format(db=tmp_path / "ww.db", ca_file="/nonexistent/ca.pem"))
    out, err = io.StringIO(), io.StringIO()
    code = main(["--config", "config.yaml", *argv], stdout=out, stderr=err, environ={})
    return code, err.getvalue() + out.getvalue()


def test_check_reports_a_setting_the_notifier_refuses(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, output = _run(tmp_path, "check")
    assert code == 1
    assert PROBLEM in output
    assert "Traceback" not in output


def test_run_once_reports_it_and_exits_1(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, output = _run(tmp_path, "run", "--once")
    assert code == 1
    assert PROBLEM in output


def test_a_reload_with_it_is_rejected_and_the_running_config_stays(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    good = CONFIG.format(db=tmp_path / "ww.db", ca_file="null")
    path.write_text(good)
    config = load_config(good, source=str(path), environ={})
    store = Store.open(config.database)
    monitor = Monitor(config=config, store=store, notifiers={}, instance_id="desk:1")
    try:
        reloader = reloader_for(monitor, path=path, environ={}, stdout=io.StringIO())
        path.write_text(CONFIG.format(db=tmp_path / "ww.db", ca_file="/nonexistent/ca.pem"))

        assert reloader.check(forced=True) == "rejected"
        assert monitor.config is config
    finally:
        asyncio.run(monitor.aclose())
        store.close()
