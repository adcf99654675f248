"""Sending what the outbox holds: claim due deliveries, send, record the outcome.

Nothing is sent from memory: every alert starts as a ``deliveries`` row written
with its hit. A row is claimed (with a lease) before sending and marked sent,
scheduled for retry, held for a batch, or failed afterwards, so a crash between
claim and mark costs at most a repeat of the messages that were in flight.

Each channel is worked by its own task: a slow, paced or rate-limited channel
never holds up another one, nor polling. Within a channel:

- operational notices go first (:meth:`Store.claim_notices`);
- due batches (digests, quiet-hours catch-ups, flood summaries) go out as one
  message each;
- then single alerts, each first checked against the channel's policy
  (:mod:`monitor.holds`), paced (:mod:`monitor.pacing`).

Failures: a transient one (``NotifyError.retryable``) is retried with exponential
backoff and jitter, or exactly after the channel's ``Retry-After``, until
``max_age``; then, or at once for a permanent one, the row is failed and reported
once on the ``ops_notify`` channel (:meth:`Deliverer._report_failure`). A channel
that answers again after an outage has its waiting alerts sent at once
(:meth:`Deliverer._answering_again`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

from monitor.durations import doubled
from monitor.holds import DeliveryPolicy, batch_kind
from monitor.instance import default_instance_id
from monitor.pacing import Pacer, Pacing, SharedPacer
from monitor.recording import record_sent
from monitor.store import ClaimedDelivery, ClaimedNotice, Store, utcnow
from monitor.story_desk import digest_with_stories, send_story_updates, with_story
from notifiers import Alert, Digest, Notice, Notifier, NotifyError, Receipt

log = logging.getLogger("wirewatch.delivery")

LEASE = timedelta(minutes=2)
MAX_AGE = timedelta(hours=24)
FIRST_RETRY = timedelta(seconds=2)
MAX_RETRY = timedelta(minutes=15)
#: A channel whose sends failed for at least this long, with none going through, and
#: that then takes one, was down: what waits for a retry on it is sent now. Shorter
#: streaks are one message failing among others, whose own backoff stands.
OUTAGE = timedelta(seconds=30)
#: Rows claimed at once per channel; a paced channel sends them one slot apart, so
#: this times its interval must stay well inside the lease.
CLAIM_BATCH = 10
#: Roughly how long one channel may keep a delivery pass busy. The next pass (and so
#: every other channel's next batch of new alerts) waits for the slowest channel of
#: the current one, so a paced channel with a long backlog works through it in slices.
PASS_BUDGET = 5.0


class DeliveryObserver(Protocol):
    """Told about every delivery outcome ("sent", "retry", "failed", "held"); metrics."""

    def delivery_finished(
        self,
        *,
        notifier: str,
        outcome: str,
        now: datetime | None = None,
        published_at: datetime | None = None,
        first_seen_at: datetime | None = None,
    ) -> None: ...


@dataclass(slots=True)
class DeliverySummary:
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    held: int = 0

    def add(self, other: DeliverySummary) -> None:
        self.sent += other.sent
        self.retrying += other.retrying
        self.failed += other.failed
        self.held += other.held


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff, full jitter on the upper half, capped at ``maximum``."""

    first: timedelta = FIRST_RETRY
    maximum: timedelta = MAX_RETRY

    def delay(self, attempts: int, *, rng: random.Random | None = None) -> timedelta:
        base = doubled(self.first, attempts - 1, most=self.maximum)
        jitter = rng.random() if rng is not None else random.random()
        return base / 2 + (base / 2) * jitter


def retry_delay(attempts: int, *, rng: random.Random | None = None) -> timedelta:
    """Exponential backoff with full jitter on the upper half."""
    return Backoff().delay(attempts, rng=rng)


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


