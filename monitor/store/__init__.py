"""The database: sqlmodel tables and every query wirewatch makes.

The database, not the process, enforces "at most once":

- ``items``     UNIQUE (feed_id, item_key): only rows really inserted go on to matching.
- ``hits``      UNIQUE (rule, item_id): a rule fires once per item.
- ``deliveries`` UNIQUE (hit_id, notifier): one alert per hit and channel.
- ``notices``   UNIQUE (key): one operational notice per episode (a feed went
  silent, a delivery finally failed), however often the condition is seen.
- ``story_items``   UNIQUE (item_id): every item belongs to exactly one story.
- ``story_alerts``  UNIQUE (rule, story_id, notifier): one top-level alert per story
  and channel, however many feeds carry it (docs/stories.md).
- ``story_updates`` UNIQUE (story_alert_id, item_id): one "also reported by" update
  per later source, sent through its own outbox.

A poll's new items, their hits and the hits' delivery rows are written in one
transaction, so a crash can never leave an item stored but unmatched, or a hit
stored without the rows that deliver it (the outbox pattern).

Exceptions::

    StoreError
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeAlias, cast, overload

from sqlalchemy import (
    ColumnElement,
    Engine,
    String,
    any_,
    bindparam,
    delete,
    event,
    exists,
    func,
    or_,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, CursorResult, Result
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Field, Session, SQLModel, UniqueConstraint, col, create_engine, select
from sqlmodel.sql.expression import SelectOfScalar

from monitor.schema import upgrade_schema

PENDING = "pending"
# pg_advisory_xact_lock key that serialises story assignment across instances
# ("wirewatch" in ASCII, to stay clear of other users of advisory locks).
STORY_LOCK_KEY = 0x77697265776174
SENDING = "sending"
SENT = "sent"
FAILED = "failed"
#: Waiting, with its batch, for a digest, a quiet-hours catch-up or a flood summary.
HELD = "held"


class StoreError(Exception):
    """The database could not be opened or answered with an error."""


def utcnow() -> datetime:
    return datetime.now(UTC)


@overload
def _aware(value: datetime) -> datetime: ...
@overload
def _aware(value: None) -> None: ...
def _aware(value: datetime | None) -> datetime | None:
    # SQLite hands datetimes back naive; everything we store is UTC.
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


class FeedRow(SQLModel, table=True):
    __tablename__ = "feeds"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, index=True, max_length=200)
    url: str
    effective_url: str | None = None
    enabled: bool = True
    disabled_reason: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    body_hash: str | None = None
    next_poll_at: datetime = Field(index=True)
    last_polled_at: datetime | None = None
    last_success_at: datetime | None = None
    last_new_item_at: datetime | None = None
    last_status: int | None = None
    last_error: str | None = None
    consecutive_failures: int = 0
    items_total: int = 0
    created_at: datetime
    # Polling state beyond the schedule (see docs/polling.md).
    retry_after_until: datetime | None = None  # a 429/503 Retry-After, obeyed even by --force
    failing_since: datetime | None = None       # first failure of the current failing episode
    failure_alerted_at: datetime | None = None  # the ops alert for that episode was raised
    silence_alerted_at: datetime | None = None  # the expect_every alert was raised
    redirect_target: str | None = None          # permanent redirect seen on the last polls...
    redirect_streak: int = 0                    # ...and on how many in a row
    gone: bool = False                          # disabled because the server answered 410
    # Several instances share one database: a due feed is polled by the instance
    # holding its lease (claim_due_feeds); a lease that expires, because its
    # holder died, lets another instance take the feed (docs/scaling.md).
    lease_owner: str | None = Field(default=None, max_length=200)
    lease_until: datetime | None = None
    last_polled_by: str | None = Field(default=None, max_length=200)


class ItemRow(SQLModel, table=True):
    __tablename__ = "items"
    __table_args__ = (UniqueConstraint("feed_id", "item_key", name="uq_items_feed_key"),)

    id: int | None = Field(default=None, primary_key=True)
    feed_id: int = Field(foreign_key="feeds.id", index=True)
    item_key: str = Field(max_length=600)
    guid: str | None = None
    link: str | None = None
    title: str = ""
    summary: str = ""
    content: str = ""
    author: str = ""
    categories: str = "[]"
    published_at: datetime | None = None
    first_seen_at: datetime = Field(index=True)


class HitRow(SQLModel, table=True):
    __tablename__ = "hits"
    __table_args__ = (UniqueConstraint("rule", "item_id", name="uq_hits_rule_item"),)

    id: int | None = Field(default=None, primary_key=True)
    rule: str = Field(index=True, max_length=200)
    item_id: int = Field(foreign_key="items.id", index=True)
    severity: str = "normal"
    matched_terms: str = "[]"
    snippet: str = ""
    marks: str = "[]"
    created_at: datetime = Field(index=True)


class ArticleRow(SQLModel, table=True):
    """Article text for an item of a ``full_text`` feed, and whether rules ran on it.

    Written in the poll's transaction with ``matched_at`` NULL: the item awaits
    its text. Matching sets ``matched_at`` in the transaction that stores the
    item's hits, so a crash in between leaves the row to be claimed again
    (after ``claimed_until``) and the match is never lost.
    """

    __tablename__ = "article_texts"

    item_id: int = Field(foreign_key="items.id", primary_key=True)
    feed_id: int = Field(foreign_key="feeds.id", index=True)
    requested_at: datetime
    claimed_until: datetime | None = None
    claimed_by: str | None = Field(default=None, max_length=200)
    url: str | None = None  # where the text came from, after redirects
    text: str | None = None
    failure: str | None = None  # why the feed text was used instead
    matched_at: datetime | None = Field(default=None, index=True)


class OutboxState(SQLModel):
    """The columns every outbox table shares: claimed with a lease, sent or retried.

    Deliveries, ops notices and story updates go through the same claim / mark
    queries; keeping their state in one place keeps those queries honest.
    """

    status: str = Field(default=PENDING, index=True, max_length=16)
    attempts: int = 0
    next_attempt_at: datetime = Field(index=True)
    claimed_until: datetime | None = None
    claimed_by: str | None = Field(default=None, max_length=200)
    last_error: str | None = None
    external_id: str | None = None
    created_at: datetime
    sent_at: datetime | None = None


def _due(table: type[OutboxState], *, now: datetime,
         waiting: str = PENDING) -> ColumnElement[bool]:
    """Outbox rows ready to claim: waiting and their time has come, or a claim on
    them expired (the process that held it died while sending)."""
    return or_(
        (col(table.status) == waiting) & (col(table.next_attempt_at) <= now),
        (col(table.status) == SENDING) & (col(table.claimed_until) < now),
    )


class DeliveryRow(OutboxState, table=True):
    __tablename__ = "deliveries"
    __table_args__ = (UniqueConstraint("hit_id", "notifier", name="uq_deliveries_hit_notifier"),)

    id: int | None = Field(default=None, primary_key=True)
    hit_id: int = Field(foreign_key="hits.id", index=True)
    notifier: str = Field(max_length=200)
    #: Set when the row is held for a batch message (digest, quiet hours, flood
    #: summary): the rows sharing (notifier, batch) are sent as one message.
    batch: str | None = Field(default=None, max_length=300)
    held_until: datetime | None = None
    #: When the channel's policy let this row go out on its own (flood control counts these).
    admitted_at: datetime | None = Field(default=None, index=True)
    #: The feeds the sent message named for its story (its own and the "Also" ones), as a
    #: JSON list: a story update for one of them has nothing to add. NULL for rows sent
    #: before this was recorded; those compare times instead.
    listed_sources: str | None = None


class NoticeRow(OutboxState, table=True):
    """Operational notices (feed health, failed deliveries), sent like deliveries."""

    __tablename__ = "notices"

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(unique=True, max_length=400)
    notifier: str = Field(max_length=200)
    title: str
    body: str = ""
    severity: str = Field(default="normal", max_length=16)


class StoryRow(SQLModel, table=True):
    """One story: the first item that told it, and where and when that was."""

    __tablename__ = "stories"

    id: int | None = Field(default=None, primary_key=True)
    first_item_id: int = Field(foreign_key="items.id", unique=True)
    first_feed: str = Field(max_length=200)
    first_seen_at: datetime = Field(index=True)
    title: str = ""


class StoryItemRow(SQLModel, table=True):
    """An item's story, and when its feed brought it (the story's sources over time)."""

    __tablename__ = "story_items"
    __table_args__ = (UniqueConstraint("item_id", name="uq_story_items_item"),)

    id: int | None = Field(default=None, primary_key=True)
    story_id: int = Field(foreign_key="stories.id", index=True)
    item_id: int = Field(foreign_key="items.id")
    feed: str = Field(max_length=200)
    canonical_url: str | None = Field(default=None, index=True, max_length=2000)
    reason: str = Field(max_length=16)  # "first" | "url" | "similar"
    seen_at: datetime


class StoryAlertRow(SQLModel, table=True):
    """The one top-level alert of (rule, story, notifier): the hit whose delivery sends it."""

    __tablename__ = "story_alerts"
    __table_args__ = (
        UniqueConstraint("rule", "story_id", "notifier", name="uq_story_alerts_once"),
    )

    id: int | None = Field(default=None, primary_key=True)
    rule: str = Field(max_length=200)
    story_id: int = Field(foreign_key="stories.id", index=True)
    notifier: str = Field(max_length=200)
    hit_id: int = Field(foreign_key="hits.id", index=True)
    created_at: datetime


class StoryUpdateRow(OutboxState, table=True):
    """Outbox of "also reported by" updates to an alert already sent (edit or thread reply)."""

    __tablename__ = "story_updates"
    __table_args__ = (
        UniqueConstraint("story_alert_id", "item_id", name="uq_story_updates_alert_item"),
    )

    id: int | None = Field(default=None, primary_key=True)
    story_alert_id: int = Field(foreign_key="story_alerts.id", index=True)
    item_id: int = Field(foreign_key="items.id")
    notifier: str = Field(max_length=200)
    mode: str = Field(max_length=16)  # "edit" | "thread"


#: The tables claimed and marked through the outbox queries (Store._lease).
OutboxTable: TypeAlias = type[DeliveryRow] | type[NoticeRow] | type[StoryUpdateRow]


class JobRunRow(SQLModel, table=True):
    """One run of a cluster-wide job (retention, ...) and the instance that claimed it.

    Every instance reaches the same run of a schedule; UNIQUE (job, run_key)
    lets exactly one of them insert the row, and only that one runs the job.
    """

    __tablename__ = "job_runs"
    __table_args__ = (UniqueConstraint("job", "run_key", name="uq_job_runs_job_key"),)

    id: int | None = Field(default=None, primary_key=True)
    job: str = Field(max_length=100)
    run_key: str = Field(max_length=200)
    owner: str = Field(max_length=200)
    claimed_at: datetime


# ----------------------------------------------------------------------------- values


@dataclass(frozen=True, slots=True)
class FeedSpec:
    """What the config says about a feed; synced into ``feeds`` by name."""

    name: str
    url: str
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class FeedState:
    id: int
    name: str
    url: str
    effective_url: str | None
    enabled: bool
    disabled_reason: str | None
    etag: str | None
    last_modified: str | None
    body_hash: str | None
    next_poll_at: datetime
    last_polled_at: datetime | None
    last_success_at: datetime | None
    last_new_item_at: datetime | None
    last_status: int | None
    last_error: str | None
    consecutive_failures: int
    items_total: int
    created_at: datetime | None = None
    retry_after_until: datetime | None = None
    failing_since: datetime | None = None
    failure_alerted_at: datetime | None = None
    silence_alerted_at: datetime | None = None
    redirect_target: str | None = None
    redirect_streak: int = 0
    gone: bool = False
    last_polled_by: str | None = None  # the instance id that claimed its latest poll

    @property
    def fetch_url(self) -> str:
        return self.effective_url or self.url

    @property
    def status(self) -> str:
        if not self.enabled:
            return "disabled"
        return "failing" if self.consecutive_failures else "ok"


@dataclass(frozen=True, slots=True)
class NewItem:
    """An item as parsed, ready to be inserted."""

    item_key: str
    guid: str | None
    link: str | None
    title: str
    summary: str
    content: str
    author: str
    categories: tuple[str, ...]
    published_at: datetime | None


@dataclass(frozen=True, slots=True)
class StoredItem:
    id: int
    feed_name: str
    feed_tags: tuple[str, ...]
    item_key: str
    guid: str | None
    link: str | None
    title: str
    summary: str
    content: str
    author: str
    categories: tuple[str, ...]
    published_at: datetime | None
    first_seen_at: datetime


@dataclass(frozen=True, slots=True)
class NewHit:
    rule: str
    item_key: str
    severity: str
    matched_terms: tuple[dict[str, Any], ...]
    snippet: str
    marks: tuple[tuple[int, int], ...]
    notifiers: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class FeedUpdate:
    """The outcome of one poll, applied to the feed's row."""

    polled_at: datetime
    next_poll_at: datetime
    status: int | None
    error: str | None
    etag: str | None = None
    last_modified: str | None = None
    body_hash: str | None = None
    keep_validators: bool = True
    retry_after_until: datetime | None = None  # failures only: the server's Retry-After
    redirect_target: str | None = None          # successes: the permanent redirect seen now
    redirect_streak: int = 0                    # polls in a row that saw it
    effective_url: str | None = None            # successes: promote this URL (None: keep)


