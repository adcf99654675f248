"""The database is one config line: the same config on SQLite and on PostgreSQL."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

from monitor.cli import main
from monitor.store import Store
from tests.dbs import PASS, fresh_postgres_url  # noqa: F401  (fixture)
from tests.monitor.polling_kit import ONE_ITEM
from tests.support import FeedServer


def cli(config: Path, *args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(["--config", str(config), *args], stdout=out, stderr=err, environ={})
    return code, out.getvalue(), err.getvalue()


def test_the_database_line_alone_switches_the_store(
    tmp_path: Path, fresh_postgres_url: str, feed_server: FeedServer  # noqa: F811
) -> None:
    feed_server.serve_feed("/wire.xml", ONE_ITEM, etag="v1")
    rest = (f"feeds:\n  - name: wire\n    url: {feed_server.url('/wire.xml')}\n"
            "notifiers:\n  desk:\n    type: console\n"
            "rules:\n  - name: budget\n    query: budget\n")
    seen = {}
    for kind, database in (("sqlite", f"sqlite:///{tmp_path / 'w.db'}"),
                           ("postgresql", fresh_postgres_url)):
        config = tmp_path / f"{kind}.yaml"
        config.write_text(f'database: "{database}"\n' + rest)
        code, alerts, err = cli(config, "run", "--once", "--deliver-timeout", "5")
        assert code == 0, err
        code, out, err = cli(config, "feeds", "--format", "json")
        assert code == 0, err
        (feed,) = json.loads(out)
        seen[kind] = (alerts.count("[wirewatch] budget"), feed["status"], feed["items_total"],
                      feed["last_status"])
        store = Store.open(database)
        try:
            expected = "sqlite" if kind == "sqlite" and os.environ.get(PASS) != "postgresql" \
                else "postgresql"
            assert store.engine.dialect.name == expected
        finally:
            store.close()
    assert seen["sqlite"] == seen["postgresql"] == (1, "ok", 1, 200)
