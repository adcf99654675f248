"""``FeedQueries``: the ``feeds`` table, kept in step with the config, polled under
leases shared by the instances, and updated with each poll's outcome.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import String, and_, any_, bindparam, func, or_, update
from sqlmodel import Session, SQLModel, col, select

from monitor.store.base import StoreBase, _aware, _rowcount, id_chunks, retried
from monitor.store.records import FeedSpec, FeedState, FeedUpdate
from monitor.store.tables import FeedRow


class FeedQueries(StoreBase):
    """The feeds, their leases and their polling state."""

    @retried
    def sync_feeds(self, specs: Sequence[FeedSpec], *, now: datetime) -> None:
        """Make the feeds table agree with the config, by feed name.

        A new feed is due at once; a feed whose URL changed loses its cached
        validators and promoted URL; feeds gone from the config are disabled,
        not deleted, so their items and hits stay.
        """
        wanted = {spec.name: spec for spec in specs}
        with Session(self._engine) as session:
            rows = {row.name: row for row in session.exec(select(FeedRow))}
            # A feed renamed in the config (its old name gone, its URL the same) keeps
            # its row: as a new feed, every item in its document would be stored and
            # matched again, and each story it had alerted would report it as a new
            # source ("Also reported by: <new name>").
            unwanted: dict[str, list[FeedRow]] = {}
            for existing in rows.values():
                if existing.name not in wanted:
                    unwanted.setdefault(existing.url, []).append(existing)
            for name, spec in wanted.items():
                same_url = unwanted.get(spec.url, [])
                if name not in rows and len(same_url) == 1:
                    renamed = same_url.pop()
                    del rows[renamed.name]
                    renamed.name = name
                    rows[name] = renamed
            new = [dict(name=name, url=spec.url, enabled=spec.enabled, next_poll_at=now,
                        created_at=now) for name, spec in wanted.items() if name not in rows]
            # Instances starting together all add the same new feeds: one insert wins,
            # the others' rows are skipped instead of failing the start. In chunks: both
            # databases cap the bound parameters of one statement.
            for start in range(0, len(new), 1000):
                session.execute(self._insert(FeedRow).values(new[start:start + 1000])
                                .on_conflict_do_nothing(index_elements=["name"]))
            for name, spec in wanted.items():
                row = rows.get(name)
                if row is None:
                    continue
                if row.url != spec.url:
                    row.url = spec.url
                    row.effective_url = None
                    row.etag = row.last_modified = row.body_hash = None
                    row.redirect_target, row.redirect_streak = None, 0
                    row.next_poll_at = now
                    if row.gone:  # a new URL is the operator's answer to a 410
                        row.gone = False
                if row.gone:
                    # Disabled by the server's 410 Gone: only a new URL brings it back.
                    session.add(row)
                    continue
                if row.enabled != spec.enabled or (spec.enabled and row.disabled_reason):
                    row.enabled = spec.enabled
                    row.disabled_reason = None if spec.enabled else "disabled in config"
                session.add(row)
            for name, row in rows.items():
                if name not in wanted and row.enabled:
                    row.enabled = False
                    row.disabled_reason = "removed from config"
                    session.add(row)
            session.commit()

    def due_feeds(self, *, now: datetime, force: bool = False) -> list[FeedState]:
        """Enabled feeds whose next poll has come (``force``: every enabled feed).

        A feed whose server asked us to wait (Retry-After on 429/503) is never
        due before that time, not even when forced: RFC 9110 §10.2.3.
        """
        statement = select(FeedRow).where(
            col(FeedRow.enabled) == True,  # noqa: E712
            or_(col(FeedRow.retry_after_until) == None, col(FeedRow.retry_after_until) <= now),  # noqa: E711
        )
        if not force:
            statement = statement.where(col(FeedRow.next_poll_at) <= now)
        with Session(self._engine) as session:
            rows = session.exec(statement.order_by(col(FeedRow.next_poll_at))).all()
            return [_feed_state(row) for row in rows]

    @retried
    def reschedule_polled_after(self, after: datetime, *, now: datetime) -> int:
        """Make every feed last polled after ``after`` due at ``now``; returns how many.

        For a clock stepped back: those feeds' next polls were set from the later
        time, and would wait for the clock to catch up with it. A server's
        Retry-After (``retry_after_until``) is left as it was, and still obeyed.
        """
        with Session(self._engine) as session:
            result = session.execute(
                update(FeedRow)
                .where(col(FeedRow.last_polled_at) > after, col(FeedRow.next_poll_at) > now)
                .values(next_poll_at=now))
            session.commit()
        return _rowcount(result)

    @retried
    def claim_due_feeds(self, *, now: datetime, lease: timedelta, owner: str, limit: int = 100,
                        force: bool = False) -> list[FeedState]:
        """Lease up to ``limit`` due feeds to ``owner`` until ``now + lease``; most overdue first.

        A feed is claimable when :meth:`due_feeds` would list it and no other
        lease on it is running, so each due feed goes to exactly one instance.
        PostgreSQL: the rows are picked ``FOR UPDATE SKIP LOCKED``, so instances
        claiming at the same moment take different feeds instead of waiting for
        each other (the queue pattern of procrastinate, Oban and pg-boss).
        SQLite: the write transaction is ``BEGIN IMMEDIATE``, so the pick and the
        update are one atomic step. The claim records ``owner`` as the feed's
        ``last_polled_by``. An instance that dies keeps its leases only until
        they expire; then the feeds are due for the others again.
        """
        ids_query = select(FeedRow.id).where(
            col(FeedRow.enabled) == True,  # noqa: E712
            or_(col(FeedRow.retry_after_until) == None, col(FeedRow.retry_after_until) <= now),  # noqa: E711
            or_(col(FeedRow.lease_until) == None, col(FeedRow.lease_until) <= now),  # noqa: E711
        )
        if not force:
            ids_query = ids_query.where(col(FeedRow.next_poll_at) <= now)
        ids_query = ids_query.order_by(col(FeedRow.next_poll_at)).limit(limit)
        if self._dialect == "postgresql":
            ids_query = ids_query.with_for_update(skip_locked=True)
        table = SQLModel.metadata.tables["feeds"]
        picked: Any = table.c.id.in_(ids_query.scalar_subquery())
        if self._dialect == "postgresql":
            # id = ANY(ARRAY(SELECT …)): the picked ids are fetched once and updated
            # through the primary key. With IN (SELECT …) the planner may hash-join the
            # whole table instead, a cost that grows with the feeds (python -m bench scale).
            picked = table.c.id == any_(func.array(ids_query.scalar_subquery()))
        with Session(self._engine) as session:
            rows = session.execute(
                update(table)
                .where(picked)
                .values(lease_owner=owner, lease_until=now + lease, last_polled_by=owner)
                .returning(*table.c)
            ).mappings().all()
            session.commit()
        states = [_feed_state(FeedRow(**row)) for row in rows]
        return sorted(states, key=lambda state: state.next_poll_at)

    @retried
    def renew_feed_leases(self, *, owner: str, until: datetime) -> int:
        """Extend every lease ``owner`` holds to ``until`` (its pass is still working).

        A live instance renews while it polls, so a lease runs out only when its
        holder stopped renewing: it died, or its pass ended without giving it back.
        """
        table = SQLModel.metadata.tables["feeds"]
        with Session(self._engine) as session:
            result = session.execute(
                update(table).where(self._locked_in_id_order(table.c.lease_owner == owner))
                .values(lease_until=until))
            session.commit()
        return _rowcount(result)

    @retried
    def release_feeds(self, *, owner: str, feed_ids: Iterable[int] | None = None) -> int:
        """Give back the leases ``owner`` holds (on ``feed_ids``, or all); returns how many.

        Called when a poll pass is over and on shutdown, so the next pass (of
        any instance) need not wait for the leases to expire.
        """
        table = SQLModel.metadata.tables["feeds"]
        mine = (table.c.lease_owner == owner,)
        chunks: list[list[int] | None] = [None]
        if feed_ids is not None:
            chunks = list(id_chunks(sorted(feed_ids)))
        released = 0
        with Session(self._engine) as session:
            for chunk in chunks:
                where = mine if chunk is None else (*mine, table.c.id.in_(chunk))
                result = session.execute(
                    update(table).where(self._locked_in_id_order(*where))
                    .values(lease_owner=None, lease_until=None))
                released += _rowcount(result)
            session.commit()
        return released

    def _locked_in_id_order(self, *where: Any) -> Any:
        """The feeds rows ``where`` selects, for an UPDATE that locks them in id order.

        Every statement that locks several feeds takes them in id order (a batch of
        unchanged polls, sync_feeds), so that two of them never wait for each other.
        A plain UPDATE locks rows in the table's physical order, which updates keep
        reshuffling: a lease renewal, in a thread of its own, deadlocked with its own
        pass's batch of unchanged polls. On SQLite one writer runs at a time.
        """
        table = SQLModel.metadata.tables["feeds"]
        if self._dialect != "postgresql":
            return and_(*where)
        ordered = (select(table.c.id).where(*where).order_by(table.c.id)
                   .with_for_update().scalar_subquery())
        # id = ANY(ARRAY(…)): the ids are picked and locked once, before the update.
        return table.c.id == any_(func.array(ordered))

    def feeds(self) -> list[FeedState]:
        with Session(self._engine) as session:
            rows = session.exec(select(FeedRow).order_by(col(FeedRow.name)))
            return [_feed_state(r) for r in rows]

    def feed(self, name: str) -> FeedState | None:
        with Session(self._engine) as session:
            row = session.exec(select(FeedRow).where(col(FeedRow.name) == name)).first()
            return _feed_state(row) if row else None

    @retried
    def record_failure(self, feed_id: int, update_: FeedUpdate) -> None:
        with Session(self._engine) as session:
            session.execute(
                update(FeedRow)
                .where(col(FeedRow.id) == feed_id)
                .values(last_polled_at=update_.polled_at, next_poll_at=update_.next_poll_at,
                        last_status=update_.status, last_error=update_.error,
                        consecutive_failures=FeedRow.consecutive_failures + 1,
                        retry_after_until=update_.retry_after_until,
                        failing_since=func.coalesce(FeedRow.failing_since, update_.polled_at))
            )
            session.commit()

    def mark_failure_alerted(self, feed_id: int, *, at: datetime) -> None:
        """The ops alert for this failing episode was raised (cleared by the next success)."""
        self._set_feed(feed_id, failure_alerted_at=at)

    def mark_silence_alerted(self, feed_id: int, *, at: datetime) -> None:
        """The expect_every alert was raised (cleared when a new item arrives)."""
        self._set_feed(feed_id, silence_alerted_at=at)

    def disable_gone(self, feed_id: int, *, reason: str, status: int, now: datetime) -> None:
        """The server said 410 Gone: stop polling until the config gives a new URL."""
        self._set_feed(feed_id, enabled=False, gone=True, disabled_reason=reason,
                       last_status=status, last_error=reason, last_polled_at=now)

    @retried
    def _set_feed(self, feed_id: int, **values: Any) -> None:
        with Session(self._engine) as session:
            session.execute(update(FeedRow).where(col(FeedRow.id) == feed_id).values(**values))
            session.commit()

    @retried
    def record_unchanged(self, feed_id: int, update_: FeedUpdate) -> None:
        """A 304, or a 200 whose body is byte-identical to the last one."""
        values: dict[str, Any] = dict(
            last_polled_at=update_.polled_at, next_poll_at=update_.next_poll_at,
            last_status=update_.status, last_error=None, consecutive_failures=0,
            last_success_at=update_.polled_at, **_success_values(update_),
        )
        if not update_.keep_validators:
            values.update(etag=update_.etag, last_modified=update_.last_modified)
        with Session(self._engine) as session:
            session.execute(update(FeedRow).where(col(FeedRow.id) == feed_id).values(**values))
            session.commit()

    @retried
    def record_unchanged_many(self, updates: Sequence[tuple[int, FeedUpdate]]) -> None:
        """Many :meth:`record_unchanged` at once, in one transaction per kind.

        Most polls are 304s; writing them in batches (an executemany) costs a
        fraction of a transaction each.
        """
        table = SQLModel.metadata.tables["feeds"]
        for keep in (True, False):
            rows = [
                dict(p_id=feed_id, p_polled=u.polled_at, p_next=u.next_poll_at,
                     p_status=u.status, p_rtarget=u.redirect_target,
                     p_rstreak=u.redirect_streak, p_eff=u.effective_url,
                     p_etag=u.etag, p_lm=u.last_modified)
                # In id order, the order sync_feeds updates rows in: two instances
                # locking the same feeds in opposite orders could deadlock.
                for feed_id, u in sorted(updates, key=lambda update_: update_[0])
                if u.keep_validators is keep
            ]
            if not rows:
                continue
            values: dict[str, Any] = dict(
                last_polled_at=bindparam("p_polled"), next_poll_at=bindparam("p_next"),
                last_status=bindparam("p_status"), last_error=None, consecutive_failures=0,
                last_success_at=bindparam("p_polled"), retry_after_until=None,
                failing_since=None, failure_alerted_at=None,
                redirect_target=bindparam("p_rtarget"), redirect_streak=bindparam("p_rstreak"),
                effective_url=func.coalesce(bindparam("p_eff", type_=String),
                                            table.c.effective_url),
            )
            if not keep:
                values.update(etag=bindparam("p_etag"), last_modified=bindparam("p_lm"))
            statement = update(table).where(table.c.id == bindparam("p_id")).values(**values)
            with self._engine.begin() as connection:
                connection.execute(statement, rows)


def _success_values(update_: FeedUpdate) -> dict[str, Any]:
    """A successful poll ends a failing episode and records redirect evidence."""
    values: dict[str, Any] = dict(
        retry_after_until=None, failing_since=None, failure_alerted_at=None,
        redirect_target=update_.redirect_target, redirect_streak=update_.redirect_streak,
    )
    if update_.effective_url is not None:
        values["effective_url"] = update_.effective_url
    return values


def _feed_state(row: FeedRow) -> FeedState:
    assert row.id is not None
    return FeedState(
        id=row.id, name=row.name, url=row.url, effective_url=row.effective_url,
        enabled=row.enabled, disabled_reason=row.disabled_reason, etag=row.etag,
        last_modified=row.last_modified, body_hash=row.body_hash,
        next_poll_at=_aware(row.next_poll_at),
        last_polled_at=_aware(row.last_polled_at), last_success_at=_aware(row.last_success_at),
        last_new_item_at=_aware(row.last_new_item_at), last_status=row.last_status,
        last_error=row.last_error, consecutive_failures=row.consecutive_failures,
        items_total=row.items_total, created_at=_aware(row.created_at),
        retry_after_until=_aware(row.retry_after_until),
        failing_since=_aware(row.failing_since),
        failure_alerted_at=_aware(row.failure_alerted_at),
        silence_alerted_at=_aware(row.silence_alerted_at),
        redirect_target=row.redirect_target, redirect_streak=row.redirect_streak,
        gone=row.gone, last_polled_by=row.last_polled_by,
    )
