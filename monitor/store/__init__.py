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

One module per job, each importing only those listed above it::

    tables      the sqlmodel tables, and the statuses an outbox row goes through
    records     the values passed in and out: FeedSpec, NewItem, ClaimedDelivery, ...
    base        StoreBase, the engine the groups share; StoreError, utcnow
    feeds       FeedQueries: the feeds, synced from the config, polled under leases
    stories     StoryQueries: the story of each new item, its first alerts, its updates
    items       ItemQueries: a poll's items, hits and deliveries, in one transaction
    articles    ArticleQueries: article text awaited, claimed and matched
    outbox      OutboxQueries: deliveries claimed, held for batches, sent or retried
    notices     NoticeQueries: operational notices, one per episode
    operations  OperationQueries: health, metrics, retention, cluster-wide job runs
    slots       ChannelSlotQueries: each channel's next send slot, shared by instances

``Store``, here, is all of the query groups over one engine.
"""

from __future__ import annotations

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import SQLModel, create_engine

from monitor.schema import SchemaError, upgrade_schema
from monitor.store.articles import ArticleQueries
from monitor.store.base import (
    StoreError,
    _install_postgres_session_settings,
    _install_sqlite_pragmas,
    _redact,
    _watch_sqlite_file,
    describe_database_error,
    postgres_connect_args,
    sqlite_path,
    utcnow,
)
from monitor.store.feeds import FeedQueries
from monitor.store.items import ItemQueries
from monitor.store.notices import NoticeQueries
from monitor.store.operations import ITEM_OWNED_TABLES, OperationQueries
from monitor.store.outbox import OutboxQueries
from monitor.store.records import (
    ArticleState,
    AwaitingItem,
    ClaimedDelivery,
    ClaimedNotice,
    ClaimedStoryUpdate,
    DeliveryCounts,
    FeedSpec,
    FeedState,
    FeedUpdate,
    MatchCallback,
    NewHit,
    NewItem,
    StoredItem,
    StoryAssigner,
    StoryChoice,
    StorySource,
    WindowItem,
)
from monitor.store.slots import ChannelSlotQueries
from monitor.store.stories import STORY_LOCK_KEY, StoryQueries
from monitor.store.tables import (
    FAILED,
    HELD,
    PENDING,
    SENDING,
    SENT,
    ArticleRow,
    ChannelSlotRow,
    DeliveryRow,
    FeedRow,
    HitRow,
    ItemRow,
    JobRunRow,
    NoticeRow,
    OutboxState,
    OutboxTable,
    StoryAlertRow,
    StoryItemRow,
    StoryRow,
    StoryUpdateRow,
)

__all__ = [
    "FAILED",
    "HELD",
    "ITEM_OWNED_TABLES",
    "PENDING",
    "SENDING",
    "SENT",
    "STORY_LOCK_KEY",
    "ArticleRow",
    "ArticleState",
    "AwaitingItem",
    "ChannelSlotRow",
    "ClaimedDelivery",
    "ClaimedNotice",
    "ClaimedStoryUpdate",
    "DeliveryCounts",
    "DeliveryRow",
    "FeedRow",
    "FeedSpec",
    "FeedState",
    "FeedUpdate",
    "HitRow",
    "ItemRow",
    "JobRunRow",
    "MatchCallback",
    "NewHit",
    "NewItem",
    "NoticeRow",
    "OutboxState",
    "OutboxTable",
    "Store",
    "StoreError",
    "StoredItem",
    "StoryAlertRow",
    "StoryAssigner",
    "StoryChoice",
    "StoryItemRow",
    "StoryRow",
    "StorySource",
    "StoryUpdateRow",
    "WindowItem",
    "describe_database_error",
    "utcnow",
]


# ArticleQueries extends ItemQueries, which extends StoryQueries: each is listed
# before the group it builds on, as Python's method order requires.
class Store(FeedQueries, ArticleQueries, ItemQueries, StoryQueries, OutboxQueries,
            NoticeQueries, OperationQueries, ChannelSlotQueries):
    """Every query wirewatch makes, over one SQLAlchemy engine."""

    @classmethod
    def open(cls, url: str, *, create: bool = True) -> Store:
        """Open (and create or upgrade) the database at ``url``.

        ``create=False``, for commands that only read: a SQLite file that does not exist
        is an error, not a new empty database; a mistyped path would otherwise answer
        every report with nothing, and leave a stray file behind.
        """
        path = sqlite_path(url)
        if not create and path is not None and not path.exists():
            raise StoreError(f"no database at {path}: check `database` in the config "
                             "(`wirewatch run` creates it on its first start)")
        try:
            if url.startswith("sqlite"):
                engine = create_engine(url, connect_args={"timeout": 30})
                _install_sqlite_pragmas(engine)
            else:
                # The locking relies on READ COMMITTED, each statement seeing what was
                # committed before it began (an admission counts, after taking its
                # lock, what others admitted while it waited): a stricter default
                # isolation set for the database must not apply.
                engine = create_engine(url, pool_pre_ping=True, isolation_level="READ COMMITTED",
                                       connect_args=postgres_connect_args(url))
                _install_postgres_session_settings(engine)
            store = cls(engine)
            store.create_schema()
            if url.startswith("sqlite"):
                _watch_sqlite_file(engine, url)
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot open {describe_database_error(url, exc)}") from exc
        except SchemaError as exc:
            raise StoreError(f"cannot open database {_redact(url)}: {exc}") from exc
        except ImportError as exc:  # a driver named in the URL that is not installed
            raise StoreError(f"cannot open database {_redact(url)}: its driver is not "
                             f"installed ({exc}); use sqlite:///PATH or "
                             "postgresql+psycopg://user@host/dbname") from exc
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