@dataclass(frozen=True, slots=True)
class ClaimedDelivery:
    id: int
    notifier: str
    attempts: int
    created_at: datetime
    hit_id: int
    rule: str
    severity: str
    snippet: str
    marks: tuple[tuple[int, int], ...]
    title: str
    link: str | None
    published_at: datetime | None
    first_seen_at: datetime
    feed_name: str
    admitted: bool = False
    batch: str | None = None
    held_until: datetime | None = None


@dataclass(frozen=True, slots=True)
class ClaimedNotice:
    id: int
    key: str
    notifier: str
    title: str
    body: str
    severity: str
    attempts: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class DeliveryCounts:
    pending: int
    sending: int
    sent: int
    failed: int
    held: int = 0


@dataclass(frozen=True, slots=True)
class StoryChoice:
    """Which story a new item joins (``story_id`` None: it starts one)."""

    story_id: int | None
    reason: str  # "first" | "url" | "similar"
    canonical_url: str | None


class StoryAssigner(Protocol):
    """Decides stories for new items inside :meth:`Store.store_poll`'s transaction.

    ``transaction`` is held around the whole write: the assigner serialises
    assignments and forgets what it recorded if the transaction fails.
    """

    def transaction(self) -> AbstractContextManager[None]: ...

    def choose(self, item: NewItem, *, feed: str, seen_at: datetime,
               url_lookup: Callable[[str], int | None]) -> StoryChoice: ...

    def record(self, story_id: int, item: NewItem, choice: StoryChoice, *, feed: str,
               seen_at: datetime, item_id: int | None = None) -> None: ...

    def catch_up(self, rows_after: Callable[[datetime, int], Iterable[WindowItem]]) -> None:
        """Learn the stories other processes stored since this one last looked."""

    def update_mode(self, notifier: str) -> str: ...


