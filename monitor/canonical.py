"""Canonical article URLs: one spelling for every way a feed links the same page.

Two items whose links canonicalise to the same string are one story
(docs/stories.md). The rules, each undoing something publishers or their
analytics add to a link without changing the page it points to:

- scheme and host are case-insensitive (RFC 3986 §6.2.2.1): lower-cased;
- ``http`` and ``https`` serve the same article: the canonical scheme is ``https``;
- a port that is the scheme's default (80, 443) is dropped (RFC 3986 §6.2.3);
- the fragment never reaches the server (RFC 3986 §3.5): dropped;
- tracking parameters (``utm_*``, ``at_*``, ``ns_*``, ``fbclid``, ``gclid``, ``mc_cid``,
  ``mc_eid``, ``ocid``, ``cmpid``, ... see ``TRACKING_PARAMS``) are dropped; the rest are
  sorted, since their order does not change the page;
- AMP copies: an ``amp.`` host prefix, an ``/amp`` path segment, an ``.amp`` file
  suffix (also before ``.html``: NYT's ``story.amp.html``) and ``outputType=amp`` /
  ``amp=1`` parameters are dropped;
- ``www.`` is dropped (the bare and www hosts of a news site serve the same pages,
  and an AMP host ``amp.example.com`` would otherwise never meet ``www.example.com``),
  and so are the mobile-site prefixes ``m.`` and ``mobile.`` (``m.bbc.com``), for the
  same reason;
- trailing slashes are dropped (``/world/`` and ``/world`` are one page on every news
  site we know; the root path becomes empty);
- percent-escapes use upper-case hex (RFC 3986 §6.2.2.1) and unreserved characters
  are decoded (§6.2.2.2); a path written with raw non-ASCII characters (an IRI,
  ``/café``) is percent-encoded as UTF-8 (RFC 3987 §3.1), so it meets the same path
  written escaped (``/caf%C3%A9``);
- a redirector is the link it leads to: Google Alerts (and Google search results) wrap
  every article as ``https://www.google.com/url?…&url=<article>`` (or ``q=``), so
  the same article from two alert feeds, or from an alert feed and its publisher,
  would otherwise never meet.

Anything that is not an absolute http(s) URL (a ``urn:`` guid, a relative path) is
returned trimmed but otherwise as given: it can still equal itself.
"""

from __future__ import annotations

import re
from urllib.parse import SplitResult, parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

__all__ = ["TRACKING_PARAMS", "TRACKING_PREFIXES", "canonical_url"]

#: Query parameters that only tell analytics where a click came from.
TRACKING_PARAMS = frozenset(
    {
        "fbclid", "gclid", "dclid", "gbraid", "wbraid", "msclkid", "yclid", "igshid",
        "mc_cid", "mc_eid", "ocid", "cmpid", "cmp", "smid", "smtyp", "xtor", "mkt_tok",
        "guccounter", "_ga", "_gl", "traffic_source", "wt_mc", "ref_src", "ftag", "taid",
        # The New York Times tags its RSS links "?partner=rss&emc=rss".
        "partner", "emc",
        # Deutsche Welle tags each feed's links with its own "?maca=en-rss-en-all-1573-rdf",
        # so one article in two DW feeds would otherwise have two URLs.
        "maca",
    }
)
#: Parameter name prefixes of tracking families: utm_source, at_medium (BBC), ns_mchannel.
TRACKING_PREFIXES = ("utm_", "at_", "ns_", "pk_", "hsa_", "oly_")

# Parameters that ask for the AMP rendering of the same article.
_AMP_PARAMS = {"outputtype": {"amp"}, "amp": {"1", "true", ""}}
_DEFAULT_PORTS = {"http": 80, "https": 443}
# Redirectors unwrapped around one link at most (a wrapper of a wrapper happens).
_MAX_REDIRECTORS = 3
# Characters RFC 3986 §2.3 calls unreserved: an escape of one of them means the same.
_SAFE_PATH = "/:@!$&'()*+,;=-._~%"
_ESCAPE = re.compile(r"%[0-9a-fA-F]{2}")