def digest_for(rows: list[ClaimedDelivery]) -> Digest:
    """One message for the rows of a batch (all share notifier and batch key)."""
    batch = rows[0].batch or ""
    kind = batch_kind(batch)
    count = len(rows)
    matches = f"{count} match{'es' if count != 1 else ''}"
    if kind == "burst":
        title = f"{count} more match{'es' if count != 1 else ''} for {rows[0].rule}"
    elif kind == "quiet":
        title = f"Quiet hours: {matches} held"
    else:
        since = min(row.created_at for row in rows)
        title = f"Digest: {matches} since {since.strftime('%Y-%m-%d %H:%M UTC')}"
    return Digest(
        digest_id=f"{rows[0].notifier}.{batch}.{rows[0].id}",
        kind=kind,
        title=title,
        alerts=tuple(alert_for(row) for row in rows),
    )


def _is_local_process_gone(claimer: str, *, own: str) -> bool:
    """True when ``claimer`` ("host:pid") is a process on this host that has exited.

    Its claims can be released at once instead of waiting for the lease: what it had in
    flight may repeat, exactly as after the lease expired, only sooner.
    """
    host, _, pid = claimer.rpartition(":")
    own_host = own.rpartition(":")[0]
    if claimer == own or host != own_host or not pid.isdigit():
        return False
    if own != default_instance_id() or not _in_the_hosts_pid_namespace():
        # An id set by hand names no process; and in a container, a claimer of the same
        # hostname (host networking) may be another container's live process, its pid
        # meaningless here: releasing its claims would send what it is sending again.
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:  # PermissionError: alive, someone else's
        return False
    return _is_zombie(int(pid))


#: The inode of the kernel's first pid namespace (PROC_PID_INIT_INO): processes outside
#: any container see this one.
_INITIAL_PID_NAMESPACE = 0xEFFFFFFC


def _in_the_hosts_pid_namespace() -> bool:
    try:
        return os.stat("/proc/self/ns/pid").st_ino == _INITIAL_PID_NAMESPACE
    except OSError:  # no /proc: no way to tell, so no early release
        return False


