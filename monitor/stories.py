"""Stories: one story per event, however many feeds carry it.

An item joins an existing story when

1. its link has the same canonical URL (:func:`monitor.canonical.canonical_url`) as an
   item of the story, whatever the feed and however old the story; or
2. it comes from a feed the story has not been seen in, within ``window`` (48 h) of
   the story's first item, and its normalised title and lead are similar enough to
   those of an item of the story (:func:`similarity`, :func:`is_same_story`).

Otherwise it starts a new story. Why two feeds of one publisher are not compared
with each other, why the window counts from the first item, and how the threshold was
chosen: docs/stories.md.

Similarity is the best of IDF-weighted Jaccard over the titles, over title + lead,
and corroboration (an independent write-up sharing the event's rare words, with one
headline mostly contained in the other item). The weights come from the stories in
the window (a word most stories share, such as "Trump" in a US politics desk, counts
for little; "Jerí" or "Kordofan" count for a lot), so the index keeps document
frequencies as stories come and go. What a story is, for a desk: docs/stories.md.

:class:`StoryIndex` is the hot state: every story of the window in memory, an
inverted index from words to stories for candidate lookup, and a map of canonical
URLs. It holds no database handle; the store is the source of truth and fills it
at start (``monitor.story_desk``). Nothing here does I/O.
"""

from __future__ import annotations

import math
import re
import sys
import unicodedata
from collections import Counter
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import repeat
from typing import Protocol

from monitor.canonical import canonical_url

__all__ = [
    "SAME_STORY_THRESHOLD",
    "WINDOW",
    "DocumentFrequencies",
    "Fingerprint",
    "StoryIndex",
    "StoryMatch",
    "TermWeights",
    "fingerprint",
    "is_same_story",
    "similarity",
    "title_words",
]

WINDOW = timedelta(hours=48)

#: Weighted-Jaccard score from which two items are one story; chosen on the labelled
#: set tests/data/story_pairs.jsonl (see docs/stories.md for the curve).
SAME_STORY_THRESHOLD = 0.42
# Corroboration (``_score``): a headline at least this contained in the other
# item's title + lead, and this many never-seen words' worth of shared weight.
_HEADLINE_CONTAINED = 0.5
_CORROBORATING_WORDS = 5.5
# A word no story has: its weight is the unit of corroboration.
_UNSEEN = "\x00"

# The lead is the first paragraph; later sentences drift into background that
# unrelated stories share ("The war began in February 2022 ...").
_LEAD_WORDS = 30
# Headlines run to a dozen or two words. A "title" of thousands (a hostile or
# broken feed) shared a rare word with nearly every later item, so it was a
# candidate for each and cost a pass over all its words per comparison, for the
# whole window: five such items made story matching some 300 times slower.
_TITLE_WORDS = 64
# Candidates verified per lookup, best-first by shared rare words.
_MAX_CANDIDATES = 16
# A word in more than this share of the window's stories is too common to look
# candidates up by (it still counts in the score).
_COMMON_SHARE = 0.005
_COMMON_MIN = 200
# How many of an item's rarest words it is looked up by.
_LOOKUP_WORDS = 6
# Members kept per story for comparison: the first and the latest few, which is
# where syndicated rewrites chain from.
_MEMBERS_KEPT = 4
# Stories assumed to lack every word, so IDF stays flat while the window is nearly empty.
_PSEUDO_STORIES = 200

