"""Article text: extraction throughput, and the latency full_text adds to an alert.

    python -m bench article [--pages 200] [--polls 15]

Pages: the test article (tests/data/articles/armenia-csto.html) and one page per
full-text item of TIME's feed in ../shared/corpus/feeds (real articles in
content:encoded), each wrapped in the same publisher layout (navigation, "Read
also", comments, a "Latest" column). Baseline in the same run: the markup
stripping feed text gets (monitor.htmltext.html_to_text), which keeps everything.

Latency: a loopback server serves a one-item teaser feed and its article page;
two real Pollers, each with its own SQLite database, poll it in turn, one with
full_text: false and one with full_text: true, a new item each time, as the
daemon does (the extraction worker the first article starts is kept); the
difference of the medians is what fetching + extracting the article adds before
the alert is stored, and the max includes starting the worker.

Prints a table, then one JSON object as the last line.
"""

from __future__ import annotations

import argparse
import asyncio
import html
import json
import re
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from monitor.article import ArticleError, extract_text
from monitor.config import load_config
from monitor.htmltext import html_to_text
from monitor.pipeline import Poller
from monitor.plan import plan_from_config
from monitor.store import FeedSpec, Store, utcnow
from tests.support import FeedServer, Response

REPO = Path(__file__).resolve().parents[1]
ARTICLE = REPO / "tests" / "data" / "articles" / "armenia-csto.html"
CORPUS = REPO.parent / "shared" / "corpus" / "feeds"
TIME_FEED = CORPUS / "fastfeedparser__5da3b20f957be51d"
_ENCODED = re.compile(r"<content:encoded><!\[CDATA\[(.*?)\]\]></content:encoded>", re.S)
_TITLE = re.compile(r"<title>(.*?)</title>", re.S)


def corpus_pages() -> list[bytes]:
    """The test article, and real full-text articles laid out like a news site."""
    template = ARTICLE.read_text(encoding="utf-8")
    start = template.index('<article class="article">')
    end = template.index("</article>") + len("</article>")
    pages = [ARTICLE.read_bytes()]
    if TIME_FEED.is_file():
        text = TIME_FEED.read_text(encoding="utf-8", errors="replace")
        items = re.findall(r"<item>(.*?)</item>", text, re.S)
        for item in items:
            body = _ENCODED.search(item)
            title = _TITLE.search(item)
            if not body or not title:
                continue
            story = (f'<article class="article"><h1>{html.escape(title.group(1))}</h1>'
                     f"{body.group(1)}</article>")
            pages.append((template[:start] + story + template[end:]).encode())
    return pages


def bench_extraction(pages: list[bytes], count: int) -> dict[str, float]:
    work = [pages[i % len(pages)] for i in range(count)]
    started = time.perf_counter()
    failures = 0
    chars = 0
    for body in work:
        try:
            chars += len(extract_text(body))
        except ArticleError:
            failures += 1
    extract_s = time.perf_counter() - started
    started = time.perf_counter()
    for body in work:
        html_to_text(body.decode("utf-8", "replace"))
    strip_s = time.perf_counter() - started
    return {
        "pages": count,
        "distinct_pages": len(pages),
        "mean_page_kb": sum(len(p) for p in pages) / len(pages) / 1024,
        "extract_pages_per_s": count / extract_s,
        "extract_ms_per_page": 1000 * extract_s / count,
        "baseline_strip_pages_per_s": count / strip_s,
        "extraction_failures": failures,
        "mean_text_chars": chars / max(count - failures, 1),
    }


FEED = """<?xml version="1.0"?><rss version="2.0"><channel><title>t</title><link>{o}/</link>
<description>d</description><item><title>Armenia seeks to distance itself from Russia's military
pact</title><link>{o}/story/{n}</link><guid isPermaLink="false">item-{n}</guid><description>"There
is no other way," said Armenia's Prime Minister Pashinyan on the planned withdrawal from the...
</description></item></channel></rss>"""

CONFIG = """database: "sqlite:///{db}"
allow_private_article_hosts: true
feeds:
  - name: teasers
    url: {url}
    full_text: {full_text}
rules:
  - name: csto-exit
    query: CSTO AND withdraw*
  - name: teaser
    query: Pashinyan
"""


