"""The running monitor: one store, one HTTP client, the poller and the deliverer.

``run_once`` serves cron (poll what is due, deliver, exit); ``run_forever`` is
the daemon. Both are driven by the same passes, so they behave alike.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from monitor.config import Config
from monitor.delivery import Deliverer, DeliverySummary
from monitor.fetch import make_client
from monitor.pipeline import Poller, PollSummary
from monitor.plan import Plan, plan_from_config
from monitor.scheduler import Scheduler
from monitor.store import FeedSpec, Store, utcnow
from notifiers import Notifier

log = logging.getLogger("wirewatch.service")


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
    ) -> None:
        self._config = config
        self._store = store
        self._notifiers = dict(notifiers)
        self._clock = clock
        self._plan: Plan = plan_from_config(config)
        self._client = make_client(
            user_agent=config.user_agent, max_connections=config.concurrency.global_
        )
        self.poller = Poller(store=store, client=self._client, plan=self._plan, clock=clock)
        self.deliverer = Deliverer(
            store=store, notifiers=self._notifiers, instance_id=instance_id, clock=clock,
            ops_notifier=config.ops_notify,
        )
        self._sync_feeds()

    def _sync_feeds(self) -> None:
        self._store.sync_feeds(
            [FeedSpec(name=f.name, url=f.url, enabled=f.enabled) for f in self._config.feeds],
            now=self._clock(),
        )

    async def run_once(
        self, *, force: bool = False, deliver_timeout: timedelta = timedelta(seconds=60)
    ) -> RunReport:
        poll = await self.poller.poll_due(force=force)
        delivery = await self.deliverer.drain(deadline=deliver_timeout)
        counts = self._store.delivery_counts()
        return RunReport(
            poll=poll,
            delivery=delivery,
            pending_after=counts.pending + counts.sending,
            failed_total=counts.failed,
        )

    async def run_forever(self, stop: asyncio.Event, *, tick_seconds: float = 1.0) -> None:
        scheduler = Scheduler(tick_seconds=tick_seconds)
        scheduler.every_tick("poll", self.poller.poll_due)
        scheduler.every_tick("deliver", self.deliverer.deliver_due)
        scheduler.start()
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
            await scheduler.shutdown(grace_seconds=10.0)
            # Rows claimed by a pass that was cancelled go back to pending now,
            # rather than waiting for their lease to expire.
            self._store.release_claims(now=self._clock(), claimer=self.deliverer.instance_id)

    async def aclose(self) -> None:
        await self._client.aclose()
        for notifier in self._notifiers.values():
            try:
                notifier.close()
            except Exception:  # closing must not mask the real outcome
                log.exception("notifier=%s close failed", notifier.name)
