"""Hostile XML: entity expansion (billion laughs, quadratic blow-up) and external entities (XXE).

Each attack is tried twice: through ``parse_feed`` (which refuses dangerous
entity declarations up front) and through ``_parse_xml_feed`` (feedparser +
expat alone, the guard bypassed), so that each layer is shown to hold on its
own: nothing expands, nothing is read from disk, nothing is fetched.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from monitor.parse import FeedParseError, ParsedFeed, _parse_xml_feed, parse_feed

URL = "https://feeds.example.org/rss"


def feed_with_dtd(dtd: str, title: str, *, newlines: bool = True) -> bytes:
    sep = "\n" if newlines else ""
    return (
        f'<?xml version="1.0"?>{sep}<!DOCTYPE rss [{sep}{dtd}{sep}]>{sep}'
        '<rss version="2.0"><channel><title>T</title>'
        f"<item><guid>1</guid><title>{title}</title><link>https://e.org/a</link></item>"
        "</channel></rss>"
    ).encode()


def billion_laughs(*, newlines: bool = True) -> bytes:
    declarations = ['<!ENTITY lol0 "lol">'] + [
        f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10)
    ]
    sep = "\n" if newlines else ""
    return feed_with_dtd(sep.join(declarations), "A &lol9; B", newlines=newlines)


def quadratic_blowup() -> bytes:
    return feed_with_dtd(f'<!ENTITY big "{"x" * 50_000}">', "&big;" * 2_000)


def parse_unguarded(body: bytes) -> ParsedFeed:
    return _parse_xml_feed(body, url=URL, charset=None, media_type="")


PARSERS: dict[str, Callable[[bytes], ParsedFeed]] = {
    "parse_feed": lambda body: parse_feed(body, url=URL),
    "feedparser+expat alone": parse_unguarded,
}


def outcome(parse: Callable[[bytes], ParsedFeed], body: bytes) -> str:
    """All text the parse produced, or the error message."""
    try:
        feed = parse(body)
    except FeedParseError as error:
        return f"error: {error}"
    return "\n".join(f"{item.title}\n{item.summary}\n{item.content}" for item in feed.items)


@pytest.mark.parametrize(
    "body",
    [billion_laughs(), billion_laughs(newlines=False), quadratic_blowup()],
    ids=["billion laughs", "billion laughs on one line", "quadratic blow-up"],
)
@pytest.mark.parametrize("parser", PARSERS.values(), ids=PARSERS.keys())
def test_entity_expansion_never_happens(parser: Callable[[bytes], ParsedFeed], body: bytes) -> None:
    text = outcome(parser, body)
    # Fully expanded, billion laughs is 3 GB and the blow-up 100 MB of text.
    assert len(text) < 200_000
    assert "lollollol" not in text


@pytest.mark.parametrize(
    "body",
    [billion_laughs(), billion_laughs(newlines=False), quadratic_blowup()],
    ids=["billion laughs", "billion laughs on one line", "quadratic blow-up"],
)
def test_parse_feed_refuses_expanding_entities(body: bytes) -> None:
    # Without the guard, expat works up to its amplification limit first (seconds
    # of CPU for the blow-up document) and fails with its own message, or not at
    # all; the guard answers before parsing, with this one.
    with pytest.raises(FeedParseError, match=r"refused: .*entity"):
        parse_feed(body, url=URL)


def test_billion_laughs_in_utf16_is_refused() -> None:
    body = billion_laughs().decode().replace('version="1.0"', 'version="1.0" encoding="utf-16"')
    with pytest.raises(FeedParseError, match="refused"):
        parse_feed(body.encode("utf-16"), url=URL)


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "secret.txt"
    path.write_text("TOP-SECRET-MARKER")
    return path


def xxe_documents(target: str) -> dict[str, bytes]:
    tail = (
        '<rss version="2.0"><channel><title>T</title>'
        "<item><guid>1</guid><title>A {ref} B</title><link>https://e.org/a</link></item>"
        "</channel></rss>"
    )
    return {
        "general entity": (
            f'<?xml version="1.0"?>\n<!DOCTYPE rss [\n<!ENTITY xxe SYSTEM "{target}">\n]>\n'
            + tail.format(ref="&xxe;")
        ).encode(),
        "general entity on one line": (
            f'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY xxe SYSTEM "{target}">]>'
            + tail.format(ref="&xxe;")
        ).encode(),
        "parameter entity": (
            f'<?xml version="1.0"?>\n<!DOCTYPE rss [<!ENTITY % p SYSTEM "{target}"> %p;]>\n'
            + tail.format(ref="")
        ).encode(),
        "external DTD": (
            f'<?xml version="1.0"?>\n<!DOCTYPE rss SYSTEM "{target}">\n' + tail.format(ref="")
        ).encode(),
    }


@pytest.mark.parametrize("kind", xxe_documents("x").keys())
@pytest.mark.parametrize("parser", PARSERS.values(), ids=PARSERS.keys())
def test_xxe_never_reads_a_local_file(
    parser: Callable[[bytes], ParsedFeed], kind: str, secret_file: Path
) -> None:
    body = xxe_documents(secret_file.as_uri())[kind]
    assert "TOP-SECRET-MARKER" not in outcome(parser, body)


@pytest.mark.parametrize("kind", xxe_documents("x").keys())
def test_xxe_never_reads_etc_passwd(kind: str) -> None:
    for parser in PARSERS.values():
        text = outcome(parser, xxe_documents("file:///etc/passwd")[kind])
        assert "root:" not in text


class RecordingHandler(BaseHTTPRequestHandler):
    requests: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        RecordingHandler.requests.append(self.path)
        body = b'<!ENTITY leak "FETCHED-OVER-HTTP">'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def recording_server() -> Iterator[str]:
    RecordingHandler.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), RecordingHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/evil.dtd"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("kind", xxe_documents("x").keys())
@pytest.mark.parametrize("parser", PARSERS.values(), ids=PARSERS.keys())
def test_xxe_never_fetches_over_http(
    parser: Callable[[bytes], ParsedFeed], kind: str, recording_server: str
) -> None:
    text = outcome(parser, xxe_documents(recording_server)[kind])
    assert "FETCHED-OVER-HTTP" not in text
    assert RecordingHandler.requests == []


def test_the_recording_server_does_record() -> None:
    # Guards the test above against passing because the server never works.
    import urllib.request

    RecordingHandler.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), RecordingHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.server_address[1]}/x") as reply:
            assert b"FETCHED-OVER-HTTP" in reply.read()
    finally:
        server.shutdown()
        server.server_close()
    assert RecordingHandler.requests == ["/x"]


def test_external_dtd_reference_alone_is_harmless_and_items_are_read() -> None:
    # RSS 0.91 feeds reference Netscape's DTD; it must not be fetched, nor fail the feed.
    body = (
        b'<?xml version="1.0"?>\n<!DOCTYPE rss PUBLIC'
        b' "-//Netscape Communications//DTD RSS 0.91//EN"'
        b' "http://my.netscape.com/publish/formats/rss-0.91.dtd">\n'
        b'<rss version="0.91"><channel><title>T</title><item><title>A</title>'
        b"<link>https://e.org/a</link></item></channel></rss>"
    )
    feed = parse_feed(body, url=URL)
    assert [item.title for item in feed.items] == ["A"]


def test_a_right_bracket_inside_an_entity_value_does_not_hide_later_declarations() -> None:
    body = feed_with_dtd('<!ENTITY a "]>">\n<!ENTITY b SYSTEM "file:///etc/passwd">', "&b;")
    with pytest.raises(FeedParseError, match=r"refused: .*'b'"):
        parse_feed(body, url=URL)


def test_an_article_about_xxe_is_not_refused() -> None:
    # A security blog quoting an attack inside CDATA declares nothing.
    attack = '<!DOCTYPE x [<!ENTITY lol2 "&lol1;&lol1;"><!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
    body = (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>Sec</title>'
        f"<item><guid>1</guid><title>XXE explained</title>"
        f"<description><![CDATA[<pre>{attack}</pre>]]></description></item></channel></rss>"
    ).encode()
    feed = parse_feed(body, url=URL)
    assert [item.title for item in feed.items] == ["XXE explained"]
    # As HTML, "<!ENTITY ...>" is a bogus comment: not visible text.
    assert feed.items[0].summary == "<!DOCTYPE x []>"


def test_harmless_character_entities_are_still_accepted() -> None:
    body = feed_with_dtd('<!ENTITY nbsp "&#160;">\n<!ENTITY brand "Wire">', "A&nbsp;&brand; B")
    feed = parse_feed(body, url=URL)
    assert [item.title for item in feed.items] == ["A Wire B"]
