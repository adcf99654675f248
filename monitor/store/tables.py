"""The sqlmodel tables of the database, and the statuses an outbox row goes through.

Importing this module registers every table in ``SQLModel.metadata``, which
creating and upgrading the schema, the migrations and retention all read.
``OutboxState`` holds the columns the three outbox tables share (deliveries,
notices, story updates) and ``_due`` the condition that makes one of their rows
ready to claim.
"""

from __future__ import annotations

from datetime import datetime
from typing import TypeAlias

from sqlalchemy import ColumnElement, or_
from sqlmodel import Field, SQLModel, UniqueConstraint, col

PENDING = "pending"
SENDING = "sending"
SENT = "sent"
FAILED = "failed"
#: Waiting, with its batch, for a digest, a quiet-hours catch-up or a flood summary.
HELD = "held"


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


class ChannelSlotRow(SQLModel, table=True):
    """A channel's next free send slot (its pacing key's), shared by every instance on
    the database so that together they keep the channel's pace (monitor.pacing)."""

    __tablename__ = "channel_slots"

    key: str = Field(primary_key=True, max_length=200)
    next_at: datetime
