"""``OperationQueries``: health, metrics, retention and the operator CLI
(docs/operations.md), and the claim of a cluster-wide job's run.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, exists, func, or_
from sqlmodel import Session, SQLModel, col, select

from monitor.store.base import StoreBase, _aware, _row_id, _rowcount, id_chunks, retried
from monitor.store.tables import FAILED, SENT, DeliveryRow, FeedRow, HitRow, ItemRow, JobRunRow


class OperationQueries(StoreBase):
    """Counts and records for operators, pruning, and runs of cluster-wide jobs."""

    def outbox_depth(self) -> int:
        """Deliveries not yet finished: pending, held for a batch, or being sent."""
        with Session(self._engine) as session:
            return int(session.exec(
                select(func.count()).select_from(DeliveryRow)
                .where(col(DeliveryRow.status).notin_((SENT, FAILED)))
            ).one())

    def failing_feeds(self) -> int:
        with Session(self._engine) as session:
            return int(session.exec(
                select(func.count()).select_from(FeedRow)
                .where(col(FeedRow.enabled) == True, col(FeedRow.consecutive_failures) > 0)  # noqa: E712
            ).one())

    def hit_records(self, *, since: datetime, rule: str | None = None,
                    limit: int = 1000) -> list[dict[str, Any]]:
        """Hits stored at or after ``since`` (newest first) with their item and deliveries."""
        statement = (
            select(HitRow, ItemRow, FeedRow.name)
            .join(ItemRow, col(ItemRow.id) == HitRow.item_id)
            .join(FeedRow, col(FeedRow.id) == ItemRow.feed_id)
            .where(col(HitRow.created_at) >= since)
            .order_by(col(HitRow.created_at).desc(), col(HitRow.id).desc())
            .limit(limit)
        )
        if rule is not None:
            statement = statement.where(col(HitRow.rule) == rule)
        with Session(self._engine) as session:
            rows = session.exec(statement).all()
            ids = [_row_id(h.id) for h, _, _ in rows]
            by_hit: dict[int, dict[str, str]] = {}
            for chunk in id_chunks(ids):  # --limit may ask for more than one IN list holds
                for hit_id, notifier, status in session.exec(
                    select(DeliveryRow.hit_id, DeliveryRow.notifier, DeliveryRow.status)
                    .where(col(DeliveryRow.hit_id).in_(chunk))
                ):
                    by_hit.setdefault(hit_id, {})[notifier] = status
        return [
            dict(id=h.id, created_at=_aware(h.created_at), rule=h.rule, severity=h.severity,
                 feed=feed_name, title=i.title, link=i.link, item_key=i.item_key,
                 published_at=_aware(i.published_at), deliveries=by_hit.get(_row_id(h.id), {}))
            for h, i, feed_name in rows
        ]

    def daily_counts(self, *, since: datetime) -> dict[str, dict[str, int]]:
        """Per UTC day from ``since``: items first seen, hits, deliveries by status.

        Keys are ``YYYY-MM-DD``; values map ``items``, ``hits`` and
        ``deliveries_<status>`` to counts.
        """
        days: dict[str, dict[str, int]] = {}

        def add(day: Any, key: str, count: int) -> None:
            name = day if isinstance(day, str) else day.isoformat()
            days.setdefault(name[:10], {})[key] = int(count)

        with Session(self._engine) as session:
            for column, key in ((ItemRow.first_seen_at, "items"), (HitRow.created_at, "hits")):
                day = func.date(column)
                for value, count in session.exec(
                    select(day, func.count()).where(column >= since).group_by(day)
                ):
                    add(value, key, count)
            day = func.date(DeliveryRow.created_at)
            for value, status, count in session.exec(
                select(day, DeliveryRow.status, func.count())
                .where(col(DeliveryRow.created_at) >= since).group_by(day, DeliveryRow.status)
            ):
                add(value, f"deliveries_{status}", count)
        return dict(sorted(days.items()))

    def prune(self, *, items_before: datetime, deliveries_before: datetime,
              job_runs_before: datetime | None = None,
              channel_slots_before: datetime | None = None,
              channels_in_use: Collection[str] = ()) -> dict[str, int]:
        """Delete what retention lets go; returns rows deleted per table.

        - deliveries created before ``deliveries_before`` that are finished
          (sent or failed): never one still waiting or being sent; ops notices
          likewise (their episodes are remembered on the feeds, not by the rows);
        - an item first seen before ``items_before`` is *prunable* when no
          delivery is left on its hits; a story is pruned (with its items,
          alerts and updates) when all its items are prunable, so a story loses
          nothing while one of its items is young or still being delivered.
          The caller keeps ``items_before`` older than the stories' window;
        - then hits with no delivery left, and items no remaining row refers
          to, with their article text.

        Tables added later are safe by default: a row of any table that refers
        to an item or a hit keeps it (see docs/operations.md).

        With ``job_runs_before``, ``job_runs`` rows claimed before it go too. The
        caller keeps it older than any run key a job may still claim, or that run
        could be claimed (and run) a second time.

        With ``channel_slots_before``, ``channel_slots`` rows whose slot is before it
        go too, but for the pacing keys in ``channels_in_use``: one row was left for
        every channel ever posted to. A slot in the past paces nothing (a missing row
        is the same as one due now), so a row pruned under a channel still in use by
        an instance on another config costs nothing.
        """
        counts = self._prune_claimed(None, items_before=items_before,
                                     deliveries_before=deliveries_before,
                                     job_runs_before=job_runs_before,
                                     channel_slots_before=channel_slots_before,
                                     channels_in_use=channels_in_use)
        assert counts is not None  # no claim to lose
        return counts

    def prune_run(self, job: str, run_key: str, owner: str, now: datetime, *,
                  items_before: datetime, deliveries_before: datetime,
                  job_runs_before: datetime | None = None,
                  channel_slots_before: datetime | None = None,
                  channels_in_use: Collection[str] = ()) -> dict[str, int] | None:
        """:meth:`prune` as the run ``run_key`` of ``job`` (see :meth:`claim_job_run`),
        claimed in the prune's own transaction; None, pruning nothing, when another
        instance has claimed that run.

        A claim committed apart from its prune outlived a prune that failed: every
        retry of the day found the run taken and skipped it. Committed together, a
        failed prune leaves the run unclaimed, for this instance or another to try
        again. An instance claiming the run while another prunes waits for that prune
        to end (PostgreSQL holds the uncommitted key), then skips it or, if it
        failed, takes it over.
        """
        return self._prune_claimed(self._claim(job, run_key, owner, now),
                                   items_before=items_before,
                                   deliveries_before=deliveries_before,
                                   job_runs_before=job_runs_before,
                                   channel_slots_before=channel_slots_before,
                                   channels_in_use=channels_in_use)

    @retried
    def _prune_claimed(self, claim: Any | None, *, items_before: datetime,
                       deliveries_before: datetime, job_runs_before: datetime | None,
                       channel_slots_before: datetime | None,
                       channels_in_use: Collection[str]) -> dict[str, int] | None:
        """The prune in one transaction, after ``claim`` (an INSERT ... RETURNING) when
        given; None, with nothing done, when the claim returns no row."""
        with Session(self._engine) as session:
            if claim is not None and session.execute(claim).first() is None:
                session.rollback()
                return None
            counts = self._prune(session, items_before=items_before,
                                 deliveries_before=deliveries_before,
                                 job_runs_before=job_runs_before,
                                 channel_slots_before=channel_slots_before,
                                 channels_in_use=channels_in_use)
            session.commit()
        return counts

    def _prune(self, session: Session, *, items_before: datetime, deliveries_before: datetime,
               job_runs_before: datetime | None, channel_slots_before: datetime | None,
               channels_in_use: Collection[str]) -> dict[str, int]:
        """The deletes of :meth:`prune`, in ``session``'s transaction, uncommitted."""
        t = SQLModel.metadata.tables
        items, hits, deliveries = t["items"], t["hits"], t["deliveries"]
        counts: dict[str, int] = {}

        def run(table: Any, statement: Any) -> None:
            result = session.execute(statement)
            counts[table.name] = counts.get(table.name, 0) + _rowcount(result)

        run(deliveries, delete(deliveries).where(
            deliveries.c.created_at < deliveries_before,
            deliveries.c.status.in_((SENT, FAILED))))
        # A notice per failing, silent or recovered feed and per failed delivery:
        # kept for good, they piled up for as long as the database lived. Their
        # keys need not outlive them: a feed's episode is marked on the feed
        # (failure_alerted_at, silence_alerted_at), and a delivery fails once.
        notices = t["notices"]
        run(notices, delete(notices).where(
            notices.c.created_at < deliveries_before,
            notices.c.status.in_((SENT, FAILED))))
        delivered_items = (select(hits.c.item_id)
                           .join(deliveries, deliveries.c.hit_id == hits.c.id))
        young = or_(items.c.first_seen_at >= items_before,
                    items.c.id.in_(delivered_items))
        if "story_items" in t:
            stories, members = t["stories"], t["story_items"]
            alerts, updates = t["story_alerts"], t["story_updates"]
            kept = (select(members.c.story_id)
                    .join(items, items.c.id == members.c.item_id).where(young))
            old_stories = (select(stories.c.id)
                           .where(stories.c.first_seen_at < items_before,
                                  stories.c.id.notin_(kept)))
            old_alerts = select(alerts.c.id).where(alerts.c.story_id.in_(old_stories))
            run(updates, delete(updates).where(updates.c.story_alert_id.in_(old_alerts)))
            run(alerts, delete(alerts).where(alerts.c.story_id.in_(old_stories)))
            run(members, delete(members).where(members.c.story_id.in_(old_stories)))
            run(stories, delete(stories).where(stories.c.id.in_(old_stories)))
        run(hits, delete(hits).where(
            hits.c.created_at < items_before,
            *_unreferenced(hits)))
        doomed = (select(items.c.id)
                  .where(items.c.first_seen_at < items_before,
                         *_unreferenced(items, owned=ITEM_OWNED_TABLES)))
        for name in ITEM_OWNED_TABLES:
            if name in t:
                owned = t[name]
                run(owned, delete(owned).where(owned.c.item_id.in_(doomed)))
        run(items, delete(items).where(items.c.id.in_(doomed.scalar_subquery())))
        if job_runs_before is not None:
            job_runs = t["job_runs"]
            run(job_runs, delete(job_runs).where(job_runs.c.claimed_at < job_runs_before))
        if channel_slots_before is not None:
            slots = t["channel_slots"]
            run(slots, delete(slots).where(slots.c.next_at < channel_slots_before,
                                           slots.c.key.notin_(sorted(channels_in_use))))
        return counts

    @retried
    def claim_job_run(self, job: str, run_key: str, owner: str, now: datetime) -> bool:
        """True for the one caller, of all instances, that claims this run of ``job``.

        ``run_key`` names the run of the schedule (``"2026-03-02"`` for a daily
        job): instances that reach the same run compute the same key, the
        unique constraint admits the first insert, and the others get False.
        """
        # RETURNING, not rowcount: psycopg reports -1 for an INSERT's rowcount here.
        with self._engine.begin() as connection:
            return connection.execute(self._claim(job, run_key, owner, now)).first() is not None

    def _claim(self, job: str, run_key: str, owner: str, now: datetime) -> Any:
        """The INSERT that claims a run: it returns a row only for the one claimant."""
        return (
            self._insert(JobRunRow)
            .values(job=job, run_key=run_key, owner=owner, claimed_at=now)
            .on_conflict_do_nothing(index_elements=["job", "run_key"])
            .returning(JobRunRow.id)
        )

    def job_runs(self, job: str | None = None) -> list[dict[str, Any]]:
        """Claimed runs, oldest first (for ``job`` only when given)."""
        statement = select(JobRunRow).order_by(col(JobRunRow.id))
        if job is not None:
            statement = statement.where(col(JobRunRow.job) == job)
        with Session(self._engine) as session:
            return [dict(job=r.job, run_key=r.run_key, owner=r.owner,
                         claimed_at=_aware(r.claimed_at)) for r in session.exec(statement)]


#: Tables holding an item's own data (not a reference to it): pruned with the item.
ITEM_OWNED_TABLES = ("article_texts",)


def _unreferenced(table: Any, *, owned: Sequence[str] = ()) -> list[Any]:
    """Conditions "no row of any other table refers to this row" (owned tables aside)."""
    conditions = []
    for other in SQLModel.metadata.sorted_tables:
        if other is table or other.name in owned:
            continue
        for fk in other.foreign_keys:
            if fk.column.table is table:
                conditions.append(~exists().where(fk.parent == table.c.id))
    return conditions