_STOPWORDS = frozenset(
    """
    a about above after again against all also am amid an and any are as at be been before
    being below between both but by can could did do does doing down during each few for
    from further had has have having he her here hers him his how i if in into is it its
    itself just me more most my no nor not now of off on once only or other our out over
    own same she should so some such than that the their them then there these they this
    those through to too under until up very was we were what when where which while who
    whom why will with would you your yet via per vs new
    says say said report reports reported reportedly breaking update updated updates
    exclusive live watch video photos pictures latest news analysis opinion explainer
    """.split()  # noqa: SIM905 - a word list reads best as prose
)
_NUMBER_WORDS = {
    "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
    "seven": "7", "eight": "8", "nine": "9", "ten": "10", "eleven": "11", "twelve": "12",
}
# Two desks name one country two ways ("Chinese nuclear test" / "China conducted a
# test", "Iraqi forces" / "Iraq forces"): a demonym counts as its country.
_DEMONYMS = {
    demonym: country
    for country, demonyms in {
        "afghanistan": "afghan", "australia": "australian", "austria": "austrian",
        "bangladesh": "bangladeshi", "brazil": "brazilian", "britain": "british",
        "canada": "canadian", "china": "chinese", "egypt": "egyptian",
        "europe": "european", "france": "french", "germany": "german", "greece": "greek",
        "hungary": "hungarian", "india": "indian", "iran": "iranian", "iraq": "iraqi",
        "israel": "israeli", "italy": "italian", "japan": "japanese", "korea": "korean",
        "lebanon": "lebanese", "mexico": "mexican", "pakistan": "pakistani",
        "palestine": "palestinian", "peru": "peruvian", "poland": "polish",
        "russia": "russian", "spain": "spanish", "sudan": "sudanese", "syria": "syrian",
        "taiwan": "taiwanese", "turkey": "turkish", "ukraine": "ukrainian",
        "venezuela": "venezuelan",
    }.items()
    for demonym in (demonyms, demonyms + "s")
}
# House-style abbreviations written with dots: "U.S." and "US" are one word.
_DOTTED = re.compile(r"\b(?:[a-z]\.){2,}")
_POSSESSIVE = re.compile(r"['’]s\b")
_WORD = re.compile(r"\w+")
# "UPDATE 2-", "BREAKING:", "LIVE:", "EXCLUSIVE-", "WATCH:" before a headline.
_TITLE_PREFIX = re.compile(
    r"^\s*(?:(?:update\s*\d*|breaking(?:\s+news)?|exclusive|live|watch|video|corrected|"
    r"refile|analysis)\s*[-:–—|]\s*)+",
    re.IGNORECASE,
)
# " - Reuters", " | AP News", " — report": a short tail naming the outlet or the genre.
_TITLE_SUFFIX = re.compile(r"\s+[-–—|]\s+(?:\S+\s*){1,3}$")


class TermWeights(Protocol):
    """How much one shared word says: higher for rarer words."""

    def weight(self, word: str) -> float: ...


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """What story matching knows about an item: its canonical URL and its words."""

    url: str | None
    title: tuple[str, ...]  # distinct content words, sorted (tuples are 4x smaller than sets)
    lead: tuple[str, ...]  # distinct content words of the lead that the title lacks, sorted
    has_lead: bool = False

    @property
    def words(self) -> tuple[str, ...]:
        return tuple(sorted(self.title + self.lead))


@dataclass(frozen=True, slots=True)
class StoryMatch:
    story_id: int
    reason: str  # "url" | "similar"
    score: float


class _FlatWeights:
    """Every word counts the same: plain Jaccard (used when no statistics are given)."""

    def weight(self, word: str) -> float:
        return 1.0


def _stem(word: str) -> str:
    """A light English stemmer: plurals, verb -s, -ed and -ing ("kills", "killed",
    "killing" -> "kill"); leaves "us", "press", "thing" alone. Headlines of one event
    written by two desks differ mostly in such endings."""
    if not word.isascii() or word.isdigit():
        return word
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    for suffix in ("ing", "ed"):
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            stem = word[: -len(suffix)]
            if len(stem) > 3 and stem[-1] == stem[-2] and stem[-1] not in "lsz":
                stem = stem[:-1]  # "stopped" -> "stop"
            return stem.rstrip("e") if stem.endswith("ee") else stem
    return word.removesuffix("e") if len(word) > 4 else word


def _words(text: str) -> list[str]:
    if not text.isascii():
        decomposed = unicodedata.normalize("NFKD", text)
        text = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    text = text.casefold()
    text = _DOTTED.sub(lambda m: m.group().replace(".", ""), text)
    text = _POSSESSIVE.sub("", text)
    out: list[str] = []
    for raw in _WORD.findall(text):
        word = _NUMBER_WORDS.get(raw) or _DEMONYMS.get(raw, raw)
        if word in _STOPWORDS or (len(word) == 1 and not word.isdigit()):
            continue
        out.append(sys.intern(_stem(word)))
    return out


