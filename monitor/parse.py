"""Turn the bytes of an HTTP response into a ``ParsedFeed``: items with a stable identity.

RSS 0.9x/1.0/2.0 and Atom go through feedparser (this is the only module that
imports it); JSON Feed 1.0/1.1 (and Dave Winer's RSS-in-JSON) through
``monitor.jsonfeed``. Whatever the format, every item then passes through the
same steps here: HTML reduced to text, links made absolute, dates made
timezone-aware UTC, and an ``item_key`` computed.

Errors::

    FeedParseError          the body is not a feed we can read; the message says why,
                            in words an operator understands

Nothing else escapes ``parse_feed`` (bar a TypeError for a body that is not
bytes: a programming error). A feed that is merely sloppy still yields its
items: bad or localized dates become None or are read by ``parse_date``; bare
"&" and undeclared HTML entities are repaired and the document parsed again;
a utf-16 declaration on UTF-8 bytes is ignored; whitespace before the XML
declaration is dropped.

Security. feedparser parses with expat through ``xml.sax`` with external
general entities switched off, strips DOCTYPE entity declarations except
plain-text ones (by a line-based regex that a one-line DOCTYPE slips past),
and expat (>= 2.4) aborts billion-laughs style amplification, though only
after seconds of work on a crafted document. So ``parse_feed`` first refuses
any document whose DTD declares an entity that could expand to more than a
few bytes, reference another entity, or load an external resource
(``_check_entity_declarations``); tests/monitor/test_parse_security.py shows
each layer holding on its own.
"""

from __future__ import annotations

import calendar
import hashlib
import html.entities
import re
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import feedparser  # ships no type hints (pyproject.toml, [tool.mypy])

from monitor.htmltext import collapse_whitespace, html_to_text

__all__ = [
    "MAX_ITEM_KEY_LENGTH",
    "FeedParseError",
    "ParsedFeed",
    "ParsedItem",
    "RawEntry",
    "build_feed",
    "parse_date",
    "parse_feed",
]

MAX_ITEM_KEY_LENGTH = 512


class FeedParseError(Exception):
    """The body could not be read as a feed. ``str(error)`` is meant for operators."""


@dataclass(frozen=True, slots=True)
class ParsedItem:
    item_key: str
    """Stable identity within its feed: ``guid:``, ``guidlink:``, ``link:`` or ``hash:`` + value."""
    guid: str | None
    link: str | None
    """Absolute http(s) URL when it could be resolved against the feed URL."""
    title: str
    summary: str
    content: str
    """Plain text of the full content (content:encoded, atom content); "" if none."""
    author: str
    categories: tuple[str, ...]
    published_at: datetime | None
    """Timezone-aware UTC; None when missing or unparseable (the caller uses first-seen time)."""


@dataclass(frozen=True, slots=True)
class ParsedFeed:
    title: str
    link: str | None
    items: tuple[ParsedItem, ...]
    ttl: timedelta | None
    """RSS ``<ttl>`` (minutes) when present and sensible."""
    problems: tuple[str, ...] = ()
    """What was wrong with a document that still yielded its items (bad encoding)."""


@dataclass(frozen=True, slots=True)
class RawEntry:
    """One item as a format reader found it, before text reduction and identity.

    ``*_html`` fields may hold HTML or plain text (plain text is valid input to
    ``html_to_text``); ``link`` may be relative.
    """

    guid: str | None
    link: str | None
    title_html: str
    summary_html: str
    content_html: str
    author: str
    categories: Sequence[str]
    published_at: datetime | None


# --------------------------------------------------------------------------- entry point


