"""The running monitor: one store, one HTTP client, the poller and the deliverer.

``run_once`` serves cron (poll what is due, deliver, exit); ``run_forever`` is
the daemon. Both are driven by the same passes, so they behave alike.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from monitor.channels import close_notifiers
from monitor.config import Config
from monitor.delivery import Deliverer, DeliverySummary
from monitor.durations import doubled
from monitor.fetch import make_client
from monitor.holds import policy_from_config
from monitor.metrics import Metrics
from monitor.parsepool import ProcessParser
from monitor.pipeline import Poller, PollSummary
from monitor.plan import Plan, plan_from_config
from monitor.reload import ConfigReloader, Rejected
from monitor.scheduler import PassFailure, Scheduler
from monitor.store import FeedSpec, Store, utcnow
from monitor.stories import WINDOW as STORY_WINDOW
from monitor.story_desk import StoryDesk, story_update_modes
from notifiers import Notifier

log = logging.getLogger("wirewatch.service")

#: Retention runs this often (the first time soon after start).
PRUNE_EVERY = timedelta(days=1)
#: A retention run that failed (the database restarting, a lock held too long) is
#: tried again this soon, then twice as long after each further failure, at most
#: PRUNE_RETRY_MAX apart: waiting the whole day skipped that day's prune.
PRUNE_RETRY_FIRST = timedelta(minutes=1)
PRUNE_RETRY_MAX = timedelta(minutes=5)
#: ``job_runs`` rows are kept this long. A row must outlive every claim of its
#: run key, or that run would be claimed and run again: a daily key (retention's)
#: is claimed only on its own UTC day, a monthly one for up to 31 days, and the
#: instances' clocks differ by seconds. 90 days covers such schedules with room
#: to spare, and keeps a quarter's record of which instance ran what in a few
#: hundred rows.
JOB_RUNS_KEPT = timedelta(days=90)
#: A channel's pacing slot (``channel_slots``) no notifier uses any more is pruned
#: once it has been past this long. A past slot paces nothing, so the margin is only
#: for instances whose clocks run behind the pruning one's: to them the slot of a
#: channel they still post to may not have passed yet.
CHANNEL_SLOTS_KEPT = timedelta(hours=1)
#: A replaced notifier is closed this long after a reload, once sends it had
#: under way have finished.
RETIRE_AFTER_SECONDS = 120.0


@dataclass(frozen=True, slots=True)
class RunReport:
    poll: PollSummary
    delivery: DeliverySummary
    pending_after: int
    failed_total: int


class Monitor:
    def __init__(
        self,
        *,
        config: Config,
        store: Store,
        notifiers: Mapping[str, Notifier],
        instance_id: str,
        clock: Callable[[], datetime] = utcnow,
        feed_lease: timedelta | None = None,
    ) -> None:
        """``feed_lease``: how long a claimed feed stays leased to this instance,
        over the config's ``feed_lease`` (None: the config's, else derived from
        the feeds' timeouts, see Poller.feed_lease)."""
        self._config = config
        self._feed_lease_override = feed_lease
        self._store = store
        self._notifiers = dict(notifiers)
        self._clock = clock
        self._plan: Plan = plan_from_config(config)
        self._client = make_client(
            user_agent=config.user_agent, max_connections=config.concurrency.global_
        )
        # Parsing in worker processes: both cores, and no parse holding the GIL
        # against the event loop (figures: docs/polling.md, python -m bench polling).
        self.poller = Poller(store=store, client=self._client, plan=self._plan, clock=clock,
                             instance_id=instance_id, parser=ProcessParser())
        self.poller.lease = self._feed_lease(config)
        self.deliverer = Deliverer(
            store=store, notifiers=self._notifiers, instance_id=instance_id, clock=clock,
            ops_notifier=config.ops_notify, policy=policy_from_config(config),
        )
        # The window's stories, read from the database once; then kept up to date.
        self.stories = StoryDesk.load(
            store, update_modes=story_update_modes(config.effective_notifiers()), clock=clock
        )
        self.poller.stories = self.stories
        self.metrics = Metrics(gauges=lambda: store, instance_id=instance_id)
        self.poller.observer = self.metrics
        self.deliverer.observer = self.metrics
        #: Monotonic time of the daemon's last scheduler tick (None before the first).
        self.last_tick: float | None = None
        #: When retention is next due (None: at once); failed tries in a row.
        self._prune_due_at: datetime | None = None
        self._prune_failures = 0
        self._scheduler: Scheduler | None = None
        self._retired: list[Notifier] = []
        self._sync_feeds()

    @property
    def config(self) -> Config:
        return self._config

    @property
    def store(self) -> Store:
        return self._store

    def apply_config(self, config: Config, notifiers: Mapping[str, Notifier]) -> None:
        """Take a new, validated config without a restart (hot reload).

        Feeds are synced by name (a removed feed is disabled, its items kept; a
        new one is due at once). Polls and sends under way finish with the old
        plan and notifier objects; the next pass uses the new ones. Items already
        stored are never matched again, so a new rule sees only items that arrive
        after it, and nothing already seen alerts again.
        """
        old = self._config
        for key in ("database", "http"):
            if getattr(old, key) != getattr(config, key):
                log.warning("config reload: '%s' changes take effect on restart", key)
        plan = plan_from_config(config)
        # The one step that can fail (the database): first, so that a failure leaves
        # the running config whole, and the reloader tries the edit again.
        self._sync_feeds(config)
        self._config = config
        self._plan = plan
        self.poller.replace_plan(self._plan)
        # No restart needed, as for the lease derived from the timeouts: feeds
        # claimed from now on get the new lease; those already held keep theirs.
        self.poller.lease = self._feed_lease(config)
        replaced = [n for name, n in self._notifiers.items() if notifiers.get(name) is not n]
        self._notifiers = dict(notifiers)
        self.deliverer.replace_notifiers(self._notifiers)
        self.deliverer.replace_policy(policy_from_config(config), config.ops_notify)
        self.stories.replace_update_modes(story_update_modes(config.effective_notifiers()))
        self._retire(replaced)
        self.metrics.forget_all_but(rules=self._plan.rules, notifiers=self._notifiers)
        self.metrics.reloads.labels("applied").inc()
        log.info("config reloaded feeds=%d rules=%d notifiers=%s", len(self._plan.feeds),
                 len(self._plan.rules), ",".join(self._notifiers))

    def _feed_lease(self, config: Config) -> timedelta | None:
        if self._feed_lease_override is not None:
            return self._feed_lease_override
        return config.feed_lease

    def reject_config(self, rejected: Rejected) -> None:
        """Log every problem of a config that failed to load; tell ``ops_notify`` once."""
        self.metrics.reloads.labels("rejected").inc()
        count = len(rejected.problems)
        log.error("config reload rejected, the running config stays: %d problem%s", count,
                  "" if count == 1 else "s")
        for problem in rejected.problems:
            log.error("config problem: %s", problem)
        ops = self._config.ops_notify
        if ops is None:
            return
        # The key is the rejected file's digest: one notice per broken version,
        # across instances and restarts.
        self._store.queue_notice(
            key=f"config-rejected:{rejected.digest[:16]}", notifier=ops,
            title=f"wirewatch: config change rejected ({count} problem"
                  f"{'' if count == 1 else 's'}); the previous config keeps running",
            body="\n".join(rejected.problems), severity="high", now=self._clock())

    def _retire(self, notifiers: list[Notifier]) -> None:
        if not notifiers:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._retired.extend(notifiers)
            return
        loop.call_later(RETIRE_AFTER_SECONDS, close_notifiers, notifiers)

    async def prune_if_due(self) -> dict[str, int] | None:
        """Apply retention once a day (see :meth:`Store.prune`).

        Once a UTC day across every instance sharing the database: the first
        to claim the day's run (``job_runs``) prunes, the others skip it. A
        run that fails leaves the day unclaimed and is tried again within
        minutes (PRUNE_RETRY_FIRST, up to PRUNE_RETRY_MAX apart).
        """
        now = self._clock()
        if self._prune_due_at is not None and now < self._prune_due_at:
            return None
        retention = self._config.retention
        # Never inside the stories' window: deduplication still needs those items.
        keep_items = max(retention.items, STORY_WINDOW)
        try:
            counts = await asyncio.to_thread(
                self._store.prune_run, "retention", now.date().isoformat(),
                self.poller.instance_id, now, items_before=now - keep_items,
                deliveries_before=now - retention.deliveries,
                job_runs_before=now - JOB_RUNS_KEPT,
                channel_slots_before=now - CHANNEL_SLOTS_KEPT,
                channels_in_use=self._pacing_keys())
        except Exception as exc:
            # Handled here, not by the scheduler: it would count the ticks spent
            # waiting for the retry as the pass recovering.
            self._prune_failed(now, exc)
            return None
        self._prune_due_at = now + PRUNE_EVERY
        failures, self._prune_failures = self._prune_failures, 0
        if counts is None:
            if failures:
                log.info("retention ran today on another instance, after %d failed tries "
                         "here", failures)
            else:
                log.debug("retention already ran today on another instance")
            return None
        for table, count in counts.items():
            self.metrics.pruned.labels(table).inc(count)
        after = f" after {failures} failed tries" if failures else ""
        log.info("retention pruned%s %s", after,
                 " ".join(f"{t}={n}" for t, n in counts.items()))
        return counts

    def _pacing_keys(self) -> set[str]:
        """The pacing keys (``channel_slots``) of the channels configured now."""
        keys = (getattr(notifier, "pacing_key", None) for notifier in self._notifiers.values())
        return {key for key in keys if key is not None}

    def _prune_failed(self, now: datetime, exc: Exception) -> None:
        self._prune_failures += 1
        failures = self._prune_failures
        wait = doubled(PRUNE_RETRY_FIRST, failures - 1, most=PRUNE_RETRY_MAX)
        self._prune_due_at = now + wait
        if failures == 1:
            log.exception("retention failed, nothing was pruned; next try in %.0f s",
                          wait.total_seconds())
        else:
            log.warning("retention failed again (%d tries): %s: %s; next try in %.0f s",
                        failures, type(exc).__name__, _first_line(exc), wait.total_seconds())

    def due_count(self, *, force: bool = False) -> int:
        """How many feeds a poll pass would poll now."""
        due = self._store.due_feeds(now=self._clock(), force=force)
        return sum(1 for state in due if state.name in self._plan.feeds)

    def failing_passes(self) -> dict[str, PassFailure]:
        """The daemon's passes whose latest run failed (for /healthz)."""
        return self._scheduler.failing() if self._scheduler is not None else {}

    async def _heartbeat(self) -> None:
        self.last_tick = time.monotonic()

    def _sync_feeds(self, config: Config | None = None) -> None:
        feeds = (config or self._config).feeds
        self._store.sync_feeds(
            [FeedSpec(name=f.name, url=f.url, enabled=f.enabled) for f in feeds],
            now=self._clock(),
        )

    async def run_once(
        self, *, force: bool = False, deliver_timeout: timedelta = timedelta(seconds=60)
    ) -> RunReport:
        try:
            poll = await self.poller.poll_due(force=force)
            delivery = await self.deliverer.drain(deadline=deliver_timeout)
        finally:
            # Interrupted (SIGTERM from cron's timeout, Ctrl-C) or not, nothing stays
            # claimed by this process once it is gone.
            self.release_own_claims()
        counts = self._store.delivery_counts()
        return RunReport(
            poll=poll,
            delivery=delivery,
            pending_after=counts.pending + counts.sending,
            failed_total=counts.failed,
        )

    async def run_forever(
        self,
        stop: asyncio.Event,
        *,
        tick_seconds: float = 1.0,
        reloader: ConfigReloader[Config] | None = None,
    ) -> None:
        scheduler = Scheduler(tick_seconds=tick_seconds)
        self._scheduler = scheduler
        scheduler.every_tick("heartbeat", self._heartbeat)
        scheduler.every_tick("poll", self.poller.poll_due)
        scheduler.every_tick("deliver", self.deliverer.deliver_due)
        scheduler.every_tick("retention", self.prune_if_due)
        scheduler.start()
        watching = asyncio.create_task(reloader.run(stop)) if reloader is not None else None
        log.info(
            "started feeds=%d rules=%d notifiers=%s",
            len(self._plan.feeds),
            len(self._plan.rules),
            ",".join(self._notifiers),
        )
        try:
            await stop.wait()
        finally:
            log.info("stopping")
            if watching is not None:
                watching.cancel()
            await scheduler.shutdown(grace_seconds=10.0)
            self.release_own_claims()

    def release_own_claims(self) -> None:
        """Give back what this process holds: deliveries claimed by a pass that was
        cancelled go back to pending, and feeds leased to it are free for the other
        instances, now rather than when their leases expire."""
        self._store.release_claims(now=self._clock(), claimer=self.deliverer.instance_id)
        self._store.release_feeds(owner=self.poller.instance_id)

    async def aclose(self) -> None:
        await self._client.aclose()
        await self.poller.aclose()
        close_notifiers([*self._retired, *self._notifiers.values()])


def _first_line(exc: Exception) -> str:
    """The first line of ``exc``'s message: a driver's may go on for lines (SQL, hints)."""
    text = str(exc)
    return text.splitlines()[0] if text else ""
