"""``OutboxQueries``: the deliveries of alerts, claimed under a lease, held for batch
messages (digests, quiet hours, flood summaries), then marked sent, failed or retried.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import func, update
from sqlmodel import Session, col, select

from monitor.store.base import StoreBase, _aware, _row_id, _rowcount, id_chunks, retried
from monitor.store.records import ClaimedDelivery, DeliveryCounts
from monitor.store.tables import (
    FAILED,
    HELD,
    PENDING,
    SENDING,
    SENT,
    DeliveryRow,
    FeedRow,
    HitRow,
    ItemRow,
    NoticeRow,
    _due,
)

#: ``since`` -> (alerts of one rule sent alone on one channel after it, the first one's time)
AdmittedCount = Callable[[datetime], tuple[int, datetime | None]]
H = TypeVar("H")
# First key of the two-key advisory locks on admissions ("ww" in ASCII); the two-key
# space never overlaps the one-key locks (story assignment, upgrades).
ADMISSION_LOCK_CLASS = 0x7777


class OutboxQueries(StoreBase):
    """Deliveries: claimed, held, batched, sent, retried or failed."""

    @retried
    def claim_deliveries(self, *, now: datetime, lease: timedelta, claimer: str,
                         limit: int = 50, notifier: str | None = None,
                         not_notifiers: Sequence[str] = ()) -> list[ClaimedDelivery]:
        """Claim due deliveries for sending (only ``notifier``'s when given; none of
        ``not_notifiers``).

        A row is due when pending and its retry time has come, or when a
        previous claim expired (the process that claimed it died while sending).
        Rows held for a batch are claimed with their batch (:meth:`claim_batch`).
        """
        ids_query = select(col(DeliveryRow.id)).where(
            _due(DeliveryRow, now=now), col(DeliveryRow.batch) == None)  # noqa: E711
        if notifier is not None:
            ids_query = ids_query.where(col(DeliveryRow.notifier) == notifier)
        if not_notifiers:
            ids_query = ids_query.where(
                col(DeliveryRow.notifier).not_in(list(not_notifiers)))
        ids_query = ids_query.order_by(col(DeliveryRow.id)).limit(limit)
        with Session(self._engine) as session:
            claimed = self._lease(session, DeliveryRow, ids_query, now=now, lease=lease,
                                  claimer=claimer).scalars().all()
            session.commit()
        return self._claimed(claimed)

    def _claimed(self, ids: Sequence[int]) -> list[ClaimedDelivery]:
        if not ids:
            return []
        rows: list[tuple[DeliveryRow, HitRow, ItemRow, str]] = []
        with Session(self._engine) as session:
            for chunk in id_chunks(sorted(ids)):
                rows.extend(session.exec(
                    select(DeliveryRow, HitRow, ItemRow, FeedRow.name)
                    .join(HitRow, col(HitRow.id) == DeliveryRow.hit_id)
                    .join(ItemRow, col(ItemRow.id) == HitRow.item_id)
                    .join(FeedRow, col(FeedRow.id) == ItemRow.feed_id)
                    .where(col(DeliveryRow.id).in_(chunk))
                    .order_by(col(DeliveryRow.id))
                ).all())
        return [
            ClaimedDelivery(
                id=_row_id(d.id), notifier=d.notifier, attempts=d.attempts,
                created_at=_aware(d.created_at), hit_id=_row_id(h.id), rule=h.rule,
                severity=h.severity,
                snippet=h.snippet, marks=tuple(tuple(m) for m in json.loads(h.marks)),
                title=i.title, link=i.link, published_at=_aware(i.published_at),
                first_seen_at=_aware(i.first_seen_at), feed_name=feed_name,
                admitted=d.admitted_at is not None, batch=d.batch,
                held_until=_aware(d.held_until),
            )
            for d, h, i, feed_name in rows
        ]

    def delivery_for(self, hit_id: int, notifier: str) -> ClaimedDelivery | None:
        """The delivery of ``hit_id`` on ``notifier`` (an alert a story update refers to)."""
        with Session(self._engine) as session:
            delivery_id = session.execute(
                select(DeliveryRow.id).where(col(DeliveryRow.hit_id) == hit_id,
                                             col(DeliveryRow.notifier) == notifier)
            ).scalar()
        found = self._claimed([delivery_id]) if delivery_id is not None else []
        return found[0] if found else None

    # ------------------------------------------------------------------- holding and batches

    def hold_delivery(self, delivery_id: int, *, batch: str, until: datetime) -> None:
        """Put a claimed row into a batch sent at ``until`` (the claim did not count
        as an attempt)."""
        self._finish(delivery_id, status=HELD, batch=batch, held_until=until,
                     next_attempt_at=until, claimed_until=None, attempts=0)

    @retried
    def admit_unless_held(self, delivery_id: int, *, notifier: str, rule: str, now: datetime,
                          hold: Callable[[AdmittedCount], H | None]) -> H | None:
        """Decide whether a row goes out alone, one instance at a time per rule and channel.

        ``hold`` is asked with the rule's admissions on the channel as this transaction
        counts them (``since`` -> alerts sent alone after it, the first one's time); when
        it answers None the row is marked admitted before the lock is released. It is
        asked again if the database aborts the transaction (``retried``).  Counting
        and admitting apart, two instances could both take the last place of a burst.
        The lock is a PostgreSQL transaction-level advisory lock per (notifier, rule) (a
        hash collision only makes two pairs wait for each other); on SQLite every
        transaction is ``BEGIN IMMEDIATE`` and so runs alone already.
        """
        with Session(self._engine) as session:
            if self._dialect == "postgresql":
                session.execute(select(func.pg_advisory_xact_lock(
                    ADMISSION_LOCK_CLASS, func.hashtext(f"{notifier}\n{rule}"))))
            held = hold(lambda since: self._admitted_since(session, notifier=notifier,
                                                           rule=rule, since=since))
            if held is None:
                session.execute(update(DeliveryRow).where(col(DeliveryRow.id) == delivery_id)
                                .values(admitted_at=now))
            session.commit()
        return held

    @staticmethod
    def _admitted_since(session: Session, *, notifier: str, rule: str,
                        since: datetime) -> tuple[int, datetime | None]:
        count, first = session.exec(
            select(func.count(), func.min(DeliveryRow.admitted_at))
            .join(HitRow, col(HitRow.id) == DeliveryRow.hit_id)
            .where(col(DeliveryRow.notifier) == notifier, col(HitRow.rule) == rule,
                   col(DeliveryRow.admitted_at) > since)
        ).one()
        return int(count), _aware(first)

    @retried
    def claim_batch(self, *, now: datetime, lease: timedelta, claimer: str,
                    notifier: str | None = None,
                    not_notifiers: Sequence[str] = ()) -> list[ClaimedDelivery]:
        """Claim every row of one due batch of ``notifier`` (of any channel but
        ``not_notifiers`` when None); empty when none is due.

        A batch is due when its rows are held and their time has come, or when a
        claim on it expired. All its rows are claimed together, so they go out as one
        message and are marked together.
        """
        due = _due(DeliveryRow, now=now, waiting=HELD)
        first = select(DeliveryRow.notifier, DeliveryRow.batch).where(
            due, col(DeliveryRow.batch) != None)  # noqa: E711
        if notifier is not None:
            first = first.where(col(DeliveryRow.notifier) == notifier)
        if not_notifiers:
            first = first.where(col(DeliveryRow.notifier).not_in(list(not_notifiers)))
        with Session(self._engine) as session:
            found = session.exec(
                first.order_by(col(DeliveryRow.next_attempt_at)).limit(1)).first()
            if found is None:
                return []
            channel, batch = found
            ids_query = select(col(DeliveryRow.id)).where(
                due, col(DeliveryRow.notifier) == channel, col(DeliveryRow.batch) == batch)
            claimed = self._lease(session, DeliveryRow, ids_query, now=now, lease=lease,
                                  claimer=claimer).scalars().all()
            session.commit()
        return self._claimed(sorted(claimed))

    @retried
    def mark_batch_sent(self, delivery_ids: Sequence[int], *, external_id: str | None,
                        now: datetime, listed_sources: Sequence[Sequence[str]]) -> None:
        """Mark a batch message's rows sent; ``listed_sources``: per row, in order, the
        feeds its entry named."""
        with Session(self._engine) as session:
            for delivery_id, feeds in zip(delivery_ids, listed_sources, strict=True):
                session.execute(update(DeliveryRow).where(col(DeliveryRow.id) == delivery_id)
                                .values(status=SENT, external_id=external_id, sent_at=now,
                                        claimed_until=None, last_error=None,
                                        listed_sources=json.dumps(list(feeds))))
            session.commit()

    def schedule_batch_retry(self, delivery_ids: Sequence[int], *, at: datetime,
                             reason: str) -> None:
        self._finish_many(delivery_ids, status=HELD, next_attempt_at=at, last_error=reason,
                          claimed_until=None)

    def mark_batch_failed(self, delivery_ids: Sequence[int], *, reason: str) -> None:
        self._finish_many(delivery_ids, status=FAILED, last_error=reason, claimed_until=None)

    @retried
    def _finish_many(self, delivery_ids: Sequence[int], **values: Any) -> None:
        with Session(self._engine) as session:
            for chunk in id_chunks(delivery_ids):
                session.execute(update(DeliveryRow)
                                .where(col(DeliveryRow.id).in_(chunk))
                                .values(**values))
            session.commit()

    def claimers(self) -> list[str]:
        """Who holds claims right now (deliveries or notices being sent)."""
        with Session(self._engine) as session:
            deliveries = session.exec(
                select(DeliveryRow.claimed_by).where(col(DeliveryRow.status) == SENDING).distinct()
            ).all()
            notices = session.exec(
                select(NoticeRow.claimed_by).where(col(NoticeRow.status) == SENDING).distinct()
            ).all()
        return sorted({c for c in (*deliveries, *notices) if c})

    def mark_sent(self, delivery_id: int, *, external_id: str | None, now: datetime,
                  listed_sources: Sequence[str] | None = None) -> None:
        """Mark a delivery sent as of ``now``; ``listed_sources``: the feeds its message
        named for the story."""
        listed = None if listed_sources is None else json.dumps(list(listed_sources))
        self._finish(delivery_id, status=SENT, external_id=external_id, sent_at=now,
                     claimed_until=None, last_error=None, listed_sources=listed)

    def mark_failed(self, delivery_id: int, *, reason: str) -> None:
        self._finish(delivery_id, status=FAILED, last_error=reason, claimed_until=None)

    def schedule_retry(self, delivery_id: int, *, at: datetime, reason: str) -> None:
        self._finish(delivery_id, status=PENDING, next_attempt_at=at, last_error=reason,
                     claimed_until=None)

    @retried
    def retry_waiting_now(self, *, notifier: str, now: datetime) -> int:
        """Make due now the single alerts of ``notifier`` that wait out a retry after a
        failed send; how many. For a channel that answers again after an outage: its
        backlog need not sit out backoffs of up to 15 minutes, behind newer alerts."""
        with Session(self._engine) as session:
            result = session.execute(
                update(DeliveryRow)
                .where(col(DeliveryRow.notifier) == notifier,
                       col(DeliveryRow.status) == PENDING,
                       col(DeliveryRow.batch) == None,  # noqa: E711
                       col(DeliveryRow.attempts) > 0,
                       col(DeliveryRow.next_attempt_at) > now)
                .values(next_attempt_at=now))
            session.commit()
        return _rowcount(result)

    @retried
    def release_claims(self, *, now: datetime, claimer: str) -> int:
        """Give this process's claimed-but-unsent rows back, e.g. on graceful shutdown."""
        with Session(self._engine) as session:
            result = session.execute(
                update(DeliveryRow)
                .where(col(DeliveryRow.status) == SENDING, col(DeliveryRow.claimed_by) == claimer,
                       col(DeliveryRow.batch) == None)  # noqa: E711
                .values(status=PENDING, claimed_until=None, claimed_by=None, next_attempt_at=now)
            )
            # A batch goes back to waiting with its batch, due now.
            batches = session.execute(
                update(DeliveryRow)
                .where(col(DeliveryRow.status) == SENDING, col(DeliveryRow.claimed_by) == claimer,
                       col(DeliveryRow.batch) != None)  # noqa: E711
                .values(status=HELD, claimed_until=None, claimed_by=None, next_attempt_at=now)
            )
            notices = session.execute(
                update(NoticeRow)
                .where(col(NoticeRow.status) == SENDING, col(NoticeRow.claimed_by) == claimer)
                .values(status=PENDING, claimed_until=None, claimed_by=None, next_attempt_at=now)
            )
            session.commit()
            return sum(_rowcount(r) for r in (result, batches, notices))

    @retried
    def _finish(self, delivery_id: int, **values: Any) -> None:
        with Session(self._engine) as session:
            session.execute(update(DeliveryRow).where(col(DeliveryRow.id) == delivery_id)
                            .values(**values))
            session.commit()

    def delivery_counts(self) -> DeliveryCounts:
        with Session(self._engine) as session:
            rows = session.exec(
                select(DeliveryRow.status, func.count()).group_by(DeliveryRow.status)
            ).all()
        counts = {status: n for status, n in rows}
        return DeliveryCounts(pending=counts.get(PENDING, 0), sending=counts.get(SENDING, 0),
                              sent=counts.get(SENT, 0), failed=counts.get(FAILED, 0),
                              held=counts.get(HELD, 0))

    def next_delivery_due(self) -> datetime | None:
        """When the earliest unsent delivery may next be attempted."""
        with Session(self._engine) as session:
            pending = session.exec(
                select(func.min(DeliveryRow.next_attempt_at))
                .where(col(DeliveryRow.status).in_((PENDING, HELD)))
            ).one()
            sending = session.exec(
                select(func.min(DeliveryRow.claimed_until))
                .where(col(DeliveryRow.status) == SENDING)
            ).one()
        candidates = [_aware(v) for v in (pending, sending) if v is not None]
        return min(candidates) if candidates else None

    def deliveries(self, *, status: str | None = None) -> list[dict[str, Any]]:
        """Deliveries with their hit, item and feed, for tests and the CLI."""
        statement = (
            select(DeliveryRow, HitRow, ItemRow, FeedRow.name)
            .join(HitRow, col(HitRow.id) == DeliveryRow.hit_id)
            .join(ItemRow, col(ItemRow.id) == HitRow.item_id)
            .join(FeedRow, col(FeedRow.id) == ItemRow.feed_id)
            .order_by(col(DeliveryRow.id))
        )
        if status is not None:
            statement = statement.where(col(DeliveryRow.status) == status)
        with Session(self._engine) as session:
            rows = session.exec(statement).all()
        return [
            dict(id=d.id, notifier=d.notifier, status=d.status, attempts=d.attempts,
                 last_error=d.last_error, external_id=d.external_id, rule=h.rule,
                 title=i.title, link=i.link, feed=feed_name, item_key=i.item_key,
                 batch=d.batch, held_until=_aware(d.held_until), sent_at=_aware(d.sent_at))
            for d, h, i, feed_name in rows
        ]
