"""The item as the rule engine sees it: plain text fields, nothing else."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Document:
    """One item to match.  All plain text: the caller has already reduced HTML.

    ``feeds`` holds the feed's name and its tags (``feed:`` matches any of them);
    ``url`` is the item's link (``url:`` matches a substring of it).
    """

    title: str = ""
    summary: str = ""
    content: str = ""
    author: str = ""
    categories: tuple[str, ...] = ()
    feeds: tuple[str, ...] = ()
    url: str = ""