def parse_feed(body: bytes, *, url: str, content_type: str | None = None) -> ParsedFeed:
    """Parse a feed document given as the raw bytes of an HTTP response body.

    ``url`` is the feed's (final) URL, the base for relative links.
    ``content_type`` is the response's Content-Type header, if any.
    Raises ``FeedParseError`` and nothing else.
    """
    if not isinstance(body, bytes | bytearray | memoryview):
        # A str or URL given to feedparser would make it open files or fetch URLs.
        raise TypeError("parse_feed takes the response body as bytes")
    body = bytes(body)
    if not body.strip():
        raise FeedParseError("empty response body")
    media_type, charset = _split_content_type(content_type)
    start = _document_start(body)
    is_json_type = media_type.endswith(("/json", "+json"))
    if start.startswith(b"{") or (is_json_type and not start.startswith(b"<")):
        from monitor import jsonfeed  # deferred: jsonfeed builds on the types defined here

        return jsonfeed.parse_json_feed(body, url=url)
    if _looks_like_html(start):
        raise FeedParseError("not a feed: the server sent an HTML page")
    _check_entity_declarations(body)
    return _parse_xml_feed(body, url=url, charset=charset, media_type=media_type)


# --------------------------------------------------------------------------- XML via feedparser


def _parse_xml_feed(body: bytes, *, url: str, charset: str | None, media_type: str) -> ParsedFeed:
    # Some servers put whitespace before the XML declaration; expat rejects that
    # ("XML or text declaration not at start of entity") and feedparser would fall
    # back to its slower, looser parser for the whole document.
    stripped = body.lstrip(b" \t\r\n")
    if stripped.startswith(b"<"):
        body = _fix_impossible_utf16_declaration(stripped)
    try:
        result = _run_feedparser(body, charset=charset)
    except FeedParseError:
        # The loose parser fails on a character reference to a surrogate
        # (&#xD800;, which expat refuses first): one such title lost every item.
        repaired = _repair_entities(body)
        if repaired == body:
            raise
        body = repaired
        result = _run_feedparser(body, charset=charset)
    if _failed_strict_parsing(result):
        # Bare "&" and HTML entities (&uuml;) without a DTD are the commonest
        # reasons real feeds are not well-formed. feedparser's loose fallback
        # mangles them ("Q&A" becomes "Q&A;"), so repair and parse once more.
        repaired = _repair_entities(body)
        if repaired != body:
            second = _run_feedparser(repaired, charset=charset)
            if not _failed_strict_parsing(second) or len(second.get("entries") or []) > len(
                result.get("entries") or []
            ):
                result = second

    entries = result.get("entries") or []
    version = result.get("version") or ""
    if not entries:
        start = _document_start(body)
        if result.get("bozo"):
            if (
                _looks_like_html(start)
                or (media_type == "text/html" and not version)
                or _mentions_html_elements(body)
            ):
                raise FeedParseError("not a feed: the server sent an HTML page")
            if not start.startswith(b"<") and not start.startswith((b"\xff\xfe", b"\xfe\xff")):
                beginning = collapse_whitespace(start[:60].decode("utf-8", "replace"))
                raise FeedParseError(
                    f"not a feed: the response is neither XML nor JSON (it begins {beginning!r})"
                )
            raise FeedParseError(_describe_bozo(result.get("bozo_exception")))
        if not version:
            raise FeedParseError("not a feed: the document is neither RSS nor Atom nor JSON Feed")
    channel = result.get("feed") or {}
    raw_entries = [_entry_from_feedparser(entry) for entry in entries]
    feed = build_feed(
        title=_text_of(_get(channel, "title")),
        link=_text_of(_get(channel, "link")) or None,
        entries=raw_entries,
        ttl=_ttl_from(_get(channel, "ttl")),
        url=url,
    )
    problem = _encoding_problem(result)
    return replace(feed, problems=(problem,)) if problem else feed


def _encoding_problem(result: Mapping[str, Any]) -> str | None:
    """feedparser's word that the bytes did not match the declared encoding.

    The items are kept (their text is read with a fallback encoding), but the
    operator should hear that the publisher's feed is broken.
    """
    exc = result.get("bozo_exception")
    kind = type(exc).__name__
    if kind not in ("CharacterEncodingOverride", "CharacterEncodingUnknown"):
        return None
    used = result.get("encoding") or "a fallback encoding"
    return (f"the feed's bytes do not match its declared encoding; read as {used}, "
            "so some characters may be wrong")