def title_words(title: str) -> list[str]:
    """The content words of a headline, without wire prefixes and outlet suffixes."""
    title = _TITLE_PREFIX.sub("", title)
    stripped = _TITLE_SUFFIX.sub("", title)
    # Keep the tail when cutting it would leave almost nothing ("Peru - live").
    if len(stripped.split()) >= 4:
        title = stripped
    return _words(title)


def fingerprint(*, title: str, lead: str, link: str | None) -> Fingerprint:
    lead_words = set(_words(" ".join(lead.split()[:_LEAD_WORDS])))
    title_set = set(title_words(" ".join(title.split(maxsplit=_TITLE_WORDS)[:_TITLE_WORDS])))
    # Title and lead kept disjoint, so the weight of all the words is the sum of the
    # two without building a set per comparison.
    return Fingerprint(
        url=canonical_url(link) if link else None,
        title=tuple(sorted(title_set)),
        lead=tuple(sorted(lead_words - title_set)),
        has_lead=bool(lead_words),
    )


#: Sum of the weights of distinct words (a set, or a fingerprint's tuple).
WeightSum = Callable[[Collection[str]], float]


@dataclass(slots=True)
class _Side:
    """One item prepared for scoring: its word sets and their weights."""

    title: frozenset[str]
    words: frozenset[str]  # title + lead
    has_lead: bool
    title_weight: float
    words_weight: float

    @classmethod
    def of(cls, item: Fingerprint, weigh: WeightSum) -> _Side:
        title_weight = weigh(item.title)
        return cls(frozenset(item.title), frozenset(item.title + item.lead), item.has_lead,
                   title_weight, title_weight + weigh(item.lead))


def _score(a: _Side, b: Fingerprint, weigh: WeightSum, rare_word: float) -> float:
    """:func:`similarity` of a prepared item and a fingerprint: every weight is a sum
    over a set or tuple, so a pair costs a few set operations in C, not a Python call
    per word (docs/stories.md)."""
    b_title_weight = weigh(b.title)
    if not (a.title_weight and b_title_weight):
        return 0.0
    b_words = b.title + b.lead
    score = 0.0
    if shared_title := a.title.intersection(b.title):
        shared = weigh(shared_title)
        score = shared / (a.title_weight + b_title_weight - shared)
    shared_words = weigh(a.words.intersection(b_words))
    if a.has_lead and b.has_lead:
        b_words_weight = b_title_weight + weigh(b.lead)
        score = max(score, shared_words / (a.words_weight + b_words_weight - shared_words))
    # Corroboration: two desks writing up one event share few words, but those they
    # share are the event's names and figures ("Jerí", "Kordofan", "28"). In units of
    # one never-seen word, so the bar does not move with the window's size.
    corroboration = min(1.0, shared_words / rare_word / _CORROBORATING_WORDS)
    if SAME_STORY_THRESHOLD * corroboration <= score:
        return score
    # ... and one headline is mostly found in the other item's title + lead
    # (containment, not Jaccard: a short headline is not punished for a long lead).
    if (weigh(a.title.intersection(b_words)) < _HEADLINE_CONTAINED * a.title_weight
            and weigh(a.words.intersection(b.title)) < _HEADLINE_CONTAINED * b_title_weight):
        return score
    return SAME_STORY_THRESHOLD * corroboration


def similarity(a: Fingerprint, b: Fingerprint, weights: TermWeights | None = None) -> float:
    """How alike two items read, 0..1; one story from :data:`SAME_STORY_THRESHOLD`.

    The best of three views: title alone (rewrites whose leads were cut or
    replaced) and title + lead (a new headline over the same wire copy), each an
    IDF-weighted Jaccard; and corroboration, for an independent write-up of the
    event: a headline at least :data:`_HEADLINE_CONTAINED` contained in the other
    item, and a shared weight of title + lead reaching :data:`_CORROBORATING_WORDS`
    never-seen words scores the threshold.
    """
    weight = (weights or _FlatWeights()).weight

    def weigh(words: Collection[str]) -> float:
        return sum(map(weight, words))

    return _score(_Side.of(a, weigh), b, weigh, weight(_UNSEEN))


