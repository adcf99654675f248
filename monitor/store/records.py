"""The values passed in and out of the store: what a caller hands it to write, and
what it hands back instead of table rows.

``StoryAssigner`` is the protocol through which :meth:`Store.store_poll` asks for
stories (``monitor.story_desk`` implements it), ``MatchCallback`` the signature of
the matching it runs in a poll's transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol


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
