"""``ChannelSlotQueries``: each channel's next free send slot, taken and moved by the
instances on one database in turn (``SharedPacer`` in monitor.pacing)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from monitor.store.base import StoreBase, _aware
from monitor.store.tables import ChannelSlotRow


class ChannelSlotQueries(StoreBase):
    """Pacing slots per key: one row per channel, locked while it is read and moved."""

    def reserve_channel_slot(self, key: str, *, now: datetime, spacing: timedelta) -> datetime:
        """Take ``key``'s next free slot (``now`` at the earliest) and move the next one
        ``spacing`` past it; returns the slot taken.

        The row is created if missing (a no-op when another instance just did), then
        read ``FOR UPDATE`` and moved in the same transaction, so two instances never
        take the same slot; on SQLite the write transaction is ``BEGIN IMMEDIATE``.
        """
        with Session(self._engine) as session:
            session.execute(self._insert(ChannelSlotRow).values(key=key, next_at=now)
                            .on_conflict_do_nothing(index_elements=["key"]))
            row = session.exec(select(ChannelSlotRow).where(col(ChannelSlotRow.key) == key)
                               .with_for_update()).one()
            slot = max(now, _aware(row.next_at))
            row.next_at = slot + spacing
            session.add(row)
            session.commit()
        return slot

    def push_channel_slot(self, key: str, *, not_before: datetime) -> None:
        """Move ``key``'s next free slot to ``not_before``, unless it is later already
        (a send just finished, or the channel answered 429 with a Retry-After)."""
        with Session(self._engine) as session:
            session.execute(self._insert(ChannelSlotRow).values(key=key, next_at=not_before)
                            .on_conflict_do_nothing(index_elements=["key"]))
            row = session.exec(select(ChannelSlotRow).where(col(ChannelSlotRow.key) == key)
                               .with_for_update()).one()
            if _aware(row.next_at) < not_before:
                row.next_at = not_before
                session.add(row)
            session.commit()