def _run_feedparser(body: bytes, *, charset: str | None) -> Mapping[str, Any]:
    # Charset: the HTTP header's charset wins when given; otherwise the BOM / XML
    # declaration decides. We deliberately do not pass text/xml through: RFC 3023
    # would make it default to us-ascii, which no real server means. No
    # Content-Location either: feedparser would resolve guids against it, and a
    # guid must not change when the feed's URL does.
    headers = {"content-type": "application/xml" + (f"; charset={charset}" if charset else "")}
    try:
        return feedparser.parse(  # type: ignore[no-any-return]
            body,
            sanitize_html=False,
            resolve_relative_uris=False,
            response_headers=headers,
        )
    except Exception as exc:  # feedparser's loose parser can trip on pathological input
        raise FeedParseError(f"could not parse the feed: {type(exc).__name__}: {exc}") from exc


def _failed_strict_parsing(result: Mapping[str, Any]) -> bool:
    return type(result.get("bozo_exception")).__name__ == "SAXParseException"


_IMPOSSIBLE_UTF16_DECLARATION = re.compile(
    rb"""\A(<\?xml[^>]*?encoding\s*=\s*["'])(utf-?16|utf-?32|ucs-?2|ucs-?4)([^"']*["'])""",
    re.IGNORECASE,
)


def _fix_impossible_utf16_declaration(body: bytes) -> bytes:
    """A document whose first bytes are ASCII "<?xml" is not UTF-16 or UTF-32.

    Some servers declare utf-16 on UTF-8 bytes; the declaration is then read as
    UTF-8 (when the bytes are valid UTF-8), which is what they mean.
    """
    match = _IMPOSSIBLE_UTF16_DECLARATION.match(body)
    if not match:
        return body
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return body
    return _IMPOSSIBLE_UTF16_DECLARATION.sub(rb"\1utf-8\3", body, count=1)


_XML_PREDEFINED_ENTITIES = frozenset({b"amp", b"lt", b"gt", b"quot", b"apos"})
_AMPERSAND_OR_CDATA = re.compile(
    rb"<!\[CDATA\[.*?(?:\]\]>|\Z)|&(?:(#[0-9]+|#x[0-9a-fA-F]+|[A-Za-z][A-Za-z0-9]*);)?", re.DOTALL
)


def _repair_entities(body: bytes) -> bytes:
    """Escape bare "&" and turn HTML named entities into character references.

    CDATA sections are left alone (an "&" there is already literal text). Only
    for ASCII-compatible encodings: in UTF-16 the byte 0x26 is not always "&".
    """
    if b"\x00" in body[:64]:
        return body

    def replace(match: re.Match[bytes]) -> bytes:
        whole = match.group(0)
        if whole.startswith(b"<"):
            return whole
        reference = match.group(1)
        if reference is None:
            return b"&amp;"
        if reference.startswith(b"#"):
            return whole if _is_xml_char(reference) else b"&#xFFFD;"
        if reference in _XML_PREDEFINED_ENTITIES:
            return whole
        character = html.entities.html5.get(reference.decode("ascii") + ";")
        if character is None:
            return b"&amp;" + reference + b";"
        return "".join(f"&#{ord(c)};" for c in character).encode("ascii")

    return _AMPERSAND_OR_CDATA.sub(replace, body)


def _is_xml_char(reference: bytes) -> bool:
    """Whether ``#123`` or ``#x7B`` names a character XML allows (XML 1.0 §2.2, "Char")."""
    hexadecimal = reference.startswith(b"#x")
    digits = reference[2:] if hexadecimal else reference[1:]
    if len(digits.lstrip(b"0")) > 8:
        return False
    code = int(digits, 16 if hexadecimal else 10)
    return (
        code in (0x9, 0xA, 0xD)
        or 0x20 <= code <= 0xD7FF
        or 0xE000 <= code <= 0xFFFD
        or 0x10000 <= code <= 0x10FFFF
    )


def _get(mapping: object, key: str) -> Any:
    """A plain lookup: FeedParserDict's own aliases emit deprecation warnings."""
    return dict.get(mapping, key) if isinstance(mapping, dict) else None


def _describe_bozo(exc: object) -> str:
    if exc is None:
        return "not a feed: no items could be read"
    line = getattr(exc, "getLineNumber", None)
    message = getattr(exc, "getMessage", None)
    if callable(line) and callable(message):
        return f"malformed XML at line {line()}: {message()}"
    return f"malformed feed: {exc}"


