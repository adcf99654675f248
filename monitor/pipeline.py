"""The order of stages for polling: due feeds → fetch → parse → store → match.

This module alone knows that order; the stages do not import each other.
Delivery of the hits stored here is :mod:`monitor.delivery`'s job.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

import httpx

import rules
from monitor.article import ArticleFetcher, make_article_client
from monitor.cadence import next_poll_after_failure, next_poll_after_success
from monitor.extractpool import ExtractionPool
from monitor.feed_health import (
    OpsNotice,
    failing_notice,
    gone_notice,
    recovery_notice,
    silence_notice,
)
from monitor.fetch import FetchError, FetchResult, Validators, fetch_feed
from monitor.hosts import HostLimits
from monitor.instance import default_instance_id
from monitor.metrics import NO_METRICS, Observer
from monitor.parse import FeedParseError, ParsedFeed
from monitor.parsepool import FeedParser, ThreadParser
from monitor.plan import FeedPlan, Plan
from monitor.store import (
    AwaitingItem,
    FeedState,
    FeedUpdate,
    NewHit,
    NewItem,
    Store,
    StoryAssigner,
    utcnow,
)

log = logging.getLogger("wirewatch.pipeline")

# Polls in a row that must see the same permanent redirect before it is adopted.
PROMOTE_REDIRECT_AFTER = 3
# Unchanged polls (mostly 304s) are written in batches of up to this many, or
# after this long, whichever comes first.
UNCHANGED_BATCH = 200
# While polls of a pass are still running, how often the store is asked for feeds
# that fell due meanwhile.
CLAIM_AGAIN_SECONDS = 0.5
UNCHANGED_MAX_WAIT = 1.0


class UnchangedWriter:
    """Buffers the store writes of unchanged polls and writes them in batches.

    A 304 costs less to fetch than a transaction costs to commit; one
    executemany per batch keeps the CPU per 304 poll low. Losing a batch in a
    crash only means those feeds are polled (and answer 304) again.
    """

    def __init__(self, store: Store) -> None:
        self._store = store
        self._pending: list[tuple[int, FeedUpdate]] = []
        self._oldest = 0.0

    async def add(self, feed_id: int, update_: FeedUpdate) -> None:
        loop = asyncio.get_running_loop()
        if not self._pending:
            self._oldest = loop.time()
        self._pending.append((feed_id, update_))
        if len(self._pending) >= UNCHANGED_BATCH or loop.time() - self._oldest >= \
                UNCHANGED_MAX_WAIT:
            await self.flush()

    async def flush(self) -> None:
        batch, self._pending = self._pending, []
        if batch:
            await asyncio.to_thread(self._store.record_unchanged_many, batch)
# A claimed feed's lease is twice the longest feed timeout plus this (Poller.feed_lease).
FEED_LEASE_MARGIN = timedelta(seconds=60)
# An item awaiting its article text is claimed for its full_text_timeout plus this;
# past that another pass (after a crash: the next one) may take it over.
ARTICLE_CLAIM_MARGIN = timedelta(seconds=60)

#: A wall clock found this much behind the previous pass's was stepped back (NTP, an
#: operator); smaller differences are left to the schedule.
CLOCK_STEP_BACK = timedelta(minutes=1)


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
    #: Hits on items that were awaiting article text since an earlier poll.
    late_hits: int = 0

    @property
    def new_items(self) -> int:
        return sum(o.new_items for o in self.outcomes)

    @property
    def hits(self) -> int:
        return sum(o.hits for o in self.outcomes) + self.late_hits

    @property
    def errors(self) -> list[FeedOutcome]:
        return [o for o in self.outcomes if o.status == "error"]


class Poller:
    """Polls the feeds the store says are due, and stores what they bring.

    Politeness and robustness live here: per-host and global concurrency
    (:mod:`monitor.hosts`), conditional GET and body hashing so unchanged feeds
    cost no parsing, Retry-After and backoff (:mod:`monitor.cadence`), adoption
    of permanent redirects, 410 Gone, and ops notices about feeds that fail,
    recover or fall silent (:mod:`monitor.feed_health`). Every store call runs
    in a worker thread so the event loop keeps serving other polls.
    """

    #: Told about every poll, fetch and hit (metrics); set by the service.
    observer: Observer = NO_METRICS
    #: Puts each new item in its story (monitor.story_desk); set by the service.
    #: None: every item is its own story and alerts on its own.
    stories: StoryAssigner | None = None

    def __init__(
        self,
        *,
        store: Store,
        client: httpx.AsyncClient,
        plan: Plan,
        clock: Callable[[], datetime] = utcnow,
        parser: FeedParser | None = None,
        rng: random.Random | None = None,
        article_client: httpx.AsyncClient | None = None,
        instance_id: str | None = None,
    ) -> None:
        self._store = store
        self._client = client
        self._plan = plan
        self._clock = clock
        self._parser: FeedParser = parser or ThreadParser()
        self._rng = rng
        self._limits = HostLimits(per_host=plan.per_host, total=plan.concurrency)
        # Article text (feeds with full_text): a guarded client, built on first need
        # unless one is given; see _article_fetcher.
        self._article_client = article_client
        # The article client this poller built, with the settings it was built for;
        # one a reload replaced is closed once no article matching is under way.
        self._owned_client: tuple[tuple[object, ...], httpx.AsyncClient] | None = None
        self._retired_clients: list[httpx.AsyncClient] = []
        self._matching = 0
        self._articles: tuple[tuple[object, ...], ArticleFetcher, ExtractionPool] | None = None
        self._instance = instance_id or default_instance_id()
        self._last_pass_at: datetime | None = None

    #: How long a claimed feed stays leased (None: derived from the plan, see
    #: :meth:`feed_lease`); short in tests so takeover after a crash is quick.
    lease: timedelta | None = None

    @property
    def instance_id(self) -> str:
        return self._instance

    def feed_lease(self, plan: Plan) -> timedelta:
        """The lease on a claimed feed: long enough for its poll to finish.

        A poll waits for a concurrency slot (claims run at most two windows
        ahead), then fetches within the feed's timeout and parses. Should a
        lease run out mid-poll, another instance may poll the feed too: one
        more request, never a second alert (the database deduplicates items).
        """
        if self.lease is not None:
            return self.lease
        timeouts = [f.timeout for f in plan.feeds.values()]
        return 2 * max(timeouts, default=timedelta(seconds=20)) + FEED_LEASE_MARGIN

    async def _renew_leases(self, plan: Plan) -> None:
        """While a pass runs, keep its leases a full lease ahead (every third of one).

        A slow pass (a loaded machine, a slow host, unchanged polls waiting in the
        batch writer) then never loses a feed to another instance mid-poll; a dead
        instance stops renewing and its feeds return within one lease.
        """
        lease = self.feed_lease(plan)
        while True:
            await asyncio.sleep(lease.total_seconds() / 3)
            try:
                await asyncio.to_thread(self._store.renew_feed_leases, owner=self._instance,
                                        until=self._clock() + lease)
            except Exception:  # the next renewal, or the lease itself, covers a miss
                log.exception("renewing feed leases failed")

    async def _catch_clock_step_back(self) -> None:
        """After the wall clock went back, poll now what was polled "later".

        Next polls are wall-clock times: set before a step back of an hour, they
        held every feed for that hour on top of its interval. A step is seen against
        this poller's previous pass, and on its first pass (``run --once`` from
        cron, a restart) against the store's record of when feeds were polled.
        """
        now = self._clock()
        previous, self._last_pass_at = self._last_pass_at, now
        if previous is not None and previous - now <= CLOCK_STEP_BACK:
            return
        count = await asyncio.to_thread(self._store.reschedule_polled_after,
                                        now + CLOCK_STEP_BACK, now=now)
        if count:
            log.warning("clock stepped back: %d feeds polled more than %s after now "
                        "are due again now", count, CLOCK_STEP_BACK)

    @property
    def plan(self) -> Plan:
        return self._plan

    @property
    def parser(self) -> FeedParser:
        return self._parser

    def replace_plan(self, plan: Plan) -> None:
        """Take a new config; polls already under way finish with the old one."""
        if (plan.per_host, plan.concurrency) != (self._plan.per_host, self._plan.concurrency):
            self._limits = HostLimits(per_host=plan.per_host, total=plan.concurrency)
        self._plan = plan

    async def poll_due(self, *, force: bool = False) -> PollSummary:
        """Poll every due feed (``force``: every enabled feed not told to wait).

        Feeds are leased from the store a window at a time (``claim_due_feeds``),
        never more than about twice the global concurrency ahead of the polls, so
        instances sharing a database split the due feeds between them and a lease
        covers little more than the poll it is for (docs/scaling.md).
        """
        plan = self._plan
        summary = PollSummary()
        await self._catch_clock_step_back()
        writer = UnchangedWriter(self._store)

        async def poll_one(state: FeedState) -> None:
            lag = (self._clock() - state.next_poll_at).total_seconds()
            try:
                outcome = await self._poll(state, plan=plan, writer=writer)
            except Exception as exc:  # a bug or a store error must not end the cycle
                log.exception("feed=%s poll failed unexpectedly", state.name)
                outcome = FeedOutcome(feed=state.name, status="error",
                                      error=f"internal error: {exc.__class__.__name__}: {exc}")
            feed = plan.feeds[state.name]
            if feed.full_text and outcome.new_items:
                # Outside the poll's slot: article fetches take host slots of their own.
                outcome = dataclasses.replace(
                    outcome, hits=outcome.hits + await self.match_awaiting(plan=plan,
                                                                           feed_id=state.id))
            summary.outcomes.append(outcome)
            self.observer.feed_polled(outcome=outcome.status, new_items=outcome.new_items,
                                      lag_seconds=0.0 if force else lag)

        window = max(2 * plan.concurrency, 10)
        claimed: set[int] = set()
        running: set[asyncio.Task[None]] = set()
        renewing = asyncio.create_task(self._renew_leases(plan))
        try:
            while True:
                running = {task for task in running if not task.done()}
                if len(running) > window // 2:
                    _, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                    continue
                states = await asyncio.to_thread(
                    self._store.claim_due_feeds, now=self._clock(), lease=self.feed_lease(plan),
                    owner=self._instance, limit=window - len(running), force=force)
                # A feed claimed twice in one pass (its poll failed unrecorded and its
                # lease ran out) waits for the next pass: no loop within a pass.
                fresh = [s for s in states if s.id not in claimed]
                claimed.update(s.id for s in states)
                if not fresh:
                    if not running:
                        break
                    # Keep claiming while the last polls run: a feed falling due
                    # behind a slow server's poll starts now, not after it.
                    _, running = await asyncio.wait(running, timeout=CLAIM_AGAIN_SECONDS,
                                                    return_when=asyncio.FIRST_COMPLETED)
                    continue
                running.update(asyncio.create_task(poll_one(state)) for state in fresh
                               if state.name in plan.feeds)
            if running:
                await asyncio.gather(*running)
        finally:
            renewing.cancel()
            for task in running:
                task.cancel()
            await writer.flush()
            if claimed:
                await asyncio.to_thread(self._store.release_feeds, owner=self._instance,
                                        feed_ids=claimed)
        # Items a crash or an overrun left awaiting their text are matched now.
        summary.late_hits = await self.match_awaiting(plan=plan)
        return summary

    # ------------------------------------------------------------------- article text

    async def match_awaiting(self, *, plan: Plan | None = None, feed_id: int | None = None) -> int:
        """Fetch the article text of items awaiting it, match them once, store the hits.

        Each item waits for its text at most its feed's ``full_text_timeout``, then
        is matched on the feed text with the reason recorded. Returns hits stored.
        """
        self._matching += 1
        try:
            return await self._match_awaiting(plan=plan or self._plan, feed_id=feed_id)
        finally:
            self._matching -= 1
            if not self._matching and self._retired_clients:
                # Every fetch through a replaced client happens in here: none is left.
                retired, self._retired_clients = self._retired_clients, []
                for client in retired:
                    await client.aclose()

    async def _match_awaiting(self, *, plan: Plan, feed_id: int | None) -> int:
        waits = [f.full_text_timeout for f in plan.feeds.values() if f.full_text]
        lease = max(waits, default=timedelta(seconds=30)) + ARTICLE_CLAIM_MARGIN
        stored = 0
        while True:
            try:
                claimed = await asyncio.to_thread(
                    self._store.claim_awaiting_text, now=self._clock(), lease=lease,
                    claimer=self._instance, feed_id=feed_id)
            except Exception:  # a store error must not end the poll cycle; next pass retries
                log.exception("claiming items awaiting article text failed")
                return stored
            if not claimed:
                return stored
            fetcher = self._article_fetcher(plan)
            counts = await asyncio.gather(*(self._match_article(a, plan, fetcher)
                                            for a in claimed))
            stored += sum(counts)

    async def _match_article(self, awaiting: AwaitingItem, plan: Plan,
                             fetcher: ArticleFetcher) -> int:
        item = awaiting.item
        feed = plan.feeds.get(awaiting.feed_name)
        try:
            if feed is None:
                # The feed left the config: its rules and scope are gone with it.
                await asyncio.to_thread(
                    self._store.store_article_match, awaiting.item_id, url=None, text=None,
                    failure="feed no longer in the config; not matched", hits=(),
                    now=self._clock())
                return 0
            if feed.full_text:
                result = await fetcher.text(
                    item.link, deadline=feed.full_text_timeout.total_seconds(),
                    timeout=feed.timeout.total_seconds(), max_bytes=plan.max_bytes)
                url, text, failure = result.url, result.text, result.failure
            else:
                url, text, failure = None, None, "full_text was turned off before the fetch"
            # In a thread, as a feed's items are matched (inside store_poll): an article
            # has no size limit but the page's, and matching and explaining a few MB of
            # text would hold the event loop, and every poll and send, for seconds.
            hits = await asyncio.to_thread(
                lambda: list(match_items([item], feed=feed, plan=plan,
                                         article_text={item.item_key: text} if text else None)))
            hit_ids = await asyncio.to_thread(
                self._store.store_article_match, awaiting.item_id, url=url, text=text,
                failure=failure, hits=hits, now=self._clock())
        except Exception:  # the claim expires and a later pass retries this item
            log.exception("feed=%s item_key=%s article matching failed unexpectedly",
                          awaiting.feed_name, item.item_key)
            return 0
        if failure:
            log.warning("feed=%s item_key=%s full_text_failure=%r matched on the feed text",
                        awaiting.feed_name, item.item_key, failure)
        if hit_ids is None:
            return 0  # another pass matched it first
        for hit in hits:
            self.observer.hit_stored(rule=hit.rule)
        return len(hit_ids)

    def _article_fetcher(self, plan: Plan) -> ArticleFetcher:
        """The fetcher for this plan: rebuilt when the plan changes what it depends on."""
        key = (plan.user_agent, plan.allow_private_article_hosts, plan.full_text_concurrency,
               id(self._limits))
        if self._articles is None or self._articles[0] != key:
            client = self._article_client or self._own_article_client(plan)
            # Extraction runs in worker processes, killed at an item's deadline; their
            # number is the fetcher's own bound, so they are replaced together.
            extractor = ExtractionPool(size=plan.full_text_concurrency)
            fetcher = ArticleFetcher(client=client, extractor=extractor, limits=self._limits,
                                     concurrency=plan.full_text_concurrency)
            if self._articles is not None:
                # Extractions under way on the old pool finish (or are killed at their
                # deadline) before its workers go.
                self._articles[2].close(wait=False)
            self._articles = (key, fetcher, extractor)
        return self._articles[1]

    def _own_article_client(self, plan: Plan) -> httpx.AsyncClient:
        """The client for the plan's article settings; new host limits keep the client.

        A client replaced (the settings changed on a reload) is retired, not dropped:
        left open, each one kept its pooled connections until the daemon stopped.
        """
        key = (plan.user_agent, plan.allow_private_article_hosts, plan.full_text_concurrency)
        if self._owned_client is not None:
            if self._owned_client[0] == key:
                return self._owned_client[1]
            self._retired_clients.append(self._owned_client[1])
        client = make_article_client(
            user_agent=plan.user_agent, allow_private=plan.allow_private_article_hosts,
            max_connections=plan.full_text_concurrency)
        self._owned_client = (key, client)
        return client

    async def aclose(self) -> None:
        """Close the HTTP clients this poller built (not the ones it was given)."""
        self._parser.close()  # stops parse worker processes, if any
        if self._articles is not None:
            self._articles[2].close()  # and the extraction workers
            self._articles = None
        clients, self._retired_clients = self._retired_clients, []
        if self._owned_client is not None:
            clients.append(self._owned_client[1])
            self._owned_client = None
        for client in clients:
            await client.aclose()

    async def poll_feed(self, state: FeedState, *, plan: Plan | None = None) -> FeedOutcome:
        """Poll one feed now, whatever its schedule; its outcome is stored on return."""
        writer = UnchangedWriter(self._store)
        try:
            return await self._poll(state, plan=plan or self._plan, writer=writer)
        finally:
            await writer.flush()

    async def _poll(self, state: FeedState, *, plan: Plan, writer: UnchangedWriter
                    ) -> FeedOutcome:
        feed = plan.feeds[state.name]
        async with self._limits.slot(state.fetch_url) as slot:
            started = time.monotonic()
            try:
                result = await fetch_feed(
                    self._client,
                    state.fetch_url,
                    validators=Validators(etag=state.etag, last_modified=state.last_modified),
                    timeout=feed.timeout.total_seconds(),
                    max_bytes=plan.max_bytes,
                )
            except FetchError as exc:
                self.observer.fetch_finished(seconds=time.monotonic() - started)
                slot.release_host()
                if exc.status == 410:
                    return await self._disable_gone(state, feed, plan, str(exc))
                return await self._record_failure(
                    state, feed, plan, str(exc), status=exc.status, retry_after=exc.retry_after
                )
            self.observer.fetch_finished(seconds=time.monotonic() - started)
            slot.release_host()
            return await self._process(state, feed, plan, result, writer)

    async def _process(
        self, state: FeedState, feed: FeedPlan, plan: Plan, result: FetchResult,
        writer: UnchangedWriter,
    ) -> FeedOutcome:
        if result.not_modified:
            # RFC 9110 §15.4.5: a 304 carries no body; nothing to parse.
            return await self._record_unchanged(state, feed, plan, result, writer,
                                                body_hash=None)
        body_hash = hashlib.sha256(result.body).hexdigest()
        if body_hash == state.body_hash:
            # Byte-identical to the last body (a host that ignores validators).
            return await self._record_unchanged(state, feed, plan, result, writer,
                                                body_hash=body_hash)
        try:
            parsed = await self._parser.parse(
                result.body, url=result.url, content_type=result.content_type
            )
        except FeedParseError as exc:
            return await self._record_failure(
                state, feed, plan, f"not a usable feed: {exc}", status=result.status
            )
        now = self._clock()
        hints = [h for h in (parsed.ttl, result.max_age) if h is not None]
        update_ = self._success_update(
            state, feed, result, now=now, server_hint=max(hints) if hints else None,
            body_hash=body_hash,
        )
        if parsed.problems:
            update_ = replace(update_, error="warning: " + "; ".join(parsed.problems))
            log.warning("feed=%s warning=%r", feed.name, update_.error)
        outcome = await asyncio.to_thread(
            self._store_parsed, state, feed, plan, update_, parsed
        )
        await self._after_success(state, feed, plan, now=now, new_items=outcome.new_items)
        return outcome

    def _store_parsed(
        self,
        state: FeedState,
        feed: FeedPlan,
        plan: Plan,
        update_: FeedUpdate,
        parsed: ParsedFeed,
    ) -> FeedOutcome:
        # An item without a usable date is dated when first seen (this poll); for
        # an item already stored, the insert is skipped and its first date stays.
        seen_at = update_.polled_at
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
                published_at=i.published_at or seen_at,
            )
            for i in parsed.items
        ]
        new_count = 0
        matched: list[NewHit] = []

        def match(new_items: Sequence[NewItem]) -> Iterable[NewHit]:
            nonlocal new_count
            new_count = len(new_items)
            if feed.full_text:
                return []  # matched once, on the article text: match_awaiting
            matched[:] = match_items(new_items, feed=feed, plan=plan)
            return list(matched)

        hit_ids = self._store.store_poll(state.id, items, update_=update_, match=match,
                                         awaiting_text=feed.full_text, stories=self.stories)
        for hit in matched:
            self.observer.hit_stored(rule=hit.rule)
        if new_count:
            log.info("feed=%s new_items=%d hits=%d", feed.name, new_count, len(hit_ids))
        return FeedOutcome(feed=feed.name, status="new", new_items=new_count, hits=len(hit_ids))

    async def _record_unchanged(
        self, state: FeedState, feed: FeedPlan, plan: Plan, result: FetchResult,
        writer: UnchangedWriter, *, body_hash: str | None,
    ) -> FeedOutcome:
        now = self._clock()
        update_ = self._success_update(
            state, feed, result, now=now, server_hint=result.max_age, body_hash=body_hash,
            keep_validators=result.not_modified,
        )
        await writer.add(state.id, update_)
        await self._after_success(state, feed, plan, now=now, new_items=0)
        return FeedOutcome(feed=feed.name, status="unchanged")

    def _success_update(
        self,
        state: FeedState,
        feed: FeedPlan,
        result: FetchResult,
        *,
        now: datetime,
        server_hint: timedelta | None,
        body_hash: str | None,
        keep_validators: bool = False,
    ) -> FeedUpdate:
        target, streak, promote = self._redirect_evidence(state, result)
        return FeedUpdate(
            polled_at=now,
            next_poll_at=next_poll_after_success(
                now, feed.cadence, server_hint=server_hint, rng=self._rng
            ),
            status=result.status,
            error=None,
            etag=result.validators.etag,
            last_modified=result.validators.last_modified,
            body_hash=body_hash,
            keep_validators=keep_validators,
            redirect_target=target,
            redirect_streak=streak,
            effective_url=promote,
        )

    def _redirect_evidence(
        self, state: FeedState, result: FetchResult
    ) -> tuple[str | None, int, str | None]:
        """(target, polls in a row that saw it, URL to adopt now or None).

        A permanent redirect becomes the feed's effective URL only after
        PROMOTE_REDIRECT_AFTER polls in a row saw it, so a misconfigured server
        for an afternoon does not move a feed for good.
        """
        target = result.permanent_redirect
        if target is None or target == state.fetch_url:
            return None, 0, None
        streak = state.redirect_streak + 1 if target == state.redirect_target else 1
        if streak < PROMOTE_REDIRECT_AFTER:
            return target, streak, None
        log.info("feed=%s effective_url=%s after %d permanent redirects in a row",
                 state.name, target, streak)
        return None, 0, target

    async def _after_success(
        self, state: FeedState, feed: FeedPlan, plan: Plan, *, now: datetime, new_items: int
    ) -> None:
        recovered = recovery_notice(state, now=now)
        if recovered is not None:
            await self._raise(recovered, plan=plan, feed=feed.name, now=now)
        if new_items:
            return
        silent = silence_notice(state, now=now, expect_every=feed.expect_every)
        if silent is not None:
            await self._raise(silent, plan=plan, feed=feed.name, now=now)
            await asyncio.to_thread(self._store.mark_silence_alerted, state.id, at=now)

    async def _record_failure(
        self,
        state: FeedState,
        feed: FeedPlan,
        plan: Plan,
        error: str,
        *,
        status: int | None,
        retry_after: timedelta | None = None,
    ) -> FeedOutcome:
        now = self._clock()
        failures = state.consecutive_failures + 1
        next_at = next_poll_after_failure(
            now, feed.cadence, failures=failures, retry_after=retry_after, rng=self._rng
        )
        update_ = FeedUpdate(
            polled_at=now, next_poll_at=next_at, status=status, error=error,
            retry_after_until=now + retry_after if retry_after is not None else None,
        )
        await asyncio.to_thread(self._store.record_failure, state.id, update_)
        log.warning(
            "feed=%s error=%r consecutive_failures=%d next_poll_at=%s",
            feed.name,
            error,
            failures,
            next_at.isoformat(timespec="seconds"),
        )
        failing = failing_notice(state, error=error, now=now, alert_after=plan.alert_after)
        if failing is not None:
            await self._raise(failing, plan=plan, feed=feed.name, now=now)
            await asyncio.to_thread(self._store.mark_failure_alerted, state.id, at=now)
        return FeedOutcome(feed=feed.name, status="error", error=error)

    async def _disable_gone(
        self, state: FeedState, feed: FeedPlan, plan: Plan, error: str
    ) -> FeedOutcome:
        # RFC 9110 §15.5.11: 410 means the resource is gone for good.
        now = self._clock()
        reason = f"{error}: the server says this feed is gone for good"
        await asyncio.to_thread(
            self._store.disable_gone, state.id, reason=reason, status=410, now=now
        )
        log.warning("feed=%s disabled reason=%r", feed.name, reason)
        await self._raise(gone_notice(state, reason=reason), plan=plan, feed=feed.name, now=now)
        return FeedOutcome(feed=feed.name, status="error", error=reason)

    async def _raise(self, notice: OpsNotice, *, plan: Plan, feed: str, now: datetime) -> None:
        """Queue an ops notice on the ops outbox, or log it when no ops_notify is set."""
        if plan.ops_notify is None:
            log.warning("feed=%s ops_alert=%r (no ops_notify configured) %s",
                        feed, notice.title, notice.body.replace("\n", " | "))
            return
        queued = await asyncio.to_thread(
            self._store.queue_notice,
            key=notice.key,
            notifier=plan.ops_notify,
            title=notice.title,
            body=notice.body,
            severity=notice.severity,
            now=now,
        )
        log.info("feed=%s ops_alert=%r queued=%s", feed, notice.title, queued)


def match_items(
    items: Iterable[NewItem], *, feed: FeedPlan, plan: Plan,
    article_text: Mapping[str, str] | None = None,
) -> Iterable[NewHit]:
    """Run the feed's rules over new items; one NewHit per (rule, item).

    ``article_text`` (by item key) stands in for the feed's content where an
    item has it, so ``content:`` searches the article.
    """
    feeds_field = (feed.name, *feed.tags)
    texts = article_text or {}
    for item in items:
        document = rules.Document(
            title=item.title,
            summary=item.summary,
            content=texts.get(item.item_key) or item.content,
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
