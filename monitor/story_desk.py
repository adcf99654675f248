"""Stories at run time: the in-memory index over the store, and the story updates.

:class:`StoryDesk` is what :meth:`monitor.store.Store.store_poll` asks which story a
new item belongs to. It keeps the window's stories in a :class:`StoryIndex`,
loaded from the database at start and updated as items are stored; the database
stays the source of truth (a canonical URL the index does not know is looked up
there, and every decision is written in the poll's transaction).

:func:`send_story_updates` works the ``story_updates`` outbox: for each later
source of a story already alerted, the channel edits its original message
(``edit``) or replies to it (``thread``), saying who else carries the story and how
long after the first source (docs/stories.md).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import partial

from monitor.recording import record_sent
from monitor.store import (
    FAILED,
    PENDING,
    SENT,
    ClaimedDelivery,
    ClaimedStoryUpdate,
    NewItem,
    Store,
    StoryChoice,
    StorySource,
    WindowItem,
    utcnow,
)
from monitor.stories import WINDOW, Fingerprint, StoryIndex, fingerprint
from notifiers import Alert, Digest, Notifier, NotifyError, Receipt

log = logging.getLogger("wirewatch.stories")

UPDATE_MODES = ("edit", "thread", "off")
DEFAULT_UPDATE_MODE = "thread"
LEASE = timedelta(minutes=2)
MAX_AGE = timedelta(hours=24)


def _lead_of(item: NewItem) -> str:
    return item.summary or item.content


class StoryDesk:
    """Assigns new items to stories (the ``StoryAssigner`` of ``Store.store_poll``).

    Thread-safe: polls store from worker threads, so one lock covers each poll's
    whole transaction, and what a failed transaction recorded is forgotten again.
    """

    def __init__(self, *, index: StoryIndex | None = None,
                 update_modes: Mapping[str, str] | None = None,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.index = index or StoryIndex()
        self._modes = dict(update_modes or {})
        self._clock = clock
        self._lock = threading.RLock()
        self._journal: list[int] | None = None
        self._journal_items: list[int] = []
        self._prints: dict[int, Fingerprint] = {}
        # Which stored story members the index already holds, so catching up with
        # other processes' stories adds each item once; with when (this desk's clock)
        # each was noted, oldest first, so that it is forgotten once no catch-up can
        # return it again (_forget_old_items).
        self._known_items: dict[int, datetime] = {}
        self._high_water = 0
        self._window = self.index.window

    @classmethod
    def load(cls, store: Store, *, update_modes: Mapping[str, str] | None = None,
             clock: Callable[[], datetime] = utcnow, window: timedelta = WINDOW) -> StoryDesk:
        """The desk with every story of the last ``window`` read from ``store``."""
        desk = cls(index=StoryIndex(window=window), update_modes=update_modes, clock=clock)
        desk._learn(store.story_window(since=clock() - window))
        log.info("stories_loaded=%d window_hours=%d", len(desk.index),
                 window.total_seconds() // 3600)
        return desk

    def _learn(self, rows: Iterable[WindowItem]) -> int:
        learned = 0
        for row in rows:
            self._high_water = max(self._high_water, row.member_id)
            if row.item_id in self._known_items:
                continue
            self._known_items[row.item_id] = self._clock()
            item = fingerprint(title=row.title, lead=row.summary, link=row.link)
            if row.is_first:
                self.index.add_story(row.story_id, item, feed=row.feed, seen_at=row.seen_at)
            else:
                self.index.add_member(row.story_id, item, feed=row.feed)
            learned += 1
        return learned

    def catch_up(self, rows_after: Callable[[datetime, int], Iterable[WindowItem]]) -> None:
        """Add the stories other processes stored since the last look.

        Called inside the storing transaction, after the store serialised story
        assignment across instances, so a near-duplicate first seen by another
        instance a moment ago is found by its title, not only by its URL.
        """
        self._forget_old_items()
        learned = self._learn(rows_after(self._clock() - self._window, self._high_water))
        if learned:
            log.debug("stories_caught_up=%d", learned)

    def _forget_old_items(self) -> None:
        """Forget the items noted more than two windows ago.

        A catch-up returns only rows past the high-water mark of stories first seen
        within the window: an item learned from the database is behind the mark at
        once, and one this process stored is passed by the next catch-up, or its story
        has left the window. Two windows leave room for clocks that differ between
        instances. Kept for the whole run, the set grew by every item ever stored.
        """
        cutoff = self._clock() - 2 * self._window
        known = self._known_items
        while known:
            item_id, noted_at = next(iter(known.items()))
            if noted_at >= cutoff:
                return
            del known[item_id]

    def replace_update_modes(self, update_modes: Mapping[str, str]) -> None:
        self._modes = dict(update_modes)

    def update_mode(self, notifier: str) -> str:
        return self._modes.get(notifier, DEFAULT_UPDATE_MODE)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self._lock:
            self._journal = []
            try:
                yield
            except BaseException:
                for story_id in self._journal:
                    self.index.remove_story(story_id)
                # SQLite may hand a rolled-back row id out again.
                for item_id in self._journal_items:
                    self._known_items.pop(item_id, None)
                raise
            finally:
                self._journal = None
                self._journal_items = []
                self._prints.clear()

    def choose(self, item: NewItem, *, feed: str, seen_at: datetime,
               url_lookup: Callable[[str], int | None]) -> StoryChoice:
        self.index.expire(seen_at)
        print_ = fingerprint(title=item.title, lead=_lead_of(item), link=item.link)
        self._prints[id(item)] = print_
        found = self.index.match(print_, feed=feed, seen_at=seen_at)
        if found is not None:
            return StoryChoice(story_id=found.story_id, reason=found.reason,
                               canonical_url=print_.url)
        if print_.url is not None:
            story_id = url_lookup(print_.url)
            if story_id is not None:
                return StoryChoice(story_id=story_id, reason="url", canonical_url=print_.url)
        return StoryChoice(story_id=None, reason="first", canonical_url=print_.url)

    def record(self, story_id: int, item: NewItem, choice: StoryChoice, *, feed: str,
               seen_at: datetime, item_id: int | None = None) -> None:
        print_ = self._prints.pop(id(item), None) or fingerprint(
            title=item.title, lead=_lead_of(item), link=item.link)
        if item_id is not None:
            self._known_items[item_id] = self._clock()
            self._journal_items.append(item_id)
        if choice.story_id is None:
            self.index.add_story(story_id, print_, feed=feed, seen_at=seen_at)
            if self._journal is not None:
                self._journal.append(story_id)
        else:
            self.index.add_member(story_id, print_, feed=feed)


# ----------------------------------------------------------------------------- text


def _after(delta: timedelta) -> str:
    minutes = max(0, round(delta.total_seconds() / 60))
    if minutes < 60:
        return f"+{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"+{hours} h {minutes} min" if minutes else f"+{hours} h"


def other_sources(sources: Sequence[StorySource], *, own_feed: str) -> tuple[str, ...]:
    """The story's sources other than the alert's own feed, each with how long after
    the first source it carried the story: ("DW (first)", "Reuters (+4 min)")."""
    if len(sources) < 2:
        return ()
    first = sources[0]
    return tuple(
        f"{s.feed} (first)" if s is first else f"{s.feed} ({_after(s.seen_at - first.seen_at)})"
        for s in sources
        if s.feed != own_feed
    )


def with_story(store: Store, alert: Alert, *, hit_id: int) -> tuple[Alert, tuple[str, ...]]:
    """The alert with its story's other sources as known now (unchanged for one source),
    and the feeds it names for the story: its own and those others."""
    story_id = store.story_of_hit(hit_id)
    if story_id is None:
        return alert, (alert.feed,)
    sources = store.story_sources(story_id)
    named = (alert.feed, *(s.feed for s in sources if s.feed != alert.feed))
    return replace(alert, other_sources=other_sources(sources, own_feed=alert.feed)), named


def digest_with_stories(store: Store, digest: Digest, hit_ids: Sequence[int]
                        ) -> tuple[Digest, list[tuple[str, ...]]]:
    """The digest with each entry's story sources as known now, as :func:`with_story`
    gives an immediate alert, and the feeds each entry names; ``hit_ids`` are the
    entries' hits, in order."""
    entries = [with_story(store, alert, hit_id=hit_id)
               for alert, hit_id in zip(digest.alerts, hit_ids, strict=True)]
    return (replace(digest, alerts=tuple(alert for alert, _ in entries)),
            [named for _, named in entries])


