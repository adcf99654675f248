"""End to end: ``wirewatch run --once`` against real loopback servers.

Three local feeds (RSS 2.0, Atom, JSON Feed), four rules, and three channels:
the console, the real slack-sdk talking to the Slack stand-in, and smtplib
talking to aiosmtpd. A second run sends nothing; neither does a run in a new
process on the same database (a restart).
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from monitor import __version__
from monitor.cli import main
from tests.dbs import database_url, postgres_url  # noqa: F401  (fixtures)
from tests.support import FeedServer, SlackStandIn, SmtpServer

DATA = Path(__file__).parent / "data" / "e2e"
REPO = Path(__file__).resolve().parents[1]

CONFIG = """\
database: "{db}"
defaults:
  interval: 5m
  timeout: 10s
feeds:
  - name: caucasus-desk
    url: {world}
  - name: region-wire
    url: {region}
  - name: asia-briefing
    url: {asia}
    tags: [asia]
notifiers:
  screen:
    type: console
  desk:
    type: slack
    token: ${{SLACK_BOT_TOKEN}}
    channel: "#world-desk"
    base_url: {slack}
  editors:
    type: email
    host: 127.0.0.1
    port: {smtp_port}
    security: none
    from: wirewatch@newsroom.test
    to: [editors@newsroom.test]
rules:
  - name: csto-exit
    query: CSTO AND withdraw*
  - name: armenia-azerbaijan
    query: Armenia AND (Azerbaijan OR Baku)
    notify: [desk]
  - name: asia-quakes
    query: earthquake OR tsunami
    feeds: ["tag:asia"]
    notify: [editors, screen]
  - name: kazakh-security
    query: '"Collective Security" AND Kazakhstan'
