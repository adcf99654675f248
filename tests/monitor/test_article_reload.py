"""Article text across hot reloads: the HTTP clients a reload replaces are closed.

A real poller, a real SQLite store and a loopback feed server with article pages;
each reload edits a setting the article fetcher depends on, as an editor would.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from monitor import pipeline
from monitor.article import make_article_client as real_make_article_client
from monitor.config import load_config
from monitor.plan import plan_from_config
from tests.monitor.polling_kit import FakeClock, config_text, rig, rss
from tests.support import FeedServer, Response

ARTICLES = Path(__file__).parents[1] / "data" / "articles"
HTML = {"Content-Type": "text/html; charset=utf-8"}


def _config(tmp_path: Path, feed: str, *, per_host: int, agent: str) -> str:
    return config_text(tmp_path / "wirewatch.db", {"teasers": feed},
                       feed_extra="full_text: true",
                       extra=(f"allow_private_article_hosts: true\nuser_agent: {agent}\n"
                              f"concurrency:\n  per_host: {per_host}"))


def test_reloads_that_change_article_settings_leave_one_open_client(
        tmp_path: Path, feed_server: FeedServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each reload that changed the article fetcher's settings (user_agent, the host
    limits, full_text_concurrency) built a new HTTP client and left the old one, with
    its pooled connections, open until the daemon stopped."""
    page = Response(headers=HTML, body=(ARTICLES / "armenia-csto.html").read_bytes())
    feed = feed_server.url("/teasers.rss")
    clock = FakeClock()
    built: list[httpx.AsyncClient] = []

    def make_article_client(**options: Any) -> httpx.AsyncClient:
        built.append(real_make_article_client(**options))
        return built[-1]

    monkeypatch.setattr(pipeline, "make_article_client", make_article_client)

    async def scenario() -> None:
        async with rig(tmp_path, {"teasers": feed}, clock=clock, feed_extra="full_text: true",
                       extra="allow_private_article_hosts: true") as r:
            for edit in range(6):
                # The host limits change on every reload, the user agent on some.
                text = _config(tmp_path, feed, per_host=1 + edit % 2, agent=f"desk/{edit // 2}")
                r.poller.replace_plan(plan_from_config(
                    load_config(text, source="config.yaml", environ={})))
                feed_server.set_route(f"/story/{edit}", page)
                feed_server.serve_feed("/teasers.rss", rss([{
                    "title": f"Teaser {edit}", "guid": f"t-{edit}",
                    "link": feed_server.url(f"/story/{edit}")}]))
                summary = await r.poller.poll_due(force=True)
                assert summary.new_items == 1, summary
            # A client per user agent, and the replaced ones closed.
            assert [c.is_closed for c in built] == [True, True, False]
            await r.poller.aclose()
            assert all(c.is_closed for c in built)

    asyncio.run(scenario())
