"""StoryIndex and the text normalisation behind it (no database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from monitor.stories import (
    Fingerprint,
    StoryIndex,
    fingerprint,
    is_same_story,
    similarity,
    title_words,
)

T0 = datetime(2026, 2, 18, 9, 0, tzinfo=UTC)
LEAD = ("Armenia will not take part in events of the Russian-led Collective Security Treaty "
        "Organization, Prime Minister Nikol Pashinyan said on Wednesday.")
ORIGINAL_TITLE = "Armenia seeks to distance itself from Russia's military pact"
ORIGINAL = fingerprint(title=ORIGINAL_TITLE,
                       lead=LEAD, link="https://caucasus.example.org/armenia-csto")
REWRITE = fingerprint(title="Armenia seeks distance from Russia-led military pact — report",
                      lead=LEAD, link="https://wire.example.net/armenia-csto-report")
OTHER = fingerprint(title="Armenia to hold talks with Azerbaijan on border villages",
                    lead="Officials will meet next week to discuss four border villages.",
                    link="https://wire.example.net/villages")
UTM_COPY = fingerprint(title="Completely different headline", lead="",
                       link="http://www.caucasus.example.org/armenia-csto/?utm_source=rss")


@pytest.mark.parametrize(
    ("title", "words"),
    [
        ("UPDATE 2-Armenia seeks distance", ["armenia", "seek", "distanc"]),
        ("BREAKING: Quake hits Turkey", ["quak", "hit", "turkey"]),
        ("Armenia seeks distance from pact — report", ["armenia", "seek", "distanc", "pact"]),
        ("Iran nuclear talks end in Geneva - Reuters",
         ["iran", "nuclear", "talk", "end", "geneva"]),
        ("U.S. and Iran wrap up talks", ["us", "iran", "wrap", "talk"]),
        ("Charges filed, three charged", ["charg", "filed", "3", "charg"]),
        ("Pashinián's pledge", ["pashinian", "pledg"]),
        ("Chinese test, Iraqi forces and Ukrainians", ["china", "test", "iraq", "forc", "ukrain"]),
    ],
    ids=["wire prefix", "breaking prefix", "report suffix", "outlet suffix", "dotted US",
         "stems and numbers", "accents and possessive", "demonyms as countries"],
)
def test_title_words(title: str, words: list[str]) -> None:
    assert title_words(title) == words


def test_the_issue_example() -> None:
    assert is_same_story(ORIGINAL, REWRITE)
    assert not is_same_story(ORIGINAL, OTHER)


def item(title: str, lead: str = "") -> Fingerprint:
    return fingerprint(title=title, lead=lead, link=None)


PERU_DW = item("Peru ousts interim president over corruption probe",
               "Congress voted to impeach interim President Jose Jeri over secret meetings with "
               "Chinese businessmen just months before national elections in April.")
PERU_MERCOPRESS = item("Peru’s Congress ousts interim President José Jerí",
                       "Peru’s Congress voted on Tuesday to remove interim President José Jerí, "
                       "just four months after he took office, deepening political uncertainty "
                       "only weeks before the April 12 general election.")
SWORN_IN = item("Tarique Rahman sworn in as Bangladesh’s PM after landslide election victory")
BOYCOTT = item("Why Jamaat, NCP Boycotted Tarique Rahman's Swearing-In As Bangladesh PM",
               "A BNP member said that the second oath was not taken on the instruction of "
               "Tarique Rahman")
TALKS_END = item("U.S. and Iran wrap up second round of nuclear talks",
                 "U.S. and Iranian negotiators say there's been progress in their nuclear talks, "
                 "even as the U.S. assembles a massive naval force in the region")
HORMUZ = item("Iran Temporarily Closes Strait Of Hormuz Amid US Nuclear Talks",
              "It was the first time Iran has announced the closure of the key international "
              "waterway.")
# Leads that share the event's names under headlines about other things:
# corroboration needs a headline mostly found in the other item.
JERI_PROFILE = item("Who is the lawyer now leading the country",
                    "José Jerí, the interim President Peru's Congress voted to remove, worked "
                    "as a lawyer in Lima before he took office four months ago.")
MARKETS = item("Sol slides as investors weigh political risk",
               "Peru's sol fell after Congress voted to remove interim President José Jerí "
               "weeks before the April election.")


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        (PERU_DW, PERU_MERCOPRESS, True),
        (SWORN_IN, BOYCOTT, False),
        (TALKS_END, HORMUZ, False),
        (JERI_PROFILE, MARKETS, False),
    ],
    ids=["independent write-ups of one event", "same people, another story",
         "same topic, another development", "shared lead, unrelated headlines"],
)
def test_independent_write_ups(a: object, b: object, same: bool) -> None:
    assert is_same_story(a, b) is same  # type: ignore[arg-type]
    assert is_same_story(b, a) is same  # type: ignore[arg-type]


def test_the_index_scores_as_similarity_does_with_its_weights() -> None:
    """The index sums weights in C (len * log(n + p) - sum(log(df + 1))); it must agree
    with similarity() given the index's per-word weights."""
    index = StoryIndex(threshold=0.0)
    background = [SWORN_IN, BOYCOTT, TALKS_END, HORMUZ, JERI_PROFILE, OTHER, ORIGINAL]
    for n, story in enumerate(background, start=1):
        index.add_story(n, story, feed=f"feed{n}", seen_at=T0)
    for probe in (PERU_DW, PERU_MERCOPRESS, REWRITE, MARKETS):
        found = index.match(probe, feed="probe", seen_at=T0)
        assert found is not None
        expected = similarity(probe, background[found.story_id - 1], index)
        assert found.score == pytest.approx(expected, rel=1e-9)