@dataclass(frozen=True, slots=True)
class StorySource:
    feed: str
    seen_at: datetime


@dataclass(frozen=True, slots=True)
class WindowItem:
    """A stored item of a story in the window, for loading the hot state."""

    story_id: int
    feed: str
    title: str
    summary: str
    link: str | None
    seen_at: datetime
    is_first: bool
    member_id: int = 0     # story_items.id: stories are read in this order
    item_id: int = 0


@dataclass(frozen=True, slots=True)
class ClaimedStoryUpdate:
    id: int
    notifier: str
    mode: str
    attempts: int
    created_at: datetime
    story_id: int
    new_feed: str
    new_seen_at: datetime
    original_status: str
    original_external_id: str | None
    original_sent_at: datetime | None
    original_hit_id: int
    #: The feeds the original message named for the story; None if it was sent before
    #: that was recorded (then its send time tells).
    original_listed_sources: tuple[str, ...] | None
    #: When the original is due to go out (its hold for a digest, or its retry):
    #: an update waiting for an unsent original need not look again before then.
    original_due_at: datetime


# ----------------------------------------------------------------------------- store

MatchCallback = Callable[[Sequence[NewItem]], Iterable[NewHit]]


@dataclass(frozen=True, slots=True)
class AwaitingItem:
    """An item of a full_text feed claimed for fetching its text and matching."""

    item_id: int
    feed_id: int
    feed_name: str
    item: NewItem
    requested_at: datetime


