"""``wirewatch feeds``: every documented field, from real polls through the CLI."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

from monitor.cli import main
from monitor.feeds_view import FIELDS
from tests.monitor.polling_kit import ONE_ITEM
from tests.support import FeedServer, Response

DOCUMENTED = ("name", "url", "effective_url", "status", "last_status", "last_error",
              "consecutive_failures", "last_success_at", "last_new_item_at", "next_poll_at",
              "items_total")


def cli(config: Path, *args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(["--config", str(config), *args], stdout=out, stderr=err, environ={})
    return code, out.getvalue(), err.getvalue()


def test_feeds_json_and_table_after_redirects_failures_and_gone(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    feed_server.redirect("/old.xml", "/new.xml", status=308)
    feed_server.serve_feed("/new.xml", ONE_ITEM, etag="n")
    feed_server.set_route("/down.xml", Response(status=500))
    feed_server.set_route("/gone.xml", Response(status=410))
    config = tmp_path / "config.yaml"
    config.write_text(
        f'database: "sqlite:///{tmp_path / "w.db"}"\nfeeds:\n'
        f"  - name: moved\n    url: {feed_server.url('/old.xml')}\n"
        f"  - name: down\n    url: {feed_server.url('/down.xml')}\n"
        f"  - name: gone\n    url: {feed_server.url('/gone.xml')}\n"
        "rules:\n  - name: budget\n    query: budget\n"
    )
    for _ in range(3):
        cli(config, "run", "--once", "--force", "--deliver-timeout", "1")

    code, out, err = cli(config, "feeds", "--format", "json")
    assert code == 0, err
    records = {r["name"]: r for r in json.loads(out)}
    assert set(DOCUMENTED) <= set(FIELDS)
    for record in records.values():
        assert set(DOCUMENTED) <= set(record)

    moved = records["moved"]
    assert moved["url"] == feed_server.url("/old.xml")
    assert moved["effective_url"] == feed_server.url("/new.xml")
    assert (moved["status"], moved["last_status"], moved["items_total"]) == ("ok", 304, 1)
    assert moved["last_new_item_at"] is not None and moved["last_success_at"] is not None

    down = records["down"]
    assert (down["status"], down["last_status"], down["consecutive_failures"]) == (
        "failing", 500, 3)
    assert down["last_error"] == "HTTP 500 Internal Server Error"
    assert down["last_success_at"] is None and down["next_poll_at"] is not None

    gone = records["gone"]
    assert (gone["status"], gone["last_status"]) == ("disabled", 410)
    assert "gone" in gone["last_error"]
    assert len(feed_server.requests_to("/gone.xml")) == 1

    code, table, _ = cli(config, "feeds")
    assert code == 0
    lines = table.splitlines()
    assert lines[0].split()[:2] == ["FEED", "STATUS"]
    row = next(line for line in lines if line.startswith("moved"))
    assert feed_server.url("/new.xml") in row
    assert any(line.startswith("down") and "failing" in line and "HTTP 500" in line
               for line in lines)


def test_a_failing_feed_removed_from_the_config_shows_why_it_is_disabled(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    feed_server.set_route("/down.xml", Response(status=404))
    feed_server.serve_feed("/up.xml", ONE_ITEM)
    config = tmp_path / "config.yaml"
    head = f'database: "sqlite:///{tmp_path / "w.db"}"\nfeeds:\n'
    up = f"  - name: up\n    url: {feed_server.url('/up.xml')}\n"
    config.write_text(head + up + f"  - name: down\n    url: {feed_server.url('/down.xml')}\n")
    cli(config, "run", "--once", "--force", "--deliver-timeout", "1")
    config.write_text(head + up)
    cli(config, "run", "--once", "--deliver-timeout", "1")

    code, out, err = cli(config, "feeds", "--format", "json")

    assert code == 0, err
    down = next(r for r in json.loads(out) if r["name"] == "down")
    assert (down["status"], down["last_status"]) == ("disabled", 404)
    assert down["last_error"] == "removed from config"


def test_a_disabled_feed_shows_no_next_poll(tmp_path: Path, feed_server: FeedServer) -> None:
    # Disabled three ways: in the config, removed from it, and by the server's 410.
    feed_server.serve_feed("/live.xml", ONE_ITEM)
    feed_server.serve_feed("/paused.xml", ONE_ITEM)
    feed_server.serve_feed("/dropped.xml", ONE_ITEM)
    feed_server.set_route("/gone.xml", Response(status=410))
    config = tmp_path / "config.yaml"
    head = f'database: "sqlite:///{tmp_path / "w.db"}"\nfeeds:\n'
    kept = (f"  - name: live\n    url: {feed_server.url('/live.xml')}\n"
            f"  - name: paused\n    url: {feed_server.url('/paused.xml')}\n"
            f"  - name: gone\n    url: {feed_server.url('/gone.xml')}\n")
    dropped = f"  - name: dropped\n    url: {feed_server.url('/dropped.xml')}\n"
    config.write_text(head + kept + dropped)
    cli(config, "run", "--once", "--force", "--deliver-timeout", "1")
    config.write_text(head + kept.replace("name: paused\n", "name: paused\n    enabled: false\n"))
    cli(config, "run", "--once", "--deliver-timeout", "1")

    code, out, err = cli(config, "feeds", "--format", "json")

    assert code == 0, err
    records = {r["name"]: r for r in json.loads(out)}
    assert {name: (r["status"], r["next_poll_at"] is None) for name, r in records.items()} == {
        "live": ("ok", False), "paused": ("disabled", True), "dropped": ("disabled", True),
        "gone": ("disabled", True)}

    code, table, _ = cli(config, "feeds")
    assert code == 0
    lines = table.splitlines()
    column = re.split(r" {2,}", lines[0]).index("NEXT POLL")  # the cells before have no spaces
    next_poll = {line.split()[0]: line.split()[column] for line in lines[1:]}
    assert next_poll["live"] == records["live"]["next_poll_at"]
    assert {next_poll[name] for name in ("paused", "dropped", "gone")} == {"disabled"}
