"""Retention prunes the pacing slots (``channel_slots``) of channels no longer configured,
instead of keeping a row for every channel ever posted to.

Real PostgreSQL (the slots are shared there only), Slack notifiers built from the
config, slots taken through the store as ``SharedPacer`` takes them, and the daemon's
own retention pass (``Monitor.prune_if_due``) after a reload dropped channels.
"""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import create_engine, text
from sqlmodel import Session, select

from monitor.channels import build_notifiers
from monitor.config import Config, load_config
from monitor.service import CHANNEL_SLOTS_KEPT, Monitor
from monitor.store import ChannelSlotRow, Store
from notifiers import SlackNotifier
from tests.dbs import fresh_postgres_url  # noqa: F401  (fixture)

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)


def _config(channels: list[str]) -> Config:
    notifiers = "".join(
        f"  {name}:\n    type: slack\n    token: xoxb-test\n    channel: \"#{name}\"\n"
        f"    base_url: http://127.0.0.1:9/api/\n" for name in channels)
    return load_config('database: "sqlite:///unused.db"\nfeeds:\n  - name: wire\n'
                       f"    url: http://127.0.0.1:9/wire.xml\nnotifiers:\n{notifiers}",
                       source="config.yaml", environ={})


def _slots(store: Store) -> dict[str, datetime]:
    with Session(store.engine) as session:
        return {row.key: row.next_at.astimezone(UTC)
                for row in session.exec(select(ChannelSlotRow))}


def test_retention_prunes_past_slots_of_channels_no_longer_configured(
        fresh_postgres_url: str) -> None:  # noqa: F811
    store = Store.open(fresh_postgres_url)
    everything = _config(["desk", "night", "sports", "archive"])
    notifiers = build_notifiers(everything)
    keys = {name: n.pacing_key for name, n in notifiers.items() if isinstance(n, SlackNotifier)}
    monitor = Monitor(config=everything, store=store, notifiers=notifiers,
                      instance_id="desk:1", clock=lambda: NOW)
    try:
        long_past = NOW - CHANNEL_SLOTS_KEPT - timedelta(hours=1)
        store.reserve_channel_slot(keys["desk"], now=long_past, spacing=SECOND)
        store.reserve_channel_slot(keys["night"], now=long_past, spacing=SECOND)
        # Past, but not by CHANNEL_SLOTS_KEPT: an instance whose clock runs behind
        # may still be waiting for it.
        store.reserve_channel_slot(keys["sports"], now=NOW - timedelta(minutes=5),
                                   spacing=SECOND)
        # A Retry-After still holding the channel back.
        store.push_channel_slot(keys["archive"], not_before=NOW + timedelta(hours=1))
        desk_only = _config(["desk"])
        monitor.apply_config(desk_only, build_notifiers(desk_only))

        counts = asyncio.run(monitor.prune_if_due())

        assert counts is not None and counts["channel_slots"] == 1
        assert set(_slots(store)) == {keys["desk"], keys["sports"], keys["archive"]}
        # A channel configured again starts from a fresh slot, as on its first send.
        assert store.reserve_channel_slot(keys["night"], now=NOW, spacing=SECOND) == NOW
        assert _slots(store)[keys["night"]] == NOW + SECOND
    finally:
        asyncio.run(monitor.aclose())
        store.close()


def test_a_slot_pruned_while_an_instance_takes_it_is_created_again(
        fresh_postgres_url: str) -> None:  # noqa: F811
    # The one interleaving pruning opens: a sender's insert finds the row there, then
    # retention deletes it before the sender locks it.
    store = Store.open(fresh_postgres_url)
    key = "slack:0123456789abcdef"
    store.reserve_channel_slot(key, now=NOW - timedelta(hours=2), spacing=SECOND)
    engine = create_engine(fresh_postgres_url)
    taken: list[datetime] = []
    errors: list[BaseException] = []

    def sender() -> None:
        try:
            taken.append(store.reserve_channel_slot(key, now=NOW, spacing=SECOND))
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    try:
        with engine.connect() as pruner, engine.connect() as watcher:
            pruner.execute(text("SELECT key FROM channel_slots WHERE key = :key FOR UPDATE"),
                           {"key": key})
            own = pruner.execute(text("SELECT pg_backend_pid()")).scalar()
            thread = threading.Thread(target=sender, daemon=True)
            thread.start()
            deadline = time.monotonic() + 60
            while not watcher.execute(text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND wait_event_type = 'Lock' AND pid <> :own"), {"own": own}).scalar():
                assert time.monotonic() < deadline, "the sender never waited for the row"
                watcher.rollback()  # a fresh snapshot of pg_stat_activity
                time.sleep(0.02)
            pruner.execute(text("DELETE FROM channel_slots WHERE key = :key"), {"key": key})
            pruner.commit()
            thread.join(timeout=60)
        assert not errors, f"the sender failed: {errors[0]!r}"
        assert taken == [NOW]
        assert _slots(store) == {key: NOW + SECOND}
    finally:
        engine.dispose()
        store.close()