def _entry_from_feedparser(entry: Mapping[str, Any]) -> RawEntry:
    contents = _get(entry, "content") or []
    content_html = "\n".join(
        str(_get(part, "value") or "") for part in contents if isinstance(part, Mapping)
    )
    summary_html = _text_of(_get(entry, "summary"))
    if summary_html and summary_html == content_html:
        # feedparser copies Atom <content> into summary when there is no <summary>.
        summary_html = ""
    categories = [
        _text_of(_get(tag, "term") or _get(tag, "label"))
        for tag in _get(entry, "tags") or []
        if isinstance(tag, Mapping)
    ]
    return RawEntry(
        guid=_text_of(_get(entry, "id")) or None,
        link=_link_of(entry),
        title_html=_text_of(_get(entry, "title")),
        summary_html=summary_html,
        content_html=content_html,
        author=_text_of(_get(entry, "author")),
        categories=categories,
        published_at=_published_at(entry),
    )


def _link_of(entry: Mapping[str, Any]) -> str | None:
    link = _text_of(_get(entry, "link")).strip()
    # With no <link>, feedparser offers the guid (isPermaLink defaults to true in
    # RSS 2.0); a guid like "12345" is no URL, and resolving it would invent one.
    copied_from_guid = _get(entry, "guidislink") and link == _text_of(_get(entry, "id")).strip()
    if copied_from_guid and not link.lower().startswith(("http://", "https://")):
        return None
    return link or None


# feedparser reads '2020/1/10 14:33:00' as 1 November and ignores "PM".
_FORMS_FEEDPARSER_MISREADS = re.compile(r"\d{4}/\d{1,2}/\d{1,2}|\d\s*[AaPp]\.?[Mm]\b")


def _published_at(entry: Mapping[str, Any]) -> datetime | None:
    """feedparser's parsed date where it can be trusted, else ``parse_date`` on the raw text."""
    for field in ("published", "updated"):
        raw = _text_of(_get(entry, field))
        parsed = None
        if not _FORMS_FEEDPARSER_MISREADS.search(raw):
            parsed = _struct_to_datetime(_get(entry, f"{field}_parsed"))
        # parse_date covers what feedparser gives up on (localized month names...).
        parsed = parsed or parse_date(raw)
        if parsed is not None:
            return parsed
    return None


def _text_of(value: object) -> str:
    return value if isinstance(value, str) else ""


def _struct_to_datetime(value: object) -> datetime | None:
    if not isinstance(value, time.struct_time):
        return None
    try:
        # feedparser normalizes its parsed tuples to UTC.
        return datetime.fromtimestamp(calendar.timegm(value), tz=UTC)
    except (OverflowError, ValueError, OSError):
        return None


def _ttl_from(value: object) -> timedelta | None:
    """RSS 2.0 ``<ttl>``: minutes a feed may be cached. Garbage and non-positive → None."""
    try:
        minutes = int(str(value).strip())
    except ValueError:
        return None
    if minutes <= 0 or minutes > 60 * 24 * 366:
        return None
    return timedelta(minutes=minutes)


# --------------------------------------------------------------------------- sniffing and guards

_UTF8_BOM = b"\xef\xbb\xbf"
_LEADING_COMMENT = re.compile(rb"\s*(?:<!--.*?-->\s*)*", re.DOTALL)


def _document_start(body: bytes) -> bytes:
    """The first bytes of the document after a UTF-8 BOM, whitespace and comments."""
    head = body[:65536]
    if head.startswith(_UTF8_BOM):
        head = head[len(_UTF8_BOM) :]
    match = _LEADING_COMMENT.match(head)
    return head[match.end() if match else 0 :][:1024]


def _looks_like_html(start: bytes) -> bool:
    lowered = start.lower()
    if lowered.startswith(b"<?xml"):
        end = lowered.find(b"?>")
        lowered = _LEADING_COMMENT.sub(b"", lowered[end + 2 :], count=1) if end >= 0 else b""
    return lowered.startswith((b"<!doctype html", b"<html"))


