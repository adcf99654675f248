"""No secret in any output: a full run's stdout, stderr, logs and `check` output, grepped.

The config takes a bot token, a webhook URL, an SMTP password and a feed key
from ``${VAR}``s; wirewatch runs `check`, `run --once` (JSON logs, DEBUG, a
failing feed, a failing mail channel) and the daemon with a broken edit and a
SIGHUP. None of the values may appear anywhere in what it printed.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

from tests.ops.daemon import DATA, REPO, Daemon, free_port, http_get, wait_for_http
from tests.support import FeedServer, SlackStandIn, SmtpServer

CONFIG = """\
database: "sqlite:///{db}"
http:
  listen: 127.0.0.1:{port}
ops_notify: desk
feeds:
  - name: caucasus
    url: {origin}/world.rss?key=${{FEED_KEY}}
  - name: vanished
    url: {origin}/gone.rss?key=${{FEED_KEY}}
notifiers:
  desk:
    type: slack
    token: ${{SLACK_BOT_TOKEN}}
    channel: "#world-desk"
    base_url: {slack}
  hook:
    type: slack
    webhook_url: ${{SLACK_WEBHOOK_URL}}
  mail:
    type: email
    host: 127.0.0.1
    port: {smtp_port}
    security: none
    username: desk
    password: ${{SMTP_PASSWORD}}
    from: wirewatch@example.org
    to: [desk@example.org]
rules:
  - name: csto-exit
    query: CSTO AND withdraw*
"""

BROKEN_TAIL = """\
  - name: broken
    query: (CSTO
    notify:
      - ${SLACK_BOT_TOKEN}
"""


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "monitor", *args], cwd=REPO,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", **env},
                          capture_output=True, text=True, timeout=120)


def test_no_secret_in_any_output_of_a_full_run(
    tmp_path: Path, feed_server: FeedServer, slack_standin: SlackStandIn,
    smtp_server: SmtpServer,
) -> None:
    feed_server.serve_file("/world.rss", DATA / "world.rss")
    webhook = slack_standin.webhook_url + "/T0SECRET/B0SECRET/hookSecretXYZ123"
    assert slack_standin.token is not None
    secrets = {
        "SLACK_BOT_TOKEN": slack_standin.token,
        "SLACK_WEBHOOK_URL": webhook,
        "SMTP_PASSWORD": "hunter2-smtp-Secret",
        "FEED_KEY": "feedkey-9f8e7d6c",
    }
    port = free_port()
    config = tmp_path / "config.yaml"
    text = CONFIG.format(db=tmp_path / "w.db", port=port, origin=feed_server.origin,
                         slack=slack_standin.base_url,
                         smtp_port=smtp_server.port)
    config.write_text(text)
    outputs: list[str] = []

    check = _cli("check", "--config", str(config), env=secrets)
    outputs += [check.stdout, check.stderr]
    assert check.returncode == 0, check.stderr
    config.write_text(text + BROKEN_TAIL)
    broken = _cli("check", "--config", str(config), env=secrets)
    outputs += [broken.stdout, broken.stderr]
    assert broken.returncode == 1 and "rules[1]" in broken.stderr
    config.write_text(text)

    once = _cli("run", "--once", "--deliver-timeout", "3", "--log-level", "DEBUG",
                "--log-format", "json", "--config", str(config), env=secrets)
    outputs += [once.stdout, once.stderr]
    assert "vanished" in once.stderr  # the failing feed was reported...
    assert "mail" in once.stderr      # ...and so was the failing channel

    daemon = Daemon(config, env=secrets, args=("--log-level", "DEBUG"))
    try:
        wait_for_http(f"http://127.0.0.1:{port}/healthz")
        config.write_text(text + BROKEN_TAIL)
        daemon.wait_for_log("config reload rejected", timeout=60)
        config.write_text(text.replace("CSTO AND withdraw*", "CSTO"))
        daemon.wait_for_log("config reloaded", timeout=60)
        daemon.process.send_signal(signal.SIGHUP)
        daemon.wait_for_log("config reloaded", count=2, timeout=60)
        time.sleep(1)
        outputs.append(http_get(f"http://127.0.0.1:{port}/metrics")[1])
        outputs.append(http_get(f"http://127.0.0.1:{port}/healthz")[1])
        assert daemon.stop() == 0
    finally:
        daemon.close()
    outputs += [daemon.stdout, daemon.stderr]
    notices = [str(call.body) for call in slack_standin.calls]

    everything = "\n".join(outputs + notices)
    assert "config reload rejected" in everything  # the run did say things
    for name, value in secrets.items():
        assert value not in everything, f"${{{name}}} leaked"
    assert urlsplit(webhook).path not in everything, "the webhook path leaked"