def index_with_original() -> StoryIndex:
    index = StoryIndex()
    index.add_story(1, ORIGINAL, feed="caucasus", seen_at=T0)
    index.add_story(2, OTHER, feed="caucasus", seen_at=T0)
    return index


@pytest.mark.parametrize(
    ("item", "feed", "after", "expected"),
    [
        (REWRITE, "wire", timedelta(minutes=4), (1, "similar")),
        (UTM_COPY, "wire", timedelta(minutes=4), (1, "url")),
        (UTM_COPY, "caucasus", timedelta(days=5), (1, "url")),
        (REWRITE, "caucasus", timedelta(minutes=4), None),
        (REWRITE, "wire", timedelta(hours=49), None),
        (fingerprint(title="Flood warning for Rhine towns", lead="", link=None), "wire",
         timedelta(minutes=1), None),
    ],
    ids=["rewrite from another feed", "tracking-URL copy", "same URL outlives the window",
         "similar text in the same feed is another story", "similar text after the window",
         "unrelated"],
)
def test_match(item: object, feed: str, after: timedelta,
               expected: tuple[int, str] | None) -> None:
    found = index_with_original().match(item, feed=feed, seen_at=T0 + after)  # type: ignore[arg-type]
    assert (None if found is None else (found.story_id, found.reason)) == expected


def test_a_member_feed_cannot_add_a_near_duplicate_again() -> None:
    index = index_with_original()
    index.add_member(1, REWRITE, feed="wire")
    again = fingerprint(title="Armenia distances itself from Russia-led military pact",
                        lead=LEAD, link="https://wire.example.net/another")
    assert index.match(again, feed="wire", seen_at=T0) is None
    assert index.match(again, feed="third", seen_at=T0) is not None


def test_expire_forgets_stories_words_and_urls() -> None:
    index = index_with_original()
    assert index.expire(T0 + timedelta(hours=47)) == 0
    assert index.expire(T0 + timedelta(hours=49)) == 2
    assert len(index) == 0
    assert index.story_for_url(ORIGINAL.url) is None
    assert index.match(REWRITE, feed="wire", seen_at=T0 + timedelta(hours=49)) is None
    assert index.weight("armenia") == index.weight("never-seen")