_HTML_ELEMENT = re.compile(rb"<(?:html|body|head)[\s>]", re.IGNORECASE)


def _mentions_html_elements(body: bytes) -> bool:
    """An <html>, <head> or <body> element near the top: a web page, not a feed."""
    return _HTML_ELEMENT.search(body[:4096]) is not None


def _split_content_type(content_type: str | None) -> tuple[str, str | None]:
    if not content_type:
        return "", None
    media_type, _, params = content_type.partition(";")
    charset = None
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip("\"'") or None
            if charset and not re.fullmatch(r"[A-Za-z0-9._:-]{1,40}", charset):
                charset = None
    return media_type.strip().lower(), charset


_ENTITY_MARKERS = tuple(
    b"<!ENTITY".decode("ascii").encode(codec)
    for codec in ("utf-8", "utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be")
)
_ENTITY_DECLARATION = re.compile(rb"<!ENTITY\s+(%\s*)?([^\s>]+)\s+(\"[^\"]*\"|'[^']*'|[^\s>]+)")
# A declared entity may stand for one character reference or a short literal;
# nothing that references other entities, markup, or an external resource.
_HARMLESS_ENTITY_VALUE = re.compile(
    rb"[\"'](?:&#[0-9]{1,7};|&#x[0-9a-fA-F]{1,6};|[^&<%\"']{0,32})[\"']"
)


# XML 1.0 §2.8: the prolog is the XML declaration, comments, processing
# instructions and whitespace, then the DOCTYPE with its internal subset in [...].
_PROLOG_MISC = re.compile(rb"(?:\s++|<\?.*?\?>|<!--.*?-->)*+", re.DOTALL)
_DOCTYPE_UNTIL_SUBSET = re.compile(rb"<!DOCTYPE(?:\"[^\"]*+\"|'[^']*+'|[^\"'\[>])*+")
_SUBSET_CONTENT = re.compile(
    rb"(?:\"[^\"]*+\"|'[^']*+'|<!--.*?-->|[^\"'\]<]++|<(?!!--))*+", re.DOTALL
)


def _internal_dtd_subset(body: bytes) -> bytes | None:
    """The bytes between ``<!DOCTYPE ... [`` and its closing ``]``; None if there is none.

    Quoted literals and comments are skipped, so a "]" inside an entity value
    cannot end the subset early. An unterminated subset returns the rest of
    the document, to be checked whole.
    """
    start = len(_UTF8_BOM) if body.startswith(_UTF8_BOM) else 0
    prolog = _PROLOG_MISC.match(body, start)
    doctype = _DOCTYPE_UNTIL_SUBSET.match(body, prolog.end() if prolog else start)
    if doctype is None or body[doctype.end() : doctype.end() + 1] != b"[":
        return None
    subset_start = doctype.end() + 1
    content = _SUBSET_CONTENT.match(body, subset_start)
    subset_end = content.end() if content else subset_start
    if body[subset_end : subset_end + 1] != b"]":
        return body[subset_start:]
    return body[subset_start:subset_end]


def _check_entity_declarations(body: bytes) -> None:
    """Refuse documents whose DTD declares entities that could expand or fetch.

    Real feeds almost never declare entities; when they do it is a handful of
    named characters (``<!ENTITY nbsp "&#160;">``). Billion laughs (entities
    nesting entities), quadratic blow-up (one long entity used many times) and
    XXE (``SYSTEM "file:///etc/passwd"``) all need something else.
    """
    if not any(marker in body for marker in _ENTITY_MARKERS):
        return
    if _ENTITY_MARKERS[0] not in body:
        raise FeedParseError(
            "refused: the document declares XML entities in a multi-byte encoding "
            "(entity expansion is not allowed)"
        )
    subset = _internal_dtd_subset(body)
    if subset is None:
        # Entities can only be declared in a DOCTYPE's internal subset; a
        # "<!ENTITY" elsewhere is text (an article about XXE, in CDATA).
        return
    for match in _ENTITY_DECLARATION.finditer(subset):
        is_parameter_entity, value = match.group(1), match.group(3)
        if is_parameter_entity or not _HARMLESS_ENTITY_VALUE.fullmatch(value):
            name = match.group(2).decode("ascii", "replace")
            raise FeedParseError(
                f"refused: the document declares the XML entity {name!r} that expands to "
                "other entities, long text or an external resource (entity expansion and "
                "external entities are not allowed)"
            )


