"""``ItemQueries``: a poll's items, their hits and the hits' delivery rows, written in
one transaction, and the stored items read back.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from contextlib import nullcontext
from datetime import datetime
from typing import Any

from sqlalchemy import func, update
from sqlmodel import Session, col, select

from monitor.store.base import _aware, retried
from monitor.store.feeds import _success_values
from monitor.store.records import (
    FeedUpdate,
    MatchCallback,
    NewHit,
    NewItem,
    StoredItem,
    StoryAssigner,
)
from monitor.store.stories import StoryQueries
from monitor.store.tables import PENDING, ArticleRow, DeliveryRow, FeedRow, HitRow, ItemRow

#: Rows per multi-row INSERT: both databases cap the bound parameters of one statement.
_ROWS_PER_INSERT = 1000

# A poll's transaction assigns each new item its story and records the story's first
# alerts before the hits' deliveries are written: those queries are StoryQueries'.
class ItemQueries(StoryQueries):
    """Items and hits: stored by a poll; items streamed back for backtesting rules."""

    @retried
    def store_poll(
        self,
        feed_id: int,
        items: Sequence[NewItem],
        *,
        update_: FeedUpdate,
        match: MatchCallback,
        awaiting_text: bool = False,
        stories: StoryAssigner | None = None,
    ) -> list[int]:
        """Insert the poll's items, match the new ones, store hits and deliveries.

        All in one transaction. ``match`` is called with the items that were
        really inserted (the database decides which are new) and returns the
        hits to store; again, with the transaction, if the database aborts it
        (``retried``). Returns the ids of the hits stored.

        ``awaiting_text``: the feed is matched on article text, later; each new
        item gets an ``article_texts`` row awaiting it (:meth:`claim_awaiting_text`,
        :meth:`store_article_match`) and ``match`` should return no hits.

        ``stories``: each new item is assigned to a story before its hits are
        stored, so a hit of a story already alerted for its rule and channel
        gets no second top-level alert but a ``story_updates`` row instead.
        """
        now = update_.polled_at
        guard = stories.transaction() if stories is not None else nullcontext()
        with guard, Session(self._engine) as session:
            new_keys = self._insert_items(session, feed_id, items, now=now)
            first_of_key: dict[str, NewItem] = {}
            for item in items:
                if item.item_key in new_keys:
                    first_of_key.setdefault(item.item_key, item)
            new_items = list(first_of_key.values())
            joined: list[tuple[int, int]] = []
            if stories is not None and new_items:
                joined = self._assign_stories(session, feed_id, new_items, new_keys,
                                              stories, now=now)
            hit_ids = self._insert_hits(session, new_keys, match(new_items), now=now)
            if stories is not None and joined:
                self._queue_story_updates(session, joined, stories, now=now)
            if awaiting_text and new_keys:
                awaiting = [dict(item_id=item_id, feed_id=feed_id, requested_at=now)
                            for item_id in new_keys.values()]
                for start in range(0, len(awaiting), _ROWS_PER_INSERT):
                    session.execute(self._insert(ArticleRow).values(
                        awaiting[start:start + _ROWS_PER_INSERT]))
            values: dict[str, Any] = dict(
                last_polled_at=now, next_poll_at=update_.next_poll_at,
                # A successful poll may still carry a warning (a broken encoding).
                last_status=update_.status, last_error=update_.error, consecutive_failures=0,
                last_success_at=now, etag=update_.etag, last_modified=update_.last_modified,
                body_hash=update_.body_hash,
                items_total=FeedRow.items_total + len(new_items),
                **_success_values(update_),
            )
            if new_items:
                values["last_new_item_at"] = now
                values["silence_alerted_at"] = None
            session.execute(update(FeedRow).where(col(FeedRow.id) == feed_id).values(**values))
            session.commit()
        return hit_ids

    def _insert_items(
        self, session: Session, feed_id: int, items: Sequence[NewItem], *, now: datetime
    ) -> dict[str, int]:
        if not items:
            return {}
        # A feed can list the same key twice in one document; the first wins.
        unique: dict[str, NewItem] = {}
        for item in items:
            unique.setdefault(item.item_key, item)
        rows = [
            dict(feed_id=feed_id, item_key=item.item_key, guid=item.guid, link=item.link,
                 title=item.title, summary=item.summary, content=item.content,
                 author=item.author, categories=json.dumps(list(item.categories)),
                 published_at=item.published_at, first_seen_at=now)
            for item in unique.values()
        ]
        inserted: dict[str, int] = {}
        # In chunks: PostgreSQL takes at most 65,535 bound parameters per statement,
        # which one INSERT of a feed listing some 6,000 new entries would exceed.
        for start in range(0, len(rows), _ROWS_PER_INSERT):
            statement = (
                self._insert(ItemRow)
                .values(rows[start:start + _ROWS_PER_INSERT])
                .on_conflict_do_nothing(index_elements=["feed_id", "item_key"])
                .returning(ItemRow.id, ItemRow.item_key)
            )
            inserted.update({key: item_id for item_id, key in session.execute(statement)})
        return inserted

    def _insert_hits(
        self, session: Session, item_ids: dict[str, int], hits: Iterable[NewHit], *, now: datetime
    ) -> list[int]:
        hit_ids: list[int] = []
        for hit in hits:
            statement = (
                self._insert(HitRow)
                .values(rule=hit.rule, item_id=item_ids[hit.item_key], severity=hit.severity,
                        matched_terms=json.dumps(list(hit.matched_terms)), snippet=hit.snippet,
                        marks=json.dumps([list(m) for m in hit.marks]), created_at=now)
                .on_conflict_do_nothing(index_elements=["rule", "item_id"])
                .returning(HitRow.id)
            )
            hit_id = session.execute(statement).scalar()
            if hit_id is None:
                continue
            hit_ids.append(hit_id)
            notifiers = self._first_alerts_of_story(
                session, hit.rule, item_ids[hit.item_key], hit_id, hit.notifiers, now=now)
            if notifiers:
                session.execute(
                    self._insert(DeliveryRow)
                    .values([dict(hit_id=hit_id, notifier=name, status=PENDING,
                                  next_attempt_at=now, created_at=now)
                             for name in notifiers])
                    .on_conflict_do_nothing(index_elements=["hit_id", "notifier"])
                )
        return hit_ids

    def iter_items(self, *, since: datetime, batch_size: int = 2000,
                   feed_tags: dict[str, tuple[str, ...]] | None = None) -> Iterator[StoredItem]:
        """Stored items first seen at or after ``since``, oldest first, streamed."""
        tags = feed_tags or {}
        last_id = 0
        while True:
            with Session(self._engine) as session:
                rows = session.exec(
                    select(ItemRow, FeedRow.name)
                    .join(FeedRow, col(FeedRow.id) == ItemRow.feed_id)
                    .where(col(ItemRow.first_seen_at) >= since, col(ItemRow.id) > last_id)
                    .order_by(col(ItemRow.id))
                    .limit(batch_size)
                ).all()
            if not rows:
                return
            for item, feed_name in rows:
                stored = _stored_item(item, feed_name, tags.get(feed_name, ()))
                yield stored
                last_id = stored.id

    def count_items(self, *, since: datetime | None = None) -> int:
        """Stored items, or those first seen at or after ``since``."""
        query = select(func.count()).select_from(ItemRow)
        if since is not None:
            query = query.where(ItemRow.first_seen_at >= since)
        with Session(self._engine) as session:
            return session.exec(query).one()


def _stored_item(row: ItemRow, feed_name: str, tags: tuple[str, ...]) -> StoredItem:
    assert row.id is not None
    return StoredItem(
        id=row.id, feed_name=feed_name, feed_tags=tags, item_key=row.item_key, guid=row.guid,
        link=row.link, title=row.title, summary=row.summary, content=row.content,
        author=row.author, categories=tuple(json.loads(row.categories or "[]")),
        published_at=_aware(row.published_at),
        first_seen_at=_aware(row.first_seen_at),
    )
