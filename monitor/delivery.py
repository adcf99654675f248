"""Sending what the outbox holds: claim due deliveries, send, record the outcome.

Nothing is sent from memory: every alert starts as a ``deliveries`` row written
with its hit. A row is claimed (with a lease) before sending and marked sent,
scheduled for retry, or failed afterwards, so a crash between claim and mark
costs at most a repeat of the messages that were in flight.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from monitor.store import ClaimedDelivery, ClaimedNotice, Store, utcnow
from notifiers import Alert, Notice, Notifier, NotifyError

log = logging.getLogger("wirewatch.delivery")

LEASE = timedelta(minutes=2)
MAX_AGE = timedelta(hours=24)
FIRST_RETRY = timedelta(seconds=2)
MAX_RETRY = timedelta(minutes=15)


@dataclass(slots=True)
class DeliverySummary:
    sent: int = 0
    retrying: int = 0
    failed: int = 0

    def add(self, other: DeliverySummary) -> None:
        self.sent += other.sent
        self.retrying += other.retrying
        self.failed += other.failed


def retry_delay(attempts: int, *, rng: random.Random | None = None) -> timedelta:
    """Exponential backoff with full jitter on the upper half."""
    base = min(FIRST_RETRY * (2 ** max(0, attempts - 1)), MAX_RETRY)
    return base / 2 + (base / 2) * (rng or random).random()


def alert_for(delivery: ClaimedDelivery) -> Alert:
    return Alert(
        alert_id=f"{delivery.hit_id}.{delivery.notifier}",
        rule=delivery.rule,
        title=delivery.title,
        link=delivery.link,
        feed=delivery.feed_name,
        published_at=delivery.published_at,
        snippet=delivery.snippet,
        marks=delivery.marks,
        severity=delivery.severity,
    )


class Deliverer:
    def __init__(
        self,
        *,
        store: Store,
        notifiers: Mapping[str, Notifier],
        instance_id: str,
        clock: Callable[[], datetime] = utcnow,
        max_age: timedelta = MAX_AGE,
        ops_notifier: str | None = None,
    ) -> None:
        self.instance_id = instance_id
        self._store = store
        self._notifiers = dict(notifiers)
        self._clock = clock
        self._max_age = max_age
        self._ops_notifier = ops_notifier
        self._lock = asyncio.Lock()

    def replace_notifiers(self, notifiers: Mapping[str, Notifier]) -> None:
        self._notifiers = dict(notifiers)

    async def deliver_due(self) -> DeliverySummary:
        """Send everything due now; one channel's slowness does not hold up another."""
        summary = DeliverySummary()
        async with self._lock:  # one sender per process; other instances coordinate via claims
            summary.add(await self._send_notices())
            while True:
                claimed = self._store.claim_deliveries(
                    now=self._clock(), lease=LEASE, claimer=self.instance_id
                )
                if not claimed:
                    return summary
                by_channel: dict[str, list[ClaimedDelivery]] = defaultdict(list)
                for delivery in claimed:
                    by_channel[delivery.notifier].append(delivery)
                results = await asyncio.gather(
                    *(self._send_channel(name, rows) for name, rows in by_channel.items())
                )
                for result in results:
                    summary.add(result)

    async def _send_channel(self, name: str, rows: list[ClaimedDelivery]) -> DeliverySummary:
        summary = DeliverySummary()
        notifier = self._notifiers.get(name)
        for delivery in rows:
            if notifier is None:
                # The notifier was removed from the config while this waited.
                self._fail(delivery, f"notifier '{name}' is no longer configured", summary)
                continue
            try:
                receipt = await asyncio.to_thread(notifier.send, alert_for(delivery))
            except NotifyError as exc:
                self._handle_error(delivery, exc, summary)
                continue
            except Exception as exc:  # a bug in a channel must not stall the outbox
                log.exception("notifier=%s rule=%s unexpected error", name, delivery.rule)
                self._handle_error(
                    delivery, NotifyError(f"{name}: {exc!r}", retryable=True), summary
                )
                continue
            self._store.mark_sent(delivery.id, external_id=receipt.external_id, now=self._clock())
            summary.sent += 1
            log.info("notifier=%s rule=%s delivery=%d sent", name, delivery.rule, delivery.id)
        return summary

    def _handle_error(
        self, delivery: ClaimedDelivery, exc: NotifyError, summary: DeliverySummary
    ) -> None:
        now = self._clock()
        if not exc.retryable:
            self._fail(delivery, str(exc), summary)
            return
        if now - delivery.created_at >= self._max_age:
            self._fail(delivery, f"gave up after {delivery.attempts} attempts: {exc}", summary)
            return
        delay = (
            timedelta(seconds=exc.retry_after)
            if exc.retry_after is not None
            else retry_delay(delivery.attempts)
        )
        self._store.schedule_retry(delivery.id, at=now + delay, reason=str(exc))
        summary.retrying += 1
        log.warning(
            "notifier=%s rule=%s delivery=%d retry_in=%.1fs error=%r",
            delivery.notifier,
            delivery.rule,
            delivery.id,
            delay.total_seconds(),
            str(exc),
        )

    def _fail(self, delivery: ClaimedDelivery, reason: str, summary: DeliverySummary) -> None:
        self._store.mark_failed(delivery.id, reason=reason)
        summary.failed += 1
        log.error(
            "notifier=%s rule=%s delivery=%d failed: %s",
            delivery.notifier,
            delivery.rule,
            delivery.id,
            reason,
        )
        self._report_failure(
            key=f"delivery-failed:{delivery.id}",
            notifier=delivery.notifier,
            title=f"Alert for rule '{delivery.rule}' could not be delivered on "
            f"'{delivery.notifier}'",
            body=(
                f"Rule: {delivery.rule}\nChannel: {delivery.notifier}\n"
                f"Item: {delivery.title}\nLink: {delivery.link or '(none)'}\n"
                f"Attempts: {delivery.attempts}\nReason: {reason}"
            ),
        )

    def _report_failure(self, *, key: str, notifier: str, title: str, body: str) -> None:
        """Queue one ops notice for a delivery that will never be sent.

        A channel's failures are never reported on that same channel: if the ops
        channel itself is broken, its notices would fail too, and a notice that fails
        is only logged, so no failure can feed on itself.
        """
        ops = self._ops_notifier
        if ops is None or ops == notifier or ops not in self._notifiers:
            return
        self._store.queue_notice(
            key=key, notifier=ops, title=title, body=body, severity="high", now=self._clock()
        )

    # ------------------------------------------------------------------- notices

    async def _send_notices(self) -> DeliverySummary:
        summary = DeliverySummary()
        while True:
            claimed = self._store.claim_notices(
                now=self._clock(), lease=LEASE, claimer=self.instance_id
            )
            if not claimed:
                return summary
            for notice in claimed:
                await self._send_notice(notice, summary)

    async def _send_notice(self, row: ClaimedNotice, summary: DeliverySummary) -> None:
        notifier = self._notifiers.get(row.notifier)
        if notifier is None or not hasattr(notifier, "send_notice"):
            self._store.mark_notice_failed(
                row.id, reason=f"notifier '{row.notifier}' cannot send notices (not configured)"
            )
            summary.failed += 1
            log.error("notifier=%s notice=%s failed: not configured", row.notifier, row.key)
            return
        notice = Notice(
            notice_id=f"{row.id}.{row.key}", title=row.title, body=row.body,
            severity=row.severity,
        )
        try:
            receipt = await asyncio.to_thread(notifier.send_notice, notice)
        except Exception as exc:
            error = exc if isinstance(exc, NotifyError) else NotifyError(repr(exc), retryable=True)
            now = self._clock()
            if error.retryable and now - row.created_at < self._max_age:
                delay = (
                    timedelta(seconds=error.retry_after)
                    if error.retry_after is not None
                    else retry_delay(row.attempts)
                )
                self._store.schedule_notice_retry(row.id, at=now + delay, reason=str(error))
                summary.retrying += 1
                log.warning("notifier=%s notice=%s retry_in=%.1fs error=%r", row.notifier,
                            row.key, delay.total_seconds(), str(error))
            else:
                # Logged only: reporting a failed notice would be a notice about a notice.
                self._store.mark_notice_failed(row.id, reason=str(error))
                summary.failed += 1
                log.error("notifier=%s notice=%s failed: %s", row.notifier, row.key, error)
            return
        self._store.mark_notice_sent(row.id, external_id=receipt.external_id, now=self._clock())
        summary.sent += 1
        log.info("notifier=%s notice=%s sent", row.notifier, row.key)

    async def drain(self, *, deadline: timedelta, poll_every: float = 0.2) -> DeliverySummary:
        """Deliver until nothing is pending or the deadline passes (for ``run --once``)."""
        summary = DeliverySummary()
        loop = asyncio.get_running_loop()
        until = loop.time() + deadline.total_seconds()
        while True:
            summary.add(await self.deliver_due())
            candidates = [
                due
                for due in (self._store.next_delivery_due(), self._store.next_notice_due())
                if due is not None
            ]
            next_due = min(candidates) if candidates else None
            if next_due is None:
                return summary
            wait = max((next_due - self._clock()).total_seconds(), poll_every)
            if loop.time() + wait > until:
                return summary
            await asyncio.sleep(wait)