# --------------------------------------------------------------------------- items and identity


def build_feed(
    *,
    title: str,
    link: str | None,
    entries: Iterable[RawEntry],
    ttl: timedelta | None,
    url: str,
) -> ParsedFeed:
    """Reduce raw entries to text, resolve their links against ``url`` and give each a key."""
    drafts = [_draft_item(entry, url) for entry in entries]
    keys = assign_item_keys(drafts)
    items = tuple(
        ParsedItem(
            item_key=key,
            guid=draft.guid,
            link=draft.link,
            title=draft.title,
            summary=draft.summary,
            content=draft.content,
            author=draft.author,
            categories=draft.categories,
            published_at=draft.published_at,
        )
        for draft, key in zip(drafts, keys, strict=True)
    )
    return ParsedFeed(
        title=collapse_whitespace(html_to_text(_storable(title))),
        link=resolve_link(_storable(link or ""), url),
        items=items,
        ttl=ttl,
    )


@dataclass(frozen=True, slots=True)
class _DraftItem:
    guid: str | None
    link: str | None
    title: str
    summary: str
    content: str
    author: str
    categories: tuple[str, ...]
    published_at: datetime | None

    @property
    def fingerprint(self) -> str:
        """What the item says, without its date: the last resort of identity."""
        text = f"{self.title}\n{self.content or self.summary}"
        return hashlib.sha256(text.encode()).hexdigest()


def _draft_item(entry: RawEntry, base_url: str) -> _DraftItem:
    return _DraftItem(
        guid=_storable(entry.guid or "").strip() or None,
        link=resolve_link(_storable(entry.link or ""), base_url),
        title=collapse_whitespace(html_to_text(_storable(entry.title_html))),
        summary=html_to_text(_storable(entry.summary_html)),
        content=html_to_text(_storable(entry.content_html)),
        author=collapse_whitespace(html_to_text(_storable(entry.author))),
        categories=_unique_nonempty(collapse_whitespace(_storable(c)) for c in entry.categories),
        published_at=entry.published_at,
    )


_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _storable(text: str) -> str:
    """``text`` without NUL, and with each lone surrogate replaced by U+FFFD.

    PostgreSQL refuses NUL in text (a JSON Feed ``"\\u0000"``, a raw NUL byte in
    an XML guid or link, which feedparser's loose parser keeps), and no driver can
    encode a lone surrogate (JSON Feed's ``"\\ud800"``). Either one, in any field
    of any item, failed the insert of the whole poll, on every poll: none of the
    feed's new items was ever stored, and no error was recorded on the feed.
    """
    if not _UNSTORABLE.search(text):
        return text
    return _UNSTORABLE.sub(lambda m: "" if m.group() == "\x00" else "\ufffd", text)


def assign_item_keys(drafts: Sequence[_DraftItem]) -> list[str]:
    """Give each item its identity within the feed (DESIGN.md habit 3; issue 4).

    guid → guid + link when the document repeats that guid (some publishers
    send one guid for every item) → canonical link → hash of title + text.
    A guid+link or link shared by items that say different things identifies
    none of them (nixos.org links every item to its news page), so those items
    fall through to the hash; copies of one item keep sharing their key and
    the store keeps one. The published date is never part of the key, so an
    item republished with a new date keeps it.
    """
    guid_counts = Counter(draft.guid for draft in drafts if draft.guid)
    candidates: list[tuple[str, str]] = []  # (kind, value) before the collision check
    for draft in drafts:
        if draft.guid and guid_counts[draft.guid] == 1:
            candidates.append(("guid", draft.guid))
        elif draft.guid and draft.link:
            candidates.append(("guidlink", f"{draft.guid} {canonical_link(draft.link)}"))
        elif draft.link:
            candidates.append(("link", canonical_link(draft.link)))
        else:
            candidates.append(("hash", ""))
    fingerprints_by_key: dict[tuple[str, str], set[str]] = {}
    for candidate, draft in zip(candidates, drafts, strict=True):
        if candidate[0] in ("guidlink", "link"):
            fingerprints_by_key.setdefault(candidate, set()).add(draft.fingerprint)
    keys = []
    for (kind, value), draft in zip(candidates, drafts, strict=True):
        ambiguous = len(fingerprints_by_key.get((kind, value), ())) > 1
        if kind == "hash" or ambiguous:
            keys.append(f"hash:{draft.fingerprint}")
        else:
            keys.append(_bounded(kind, value))
    return keys


