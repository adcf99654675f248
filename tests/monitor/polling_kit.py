"""What the polling tests share: a config on loopback feeds, a store, a fake clock, a poller."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from monitor.config import load_config
from monitor.fetch import make_client
from monitor.parse import ParsedFeed
from monitor.parsepool import FeedParser, ThreadParser
from monitor.pipeline import Poller
from monitor.plan import plan_from_config
from monitor.store import FeedSpec, FeedState, Store

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


class FakeClock:
    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


class NoJitter(random.Random):
    """random() == 0: schedules without jitter, so tests can assert exact times."""

    def random(self) -> float:
        return 0.0


class CountingParser(ThreadParser):
    """The real parser, counting how often it is asked to parse."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    async def parse(self, body: bytes, *, url: str, content_type: str | None) -> ParsedFeed:
        self.calls += 1
        return await super().parse(body, url=url, content_type=content_type)


def rss(items: list[dict[str, str]], *, ttl: int | None = None) -> bytes:
    """A small RSS 2.0 document; each item dict may hold title, link, guid, pubDate."""
    parts = ['<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel>',
             "<title>Test desk</title><link>http://127.0.0.1/</link>"]
    if ttl is not None:
        parts.append(f"<ttl>{ttl}</ttl>")
    for item in items:
        parts.append("<item>")
        for tag in ("title", "link", "guid", "pubDate", "description"):
            if tag in item:
                parts.append(f"<{tag}>{item[tag]}</{tag}>")
        parts.append("</item>")
    parts.append("</channel></rss>")
    return "".join(parts).encode()


ONE_ITEM = rss([{"title": "Parliament votes on budget", "link": "http://127.0.0.1/a/1",
                 "guid": "a-1", "pubDate": "Mon, 02 Mar 2026 08:00:00 GMT"}])


@dataclass
class Rig:
    store: Store
    poller: Poller
    clock: FakeClock
    parser: CountingParser
    names: list[str] = field(default_factory=list)

    def feed(self, name: str = "desk") -> FeedState:
        state = self.store.feed(name)
        assert state is not None, f"no feed {name}"
        return state

    async def poll(self, *, force: bool = False) -> Any:
        return await self.poller.poll_due(force=force)


def config_text(db: Path, feeds: dict[str, str], *, extra: str = "", feed_extra: str = "",
                defaults: str = "") -> str:
    settings = {"interval": "1m", "min_interval": "1m", "timeout": "5s"}
    for line in defaults.splitlines():
        if line.strip():
            key, _, value = line.partition(":")
            settings[key.strip()] = value.strip()
    lines = [f'database: "sqlite:///{db}"', "defaults:"]
    lines += [f"  {key}: {value}" for key, value in settings.items()]
    lines.append("feeds:")
    for name, url in feeds.items():
        lines += [f"  - name: {name}", f"    url: {url}"]
        lines += [f"    {line}" for line in feed_extra.splitlines() if line.strip()]
    lines.append("notifiers:\n  ops:\n    type: console")
    lines.append("rules:\n  - name: budget\n    query: budget\n    notify: [ops]")
    if extra:
        lines.append(extra)
    return "\n".join(lines) + "\n"


@asynccontextmanager
async def rig(tmp_path: Path, feeds: dict[str, str], *, clock: FakeClock | None = None,
              parser: FeedParser | None = None, **options: str) -> AsyncIterator[Rig]:
    """A poller over ``feeds`` (name → URL) with a fresh SQLite store and a fake clock."""
    text = config_text(tmp_path / "wirewatch.db", feeds, **options)
    config = load_config(text, source="config.yaml", environ={})
    store = Store.open(config.database)
    clock = clock or FakeClock()
    store.sync_feeds([FeedSpec(name=f.name, url=f.url) for f in config.feeds], now=clock())
    counting = CountingParser()
    client = make_client(user_agent=config.user_agent,
                         max_connections=config.concurrency.global_)
    poller = Poller(store=store, client=client, plan=plan_from_config(config), clock=clock,
                    parser=parser or counting, rng=NoJitter())
    try:
        yield Rig(store=store, poller=poller, clock=clock, parser=counting, names=list(feeds))
    finally:
        await client.aclose()
        store.close()


def later(clock: Callable[[], datetime], **delta: float) -> datetime:
    return clock() + timedelta(**delta)