def _is_zombie(pid: int) -> bool:
    """Whether ``pid`` has exited and only waits for its parent to reap it.

    Signal 0 still reaches such a process, so a claimer killed a moment ago (its
    parent, a shell or a supervisor, not yet woken) would otherwise count as alive and
    its claims wait for the lease.  Where there is no /proc, the process counts as alive.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return False
    # "pid (command) state ...": the command may hold spaces and parentheses.
    fields = stat.rpartition(")")[2].split()
    return bool(fields) and fields[0] in ("Z", "X")


class Deliverer:
    #: Set by the service to count outcomes; None counts nothing.
    observer: DeliveryObserver | None = None

    def __init__(
        self,
        *,
        store: Store,
        notifiers: Mapping[str, Notifier],
        instance_id: str,
        clock: Callable[[], datetime] = utcnow,
        max_age: timedelta = MAX_AGE,
        ops_notifier: str | None = None,
        policy: DeliveryPolicy | None = None,
        pacer: Pacing | None = None,
        backoff: Backoff | None = None,
        lease: timedelta = LEASE,
    ) -> None:
        self.instance_id = instance_id
        self._store = store
        self._notifiers = dict(notifiers)
        self._clock = clock
        self._max_age = max_age
        self._ops_notifier = ops_notifier
        self._policy = policy or DeliveryPolicy()
        # Several instances on one PostgreSQL database share each channel's slots.
        self._pacer: Pacing = pacer or (SharedPacer(store)
                                        if store.engine.dialect.name == "postgresql"
                                        else Pacer())
        self._backoff = backoff or Backoff()
        self._lease = lease
        self._lock = asyncio.Lock()
        self._recovered = False
        self._queued_notice = False
        #: Per channel, the first transient failure since its last successful send.
        self._failing_since: dict[str, datetime] = {}
        self.observer = None

    def _observe(self, rows: list[ClaimedDelivery], outcome: str) -> None:
        if self.observer is None:
            return
        now = self._clock()
        for row in rows:
            self.observer.delivery_finished(
                notifier=row.notifier, outcome=outcome, now=now,
                published_at=row.published_at, first_seen_at=row.first_seen_at,
            )

    def replace_notifiers(self, notifiers: Mapping[str, Notifier]) -> None:
        self._notifiers = dict(notifiers)

    def replace_policy(self, policy: DeliveryPolicy, ops_notifier: str | None) -> None:
        self._policy = policy
        self._ops_notifier = ops_notifier

    # ------------------------------------------------------------------- passes

    async def deliver_due(self) -> DeliverySummary:
        """Send everything due now; one channel's slowness does not hold up another."""
        summary = DeliverySummary()
        async with self._lock:  # one sender per process; other instances coordinate via claims
            if not self._recovered:
                self._recover_orphaned_claims()
                self._recovered = True
            notifiers = dict(self._notifiers)
            self._queued_notice = True
            while self._queued_notice:
                # A failure report queued after the ops channel's task had finished
                # goes out in this pass, not the next.
                self._queued_notice = False
                results = await asyncio.gather(
                    *(self._work_channel(name, notifier) for name, notifier in notifiers.items())
                )
                for result in results:
                    summary.add(result)
                # Rows for channels no longer configured fail (and are reported).
                summary.add(await self._fail_orphans(set(notifiers)))
            summary.add(await self._send_story_updates(notifiers))
        return summary

    async def _send_story_updates(self, notifiers: Mapping[str, Notifier]) -> DeliverySummary:
        """Later sources of stories already alerted: edits and thread replies
        (monitor.story_desk), from their own outbox."""
        done = await send_story_updates(self._store, notifiers, original_alert=alert_for,
                                        claimer=self.instance_id, clock=self._clock,
                                        lease=self._lease, send=self._paced,
                                        budget=PASS_BUDGET)
        return DeliverySummary(sent=done.sent, retrying=done.retrying, failed=done.failed)

    def _recover_orphaned_claims(self) -> None:
        now = self._clock()
        for claimer in self._store.claimers():
            if _is_local_process_gone(claimer, own=self.instance_id):
                released = self._store.release_claims(now=now, claimer=claimer)
                log.warning("claimer=%s released=%d reason=process_gone", claimer, released)

    async def _work_channel(self, name: str, notifier: Notifier) -> DeliverySummary:
        summary = DeliverySummary()
        loop = asyncio.get_running_loop()
        until = loop.time() + PASS_BUDGET
        interval = float(getattr(notifier, "min_interval", 0.0))
        while True:
            # A paced channel claims only what it can send within the pass's budget.
            remaining = until - loop.time()
            limit = CLAIM_BATCH if interval <= 0 else max(
                1, min(CLAIM_BATCH, int(remaining / interval)))
            notices = self._store.claim_notices(
                now=self._clock(), lease=self._lease, claimer=self.instance_id, notifier=name
            )
            for notice in notices:
                await self._send_notice(notifier, notice, summary)
            rows = self._store.claim_batch(
                now=self._clock(), lease=self._lease, claimer=self.instance_id, notifier=name
            )
            if rows:
                await self._send_batch(notifier, rows, summary)
            claimed = self._store.claim_deliveries(
                now=self._clock(),
                lease=self._lease,
                claimer=self.instance_id,
                limit=limit,
                notifier=name,
            )
            for delivery in claimed:
                await self._send_one(notifier, delivery, summary)
            if not (notices or rows or claimed) or loop.time() >= until:
                return summary

    async def _fail_orphans(self, known: set[str]) -> DeliverySummary:
        summary = DeliverySummary()
        while True:
            now, configured = self._clock(), sorted(known)
            claimed = self._store.claim_deliveries(
                now=now, lease=self._lease, claimer=self.instance_id, not_notifiers=configured)
            for delivery in claimed:
                self._fail([delivery], _no_longer_configured(delivery.notifier), summary)
            # Rows held for a digest, quiet hours or a flood summary fail with their
            # batch when it comes due (a channel added back before then sends it).
            batch = self._store.claim_batch(
                now=now, lease=self._lease, claimer=self.instance_id, not_notifiers=configured)
            if batch:
                self._fail(batch, _no_longer_configured(batch[0].notifier), summary)
            # Notices too (ops_notify moved to another channel).
            notices = self._store.claim_notices(
                now=now, lease=self._lease, claimer=self.instance_id, not_notifiers=configured)
            for notice in notices:
                self._fail_notice(notice, _no_longer_configured(notice.notifier), summary)
            if not (claimed or batch or notices):
                return summary

    # ------------------------------------------------------------------- sending

    async def _paced(self, notifier: Notifier, send: Callable[[], Receipt]) -> Receipt:
        """Wait for the channel's slot, send in a worker thread; a Retry-After holds
        the channel back for exactly that long.

        ``send`` composes its message after the wait, so a story source stored while
        it waited is in the message.
        """
        key = getattr(notifier, "pacing_key", None)
        interval = float(getattr(notifier, "min_interval", 0.0))
        await self._pacer.wait(key, interval)
        try:
            return await asyncio.to_thread(send)
        except NotifyError as exc:
            if exc.retry_after is not None:
                self._pacer.defer(key, exc.retry_after)
            raise
        finally:
            self._pacer.sent(key, interval)

    async def _send_one(
        self, notifier: Notifier, delivery: ClaimedDelivery, summary: DeliverySummary
    ) -> None:
        if not delivery.admitted:
            now = self._clock()
            # Counted and admitted in one locked step: instances sharing the database
            # never both send the alert that fills a burst.
            hold = self._store.admit_unless_held(
                delivery.id,
                notifier=delivery.notifier,
                rule=delivery.rule,
                now=now,
                hold=lambda admitted: self._policy.hold_for(
                    notifier=delivery.notifier,
                    rule=delivery.rule,
                    severity=delivery.severity,
                    now=now,
                    admitted_since=lambda _notifier, _rule, since: admitted(since),
                ),
            )
            if hold is not None:
                self._store.hold_delivery(delivery.id, batch=hold.batch, until=hold.until)
                summary.held += 1
                self._observe([delivery], "held")
                log.info(
                    "notifier=%s rule=%s delivery=%d held batch=%s until=%s",
                    delivery.notifier, delivery.rule, delivery.id, hold.batch,
                    hold.until.isoformat(timespec="seconds"),
                )
                return
        named: tuple[str, ...] = ()

        def send() -> Receipt:
            # With the story's other sources: "Also: DW (first), Reuters (+4 min)". What
            # the message names is recorded, so updates add exactly the sources it lacks.
            nonlocal named
            alert, named = with_story(self._store, alert_for(delivery), hit_id=delivery.hit_id)
            return notifier.send(alert)

        try:
            receipt = await self._paced(notifier, send)
        except Exception as exc:
            self._handle_error([delivery], _as_notify_error(notifier.name, exc), summary)
            return
        await record_sent(
            f"notifier={notifier.name} delivery={delivery.id}",
            lambda: self._store.mark_sent(delivery.id, external_id=receipt.external_id,
                                          now=self._clock(), listed_sources=named),
            lease=self._lease)
        summary.sent += 1
        self._observe([delivery], "sent")
        log.info("notifier=%s rule=%s delivery=%d sent", notifier.name, delivery.rule,
                 delivery.id)
        self._answering_again(notifier.name)
        self._report_problem([delivery], receipt)

    async def _send_batch(
        self, notifier: Notifier, rows: list[ClaimedDelivery], summary: DeliverySummary
    ) -> None:
        ids = [row.id for row in rows]
        named: list[tuple[str, ...]] = []

        def send() -> Receipt:
            # Each entry with its story's sources, as an immediate alert has them.
            digest, named[:] = digest_with_stories(self._store, digest_for(rows),
                                                   [r.hit_id for r in rows])
            return notifier.send_digest(digest)

        try:
            receipt = await self._paced(notifier, send)
        except Exception as exc:
            self._handle_error(rows, _as_notify_error(notifier.name, exc), summary)
            return
        await record_sent(
            f"notifier={notifier.name} batch={rows[0].batch}",
            lambda: self._store.mark_batch_sent(ids, external_id=receipt.external_id,
                                                now=self._clock(), listed_sources=named),
            lease=self._lease)
        summary.sent += len(rows)
        self._observe(rows, "sent")
        log.info("notifier=%s batch=%s deliveries=%d sent", notifier.name, rows[0].batch,
                 len(rows))
        self._answering_again(notifier.name)
        self._report_problem(rows, receipt)

    # ------------------------------------------------------------------- outcomes

    def _handle_error(
        self, rows: list[ClaimedDelivery], exc: NotifyError, summary: DeliverySummary
    ) -> None:
        """Retry or fail a single delivery or a whole batch (``rows`` share one send)."""
        now = self._clock()
        first = rows[0]
        if not exc.retryable:
            self._fail(rows, str(exc), summary)
            return
        # A batch ages from the time it was due, not from its oldest hit: a daily
        # digest's rows are a day old by design.
        born = first.held_until if first.batch and first.held_until else first.created_at
        if now - born >= self._max_age:
            self._fail(rows, f"gave up after {first.attempts} attempts: {exc}", summary)
            return
        # Retry-After is obeyed exactly (no jitter): Slack counts an early retry as
        # another violation.
        delay = (
            timedelta(seconds=exc.retry_after)
            if exc.retry_after is not None
            else self._backoff.delay(first.attempts)
        )
        if first.batch:
            self._store.schedule_batch_retry([r.id for r in rows], at=now + delay, reason=str(exc))
        else:
            self._store.schedule_retry(first.id, at=now + delay, reason=str(exc))
        self._failing_since.setdefault(first.notifier, now)
        summary.retrying += len(rows)
        self._observe(rows, "retry")
        log.warning(
            "notifier=%s rule=%s delivery=%d rows=%d retry_in=%.1fs error=%r",
            first.notifier, first.rule, first.id, len(rows), delay.total_seconds(), str(exc),
        )

    def _answering_again(self, name: str) -> None:
        """After a send went through: if the channel was down (OUTAGE), its alerts
        waiting for a retry are due now, so the channel's loop sends them in this pass."""
        since = self._failing_since.pop(name, None)
        if since is None:
            return
        now = self._clock()
        if now - since < OUTAGE:
            return
        due = self._store.retry_waiting_now(notifier=name, now=now)
        if due:
            log.info("notifier=%s answers again after %.0f s of failed sends: %d alerts "
                     "waiting for a retry are due now", name, (now - since).total_seconds(), due)

    def _fail(self, rows: list[ClaimedDelivery], reason: str, summary: DeliverySummary) -> None:
        first = rows[0]
        if first.batch:
            self._store.mark_batch_failed([r.id for r in rows], reason=reason)
        else:
            self._store.mark_failed(first.id, reason=reason)
        summary.failed += len(rows)
        self._observe(rows, "failed")
        log.error(
            "notifier=%s rule=%s delivery=%d rows=%d failed: %s",
            first.notifier, first.rule, first.id, len(rows), reason,
        )
        items = "\n".join(f"- [{r.rule}] {r.title} ({r.link or 'no link'})" for r in rows[:20])
        more = f"\n… and {len(rows) - 20} more" if len(rows) > 20 else ""
        what = (
            f"Alert for rule '{first.rule}'"
            if len(rows) == 1
            else f"{batch_kind(first.batch or '')} message of {len(rows)} alerts"
        )
        self._report_failure(
            key=f"delivery-failed:{first.notifier}:{first.id}",
            notifier=first.notifier,
            title=f"{what} could not be delivered on '{first.notifier}'",
            body=(
                f"Channel: {first.notifier}\nAttempts: {first.attempts}\nReason: {reason}\n"
                f"Alerts:\n{items}{more}"
            ),
        )

    def _report_problem(self, rows: list[ClaimedDelivery], receipt: Receipt) -> None:
        """Report what went wrong with a message that went out all the same (some
        email recipients refused): once on ops, as a failure is."""
        if receipt.problem is None:
            return
        first = rows[0]
        log.error("notifier=%s rule=%s delivery=%d rows=%d sent with a problem: %s",
                  first.notifier, first.rule, first.id, len(rows), receipt.problem)
        items = "\n".join(f"- [{r.rule}] {r.title} ({r.link or 'no link'})" for r in rows[:20])
        more = f"\n… and {len(rows) - 20} more" if len(rows) > 20 else ""
        self._report_failure(
            key=f"delivery-partial:{first.notifier}:{first.id}",
            notifier=first.notifier,
            title=f"Not every recipient got a message on '{first.notifier}'",
            body=f"Channel: {first.notifier}\nReason: {receipt.problem}\nAlerts:\n{items}{more}",
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
        if self._store.queue_notice(
            key=key, notifier=ops, title=title, body=body, severity="high", now=self._clock()
        ):
            self._queued_notice = True

    # ------------------------------------------------------------------- notices

    def _fail_notice(self, row: ClaimedNotice, reason: str, summary: DeliverySummary) -> None:
        # Logged only: reporting a failed notice would be a notice about a notice.
        self._store.mark_notice_failed(row.id, reason=reason)
        summary.failed += 1
        log.error("notifier=%s notice=%s failed: %s", row.notifier, row.key, reason)

    async def _send_notice(
        self, notifier: Notifier, row: ClaimedNotice, summary: DeliverySummary
    ) -> None:
        notice = Notice(
            notice_id=f"{row.id}.{row.key}", title=row.title, body=row.body,
            severity=row.severity,
        )
        try:
            receipt = await self._paced(notifier, lambda: notifier.send_notice(notice))
        except Exception as exc:
            error = _as_notify_error(notifier.name, exc)
            now = self._clock()
            if error.retryable and now - row.created_at < self._max_age:
                delay = (
                    timedelta(seconds=error.retry_after)
                    if error.retry_after is not None
                    else self._backoff.delay(row.attempts)
                )
                self._store.schedule_notice_retry(row.id, at=now + delay, reason=str(error))
                summary.retrying += 1
                log.warning("notifier=%s notice=%s retry_in=%.1fs error=%r", row.notifier,
                            row.key, delay.total_seconds(), str(error))
            else:
                self._fail_notice(row, str(error), summary)
            return
        await record_sent(
            f"notifier={notifier.name} notice={row.key}",
            lambda: self._store.mark_notice_sent(row.id, external_id=receipt.external_id,
                                                 now=self._clock()),
            lease=self._lease)
        summary.sent += 1
        log.info("notifier=%s notice=%s sent", row.notifier, row.key)

    # ------------------------------------------------------------------- run --once

    async def drain(self, *, deadline: timedelta, poll_every: float = 0.2) -> DeliverySummary:
        """Deliver until nothing is pending or the deadline passes (for ``run --once``).

        Held rows whose batch is due within the deadline are waited for too; a digest
        due tomorrow is not.
        """
        summary = DeliverySummary()
        loop = asyncio.get_running_loop()
        until = loop.time() + deadline.total_seconds()
        while True:
            summary.add(await self.deliver_due())
            candidates = [
                due
                for due in (self._store.next_delivery_due(), self._store.next_notice_due(),
                            self._store.next_story_update_due())
                if due is not None
            ]
            next_due = min(candidates) if candidates else None
            if next_due is None:
                return summary
            wait = max((next_due - self._clock()).total_seconds(), poll_every)
            if loop.time() + wait > until:
                return summary
            await asyncio.sleep(wait)


def _as_notify_error(channel: str, exc: BaseException) -> NotifyError:
    if isinstance(exc, NotifyError):
        return exc
    # A bug in a channel must not stall the outbox: retry, and say so loudly.
    log.error("notifier=%s unexpected error %r", channel, exc, exc_info=exc)
    return NotifyError(f"{channel}: {exc!r}", retryable=True)


def _no_longer_configured(notifier: str) -> str:
    return f"notifier '{notifier}' is no longer configured"