"""

EXPECTED_SLACK = {"csto-exit", "armenia-azerbaijan"}
EXPECTED_EMAIL = {"csto-exit", "asia-quakes"}
EXPECTED_CONSOLE = {"csto-exit", "asia-quakes"}


@pytest.fixture
def setup(tmp_path: Path, feed_server: FeedServer, slack_standin: SlackStandIn,
          smtp_server: SmtpServer, database_url: str,  # noqa: F811
          ) -> tuple[Path, dict[str, str]]:
    feed_server.serve_file("/world.rss", DATA / "world.rss",
                           content_type="application/rss+xml")
    feed_server.serve_file("/region.atom", DATA / "region.atom",
                           content_type="application/atom+xml")
    feed_server.serve_file("/asia.json", DATA / "asia.json",
                           content_type="application/feed+json")
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG.format(
        db=database_url, world=feed_server.url("/world.rss"),
        region=feed_server.url("/region.atom"), asia=feed_server.url("/asia.json"),
        slack=slack_standin.base_url, smtp_port=smtp_server.port,
    ))
    assert slack_standin.token is not None
    environ = {"SLACK_BOT_TOKEN": slack_standin.token, "PATH": os.environ.get("PATH", "")}
    return config, environ


def run_once(config: Path, environ: dict[str, str], *extra: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(["--config", str(config), "run", "--once", *extra],
                stdout=out, stderr=err, environ=environ)
    return code, out.getvalue(), err.getvalue()


def slack_rules(standin: SlackStandIn) -> list[str]:
    return sorted(_rule_of(call.body.get("text", "")) for call in standin.messages)


def _rule_of(text: str) -> str:
    for rule in ("csto-exit", "armenia-azerbaijan", "asia-quakes", "kazakh-security"):
        if rule in text:
            return rule
    raise AssertionError(f"no rule named in {text!r}")


def test_run_once_alerts_exactly_once_across_runs_and_restarts(
    setup: tuple[Path, dict[str, str]], feed_server: FeedServer,
    slack_standin: SlackStandIn, smtp_server: SmtpServer,
) -> None:
    config, environ = setup

    code, out, err = run_once(config, environ)
    assert code == 0, err
    assert "polled 3 feeds" in err

    assert slack_rules(slack_standin) == sorted(EXPECTED_SLACK)
    channel = slack_standin.channel_id("#world-desk")
    assert {call.body.get("channel") for call in slack_standin.messages} <= {"#world-desk",
                                                                               channel}
    mails = smtp_server.messages
    assert sorted(m.message["Subject"].split(":")[0] for m in mails) == sorted(
        f"[wirewatch] {rule}" for rule in EXPECTED_EMAIL)
    csto_mail = next(m for m in mails if "csto-exit" in m.message["Subject"])
    assert "Armenia seeks to distance itself" in csto_mail.message["Subject"]
    assert sorted(r for r in EXPECTED_CONSOLE if r in out) == sorted(EXPECTED_CONSOLE)
    assert out.count("csto-exit") >= 1 and "kazakh-security" not in out
    # The Turkish earthquake is in a feed without the asia tag: the scoped rule skips it.
    assert "southern Turkey" not in out

    # A second run polls again (forced) and sends nothing new.
    code, out2, err2 = run_once(config, environ, "--force")
    assert code == 0, err2
    assert "0 new items" in err2
    assert len(slack_standin.messages) == 2 and len(smtp_server.messages) == 2
    assert out2 == ""

    # A restart: a new process on the same database, every feed polled again.
    env = {**environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-m", "monitor", "--config", str(config), "run", "--once", "--force"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "polled 3 feeds: 0 new items" in done.stderr
    assert len(slack_standin.messages) == 2 and len(smtp_server.messages) == 2
    assert done.stdout == ""
    # Every feed really was fetched three times: nothing was skipped to look idempotent.
    fetches = feed_server.requests_to("/world.rss")
    assert len(fetches) == 3
    assert {r.header("User-Agent") for r in fetches} == {f"wirewatch/{__version__}"}
    # The second and third polls were conditional, with the validators sent back as received.
    etag = '"' + hashlib.sha256((DATA / "world.rss").read_bytes()).hexdigest()[:16] + '"'
    assert fetches[0].header("If-None-Match") is None
    assert [r.header("If-None-Match") for r in fetches[1:]] == [etag, etag]


def test_new_items_after_a_run_alert_once(
    setup: tuple[Path, dict[str, str]], feed_server: FeedServer,
    slack_standin: SlackStandIn,
) -> None:
    config, environ = setup
    assert run_once(config, environ)[0] == 0
    before = len(slack_standin.messages)
    updated = (DATA / "region.atom").read_text().replace(
        "<entry>",
        """<entry>
    <title>Baku and Yerevan sign Armenia border protocol</title>
    <id>urn:uuid:0f3a1c0e-1111-4c59-9d8e-000000000003</id>
    <link href="https://wire.example.net/protocol"/>
    <updated>2026-02-18T09:30:00Z</updated>
    <summary>The protocol covers four villages.</summary>
  </entry>
  <entry>""", 1)
    feed_server.serve_feed("/region.atom", updated.encode(),
                           content_type="application/atom+xml")
    code, _, err = run_once(config, environ, "--force")
    assert code == 0, err
    assert "1 new items" in err
    new = slack_standin.messages[before:]
    assert len(new) == 1 and "Baku and Yerevan sign" in new[0].body["text"]


def test_slack_down_leaves_alerts_pending_and_exit_code_3(
    setup: tuple[Path, dict[str, str]], slack_standin: SlackStandIn,
) -> None:
    config, environ = setup
    slack_standin.stop()
    code, _, err = run_once(config, environ, "--deliver-timeout", "1")
    assert code == 3
    assert "still pending 2" in err
    slack_standin.start()
    code, _, err = run_once(config, environ)
    assert code == 0, err
    assert slack_rules(slack_standin) == sorted(EXPECTED_SLACK)


def test_check_lists_problems_and_exit_1(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("feeds:\n  - name: a\n    url: ftp://x\nrules:\n"
                      "  - name: r\n    query: CSTO AND\n")
    err = io.StringIO()
    code = main(["--config", str(config), "check"], stdout=io.StringIO(), stderr=err,
                environ={})
    assert code == 1
    text = err.getvalue()
    assert "config.yaml:3: feeds[0].url" in text
    assert "config.yaml:6: rules[0].query" in text


def test_check_with_problems_still_shows_the_warnings(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("feeds:\n  - name: a\n    url: http://127.0.0.1:1/a\nrules:\n"
                      "  - name: r\n    query: CSTO AND\n"
                      "  - name: everything\n    query: NOT sport\n")
    err = io.StringIO()
    code = main(["--config", str(config), "check"], stdout=io.StringIO(), stderr=err,
                environ={})
    assert code == 1
    lines = err.getvalue().splitlines()
    assert lines[1].endswith("rules[0].query: rule 'r': expected a term after AND")
    assert lines[-1] == (f"warning: {config}:8: rules[1].query: rule 'everything': matches "
                         "nearly every item: no term is required to be present; add a "
                         "positive term (NOT only narrows)")


def test_missing_config_file_names_the_fix(tmp_path: Path) -> None:
    err = io.StringIO()
    code = main(["run", "--once"], stdout=io.StringIO(), stderr=err,
                environ={"WIREWATCH_CONFIG": str(tmp_path / "nope.yaml")})
    assert code == 1
    assert "nope.yaml: no such file; pass --config PATH or set WIREWATCH_CONFIG" in err.getvalue()