# ----------------------------------------------------------------------------- updates

#: Longest title quoted in an update under a digest (feed text; Slack caps a message).
_MAX_QUOTED_TITLE = 300


@dataclass(slots=True)
class UpdateSummary:
    sent: int = 0
    skipped: int = 0
    retrying: int = 0
    failed: int = 0


#: How a message goes out: in a worker thread, after whatever wait its channel needs.
Send = Callable[[Notifier, Callable[[], Receipt]], Awaitable[Receipt]]


async def _unpaced(_notifier: Notifier, send: Callable[[], Receipt]) -> Receipt:
    return await asyncio.to_thread(send)


async def send_story_updates(
    store: Store, notifiers: Mapping[str, Notifier], *,
    original_alert: Callable[[ClaimedDelivery], Alert], claimer: str,
    clock: Callable[[], datetime] = utcnow, lease: timedelta = LEASE,
    retry_delay: Callable[[int], timedelta] = lambda attempts: timedelta(seconds=2 * attempts),
    send: Send = _unpaced, budget: float | None = None,
) -> UpdateSummary:
    """Send due story updates once; ``original_alert`` rebuilds the alert an update
    refers to from its delivery (an edit sends the whole message again).

    ``send`` is the delivery's own: it waits for the channel's slot, and a Retry-After
    holds back alerts and updates alike. Past ``budget`` seconds the updates claimed
    and not yet sent are given back for the next pass, whose new alerts would
    otherwise wait behind a paced channel's backlog of updates.
    """
    summary = UpdateSummary()
    loop = asyncio.get_running_loop()
    until = None if budget is None else loop.time() + budget
    # Channels that asked for a pause (Retry-After): their other updates wait it out in
    # the outbox, not in this pass.
    paused: dict[str, datetime] = {}

    def give_back(row: ClaimedStoryUpdate) -> None:
        store.finish_story_update(row.id, status=PENDING, now=clock(), attempted=False,
                                  retry_at=paused.get(row.notifier, clock()))

    while True:
        claimed = store.claim_story_updates(now=clock(), lease=lease, claimer=claimer)
        if not claimed:
            return summary
        for done, row in enumerate(claimed):
            if until is not None and loop.time() >= until:
                for later in claimed[done:]:
                    give_back(later)
                return summary
            if row.notifier in paused:
                give_back(row)
                continue
            retry_at = await _send_update(store, notifiers, row, original_alert, clock,
                                          retry_delay, summary, lease=lease, send=send)
            if retry_at is not None:
                paused[row.notifier] = retry_at


