"""The feed lease as operators set it (``feed_lease`` in the config, or
``WIREWATCH_FEED_LEASE_SECONDS`` over it) is the lease a claimed feed gets in the
database. Real SQLite files and a real PostgreSQL (``database_url``).

The feed's answer is held back until the test has read the lease, so the poll is
certainly under way (its feed claimed) while the row is looked at.
"""

from __future__ import annotations

import asyncio
import io
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, select

from monitor.cli import FEED_LEASE_ENV, main
from monitor.config import load_config
from monitor.service import Monitor
from monitor.store import FeedRow, Store
from tests.dbs import database_url, postgres_url  # noqa: F401  (fixtures)
from tests.monitor.polling_kit import ONE_ITEM
from tests.support import FeedServer, Request, Response

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def held_feed(feed_server: FeedServer) -> Iterator[tuple[FeedServer, threading.Event]]:
    """``/wire.xml`` answers only once the event is set (or after 60 s)."""
    released = threading.Event()

    def answer(request: Request) -> Response:
        released.wait(60)
        return Response(body=ONE_ITEM)

    feed_server.set_route("/wire.xml", answer)
    yield feed_server, released
    released.set()


def config_text(database: str, feed_url: str, lease: str | None) -> str:
    lines = [f'database: "{database}"']
    if lease is not None:
        lines.append(f"feed_lease: {lease}")
    lines += ["feeds:", "  - name: wire", f"    url: {feed_url}"]
    return "\n".join(lines) + "\n"


def lease_until(store: Store) -> datetime:
    with Session(store.engine) as session:
        until = session.exec(select(FeedRow.lease_until).where(FeedRow.name == "wire")).one()
    assert until is not None, "the feed is not leased while its poll runs"
    return until if until.tzinfo else until.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Setting:
    name: str
    key: str | None
    override: timedelta | None
    expected: timedelta
    reloaded_key: str | None = None


SETTINGS = [
    Setting("config key", "7m", None, timedelta(minutes=7)),
    Setting("derived without a key: twice the timeout plus 1m", None, None,
            timedelta(seconds=100)),
    Setting("override over the key", "7m", timedelta(seconds=90), timedelta(seconds=90)),
    Setting("key changed by a reload", "7m", None, timedelta(minutes=3), reloaded_key="3m"),
    Setting("key added by a reload", None, None, timedelta(minutes=3), reloaded_key="3m"),
    Setting("override outlives a reload", "7m", timedelta(seconds=90), timedelta(seconds=90),
            reloaded_key="3m"),
]


@pytest.mark.parametrize("setting", SETTINGS, ids=[s.name for s in SETTINGS])
def test_a_claimed_feed_is_leased_for_the_setting(
        setting: Setting, database_url: str,  # noqa: F811
        held_feed: tuple[FeedServer, threading.Event]) -> None:
    server, released = held_feed
    url = server.url("/wire.xml")
    config = load_config(config_text(database_url, url, setting.key), source="config.yaml",
                         environ={})
    monitor = Monitor(config=config, store=Store.open(database_url), notifiers={},
                      instance_id="desk:1", clock=lambda: T0, feed_lease=setting.override)
    if setting.reloaded_key is not None:
        monitor.apply_config(load_config(config_text(database_url, url, setting.reloaded_key),
                                         source="config.yaml", environ={}), {})

    async def lease_during_a_poll() -> datetime:
        polling = asyncio.create_task(monitor.poller.poll_due())
        try:
            await asyncio.to_thread(server.wait_for_requests, 1)
            return await asyncio.to_thread(lease_until, monitor.store)
        finally:
            released.set()
            await polling
            await monitor.aclose()

    try:
        until = asyncio.run(lease_during_a_poll())
    finally:
        monitor.store.close()
    assert until - T0 == setting.expected


def test_the_environment_overrides_the_key_in_wirewatch_run(
        tmp_path: Path, database_url: str,  # noqa: F811
        held_feed: tuple[FeedServer, threading.Event]) -> None:
    server, released = held_feed
    config = tmp_path / "config.yaml"
    config.write_text(config_text(database_url, server.url("/wire.xml"), "7m"))
    codes: list[int] = []
    before = datetime.now(UTC)
    run = threading.Thread(target=lambda: codes.append(main(
        ["--config", str(config), "run", "--once", "--deliver-timeout", "1"],
        stdout=io.StringIO(), stderr=io.StringIO(), environ={FEED_LEASE_ENV: "90"})))
    run.start()
    store = Store.open(database_url)
    try:
        server.wait_for_requests(1)
        until = lease_until(store)
        after = datetime.now(UTC)
    finally:
        released.set()
        run.join(60)
        store.close()
    assert codes == [0]
    # The claim happened between the two readings of the clock.
    assert before + timedelta(seconds=90) <= until
    assert until <= after + timedelta(seconds=90)
