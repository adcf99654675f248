"""The order of stages for polling: due feeds → fetch → parse → store → match.

This module alone knows that order; the stages do not import each other.
Delivery of the hits stored here is :mod:`monitor.delivery`'s job.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import httpx

import rules
from monitor.cadence import next_poll_after_failure, next_poll_after_success
from monitor.fetch import FetchError, FetchResult, Validators, fetch_feed
from monitor.parse import FeedParseError, ParsedFeed, parse_feed
from monitor.plan import FeedPlan, Plan
from monitor.store import FeedState, FeedUpdate, NewHit, NewItem, Store, utcnow

log = logging.getLogger("wirewatch.pipeline")


@dataclass(frozen=True, slots=True)
class FeedOutcome:
    feed: str
    status: str  # "new" | "unchanged" | "error"
    new_items: int = 0
    hits: int = 0
    error: str | None = None


@dataclass(slots=True)
class PollSummary:
    outcomes: list[FeedOutcome] = field(default_factory=list)

    @property
    def new_items(self) -> int:
        return sum(o.new_items for o in self.outcomes)

    @property
    def hits(self) -> int:
        return sum(o.hits for o in self.outcomes)

    @property
    def errors(self) -> list[FeedOutcome]:
        return [o for o in self.outcomes if o.status == "error"]


class Poller:
    """Polls the feeds the store says are due, and stores what they bring."""

    def __init__(
        self,
        *,
        store: Store,
        client: httpx.AsyncClient,
        plan: Plan,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._store = store
        self._client = client
        self._plan = plan
        self._clock = clock

    @property
    def plan(self) -> Plan:
        return self._plan

    def replace_plan(self, plan: Plan) -> None:
        """Take a new config; polls already under way finish with the old one."""
        self._plan = plan

    async def poll_due(self, *, force: bool = False) -> PollSummary:
        plan = self._plan
        due = [
            s for s in self._store.due_feeds(now=self._clock(), force=force) if s.name in plan.feeds
        ]
        semaphore = asyncio.Semaphore(plan.concurrency)
        summary = PollSummary()

        async def poll_one(state: FeedState) -> None:
            async with semaphore:
                summary.outcomes.append(await self.poll_feed(state, plan=plan))

        await asyncio.gather(*(poll_one(state) for state in due))
        return summary

    async def poll_feed(self, state: FeedState, *, plan: Plan | None = None) -> FeedOutcome:
        plan = plan or self._plan
        feed = plan.feeds[state.name]
        try:
            result = await fetch_feed(
                self._client,
                state.fetch_url,
                validators=Validators(etag=state.etag, last_modified=state.last_modified),
                timeout=feed.timeout.total_seconds(),
                max_bytes=plan.max_bytes,
            )
        except FetchError as exc:
            return self._record_failure(
                state, feed, str(exc), status=exc.status, retry_after=exc.retry_after
            )
        now = self._clock()
        if result.not_modified:
            self._store.record_unchanged(state.id, self._unchanged(now, feed, result))
            return FeedOutcome(feed=feed.name, status="unchanged")
        body_hash = hashlib.sha256(result.body).hexdigest()
        if body_hash == state.body_hash:
            # Byte-identical to the last body: nothing to parse.
            self._store.record_unchanged(state.id, self._unchanged(now, feed, result))
            return FeedOutcome(feed=feed.name, status="unchanged")
        try:
            parsed = await asyncio.to_thread(
                parse_feed, result.body, url=result.url, content_type=result.content_type
            )
        except FeedParseError as exc:
            return self._record_failure(
                state, feed, f"not a usable feed: {exc}", status=result.status
            )
        return await asyncio.to_thread(
            self._store_parsed, state, feed, plan, result, parsed, body_hash
        )

    def _store_parsed(
        self,
        state: FeedState,
        feed: FeedPlan,
        plan: Plan,
        result: FetchResult,
        parsed: ParsedFeed,
        body_hash: str,
    ) -> FeedOutcome:
        now = self._clock()
        items = [
            NewItem(
                item_key=i.item_key,
                guid=i.guid,
                link=i.link,
                title=i.title,
                summary=i.summary,
                content=i.content,
                author=i.author,
                categories=i.categories,
                published_at=i.published_at,
            )
            for i in parsed.items
        ]
        new_count = 0

        def match(new_items: Sequence[NewItem]) -> Iterable[NewHit]:
            nonlocal new_count
            new_count = len(new_items)
            return list(match_items(new_items, feed=feed, plan=plan))

        update_ = FeedUpdate(
            polled_at=now,
            next_poll_at=next_poll_after_success(now, feed.cadence, server_hint=parsed.ttl),
            status=result.status,
            error=None,
            etag=result.validators.etag,
            last_modified=result.validators.last_modified,
            body_hash=body_hash,
        )
        hit_ids = self._store.store_poll(state.id, items, update_=update_, match=match)
        if new_count:
            log.info("feed=%s new_items=%d hits=%d", feed.name, new_count, len(hit_ids))
        return FeedOutcome(feed=feed.name, status="new", new_items=new_count, hits=len(hit_ids))

    def _unchanged(self, now: datetime, feed: FeedPlan, result: FetchResult) -> FeedUpdate:
        return FeedUpdate(
            polled_at=now,
            next_poll_at=next_poll_after_success(now, feed.cadence),
            status=result.status,
            error=None,
            etag=result.validators.etag,
            last_modified=result.validators.last_modified,
            keep_validators=result.not_modified,
        )

    def _record_failure(
        self,
        state: FeedState,
        feed: FeedPlan,
        error: str,
        *,
        status: int | None,
        retry_after: object = None,
    ) -> FeedOutcome:
        now = self._clock()
        failures = state.consecutive_failures + 1
        next_at = next_poll_after_failure(
            now, feed.cadence, failures=failures, retry_after=retry_after
        )  # type: ignore[arg-type]
        self._store.record_failure(
            state.id, FeedUpdate(polled_at=now, next_poll_at=next_at, status=status, error=error)
        )
        log.warning(
            "feed=%s error=%r consecutive_failures=%d next_poll_at=%s",
            feed.name,
            error,
            failures,
            next_at.isoformat(timespec="seconds"),
        )
        return FeedOutcome(feed=feed.name, status="error", error=error)


def match_items(items: Iterable[NewItem], *, feed: FeedPlan, plan: Plan) -> Iterable[NewHit]:
    """Run the feed's rules over new items; one NewHit per (rule, item)."""
    feeds_field = (feed.name, *feed.tags)
    for item in items:
        document = rules.Document(
            title=item.title,
            summary=item.summary,
            content=item.content,
            author=item.author,
            categories=item.categories,
            feeds=feeds_field,
            url=item.link or "",
        )
        for hit in plan.ruleset.match(document, only=feed.rules):
            rule = plan.rules[hit.rule]
            yield NewHit(
                rule=hit.rule,
                item_key=item.item_key,
                severity=rule.severity,
                matched_terms=tuple(
                    {"field": t.field, "text": t.text, "start": t.start, "end": t.end}
                    for t in hit.terms
                ),
                snippet=hit.snippet.text,
                marks=hit.snippet.marks,
                notifiers=rule.notify,
            )
