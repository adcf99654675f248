"""Every real feed in ../shared/corpus/feeds either yields items or a clear FeedParseError."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from monitor.parse import FeedParseError, ParsedFeed, parse_feed

CORPUS = Path(__file__).resolve().parents[2] / ".." / "shared" / "corpus" / "feeds"
MANIFEST = CORPUS / "MANIFEST.tsv"

pytestmark = pytest.mark.skipif(not MANIFEST.exists(), reason="shared feed corpus not present")


def manifest() -> dict[str, dict[str, str]]:
    if not MANIFEST.exists():
        return {}
    with MANIFEST.open(encoding="utf-8", newline="") as handle:
        return {row["file"]: row for row in csv.DictReader(handle, delimiter="\t")}


ROWS = manifest()
FILES = (
    sorted(path.name for path in CORPUS.iterdir() if path.name != "MANIFEST.tsv") if ROWS else []
)
NEWS = sorted(name for name, row in ROWS.items() if row["notes"].startswith("news"))

# Files that cannot be read, and why. Anything else raising is a regression.
EXPECTED_ERRORS = {
    # Truncated right after <copyright> by a server-side render error: no items at all.
    "feed-rs__rss_2.0_invalid_1.xml": "malformed XML at line",
    # Garbled double XML declaration ('<?xml?xml ... ??>'), an undeclared 'rss:'
    # prefix on every element and unquoted attributes: not RSS any parser can read.
    "fastfeedparser__7ef13a42fa7e177a": "malformed XML at line",
}

# News feeds allowed to break the "every item has a title and a link" rule.
NEWS_EXCEPTIONS = {
    # A channel with zero items (the capture is of an empty feed).
    "feedreader-net__Rss20DailyMail.xml": "no items",
    # Truncated before any item; listed in EXPECTED_ERRORS.
    "feed-rs__rss_2.0_invalid_1.xml": "error",
    # One <item> in the source has an empty <title> and an empty <link>.
    "miniflux__no_encoding_ISO-8859-1.xml": "one empty item",
}

_results: dict[str, ParsedFeed | FeedParseError] = {}


def parsed(name: str) -> ParsedFeed | FeedParseError:
    if name not in _results:
        url = f"https://{name.replace('__', '.').replace('_', '-')}.example/feed"
        try:
            _results[name] = parse_feed((CORPUS / name).read_bytes(), url=url)
        except FeedParseError as error:
            _results[name] = error
    return _results[name]


def test_corpus_is_the_one_described() -> None:
    assert set(FILES) == set(ROWS)
    assert len(FILES) >= 140


@pytest.mark.parametrize("name", FILES)
def test_corpus_file_yields_items_or_a_clear_error(name: str) -> None:
    result = parsed(name)  # anything but FeedParseError propagates and fails the test
    if isinstance(result, FeedParseError):
        assert name in EXPECTED_ERRORS, f"{name}: unexpected error {result}"
        assert EXPECTED_ERRORS[name] in str(result)
        return
    assert name not in EXPECTED_ERRORS, f"{name} parsed; remove it from EXPECTED_ERRORS"
    declared = int(ROWS[name]["items"])
    # Items repeated within a document keep one key each, so compare counts of items read.
    assert len(result.items) >= declared * 0.9, f"{name}: {len(result.items)} of {declared} items"
    for item in result.items:
        assert item.item_key and len(item.item_key) <= 512
        assert item.published_at is None or item.published_at.utcoffset() is not None


def test_the_set_of_unreadable_files_is_small_and_explained() -> None:
    failing = {name for name in FILES if isinstance(parsed(name), FeedParseError)}
    assert failing == set(EXPECTED_ERRORS)


@pytest.mark.parametrize("name", NEWS)
def test_news_feeds_yield_items_with_titles_and_links(name: str) -> None:
    result = parsed(name)
    if name in NEWS_EXCEPTIONS:
        pytest.skip(f"documented exception: {NEWS_EXCEPTIONS[name]}")
    assert isinstance(result, ParsedFeed)
    assert result.items
    for item in result.items:
        assert item.title, f"{name}: item {item.item_key} has no title"
        assert item.link and item.link.startswith(("http://", "https://")), item.item_key


def test_documented_news_exceptions_are_still_exceptional() -> None:
    daily_mail = parsed("feedreader-net__Rss20DailyMail.xml")
    assert isinstance(daily_mail, ParsedFeed) and daily_mail.items == ()
    psy = parsed("miniflux__no_encoding_ISO-8859-1.xml")
    assert isinstance(psy, ParsedFeed)
    assert sum(1 for item in psy.items if not item.title and not item.link) == 1


def test_keys_are_unique_unless_the_items_are_copies() -> None:
    for name in FILES:
        result = parsed(name)
        if isinstance(result, FeedParseError):
            continue
        by_key: dict[str, set[tuple[str, str]]] = {}
        for item in result.items:
            by_key.setdefault(item.item_key, set()).add((item.title, item.link or ""))
        clashes = {key: seen for key, seen in by_key.items() if len(seen) > 1}
        # Only a repeated guid+link or guid may still clash (same story, reworded title).
        assert all(key.startswith(("guid:", "guidlink:")) for key in clashes), (name, clashes)