def test_expired_stories_of_a_recurring_headline_do_not_hide_the_live_one() -> None:
    # Postings keep expired stories until compaction; 40 of them sharing every word
    # took all 32 places counted before the live story was looked for.
    index = StoryIndex()
    for n in range(1, 41):
        index.add_story(n, ORIGINAL, feed="caucasus", seen_at=T0)
    later = T0 + timedelta(hours=49)
    assert index.expire(later) == 40
    index.add_story(100, ORIGINAL, feed="caucasus", seen_at=later)
    found = index.match(REWRITE, feed="wire", seen_at=later + timedelta(minutes=4))
    assert found is not None and found.story_id == 100


@pytest.mark.parametrize("crowd", ["own-feed", "past-the-window"])
def test_stories_the_item_cannot_join_do_not_hide_the_one_it_can(crowd: str) -> None:
    # A live blog's feed makes a story of each update (an item never joins a story of
    # its own feed); 20 of them sharing every word took all 16 places before the
    # wire's story, the one the next update belongs to, was looked at. Stories past
    # the window, not yet expired, crowded it out the same way.
    index = StoryIndex()
    first_seen = T0 - timedelta(hours=47) if crowd == "past-the-window" else T0
    for n in range(1, 21):
        index.add_story(n, ORIGINAL, feed="live" if crowd == "own-feed" else f"f{n}",
                        seen_at=first_seen)
    later = T0 + timedelta(hours=1, minutes=30)
    index.add_story(100, ORIGINAL, feed="wire", seen_at=T0 + timedelta(hours=1))
    found = index.match(REWRITE, feed="live", seen_at=later)
    assert found is not None and found.story_id == 100


def test_a_title_of_thousands_of_words_counts_only_its_first_ones() -> None:
    # One such item was a candidate for every later item sharing any of its words,
    # and each comparison walked all of them.
    headline = "Parliament passes the budget after a marathon vote"
    junk = " ".join(f"w{n}x" for n in range(20_000))
    print_ = fingerprint(title=f"{headline} {junk}", lead=junk, link=None)
    assert len(print_.title) <= 64 and len(print_.words) <= 64 + 30
    assert set(title_words(headline)) <= set(print_.title)


def test_common_words_weigh_less() -> None:
    index = StoryIndex()
    for n in range(300):
        index.add_story(n, fingerprint(title=f"Trump item {n}", lead="", link=None),
                        feed="f", seen_at=T0)
    assert index.weight("trump") < index.weight("pashinian")


def test_compaction_forgets_expired_postings_and_keeps_every_live_story_findable() -> None:
    # 700 expired stories of ~20 words each are past the 4000 stale postings at which
    # the posting lists are rebuilt; the live ones (one added before and one after
    # compaction) must be found exactly as by an index that never held the others.
    index = StoryIndex()
    for n in range(700):
        index.add_story(n, fingerprint(title=f"{ORIGINAL_TITLE} item{n}", lead=LEAD, link=None),
                        feed="caucasus", seen_at=T0)
    later = T0 + timedelta(hours=49)
    index.add_story(1000, ORIGINAL, feed="caucasus", seen_at=later)
    index.add_story(1001, OTHER, feed="caucasus", seen_at=later)
    stale = sum(len(posting) for posting in index._postings.values())
    assert index.expire(later) == 700
    # At least one compaction ran (without one, nothing leaves the posting lists).
    assert sum(len(posting) for posting in index._postings.values()) < stale - 4000
    index.add_story(1002, PERU_DW, feed="dw", seen_at=later)

    fresh = StoryIndex.with_stories([(1000, ORIGINAL, "caucasus", later),
                                     (1001, OTHER, "caucasus", later),
                                     (1002, PERU_DW, "dw", later)])
    seen_at = later + timedelta(minutes=4)
    for probe, story in ((REWRITE, 1000), (OTHER, 1001), (PERU_MERCOPRESS, 1002)):
        found = index.match(probe, feed="wire", seen_at=seen_at)
        assert found is not None and found.story_id == story
        assert found == fresh.match(probe, feed="wire", seen_at=seen_at)
        assert index._candidates(probe, feed="wire", seen_at=seen_at) == \
            fresh._candidates(probe, feed="wire", seen_at=seen_at)
    # Removing a live story after compaction still forgets it.
    index.remove_story(1000)
    assert index.match(REWRITE, feed="wire", seen_at=seen_at) is None
