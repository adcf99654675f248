"""``StoryQueries``: which story each new item joins, the first alert of a story per
rule and channel, and the "also reported by" updates sent through their own outbox
(docs/stories.md).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, update
from sqlmodel import Session, col, select

from monitor.store.base import StoreBase, _aware, retried
from monitor.store.records import (
    ClaimedStoryUpdate,
    NewItem,
    StoryAssigner,
    StorySource,
    WindowItem,
)
from monitor.store.tables import (
    PENDING,
    SENDING,
    SENT,
    DeliveryRow,
    FeedRow,
    HitRow,
    ItemRow,
    StoryAlertRow,
    StoryItemRow,
    StoryRow,
    StoryUpdateRow,
    _due,
)

# pg_advisory_xact_lock key that serialises story assignment across instances
# ("wirewatch" in ASCII, to stay clear of other users of advisory locks).
STORY_LOCK_KEY = 0x77697265776174


class StoryQueries(StoreBase):
    """Stories: assigned in a poll's transaction, read back for the story desk, and the
    outbox of their updates."""

    def _assign_stories(
        self, session: Session, feed_id: int, new_items: Sequence[NewItem],
        item_ids: dict[str, int], stories: StoryAssigner, *, now: datetime,
    ) -> list[tuple[int, int]]:
        """Give every new item its story; returns (story_id, item_id) of items that
        joined a story that already had an earlier source."""
        feed = session.execute(select(FeedRow.name).where(col(FeedRow.id) == feed_id)).scalar_one()
        if self._dialect == "postgresql":
            # Instances assign stories one at a time, so each sees every story the
            # others stored before it (below) and story_items ids grow in commit
            # order. Released at commit; assignment takes about a millisecond.
            session.execute(select(func.pg_advisory_xact_lock(STORY_LOCK_KEY)))
        stories.catch_up(lambda since, after_id: self._story_items_after(
            session, since=since, after_id=after_id, limit=None))

        def url_lookup(url: str) -> int | None:
            # Beyond the in-memory window (or written by another instance).
            return session.execute(
                select(StoryItemRow.story_id).where(col(StoryItemRow.canonical_url) == url)
                .order_by(col(StoryItemRow.id)).limit(1)
            ).scalar()

        joined: list[tuple[int, int]] = []
        for item in new_items:
            item_id = item_ids[item.item_key]
            choice = stories.choose(item, feed=feed, seen_at=now, url_lookup=url_lookup)
            story_id = choice.story_id
            if story_id is None:
                story_id = session.execute(
                    self._insert(StoryRow)
                    .values(first_item_id=item_id, first_feed=feed, first_seen_at=now,
                            title=item.title)
                    .returning(StoryRow.id)
                ).scalar_one()
            else:
                # A feed already among the story's sources (it re-listed the article)
                # adds nothing to "also reported by".
                known = session.execute(
                    select(StoryItemRow.id).where(col(StoryItemRow.story_id) == story_id,
                                                  col(StoryItemRow.feed) == feed).limit(1)
                ).scalar()
                if known is None:
                    joined.append((story_id, item_id))
            session.execute(
                self._insert(StoryItemRow)
                .values(story_id=story_id, item_id=item_id, feed=feed,
                        canonical_url=choice.canonical_url, reason=choice.reason, seen_at=now)
                .on_conflict_do_nothing(index_elements=["item_id"])
            )
            stories.record(story_id, item, choice, feed=feed, seen_at=now, item_id=item_id)
        return joined

    def _first_alerts_of_story(
        self, session: Session, rule: str, item_id: int, hit_id: int,
        notifiers: Sequence[str], *, now: datetime,
    ) -> list[str]:
        """The notifiers for which this hit is the story's first alert for ``rule``.

        The UNIQUE (rule, story_id, notifier) of ``story_alerts`` decides, so two
        polls (or two instances) racing on one story still alert once.
        """
        if not notifiers:
            return []
        story_id = session.execute(
            select(StoryItemRow.story_id).where(col(StoryItemRow.item_id) == item_id)
        ).scalar()
        if story_id is None:  # story assignment is off: one alert per hit, as before
            return list(notifiers)
        first: list[str] = []
        for name in notifiers:
            inserted = session.execute(
                self._insert(StoryAlertRow)
                .values(rule=rule, story_id=story_id, notifier=name, hit_id=hit_id,
                        created_at=now)
                .on_conflict_do_nothing(index_elements=["rule", "story_id", "notifier"])
                .returning(StoryAlertRow.id)
            ).scalar()
            if inserted is not None:
                first.append(name)
        return first

    def _queue_story_updates(
        self, session: Session, joined: Sequence[tuple[int, int]], stories: StoryAssigner,
        *, now: datetime,
    ) -> None:
        """One update row per alert of the story (other than this item's own) and new source."""
        for story_id, item_id in joined:
            alerts = session.execute(
                select(StoryAlertRow.id, StoryAlertRow.notifier)
                .join(HitRow, col(HitRow.id) == StoryAlertRow.hit_id)
                .where(col(StoryAlertRow.story_id) == story_id, col(HitRow.item_id) != item_id)
                .order_by(col(StoryAlertRow.id))
            ).all()
            rows = [
                dict(story_alert_id=alert_id, item_id=item_id, notifier=notifier, mode=mode,
                     status=PENDING, next_attempt_at=now, created_at=now)
                for alert_id, notifier in alerts
                if (mode := stories.update_mode(notifier)) != "off"
            ]
            if rows:
                session.execute(
                    self._insert(StoryUpdateRow).values(rows)
                    .on_conflict_do_nothing(index_elements=["story_alert_id", "item_id"])
                )

    def story_window(self, *, since: datetime) -> Iterator[WindowItem]:
        """Items of the stories first seen at or after ``since``, story by story, each
        story's first item first: what :class:`monitor.story_desk.StoryDesk` loads."""
        last_id = 0
        while True:
            with Session(self._engine) as session:
                batch = self._story_items_after(session, since=since, after_id=last_id)
            if not batch:
                return
            yield from batch
            last_id = batch[-1].member_id

    @staticmethod
    def _story_items_after(session: Session, *, since: datetime, after_id: int,
                           limit: int | None = 2000) -> list[WindowItem]:
        statement = (
            # sqlmodel's select() is typed for up to four entities; the fifth is added.
            select(StoryItemRow, StoryRow.first_item_id, ItemRow.title, ItemRow.summary)
            .add_columns(col(ItemRow.link))
            .join(StoryRow, col(StoryRow.id) == StoryItemRow.story_id)
            .join(ItemRow, col(ItemRow.id) == StoryItemRow.item_id)
            .where(col(StoryRow.first_seen_at) >= since, col(StoryItemRow.id) > after_id)
            .order_by(col(StoryItemRow.id))
        )
        if limit is not None:
            statement = statement.limit(limit)
        return [
            WindowItem(story_id=member.story_id, feed=member.feed, title=title,
                       summary=summary, link=link,
                       seen_at=_aware(member.seen_at),
                       is_first=member.item_id == first_item_id,
                       member_id=member.id, item_id=member.item_id)
            for member, first_item_id, title, summary, link in session.execute(statement)
        ]

    def story_of_hit(self, hit_id: int) -> int | None:
        with Session(self._engine) as session:
            return session.execute(
                select(StoryItemRow.story_id)
                .join(HitRow, col(HitRow.item_id) == StoryItemRow.item_id)
                .where(col(HitRow.id) == hit_id)
            ).scalar()

    def story_sources(self, story_id: int, *, until: datetime | None = None) -> list[StorySource]:
        """Each feed that carried the story with when it first did, first source first."""
        statement = (
            select(StoryItemRow.feed, func.min(StoryItemRow.seen_at))
            .where(col(StoryItemRow.story_id) == story_id)
            .group_by(StoryItemRow.feed)
        )
        with Session(self._engine) as session:
            rows = session.execute(statement).all()
        sources = [StorySource(feed=feed, seen_at=_aware(seen)) for feed, seen in rows]
        if until is not None:
            sources = [s for s in sources if s.seen_at <= until]
        return sorted(sources, key=lambda s: (s.seen_at, s.feed))

    def stories(self) -> list[dict[str, Any]]:
        """Every story with its items' feeds, for tests and the CLI."""
        with Session(self._engine) as session:
            rows = session.execute(
                select(StoryItemRow.story_id, StoryItemRow.feed, StoryItemRow.reason,
                       ItemRow.title)
                .join(ItemRow, col(ItemRow.id) == StoryItemRow.item_id)
                .order_by(col(StoryItemRow.id))
            ).all()
        out: dict[int, dict[str, Any]] = {}
        for story_id, feed, reason, title in rows:
            story = out.setdefault(story_id, dict(id=story_id, items=[]))
            story["items"].append(dict(feed=feed, reason=reason, title=title))
        return list(out.values())

    @retried
    def claim_story_updates(self, *, now: datetime, lease: timedelta, claimer: str,
                            limit: int = 50) -> list[ClaimedStoryUpdate]:
        """Claim due story updates, as :meth:`claim_deliveries` claims alerts."""
        ids_query = (select(col(StoryUpdateRow.id)).where(_due(StoryUpdateRow, now=now))
                     .order_by(col(StoryUpdateRow.id)).limit(limit))
        with Session(self._engine) as session:
            claimed = self._lease(session, StoryUpdateRow, ids_query, now=now, lease=lease,
                                  claimer=claimer).scalars().all()
            session.commit()
        if not claimed:
            return []
        with Session(self._engine) as session:
            rows = session.execute(
                select(StoryUpdateRow, StoryAlertRow, StoryItemRow, DeliveryRow)
                .join(StoryAlertRow, col(StoryAlertRow.id) == StoryUpdateRow.story_alert_id)
                .join(StoryItemRow, col(StoryItemRow.item_id) == StoryUpdateRow.item_id)
                .join(DeliveryRow, (col(DeliveryRow.hit_id) == StoryAlertRow.hit_id)
                      & (col(DeliveryRow.notifier) == StoryAlertRow.notifier))
                .where(col(StoryUpdateRow.id).in_(claimed))
                .order_by(col(StoryUpdateRow.id))
            ).all()
        return [
            ClaimedStoryUpdate(
                id=u.id, notifier=u.notifier, mode=u.mode, attempts=u.attempts,
                created_at=_aware(u.created_at), story_id=a.story_id,
                new_feed=m.feed, new_seen_at=_aware(m.seen_at),
                original_status=d.status, original_external_id=d.external_id,
                original_sent_at=_aware(d.sent_at), original_hit_id=a.hit_id,
                original_listed_sources=(None if d.listed_sources is None
                                         else tuple(json.loads(d.listed_sources))),
                original_due_at=_aware(d.next_attempt_at),
            )
            for u, a, m, d in rows
        ]

    @retried
    def finish_story_update(self, update_id: int, *, status: str, now: datetime,
                            reason: str | None = None, external_id: str | None = None,
                            retry_at: datetime | None = None, attempted: bool = True) -> None:
        """Record an update's outcome: SENT, FAILED, or PENDING again at ``retry_at``.

        ``attempted=False``: nothing was tried (the original alert is not out yet),
        so the claim does not count as an attempt, and the backoff of a later real
        failure starts from its first step, however long the update waited.
        """
        values: dict[str, Any] = dict(status=status, claimed_until=None, last_error=reason)
        if not attempted:
            values["attempts"] = col(StoryUpdateRow.attempts) - 1
        if status == SENT:
            values.update(sent_at=now, external_id=external_id)
        if retry_at is not None:
            values["next_attempt_at"] = retry_at
        with Session(self._engine) as session:
            session.execute(update(StoryUpdateRow).where(col(StoryUpdateRow.id) == update_id)
                            .values(**values))
            session.commit()

    def story_updates(self) -> list[dict[str, Any]]:
        """Story update rows, for tests and the CLI."""
        with Session(self._engine) as session:
            rows = session.execute(
                select(StoryUpdateRow, StoryAlertRow.rule)
                .join(StoryAlertRow, col(StoryAlertRow.id) == StoryUpdateRow.story_alert_id)
                .order_by(col(StoryUpdateRow.id))
            ).all()
        return [dict(id=u.id, rule=rule, notifier=u.notifier, mode=u.mode, status=u.status,
                     attempts=u.attempts, last_error=u.last_error, external_id=u.external_id,
                     next_attempt_at=_aware(u.next_attempt_at))
                for u, rule in rows]

    def next_story_update_due(self) -> datetime | None:
        with Session(self._engine) as session:
            pending = session.execute(
                select(func.min(StoryUpdateRow.next_attempt_at))
                .where(col(StoryUpdateRow.status) == PENDING)
            ).scalar()
            sending = session.execute(
                select(func.min(StoryUpdateRow.claimed_until))
                .where(col(StoryUpdateRow.status) == SENDING)
            ).scalar()
        candidates = [_aware(v) for v in (pending, sending) if v is not None]
        return min(candidates) if candidates else None
