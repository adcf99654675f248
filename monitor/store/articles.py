"""``ArticleQueries``: the article text of items of ``full_text`` feeds, claimed for
fetching, stored with the item's hits, and what failed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import func, or_, update
from sqlmodel import Session, col, select

from monitor.store.base import _aware, _rowcount, id_chunks, retried
from monitor.store.items import ItemQueries
from monitor.store.records import ArticleState, AwaitingItem, NewHit, NewItem
from monitor.store.tables import ArticleRow, FeedRow, ItemRow


# An item matched on its article text stores its hits as a poll does (_insert_hits).
class ArticleQueries(ItemQueries):
    """Items awaiting their article text, and the text once matched."""

    @retried
    def claim_awaiting_text(self, *, now: datetime, lease: timedelta, claimer: str,
                            feed_id: int | None = None, limit: int = 100) -> list[AwaitingItem]:
        """Claim items awaiting their article text (only ``feed_id``'s when given).

        An item is claimable until it is matched, when nobody holds it or the
        claim expired (the process that held it died): that is how a match
        interrupted by a crash is picked up again.
        """
        due = (col(ArticleRow.matched_at) == None) & or_(  # noqa: E711
            col(ArticleRow.claimed_until) == None, col(ArticleRow.claimed_until) < now)  # noqa: E711
        ids_query = select(ArticleRow.item_id).where(due)
        if feed_id is not None:
            ids_query = ids_query.where(col(ArticleRow.feed_id) == feed_id)
        ids_query = ids_query.order_by(col(ArticleRow.item_id)).limit(limit)
        if self._dialect == "postgresql":
            ids_query = ids_query.with_for_update(skip_locked=True)
        with Session(self._engine) as session:
            claimed = session.execute(
                update(ArticleRow)
                .where(col(ArticleRow.item_id).in_(ids_query.scalar_subquery()))
                .values(claimed_until=now + lease, claimed_by=claimer)
                .returning(col(ArticleRow.item_id))
            ).scalars().all()
            session.commit()
        if not claimed:
            return []
        with Session(self._engine) as session:
            rows = session.exec(
                select(ArticleRow, ItemRow, FeedRow.name)
                .join(ItemRow, col(ItemRow.id) == ArticleRow.item_id)
                .join(FeedRow, col(FeedRow.id) == ArticleRow.feed_id)
                .where(col(ArticleRow.item_id).in_(list(claimed)))
                .order_by(col(ArticleRow.item_id))
            ).all()
        return [
            AwaitingItem(
                item_id=a.item_id, feed_id=a.feed_id, feed_name=feed_name,
                requested_at=_aware(a.requested_at),
                item=NewItem(item_key=i.item_key, guid=i.guid, link=i.link, title=i.title,
                             summary=i.summary, content=i.content, author=i.author,
                             categories=tuple(json.loads(i.categories or "[]")),
                             published_at=_aware(i.published_at)),
            )
            for a, i, feed_name in rows
        ]

    @retried
    def store_article_match(self, item_id: int, *, url: str | None, text: str | None,
                            failure: str | None, hits: Iterable[NewHit],
                            now: datetime) -> list[int] | None:
        """Store an item's article text (or why there is none) with its hits, at once.

        Returns the ids of the hits stored, or None when the item had already
        been matched (by another process whose claim overlapped): then nothing
        is written.
        """
        with Session(self._engine) as session:
            done = session.execute(
                update(ArticleRow)
                .where(col(ArticleRow.item_id) == item_id, col(ArticleRow.matched_at) == None)  # noqa: E711
                .values(url=url, text=text, failure=failure, matched_at=now,
                        claimed_until=None)
            )
            if not _rowcount(done):
                session.rollback()
                return None
            key = session.exec(select(ItemRow.item_key).where(col(ItemRow.id) == item_id)).one()
            hit_ids = self._insert_hits(session, {key: item_id}, hits, now=now)
            session.commit()
        return hit_ids

    def article_state(self, item_id: int) -> ArticleState | None:
        with Session(self._engine) as session:
            row = session.get(ArticleRow, item_id)
            if row is None:
                return None
            return ArticleState(url=row.url, text=row.text, failure=row.failure,
                                matched_at=_aware(row.matched_at))

    def full_text_failures(self) -> dict[str, tuple[int, str | None]]:
        """Per feed name: items matched on feed text because the article failed, and the
        latest reason."""
        failed = col(ArticleRow.failure) != None  # noqa: E711
        with Session(self._engine) as session:
            counts = session.exec(
                select(FeedRow.name, func.count(), func.max(ArticleRow.item_id))
                .join(FeedRow, col(FeedRow.id) == ArticleRow.feed_id)
                .where(failed).group_by(FeedRow.name)
            ).all()
            latest = {
                item_id: reason
                for chunk in id_chunks([c[2] for c in counts])  # one id per failing feed
                for item_id, reason in session.exec(
                    select(ArticleRow.item_id, ArticleRow.failure)
                    .where(col(ArticleRow.item_id).in_(chunk))
                ).all()
            }
        return {name: (int(count), latest.get(last)) for name, count, last in counts}