class Side:
    """One poller with its store, polling the feed again and again as the daemon does: the
    extraction worker it starts on its first article stays for the later ones."""

    def __init__(self, server: FeedServer, *, full_text: bool, work: Path) -> None:
        self.server, self.full_text = server, full_text
        config = load_config(CONFIG.format(db=work / f"{full_text}.db",
                                           url=server.url("/feed.rss"),
                                           full_text=str(full_text).lower()),
                             source="bench", environ={})
        self.store = Store.open(config.database)
        self.store.sync_feeds([FeedSpec(name="teasers", url=server.url("/feed.rss"))],
                              now=utcnow())
        self.client = httpx.AsyncClient()
        self.poller = Poller(store=self.store, client=self.client,
                             plan=plan_from_config(config))

    async def poll(self, n: int) -> float:
        """Seconds from the start of a poll to its hits stored, item ``n`` new in the feed."""
        self.server.serve_feed("/feed.rss", FEED.format(o=self.server.origin, n=n).encode())
        started = time.perf_counter()
        summary = await self.poller.poll_due(force=True)
        elapsed = time.perf_counter() - started
        expected = 2 if self.full_text else 1
        if summary.hits != expected:
            raise SystemExit(f"bench: expected {expected} hits, got {summary.hits}")
        return elapsed

    async def aclose(self) -> None:
        await self.poller.aclose()
        await self.client.aclose()
        self.store.close()


def bench_latency(polls: int) -> dict[str, float]:
    with FeedServer() as server, tempfile.TemporaryDirectory() as tmp:
        for n in range(polls):
            server.set_route(f"/story/{n}", Response(
                headers={"Content-Type": "text/html; charset=utf-8"},
                body=ARTICLE.read_bytes()))

        async def run() -> tuple[list[float], list[float]]:
            teaser_side = Side(server, full_text=False, work=Path(tmp))
            full_side = Side(server, full_text=True, work=Path(tmp))
            teaser, full = [], []
            try:
                for n in range(polls):
                    teaser.append(await teaser_side.poll(n))
                    full.append(await full_side.poll(n))
            finally:
                await teaser_side.aclose()
                await full_side.aclose()
            return teaser, full

        teaser, full = asyncio.run(run())
    return {
        "polls": polls,
        "teaser_poll_ms_median": 1000 * statistics.median(teaser),
        "full_text_poll_ms_median": 1000 * statistics.median(full),
        "added_latency_ms_median": 1000 * (statistics.median(full) - statistics.median(teaser)),
        # The first article starts the extraction worker: the longest wait.
        "added_latency_ms_max": 1000 * (max(full) - statistics.median(teaser)),
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench article")
    parser.add_argument("--pages", type=int, default=200)
    parser.add_argument("--polls", type=int, default=15)
    args = parser.parse_args(argv)
    pages = corpus_pages()
    extraction = bench_extraction(pages, args.pages)
    latency = bench_latency(args.polls)
    print("article text (2 shared cores; other test runs may be competing)")
    print(f"  pages: {extraction['pages']} extractions over {extraction['distinct_pages']} "
          f"distinct pages, mean {extraction['mean_page_kb']:.1f} KiB, "
          f"{extraction['extraction_failures']} too short")
    print(f"  trafilatura extraction   {extraction['extract_pages_per_s']:8.1f} pages/s "
          f"({extraction['extract_ms_per_page']:.2f} ms/page)")
    print(f"  baseline: strip markup   {extraction['baseline_strip_pages_per_s']:8.1f} pages/s")
    print(f"  poll → hits stored, teaser only  {latency['teaser_poll_ms_median']:7.1f} ms "
          f"(median of {latency['polls']})")
    print(f"  poll → hits stored, full_text    {latency['full_text_poll_ms_median']:7.1f} ms")
    print(f"  added latency per alert          {latency['added_latency_ms_median']:7.1f} ms "
          f"(max {latency['added_latency_ms_max']:.1f} ms) over loopback")
    report = {
        "extract_pages_per_s": round(extraction["extract_pages_per_s"], 1),
        "extract_ms_per_page": round(extraction["extract_ms_per_page"], 2),
        "baseline_strip_pages_per_s": round(extraction["baseline_strip_pages_per_s"], 1),
        "distinct_pages": extraction["distinct_pages"],
        "mean_page_kib": round(extraction["mean_page_kb"], 1),
        "teaser_poll_ms_median": round(latency["teaser_poll_ms_median"], 1),
        "full_text_poll_ms_median": round(latency["full_text_poll_ms_median"], 1),
        "added_latency_ms_median": round(latency["added_latency_ms_median"], 1),
        "added_latency_ms_max": round(latency["added_latency_ms_max"], 1),
    }
    print(json.dumps(report))
    return 0