@dataclass(frozen=True, slots=True)
class ArticleState:
    url: str | None
    text: str | None
    failure: str | None
    matched_at: datetime | None



def _install_sqlite_pragmas(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event, not the driver, open transactions, so
        # every write transaction is BEGIN IMMEDIATE: a CLI command run next to
        # the daemon then waits for the write lock instead of failing with
        # "database is locked" half-way through a transaction.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


class Store:
    """Every query wirewatch makes, over one SQLAlchemy engine."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._dialect = engine.dialect.name

    @classmethod
    def open(cls, url: str) -> Store:
        try:
            if url.startswith("sqlite"):
                engine = create_engine(url, connect_args={"timeout": 30})
                _install_sqlite_pragmas(engine)
            else:
                engine = create_engine(url, pool_pre_ping=True)
            store = cls(engine)
            store.create_schema()
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot open database {_redact(url)}: {exc.__class__.__name__}: "
                             f"{str(exc).splitlines()[0]}") from exc
        return store

    @property
    def engine(self) -> Engine:
        return self._engine

    def create_schema(self) -> None:
        """Create the tables of a new database, or upgrade an older one (monitor.schema)."""
        upgrade_schema(self._engine, SQLModel.metadata)

    def close(self) -> None:
        self._engine.dispose()

    def ping(self) -> None:
        with self._engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1")

    def _insert(self, table: type[SQLModel]) -> Any:
        dialect = postgresql if self._dialect == "postgresql" else sqlite
        return dialect.insert(table)

    # ------------------------------------------------------------------- feeds

    def sync_feeds(self, specs: Sequence[FeedSpec], *, now: datetime) -> None:
        """Make the feeds table agree with the config, by feed name.

        A new feed is due at once; a feed whose URL changed loses its cached
        validators and promoted URL; feeds gone from the config are disabled,
        not deleted, so their items and hits stay.
        """
        wanted = {spec.name: spec for spec in specs}
        with Session(self._engine) as session:
            rows = {row.name: row for row in session.exec(select(FeedRow))}
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

    def renew_feed_leases(self, *, owner: str, until: datetime) -> int:
        """Extend every lease ``owner`` holds to ``until`` (its pass is still working).

        A live instance renews while it polls, so a lease runs out only when its
        holder stopped renewing: it died, or its pass ended without giving it back.
        """
        with Session(self._engine) as session:
            result = session.execute(update(FeedRow).where(col(FeedRow.lease_owner) == owner)
                                     .values(lease_until=until))
            session.commit()
        return _rowcount(result)

    def release_feeds(self, *, owner: str, feed_ids: Iterable[int] | None = None) -> int:
        """Give back the leases ``owner`` holds (on ``feed_ids``, or all); returns how many.

        Called when a poll pass is over and on shutdown, so the next pass (of
        any instance) need not wait for the leases to expire.
        """
        table = SQLModel.metadata.tables["feeds"]
        mine = (table.c.lease_owner == owner,)
        chunks: list[list[int] | None] = [None]
        if feed_ids is not None:
            ids = list(feed_ids)
            # Bounded IN lists: SQLite and PostgreSQL both cap bound parameters.
            chunks = [ids[i:i + 1000] for i in range(0, len(ids), 1000)]
        released = 0
        with Session(self._engine) as session:
            for chunk in chunks:
                where = mine if chunk is None else (*mine, table.c.id.in_(chunk))
                result = session.execute(
                    update(table).where(*where).values(lease_owner=None, lease_until=None))
                released += _rowcount(result)
            session.commit()
        return released

    def claim_job_run(self, job: str, run_key: str, owner: str, now: datetime) -> bool:
        """True for the one caller, of all instances, that claims this run of ``job``.

        ``run_key`` names the run of the schedule (``"2026-03-02"`` for a daily
        job): instances that reach the same run compute the same key, the
        unique constraint admits the first insert, and the others get False.
        """
        statement = (
            self._insert(JobRunRow)
            .values(job=job, run_key=run_key, owner=owner, claimed_at=now)
            .on_conflict_do_nothing(index_elements=["job", "run_key"])
            .returning(JobRunRow.id)
        )
        # RETURNING, not rowcount: psycopg reports -1 for an INSERT's rowcount here.
        with self._engine.begin() as connection:
            return connection.execute(statement).first() is not None

    def job_runs(self, job: str | None = None) -> list[dict[str, Any]]:
        """Claimed runs, oldest first (for ``job`` only when given)."""
        statement = select(JobRunRow).order_by(col(JobRunRow.id))
        if job is not None:
            statement = statement.where(col(JobRunRow.job) == job)
        with Session(self._engine) as session:
            return [dict(job=r.job, run_key=r.run_key, owner=r.owner,
                         claimed_at=_aware(r.claimed_at)) for r in session.exec(statement)]

    def feeds(self) -> list[FeedState]:
        with Session(self._engine) as session:
            rows = session.exec(select(FeedRow).order_by(col(FeedRow.name)))
            return [_feed_state(r) for r in rows]

    def feed(self, name: str) -> FeedState | None:
        with Session(self._engine) as session:
            row = session.exec(select(FeedRow).where(col(FeedRow.name) == name)).first()
            return _feed_state(row) if row else None

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

    def _set_feed(self, feed_id: int, **values: Any) -> None:
        with Session(self._engine) as session:
            session.execute(update(FeedRow).where(col(FeedRow.id) == feed_id).values(**values))
            session.commit()

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
                for feed_id, u in updates if u.keep_validators is keep
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

    # ------------------------------------------------------------------- items and hits

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
        hits to store. Returns the ids of the hits stored.

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
                session.execute(self._insert(ArticleRow).values(
                    [dict(item_id=item_id, feed_id=feed_id, requested_at=now)
                     for item_id in new_keys.values()]))
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
        statement = (
            self._insert(ItemRow)
            .values(rows)
            .on_conflict_do_nothing(index_elements=["feed_id", "item_key"])
            .returning(ItemRow.id, ItemRow.item_key)
        )
        return {key: item_id for item_id, key in session.execute(statement)}

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

    # ------------------------------------------------------------------- stories

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

    def delivery_for(self, hit_id: int, notifier: str) -> ClaimedDelivery | None:
        """The delivery of ``hit_id`` on ``notifier`` (an alert a story update refers to)."""
        with Session(self._engine) as session:
            delivery_id = session.execute(
                select(DeliveryRow.id).where(col(DeliveryRow.hit_id) == hit_id,
                                             col(DeliveryRow.notifier) == notifier)
            ).scalar()
        found = self._claimed([delivery_id]) if delivery_id is not None else []
        return found[0] if found else None

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

    def _lease(self, session: Session, table: OutboxTable, ids_query: SelectOfScalar[int | None],
               *, now: datetime, lease: timedelta, claimer: str,
               returning: Sequence[Any] | None = None) -> Result[*tuple[Any, ...]]:
        """Claim the outbox rows ``ids_query`` selects: one UPDATE … RETURNING.

        On PostgreSQL the selected rows are locked with SKIP LOCKED, so instances
        claiming at once take disjoint rows instead of waiting for each other.
        """
        if self._dialect == "postgresql":
            ids_query = ids_query.with_for_update(skip_locked=True)
        return session.execute(
            update(table)
            .where(col(table.id).in_(ids_query.scalar_subquery()))
            .values(status=SENDING, claimed_until=now + lease, claimed_by=claimer,
                    attempts=col(table.attempts) + 1)
            .returning(*(returning or (col(table.id),)))
        )

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

    # ------------------------------------------------------------------- article text

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
                item_id: reason for item_id, reason in session.exec(
                    select(ArticleRow.item_id, ArticleRow.failure)
                    .where(col(ArticleRow.item_id).in_([c[2] for c in counts]))
                ).all()
            }
        return {name: (int(count), latest.get(last)) for name, count, last in counts}

    # ------------------------------------------------------------------- outbox

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
        claimed = list(ids)
        with Session(self._engine) as session:
            rows = session.exec(
                select(DeliveryRow, HitRow, ItemRow, FeedRow.name)
                .join(HitRow, col(HitRow.id) == DeliveryRow.hit_id)
                .join(ItemRow, col(ItemRow.id) == HitRow.item_id)
                .join(FeedRow, col(FeedRow.id) == ItemRow.feed_id)
                .where(col(DeliveryRow.id).in_(claimed))
                .order_by(col(DeliveryRow.id))
            ).all()
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

    # ------------------------------------------------------------------- holding and batches

    def hold_delivery(self, delivery_id: int, *, batch: str, until: datetime) -> None:
        """Put a claimed row into a batch sent at ``until`` (the claim did not count
        as an attempt)."""
        self._finish(delivery_id, status=HELD, batch=batch, held_until=until,
                     next_attempt_at=until, claimed_until=None, attempts=0)

    def admit_delivery(self, delivery_id: int, *, now: datetime) -> None:
        """Record that the channel's policy lets this row go out on its own."""
        self._finish(delivery_id, admitted_at=now)

    def admitted_since(self, *, notifier: str, rule: str,
                       since: datetime) -> tuple[int, datetime | None]:
        """How many of ``rule``'s alerts went out alone on ``notifier`` after ``since``,
        and when the first of them did."""
        with Session(self._engine) as session:
            count, first = session.exec(
                select(func.count(), func.min(DeliveryRow.admitted_at))
                .join(HitRow, col(HitRow.id) == DeliveryRow.hit_id)
                .where(col(DeliveryRow.notifier) == notifier, col(HitRow.rule) == rule,
                       col(DeliveryRow.admitted_at) > since)
            ).one()
        return int(count), _aware(first)

    def claim_batch(self, *, now: datetime, lease: timedelta, claimer: str,
                    notifier: str) -> list[ClaimedDelivery]:
        """Claim every row of one due batch of ``notifier`` (empty when none is due).

        A batch is due when its rows are held and their time has come, or when a
        claim on it expired. All its rows are claimed together, so they go out as one
        message and are marked together.
        """
        due = _due(DeliveryRow, now=now, waiting=HELD)
        with Session(self._engine) as session:
            batch = session.exec(
                select(DeliveryRow.batch)
                .where(due, col(DeliveryRow.notifier) == notifier,
                       col(DeliveryRow.batch) != None)  # noqa: E711
                .order_by(col(DeliveryRow.next_attempt_at))
                .limit(1)
            ).first()
            if batch is None:
                return []
            ids_query = select(col(DeliveryRow.id)).where(
                due, col(DeliveryRow.notifier) == notifier, col(DeliveryRow.batch) == batch)
            claimed = self._lease(session, DeliveryRow, ids_query, now=now, lease=lease,
                                  claimer=claimer).scalars().all()
            session.commit()
        return self._claimed(sorted(claimed))

    def mark_batch_sent(self, delivery_ids: Sequence[int], *, external_id: str | None,
                        now: datetime,
                        listed_sources: Sequence[Sequence[str]] | None = None) -> None:
        """Mark a batch message's rows sent; ``listed_sources``: per row, in order, the
        feeds its entry named."""
        if listed_sources is None:
            self._finish_many(delivery_ids, status=SENT, external_id=external_id, sent_at=now,
                              claimed_until=None, last_error=None)
            return
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

    def _finish_many(self, delivery_ids: Sequence[int], **values: Any) -> None:
        ids = list(delivery_ids)
        with Session(self._engine) as session:
            session.execute(update(DeliveryRow)
                            .where(col(DeliveryRow.id).in_(ids))
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

    # ------------------------------------------------------------------- notices

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

    def claim_notices(self, *, now: datetime, lease: timedelta, claimer: str,
                      limit: int = 20, notifier: str | None = None) -> list[ClaimedNotice]:
        """Claim due notices, like :meth:`claim_deliveries`."""
        ids_query = select(col(NoticeRow.id)).where(_due(NoticeRow, now=now))
        if notifier is not None:
            ids_query = ids_query.where(col(NoticeRow.notifier) == notifier)
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

    # ------------------------------------------------------------------- operations
    # Health, metrics, retention and the operator CLI (docs/operations.md).

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
            ids = [h.id for h, _, _ in rows]
            by_hit: dict[int, dict[str, str]] = {}
            if ids:
                for hit_id, notifier, status in session.exec(
                    select(DeliveryRow.hit_id, DeliveryRow.notifier, DeliveryRow.status)
                    .where(col(DeliveryRow.hit_id).in_(ids))
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
              job_runs_before: datetime | None = None) -> dict[str, int]:
        """Delete what retention lets go; returns rows deleted per table.

        - deliveries created before ``deliveries_before`` that are finished
          (sent or failed): never one still waiting or being sent;
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
        """
        t = SQLModel.metadata.tables
        items, hits, deliveries = t["items"], t["hits"], t["deliveries"]
        counts: dict[str, int] = {}

        def run(table: Any, statement: Any) -> None:
            result = session.execute(statement)
            counts[table.name] = counts.get(table.name, 0) + _rowcount(result)

        with Session(self._engine) as session:
            run(deliveries, delete(deliveries).where(
                deliveries.c.created_at < deliveries_before,
                deliveries.c.status.in_((SENT, FAILED))))
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
            session.commit()
        return counts


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


def _rowcount(result: Result[*tuple[Any, ...]]) -> int:
    """The rows an UPDATE or DELETE matched."""
    # sqlmodel types Session.execute as returning a plain Result; for a DML statement
    # SQLAlchemy returns a CursorResult, which is what carries rowcount.
    return int(cast(CursorResult[Any], result).rowcount or 0)


def _row_id(value: int | None) -> int:
    """The primary key of a row read from the database (None only before its insert)."""
    assert value is not None
    return value


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


def _stored_item(row: ItemRow, feed_name: str, tags: tuple[str, ...]) -> StoredItem:
    assert row.id is not None
    return StoredItem(
        id=row.id, feed_name=feed_name, feed_tags=tags, item_key=row.item_key, guid=row.guid,
        link=row.link, title=row.title, summary=row.summary, content=row.content,
        author=row.author, categories=tuple(json.loads(row.categories or "[]")),
        published_at=_aware(row.published_at),
        first_seen_at=_aware(row.first_seen_at),
    )


def _redact(url: str) -> str:
    """Hide a password in a database URL before it reaches a message."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in credentials else url