def is_same_story(a: Fingerprint, b: Fingerprint, weights: TermWeights | None = None) -> bool:
    """Same canonical URL, or similar enough text (feeds and time are the index's job)."""
    if a.url is not None and a.url == b.url:
        return True
    return similarity(a, b, weights) >= SAME_STORY_THRESHOLD


@dataclass(slots=True)
class _Story:
    first_seen_at: datetime
    feeds: set[str]
    members: list[Fingerprint]
    urls: list[str] = field(default_factory=list)


class StoryIndex:
    """The stories of the last ``window`` in memory, for sub-millisecond assignment.

    Not thread-safe: the caller serialises access (one writer per process).
    ``match`` only reads; ``add_story`` / ``add_member`` record what the caller
    decided (after the database accepted it).
    """

    def __init__(self, *, window: timedelta = WINDOW,
                 threshold: float = SAME_STORY_THRESHOLD) -> None:
        self.window = window
        self.threshold = threshold
        self._stories: dict[int, _Story] = {}
        self._urls: dict[str, int] = {}
        self._postings: dict[str, list[int]] = {}
        self._df: Counter[str] = Counter()
        self._log_df: dict[str, float] = {}  # log(df + 1), for weights summed in C
        self._stale_postings = 0

    def __len__(self) -> int:
        return len(self._stories)

    def __contains__(self, story_id: object) -> bool:
        return story_id in self._stories

    # ---------------------------------------------------------------- weights

    def weight(self, word: str) -> float:
        """Inverse document frequency over the window's stories.

        The pseudo-count keeps weights flat while the window holds few stories (a
        fresh database), so matching starts as plain Jaccard and sharpens as the
        statistics grow.
        """
        return math.log(len(self._stories) + _PSEUDO_STORIES) - self._log_df.get(word, 0.0)

    # ---------------------------------------------------------------- lookup

    def story_for_url(self, url: str | None) -> int | None:
        return self._urls.get(url) if url else None

    def match(self, item: Fingerprint, *, feed: str, seen_at: datetime) -> StoryMatch | None:
        """The story ``item`` belongs to, or None when it starts a new one."""
        by_url = self.story_for_url(item.url)
        if by_url is not None:
            return StoryMatch(story_id=by_url, reason="url", score=1.0)
        best: StoryMatch | None = None
        weigh, rare_word = self._weigher()
        side = _Side.of(item, weigh)
        for story_id in self._candidates(item, feed=feed, seen_at=seen_at):
            story = self._stories[story_id]
            score = max(_score(side, member, weigh, rare_word) for member in story.members)
            if score >= self.threshold and (best is None or score > best.score):
                best = StoryMatch(story_id=story_id, reason="similar", score=score)
        return best

    def _weigher(self) -> tuple[WeightSum, float]:
        """Sum of :meth:`weight` over a set, in C: ``log((n + p) / (df + 1))`` summed is
        ``len * log(n + p) - sum(log(df + 1))``, and ``log(df + 1)`` is kept per word."""
        ceiling = math.log(len(self._stories) + _PSEUDO_STORIES)
        log_df = self._log_df.get
        no_story = repeat(0.0)

        def weigh(words: Collection[str]) -> float:
            return len(words) * ceiling - sum(map(log_df, words, no_story))

        return weigh, ceiling

    def _candidates(self, item: Fingerprint, *, feed: str, seen_at: datetime) -> list[int]:
        """The stories ``item`` may join, most words shared first: live ones (within
        the window of ``seen_at``) that ``feed`` is not already in."""
        postings = self._postings
        # Look up by the rarest words only: a duplicate shares most of them, and
        # the posting lists of rare words are short (prefix filtering).
        usable = sorted((postings[w] for w in item.words if w in postings), key=len)
        if not usable:
            return []
        common = max(_COMMON_MIN, int(len(self._stories) * _COMMON_SHARE))
        # When every word is common, the latest stories of the rarest one: a duplicate
        # comes soon after its story, and a list of thousands must not be counted.
        rare = [p for p in usable[:_LOOKUP_WORDS] if len(p) <= common] or [usable[0][-common:]]
        counts: Counter[int] = Counter()
        for posting in rare:
            counts.update(posting)
        # Drop the stories the item cannot join before picking, or a few dozen of them
        # sharing its words fill every place and hide the story it belongs to: the
        # forgotten ones postings keep until the next compaction (a recurring
        # headline), those past the window, and its own feed's (a live blog's updates).
        stories, window = self._stories, self.window
        for sid in [sid for sid in counts if sid not in stories
                    or feed in stories[sid].feeds
                    or seen_at - stories[sid].first_seen_at > window]:
            del counts[sid]
        return [sid for sid, _ in counts.most_common(_MAX_CANDIDATES)]

    # ---------------------------------------------------------------- updates

    def add_story(self, story_id: int, item: Fingerprint, *, feed: str,
                  seen_at: datetime) -> None:
        keys = item.words
        self._stories[story_id] = _Story(first_seen_at=seen_at, feeds={feed}, members=[item])
        for word in keys:
            self._postings.setdefault(word, []).append(story_id)
        self._df.update(keys)
        self._refresh_log_df(keys)
        self._remember_url(story_id, item.url)

    def _refresh_log_df(self, words: Iterable[str]) -> None:
        df, log_df, log = self._df, self._log_df, math.log
        for word in words:
            count = df.get(word, 0)
            if count > 0:
                log_df[word] = log(count + 1)
            else:
                df.pop(word, None)
                log_df.pop(word, None)

    def add_member(self, story_id: int, item: Fingerprint, *, feed: str) -> None:
        """A later item of a story: its feed, its URL, and its words for comparison."""
        story = self._stories.get(story_id)
        if story is None:
            # Older than the window: the database finds it by URL (StoryDesk). Kept
            # here, the URL would stay for good, as only a story in the window takes
            # its URLs away when it expires.
            return
        story.feeds.add(feed)
        if len(story.members) >= _MEMBERS_KEPT:
            story.members[1:] = story.members[2:]
        story.members.append(item)
        self._remember_url(story_id, item.url)

    def _remember_url(self, story_id: int, url: str | None) -> None:
        if url:
            self._urls.setdefault(url, story_id)
            story = self._stories.get(story_id)
            if story is not None:
                story.urls.append(url)

    def expire(self, now: datetime) -> int:
        """Forget stories whose window has closed; returns how many.

        Their URLs go too: an item linking an expired story's page after the window
        is looked up in the database instead (``StoryDesk``).
        """
        cutoff = now - self.window
        old = [sid for sid, s in self._stories.items() if s.first_seen_at < cutoff]
        for story_id in old:
            self.remove_story(story_id)
        return len(old)

    def remove_story(self, story_id: int) -> None:
        """Forget one story (expired, or its transaction was rolled back)."""
        story = self._stories.pop(story_id, None)
        if story is None:
            return
        keys = story.members[0].words
        self._df.subtract(keys)
        self._refresh_log_df(keys)
        for url in story.urls:
            if self._urls.get(url) == story_id:
                del self._urls[url]
        self._stale_postings += len(keys)
        if self._stale_postings > 4 * max(1000, len(self._stories)):
            self._compact()

    def _compact(self) -> None:
        stories = self._stories
        self._postings = {
            word: kept
            for word, posting in self._postings.items()
            if (kept := [sid for sid in posting if sid in stories])
        }
        self._stale_postings = 0

    @classmethod
    def with_stories(cls, stories: Iterable[tuple[int, Fingerprint, str, datetime]],
                     **kwargs: object) -> StoryIndex:
        """An index filled with ``(story_id, fingerprint, feed, first_seen_at)``."""
        index = cls(**kwargs)  # type: ignore[arg-type]
        for story_id, item, feed, seen_at in stories:
            index.add_story(story_id, item, feed=feed, seen_at=seen_at)
        return index


class DocumentFrequencies:
    """IDF weights from a fixed collection of fingerprints (tests, benchmarks), computed
    the way :meth:`StoryIndex.weight` computes them over the window."""

    def __init__(self, items: Iterable[Fingerprint]) -> None:
        self._df: Counter[str] = Counter()
        self._n = 0
        for item in items:
            self._df.update(item.words)
            self._n += 1

    def weight(self, word: str) -> float:
        return math.log((self._n + _PSEUDO_STORIES) / (self._df.get(word, 0) + 1))