def _deliver_update(notifier: Notifier, alert: Alert, *, original: str, mode: str,
                    note: str) -> Receipt:
    """Edit the original, reply in its thread, or (email) send a reply that threads."""
    update = getattr(notifier, "update", None)
    reply = getattr(notifier, "reply", None)
    if mode == "edit":
        if update is None:
            raise NotifyError(f"{notifier.name!r} cannot edit a sent message; "
                              "use story_updates: thread", retryable=False)
        return update(original, alert)  # type: ignore[no-any-return]
    if reply is not None:
        return reply(original, note)  # type: ignore[no-any-return]
    # Email: a message of its own that threads under the original (In-Reply-To).
    return notifier.send(replace(alert, alert_id=f"{alert.alert_id}.{len(alert.other_sources)}",
                                 thread=(*alert.thread, original)))


async def _send_update(
    store: Store, notifiers: Mapping[str, Notifier], row: ClaimedStoryUpdate,
    original_alert: Callable[[ClaimedDelivery], Alert], clock: Callable[[], datetime],
    retry_delay: Callable[[int], timedelta], summary: UpdateSummary, *,
    lease: timedelta = LEASE, send: Send = _unpaced,
) -> datetime | None:
    """Send one update; returns when its channel takes messages again if it asked for
    a pause (Retry-After), else None."""
    now = clock()

    def finish(status: str, reason: str | None = None, **extra: object) -> None:
        store.finish_story_update(row.id, status=status, now=now, reason=reason,
                                  **extra)  # type: ignore[arg-type]

    notifier = notifiers.get(row.notifier)
    if notifier is None:
        finish(FAILED, f"notifier '{row.notifier}' is no longer configured")
        summary.failed += 1
        return None
    if row.original_status == FAILED:
        finish(FAILED, "the original alert was never delivered")
        summary.failed += 1
        return None
    if row.original_status != SENT:
        # The original is still on its way (held for a digest, retrying): wait for it,
        # looking again when it is due rather than every half minute until a morning
        # digest. A wait is not an attempt at sending.
        finish(PENDING, "waiting for the original alert", attempted=False,
               retry_at=max(now + LEASE / 4, row.original_due_at))
        summary.retrying += 1
        return None
    if row.original_listed_sources is not None:
        listed = row.new_feed in row.original_listed_sources
    else:
        # Sent before messages recorded what they named: one that went out after this
        # source was seen named it, all but a poll stored just after the send read
        # its sources.
        listed = row.original_sent_at is not None and row.original_sent_at >= row.new_seen_at
    if listed:
        finish(SENT, "listed in the original alert")
        summary.skipped += 1
        return None
    delivery = store.delivery_for(row.original_hit_id, row.notifier)
    if delivery is None or not row.original_external_id:
        finish(FAILED, "the original message left no id to update or reply to")
        summary.failed += 1
        return None
    sources = store.story_sources(row.story_id, until=row.new_seen_at)
    alert = original_alert(delivery)
    alert = replace(alert, other_sources=other_sources(sources, own_feed=alert.feed))
    note = f"Also reported by: {row.new_feed} ({_after(row.new_seen_at - sources[0].seen_at)})"
    mode = row.mode
    if delivery.batch is not None:
        # The original is a digest (or a catch-up or flood summary) of many stories:
        # an edit would replace them all with this one, so the update goes in its
        # thread, naming the story it is about.
        mode = "thread"
        title = " ".join(delivery.title.split()) or "(no title)"
        if len(title) > _MAX_QUOTED_TITLE:
            title = title[:_MAX_QUOTED_TITLE - 1].rstrip() + "…"
        note = f"{note}: {title}"
    try:
        receipt = await send(notifier, partial(_deliver_update, notifier, alert,
                                               original=row.original_external_id, mode=mode,
                                               note=note))
    except NotifyError as exc:
        if exc.retryable and now - row.created_at < MAX_AGE:
            # Not before the channel said it would take another message.
            wait = max(retry_delay(row.attempts), timedelta(seconds=exc.retry_after or 0))
            finish(PENDING, str(exc), retry_at=now + wait)
            summary.retrying += 1
        else:
            finish(FAILED, str(exc))
            summary.failed += 1
        return None if exc.retry_after is None else now + timedelta(seconds=exc.retry_after)
    await record_sent(
        f"notifier={row.notifier} story={row.story_id} update={row.id}",
        lambda: store.finish_story_update(row.id, status=SENT, now=clock(),
                                          external_id=receipt.external_id),
        lease=lease)
    summary.sent += 1
    log.info("notifier=%s story=%d update=%d mode=%s sent", row.notifier, row.story_id,
             row.id, mode)
    return None


def story_update_modes(notifier_configs: Mapping[str, object]) -> dict[str, str]:
    """Each notifier's ``story_updates`` from its config entry; "off" where the channel
    has no such key (the console prints every alert and nothing more)."""
    return {name: str(getattr(entry, "story_updates", "off"))
            for name, entry in notifier_configs.items()}