def _bounded(kind: str, value: str) -> str:
    key = f"{kind}:{value}"
    if len(key) <= MAX_ITEM_KEY_LENGTH:
        return key
    return f"{kind}:sha256:{hashlib.sha256(value.encode()).hexdigest()}"


def _unique_nonempty(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(value for value in values if value))


# --------------------------------------------------------------------------- links

_TRACKING_PARAMETERS = frozenset({"fbclid", "gclid", "mc_cid", "mc_eid", "ocid", "cmpid"})


def resolve_link(link: str | None, base: str) -> str | None:
    """Make ``link`` an absolute http(s) URL against ``base``; None if that is impossible.

    A scheme-less link that starts with the feed's own host (``example.com/post``,
    seen in real feeds) is taken as that host, not as a relative path.
    """
    if not link:
        return None
    link = link.strip()
    if not link:
        return None
    try:
        base_parts = urlsplit(base)
        host = (base_parts.hostname or "").lower()
        first_segment = link.split("/", 1)[0].lower().removeprefix("www.")
        if host and "://" not in link and first_segment == host.removeprefix("www."):
            link = f"{base_parts.scheme or 'https'}://{link}"
        absolute = urljoin(base, link)
        parts = urlsplit(absolute)
    except ValueError:  # e.g. an invalid IPv6 literal
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return absolute


def canonical_link(link: str) -> str:
    """A link normalized for identity: case of scheme/host, default port, fragment, trackers."""
    try:
        parts = urlsplit(link)
        netloc = (parts.hostname or "").lower()
        port = parts.port
    except ValueError:
        return link
    if parts.username or parts.password:
        netloc = f"{parts.netloc.rpartition('@')[0]}@{netloc}"
    if port and (parts.scheme, port) not in (("http", 80), ("https", 443)):
        netloc = f"{netloc}:{port}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        kept = [
            (name, value)
            for name, value in pairs
            if not name.lower().startswith("utm_") and name.lower() not in _TRACKING_PARAMETERS
        ]
        if len(kept) != len(pairs):
            query = urlencode(kept)
    return urlunsplit((parts.scheme.lower(), netloc, parts.path or "/", query, ""))


# --------------------------------------------------------------------------- dates

# Month abbreviations in the languages of the feeds we meet (lowercase, accents
# kept). A word is looked up by its first four letters, then its first three,
# so French "juin"/"juillet" stay apart while "janvier" still finds "jan".
_MONTHS: dict[str, int] = {}
for _number, _names in enumerate(
    [
        "jan janv gen ene jän sty led",
        "feb fév fev févr febr lut úno",
        "mar mär mars marz bře",
        "apr avr abr kwi dub",
        "may mai mag mayo maj kvě",
        "jun juin giu cze čer",
        "jul juil lug lip čvc",
        "aug aoû aou ago sie srp",
        "sep sept set wrz zář",
        "oct okt ott out paź paz říj",
        "nov noi lis",
        "dec déc dez dic gru pro",
    ],
    start=1,
):
    for _name in _names.split():
        assert _MONTHS.setdefault(_name, _number) == _number, f"ambiguous month {_name}"

