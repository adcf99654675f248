"""``NoticeQueries``: operational notices (feed health, failed deliveries), one per
episode, sent through an outbox of their own like deliveries.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, update
from sqlmodel import Session, col, select

from monitor.store.base import StoreBase, _aware, retried
from monitor.store.records import ClaimedNotice
from monitor.store.tables import FAILED, PENDING, SENDING, SENT, NoticeRow, _due


class NoticeQueries(StoreBase):
    """Notices: queued once per key, claimed, sent or retried."""

    @retried
    def queue_notice(self, *, key: str, notifier: str, title: str, body: str,
                     severity: str = "normal", now: datetime) -> bool:
        """Queue an operational notice; False when one with this key already exists.

        The key names the episode ("feed-silent:dw:2026-03-01T12:00"): the UNIQUE
        constraint, not the caller's memory, makes it one notice per episode, across
        restarts and instances.
        """
        statement = (
            self._insert(NoticeRow)
            .values(key=key, notifier=notifier, title=title, body=body, severity=severity,
                    status=PENDING, next_attempt_at=now, created_at=now)
            .on_conflict_do_nothing(index_elements=["key"])
            .returning(NoticeRow.id)
        )
        with Session(self._engine) as session:
            inserted = session.execute(statement).scalar()
            session.commit()
        return inserted is not None

    @retried
    def claim_notices(self, *, now: datetime, lease: timedelta, claimer: str,
                      limit: int = 20, notifier: str | None = None,
                      not_notifiers: Sequence[str] = ()) -> list[ClaimedNotice]:
        """Claim due notices, like :meth:`claim_deliveries`."""
        ids_query = select(col(NoticeRow.id)).where(_due(NoticeRow, now=now))
        if notifier is not None:
            ids_query = ids_query.where(col(NoticeRow.notifier) == notifier)
        if not_notifiers:
            ids_query = ids_query.where(col(NoticeRow.notifier).not_in(list(not_notifiers)))
        ids_query = ids_query.order_by(col(NoticeRow.id)).limit(limit)
        with Session(self._engine) as session:
            rows = self._lease(
                session, NoticeRow, ids_query, now=now, lease=lease, claimer=claimer,
                returning=(NoticeRow.id, NoticeRow.key, NoticeRow.notifier, NoticeRow.title,
                           NoticeRow.body, NoticeRow.severity, NoticeRow.attempts,
                           NoticeRow.created_at),
            ).all()
            session.commit()
        claimed = [
            ClaimedNotice(id=r[0], key=r[1], notifier=r[2], title=r[3], body=r[4],
                          severity=r[5], attempts=r[6],
                          created_at=_aware(r[7]))
            for r in rows
        ]
        return sorted(claimed, key=lambda n: n.id)

    def mark_notice_sent(self, notice_id: int, *, external_id: str | None,
                         now: datetime) -> None:
        self._finish_notice(notice_id, status=SENT, external_id=external_id, sent_at=now,
                            claimed_until=None, last_error=None)

    def mark_notice_failed(self, notice_id: int, *, reason: str) -> None:
        self._finish_notice(notice_id, status=FAILED, last_error=reason, claimed_until=None)

    def schedule_notice_retry(self, notice_id: int, *, at: datetime, reason: str) -> None:
        self._finish_notice(notice_id, status=PENDING, next_attempt_at=at, last_error=reason,
                            claimed_until=None)

    @retried
    def _finish_notice(self, notice_id: int, **values: Any) -> None:
        with Session(self._engine) as session:
            session.execute(update(NoticeRow).where(col(NoticeRow.id) == notice_id)
                            .values(**values))
            session.commit()

    def next_notice_due(self) -> datetime | None:
        """When the earliest unsent notice may next be attempted."""
        with Session(self._engine) as session:
            pending = session.exec(
                select(func.min(NoticeRow.next_attempt_at)).where(col(NoticeRow.status) == PENDING)
            ).one()
            sending = session.exec(
                select(func.min(NoticeRow.claimed_until)).where(col(NoticeRow.status) == SENDING)
            ).one()
        candidates = [_aware(v) for v in (pending, sending) if v is not None]
        return min(candidates) if candidates else None

    def notices(self, *, status: str | None = None) -> list[dict[str, Any]]:
        """Notices as plain dicts, oldest first, for tests and the CLI."""
        statement = select(NoticeRow).order_by(col(NoticeRow.id))
        if status is not None:
            statement = statement.where(col(NoticeRow.status) == status)
        with Session(self._engine) as session:
            rows = session.exec(statement).all()
        return [
            dict(id=r.id, key=r.key, notifier=r.notifier, title=r.title, body=r.body,
                 severity=r.severity, status=r.status, attempts=r.attempts,
                 last_error=r.last_error, external_id=r.external_id,
                 created_at=_aware(r.created_at), sent_at=_aware(r.sent_at))
            for r in rows
        ]