def _redirect_target(parts: SplitResult) -> str | None:
    """The article a redirector link leads to: Google Alerts' ``google.com/url?url=…``
    (or ``q=``, as Google search results write it), on any Google country domain."""
    host = (parts.hostname or "").removeprefix("www.")
    if not (host.startswith("google.") and parts.path == "/url"):
        return None
    for name, value in parse_qsl(parts.query):
        if name in ("url", "q") and value.lower().startswith(("http://", "https://")):
            return value.strip()
    return None


def _is_tracking(name: str) -> bool:
    lowered = name.lower()
    return lowered in TRACKING_PARAMS or lowered.startswith(TRACKING_PREFIXES)


def _is_amp_param(name: str, value: str) -> bool:
    values = _AMP_PARAMS.get(name.lower())
    return values is not None and value.lower() in values


def _normalise_escapes(text: str) -> str:
    """Decode escapes of unreserved characters, upper-case the others (RFC 3986 §6.2.2)."""

    def fix(match: re.Match[str]) -> str:
        char = chr(int(match.group()[1:], 16))
        if char.isascii() and (char.isalnum() or char in "-._~"):
            return char
        return match.group().upper()

    return _ESCAPE.sub(fix, text)


def _canonical_path(path: str) -> str:
    if "%" in path or not path.isascii():
        path = _normalise_escapes(quote(unquote(path), safe=_SAFE_PATH))
    segments = [s for s in path.split("/")]
    # "/news/amp/story" and "/news/story/amp" are the AMP twins of "/news/story".
    segments = [s for s in segments if s.lower() != "amp"]
    if segments and segments[-1].lower().endswith(".amp"):
        segments[-1] = segments[-1][: -len(".amp")]
    elif segments and segments[-1].lower().endswith(".amp.html"):
        segments[-1] = segments[-1][: -len(".amp.html")] + ".html"
    path = "/".join(segments)
    while "//" in path:
        path = path.replace("//", "/")
    return path.rstrip("/")


def _canonical_host(netloc: str, scheme: str) -> str:
    userinfo, _, hostport = netloc.rpartition("@")
    host, port = hostport, ""
    if hostport.startswith("["):  # IPv6 literal
        end = hostport.find("]")
        host, port = hostport[: end + 1], hostport[end + 2 :]
    elif ":" in hostport:
        host, _, port = hostport.partition(":")
    host = host.lower().rstrip(".")
    for prefix in ("amp.", "www.", "m.", "mobile."):
        if host.startswith(prefix) and host.count(".") >= 2:
            host = host[len(prefix) :]
    if port and (not port.isdigit() or int(port) == _DEFAULT_PORTS.get(scheme)):
        port = ""
    if port in ("80", "443"):
        # http://x:443 and https://x:80 are odd, but we fold the schemes together,
        # so the other scheme's default port is no port either.
        port = ""
    hostport = f"{host}:{port}" if port else host
    return f"{userinfo}@{hostport}" if userinfo else hostport


def canonical_url(url: str) -> str:
    """The canonical form of ``url`` (see the module docstring for every rule)."""
    text = url.strip()
    try:
        parts = urlsplit(text)
        # A redirector around the article (Google Alerts) is the article: two alerts'
        # wrappers of one page, or a wrapper and the publisher's own link, then meet.
        for _ in range(_MAX_REDIRECTORS):
            target = _redirect_target(parts)
            if target is None:
                break
            text, parts = target, urlsplit(target)
    except ValueError:
        return text
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.netloc:
        return text
    host = _canonical_host(parts.netloc, scheme)
    path = _canonical_path(parts.path)
    query = [
        (name, value)
        for name, value in parse_qsl(parts.query, keep_blank_values=True)
        if not _is_tracking(name) and not _is_amp_param(name, value)
    ]
    query.sort()
    return urlunsplit(("https", host, path, urlencode(query, quote_via=quote), ""))
