"""``ChannelSlotQueries``: each channel's next free send slot, taken and moved by the
instances on one database in turn (``SharedPacer`` in monitor.pacing)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from monitor.store.base import StoreBase, _aware, retried
from monitor.store.tables import ChannelSlotRow


class ChannelSlotQueries(StoreBase):
    """Pacing slots per key: one row per channel, locked while it is read and moved."""

    @retried
    def reserve_channel_slot(self, key: str, *, now: datetime, spacing: timedelta) -> datetime:
        """Take ``key``'s next free slot (``now`` at the earliest) and move the next one
        ``spacing`` past it; returns the slot taken.

        The row is created if missing (a no-op when another instance just did), then
        read ``FOR UPDATE`` and moved in the same transaction, so two instances never
        take the same slot; on SQLite the write transaction is ``BEGIN IMMEDIATE``.
        """
        with Session(self._engine) as session:
            row = self._locked_slot(session, key, created_at=now)
            slot = max(now, _aware(row.next_at))
            row.next_at = slot + spacing
            session.add(row)
            session.commit()
        return slot

    @retried
    def push_channel_slot(self, key: str, *, not_before: datetime) -> None:
        """Move ``key``'s next free slot to ``not_before``, unless it is later already
        (a send just finished, or the channel answered 429 with a Retry-After)."""
        with Session(self._engine) as session:
            row = self._locked_slot(session, key, created_at=not_before)
            if _aware(row.next_at) < not_before:
                row.next_at = not_before
                session.add(row)
            session.commit()

    def _locked_slot(self, session: Session, key: str, *, created_at: datetime
                     ) -> ChannelSlotRow:
        """``key``'s row, created at ``created_at`` if missing (a no-op when another
        instance just did), locked until ``session`` commits."""
        create = (self._insert(ChannelSlotRow).values(key=key, next_at=created_at)
                  .on_conflict_do_nothing(index_elements=["key"]))
        lock = select(ChannelSlotRow).where(col(ChannelSlotRow.key) == key).with_for_update()
        session.execute(create)
        row = session.exec(lock).first()
        if row is None:
            # Retention pruned the row between the insert and the lock (its slot was
            # past, its channel not in the pruning instance's config): a new one is
            # the same as the one pruned.
            session.execute(create)
            row = session.exec(lock).one()
        return row