_US_ZONES = {
    "ut": 0,
    "utc": 0,
    "gmt": 0,
    "z": 0,
    "edt": -4,
    "est": -5,
    "cdt": -5,
    "cst": -6,
    "mdt": -6,
    "mst": -7,
    "pdt": -7,
    "pst": -8,
    "bst": 1,
    "cet": 1,
    "cest": 2,
    "jst": 9,
}
_TIME = re.compile(r"(\d{1,2}):(\d{2})(?::(\d{2})(?:[.,]\d+)?)?\s*([ap]\.?m\.?)?", re.IGNORECASE)
_OFFSET = re.compile(r"(?:(?<=\s)|(?<=\d)|(?<=gmt)|(?<=utc))([+-])(\d{2}):?(\d{2})?\b")
_NUMERIC_DATE = re.compile(
    r"\b(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})\b|\b(\d{1,2})[-/.](\d{1,2})[-/.](\d{4})\b"
)
_WORD = re.compile(r"[^\W\d_]+")
_NUMBER = re.compile(r"\b\d{1,4}\b")


_LEAP_SECOND = re.compile(r"(\d:\d\d):60(?!\d)")


def parse_date(value: str | None) -> datetime | None:
    """Parse a feed date tolerantly into aware UTC; None when it cannot be understood.

    Handles RFC 3339 / ISO 8601, RFC 822 with localized day and month names
    ('mer, 16 nov 2022 00:38:15 +0100'), '2020/1/10 14:33:00',
    'Sat Oct 06 2018 00:00:00 GMT+0900 (JST)' and 12-hour clocks. A date
    without a zone is taken as UTC.
    """
    if not value:
        return None
    text = value.strip()
    if not text or len(text) > 100:
        return None
    # A leap second ("23:59:60", as the clock showed it) has no datetime: read as :59.
    text = _LEAP_SECOND.sub(r"\1:59", text)
    parsed: datetime | None
    try:
        parsed = datetime.fromisoformat(text.replace(" ", "T", 1) if "T" not in text else text)
    except ValueError:
        parsed = _parse_loose_date(text)
    if parsed is None:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except (OverflowError, ValueError):
        return None


def _parse_loose_date(text: str) -> datetime | None:
    lowered = re.sub(r"\([^)]*\)", " ", text.lower())  # "(JST)" comments
    year = month = day = None
    numeric = _NUMERIC_DATE.search(lowered)
    if numeric:
        if numeric.group(1):
            year, month, day = (int(numeric.group(i)) for i in (1, 2, 3))
        else:
            day, month, year = (int(numeric.group(i)) for i in (4, 5, 6))
        lowered = lowered[: numeric.start()] + " " + lowered[numeric.end() :]
    hour = minute = second = 0
    clock = _TIME.search(lowered)
    if clock:
        hour, minute = int(clock.group(1)), int(clock.group(2))
        second = int(clock.group(3) or 0)
        meridiem = (clock.group(4) or "").replace(".", "").lower()
        if meridiem == "pm" and hour < 12:
            hour += 12
        elif meridiem == "am" and hour == 12:
            hour = 0
        lowered = lowered[: clock.start()] + " " + lowered[clock.end() :]
    offset = timedelta(0)
    zone = _OFFSET.search(lowered)
    if zone:
        sign = -1 if zone.group(1) == "-" else 1
        offset = sign * timedelta(hours=int(zone.group(2)), minutes=int(zone.group(3) or 0))
        lowered = lowered[: zone.start()] + " " + lowered[zone.end() :]
    words = _WORD.findall(lowered)
    if month is None:
        # The last month-like word wins: a leading weekday can look like a month
        # ("mar" is Tuesday in Italian, French and Spanish).
        candidates = [
            month for month in (_MONTHS.get(w[:4]) or _MONTHS.get(w[:3]) for w in words) if month
        ]
        month = candidates[-1] if candidates else None
    if not zone:
        for word in words:
            if word in _US_ZONES:
                offset = timedelta(hours=_US_ZONES[word])
                break
    if year is None or day is None:
        numbers = [int(n) for n in _NUMBER.findall(lowered)]
        years = [n for n in numbers if n >= 1000]
        days = [n for n in numbers if 1 <= n <= 31]
        if year is None and years:
            year = years[0]
        if day is None and days:
            day = days[0]
    if year is None or month is None or day is None:
        return None
    try:
        return datetime(year, month, day, hour, minute, second, tzinfo=timezone(offset))
    except ValueError:
        return None
