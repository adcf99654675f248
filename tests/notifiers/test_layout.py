"""Message layout limits and helpers: Slack's block limits, word-boundary truncation,
mentions on critical alerts, digests, and email List-Id / threading headers."""

from __future__ import annotations

import io
import re
from dataclasses import replace
from email import message_from_bytes, policy

import pytest

from notifiers import ConsoleNotifier, Digest
from notifiers.mail import build_digest_email, build_email, list_id, thread_headers
from notifiers.slack import (
    build_digest_message,
    build_slack_message,
    mention_token,
    truncate_words,
)
from tests.notifiers.alerts import make_alert

SENDER = "wirewatch@news.example"


@pytest.mark.parametrize(
    ("name", "text", "limit", "expected"),
    [
        ("fits", "short text", 20, "short text"),
        ("cut on a word boundary", "the quick brown fox jumps", 16, "the quick brown…"),
        ("one long word is cut inside", "x" * 30, 10, "x" * 9 + "…"),
        ("exact length kept", "abcde", 5, "abcde"),
    ],
)
def test_truncate_words(name: str, text: str, limit: int, expected: str) -> None:
    result = truncate_words(text, limit)
    assert result == expected, name
    assert len(result) <= limit


def test_slack_limits_hold_for_huge_feed_text() -> None:
    words = " ".join(f"word{i}&<>" for i in range(3000))  # escaping makes it longer
    alert = make_alert(rule="r" * 400, title=words, snippet=words,
                       marks=((0, 9), (500, 509)), other_sources=("AP",) * 2000)
    message = build_slack_message(alert)
    header = message["blocks"][0]
    assert header["type"] == "header" and len(header["text"]["text"]) <= 150
    assert header["text"]["text"].endswith("…")
    for block in message["blocks"][1:]:
        texts = [block["text"]["text"]] if "text" in block else [
            e["text"] for e in block["elements"]]
        for text in texts:
            assert len(text) <= 3000
            # Never cut inside an entity or a bold run.
            assert not re.search(r"&[a-z]{0,3}$", text.rstrip("…"))
            assert text.count("*") % 2 == 0
    snippet = message["blocks"][2]["text"]["text"]
    assert snippet.endswith("…") and not snippet.endswith(" …")


@pytest.mark.parametrize(
    ("severity", "mention", "prefix"),
    [
        ("critical", "@here", "<!here> "),
        ("critical", "<@U0123ABC>", "<@U0123ABC> "),
        ("critical", "<!subteam^S0123ABC>", "<!subteam^S0123ABC> "),
        ("high", "@here", ""),
        ("critical", None, ""),
    ],
)
def test_mention_only_on_critical(severity: str, mention: str | None, prefix: str) -> None:
    message = build_slack_message(make_alert(severity=severity), mention=mention)
    assert message["text"].startswith(prefix + "[csto-exit]")
    assert message["blocks"][1]["text"]["text"].startswith(prefix + "*<https://")
    assert message["blocks"][0]["text"]["text"] == f"csto-exit · {severity}"


def test_mention_token() -> None:
    assert [mention_token(m) for m in ("@here", "@channel", "@everyone", "<@U1>")] == [
        "<!here>", "<!channel>", "<!everyone>", "<@U1>"]


def test_other_sources_make_a_context_line_escaped() -> None:
    message = build_slack_message(make_alert(other_sources=("Reuters", "<!channel> AP")))
    context = message["blocks"][-1]
    assert context["type"] == "context"
    assert context["elements"][0]["text"] == "Also: Reuters, &lt;!channel&gt; AP"


def digest(count: int, rules: int = 1) -> Digest:
    alerts = tuple(
        make_alert(alert_id=f"a{i}", rule=f"rule-{i % rules}", title=f"Story {i} <b>&",
                   link=f"https://news.example/{i}")
        for i in range(count)
    )
    return Digest(digest_id="d1", kind="burst", title=f"{count} more matches for rule-0",
                  alerts=alerts)


def test_slack_digest_groups_by_rule_and_links_titles() -> None:
    message = build_digest_message(digest(4, rules=2))
    assert message["text"] == "4 more matches for rule-0"
    first, second = (b["text"]["text"] for b in message["blocks"][1:])
    assert first.splitlines() == [
        "*rule-0* (2)",
        "• *<https://news.example/0|Story 0 &lt;b&gt;&amp;>* · regional-wire",
        "• *<https://news.example/2|Story 2 &lt;b&gt;&amp;>* · regional-wire",
    ]
    assert second.startswith("*rule-1* (2)\n")


def test_slack_digest_stays_within_50_blocks_and_counts_the_rest() -> None:
    big = digest(3000, rules=60)
    message = build_digest_message(big)
    blocks = message["blocks"]
    assert len(blocks) <= 50
    assert all(len(b["text"]["text"]) <= 3000 for b in blocks if b["type"] == "section")
    shown = sum(b["text"]["text"].count("\n• ") + b["text"]["text"].startswith("• ")
                for b in blocks if b["type"] == "section")
    closing = blocks[-1]["elements"][0]["text"]
    assert closing == f"… and {3000 - shown} more"


def test_digest_entries_and_email_alerts_name_their_story_sources() -> None:
    crowded = tuple(f"Outlet {i} & Co (+{i} min)" for i in range(400))
    alerts = (make_alert(alert_id="a0", other_sources=("DW (first)", "<!channel> AP (+4 min)")),
              make_alert(alert_id="a1", other_sources=crowded),
              make_alert(alert_id="a2"))
    small = Digest(digest_id="d1", kind="digest", title="Digest: 3 matches", alerts=alerts)
    [section] = (b["text"]["text"] for b in build_digest_message(small)["blocks"][1:])
    lines = section.splitlines()
    assert [line.startswith("• ") for line in lines[1:]] == [True, False, True, False, True]
    assert lines[2] == "      Also: DW (first), &lt;!channel&gt; AP (+4 min)"
    also = lines[4].strip()
    assert also.startswith("Also: Outlet 0 &amp; Co (+0 min), Outlet 1 &amp; Co")
    assert len(also) <= 500 and also.endswith("…")
    assert not re.search(r"&[a-z]{0,3}$", also.rstrip("…"))  # never cut inside an entity

    text = build_digest_email(small, sender=SENDER, recipients=["desk@news.example"])
    plain = text.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = text.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "    Also: DW (first), <!channel> AP (+4 min)" in plain.splitlines()
    assert "<small>Also: DW (first), &lt;!channel&gt; AP (+4 min)</small>" in html
    single = build_email(alerts[0], sender=SENDER, recipients=["desk@news.example"])
    assert "Also:      DW (first), <!channel> AP (+4 min)" in single.get_body(  # type: ignore[union-attr]
        ("plain",)).get_content().splitlines()
    assert "<td>DW (first), &lt;!channel&gt; AP (+4 min)</td>" in single.get_body(  # type: ignore[union-attr]
        ("html",)).get_content()

    # Many entries, each with a long "Also:" line: still 50 blocks of at most 3,000.
    big = Digest(digest_id="d2", kind="digest", title="Digest", alerts=tuple(
        make_alert(alert_id=f"b{i}", rule=f"rule-{i % 7}", other_sources=crowded)
        for i in range(500)))
    blocks = build_digest_message(big)["blocks"]
    assert len(blocks) <= 50
    assert all(len(b["text"]["text"]) <= 3000 for b in blocks if b["type"] == "section")
    shown = sum(b["text"]["text"].count("\n• ") + b["text"]["text"].startswith("• ")
                for b in blocks if b["type"] == "section")
    assert blocks[-1]["elements"][0]["text"] == f"… and {500 - shown} more"


def test_email_list_id_and_threading_headers() -> None:
    assert list_id("Desk Mail", "Wirewatch <wirewatch@News.example>") == (
        "wirewatch desk-mail <desk-mail.wirewatch.news.example>")
    assert thread_headers([]) == {}
    assert thread_headers(["<a@x>", "<b@x>"]) == {"In-Reply-To": "<b@x>",
                                                  "References": "<a@x> <b@x>"}
    # A stored value can never add a header line or smuggle in non-ids.
    assert thread_headers(["<a@x>\r\nBcc: evil@example.org", "C1:123.4"]) == {}

    message = build_email(make_alert(thread=("<first@news.example>",), severity="critical"),
                          sender=SENDER, recipients=["desk@news.example"])
    parsed = message_from_bytes(message.as_bytes(), policy=policy.default)
    assert parsed["In-Reply-To"] == "<first@news.example>"
    assert parsed["References"] == "<first@news.example>"
    assert parsed["X-Wirewatch-Severity"] == "critical"


def test_email_digest_has_text_and_escaped_html_grouped_by_rule() -> None:
    message = build_digest_email(digest(3, rules=2), sender=SENDER,
                                 recipients=["desk@news.example"])
    assert message["Subject"] == "[wirewatch] 3 more matches for rule-0"
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "rule-0 (2)\n  - Story 0 <b>& (regional-wire)" in text
    assert '<a href="https://news.example/0">Story 0 &lt;b&gt;&amp;</a>' in html
    assert "<b>&" not in html
    assert html.index("rule-0 (2)") < html.index("rule-1 (1)")


def test_console_digest() -> None:
    stream = io.StringIO()
    ConsoleNotifier(name="screen", stream=stream).send_digest(digest(2))
    assert stream.getvalue().splitlines()[:3] == [
        "[wirewatch] 2 more matches for rule-0",
        "  rule-0 (2)",
        "    - Story 0 <b>& <https://news.example/0> (regional-wire)",
    ]


def test_console_digest_names_story_sources() -> None:
    stream = io.StringIO()
    sourced = replace(digest(1), alerts=(replace(digest(1).alerts[0],
                                                 other_sources=("DW (+4 min)",)),))
    ConsoleNotifier(name="screen", stream=stream).send_digest(sourced)
    assert stream.getvalue().splitlines()[2:4] == [
        "    - Story 0 <b>& <https://news.example/0> (regional-wire)",
        "      also: DW (+4 min)",
    ]


def test_a_link_too_long_for_a_section_loses_its_query_or_its_link_not_the_message() -> None:
    page = "https://news.example/world/2026/03/csto-summit"
    tracked = make_alert(title="CSTO & co " * 30, link=page + "?session=" + "x" * 5000)
    hopeless = make_alert(title="CSTO", link="https://news.example/" + "p" * 5000)
    message = build_slack_message(tracked)
    headline = message["blocks"][1]["text"]["text"]
    assert headline.startswith(f"*<{page}|CSTO &amp; co")
    assert build_slack_message(hopeless)["blocks"][1]["text"]["text"].startswith("*CSTO*\n")
    for built in (message, build_slack_message(hopeless),
                  build_digest_message(Digest(digest_id="d", kind="digest", title="Digest",
                                              alerts=(tracked, hopeless)))):
        sections = [b["text"]["text"] for b in built["blocks"] if b["type"] == "section"]
        assert sections and all(len(text) <= 3000 for text in sections)
        # Every link that is shown is whole: its markup opens and closes.
        assert all(text.count("<") == text.count(">") for text in sections)


def test_digest_entries_of_high_and_critical_alerts_say_so() -> None:
    alerts = tuple(make_alert(alert_id=f"a{i}", title=f"Story {i}", severity=severity)
                   for i, severity in enumerate(("critical", "normal", "high", "low")))
    held = Digest(digest_id="d", kind="digest", title="Digest: 4", alerts=alerts)
    slack = build_digest_message(held)["blocks"][1]["text"]["text"].splitlines()[1:]
    email = build_digest_email(held, sender=SENDER, recipients=["desk@news.example"])
    text = email.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = email.get_body(("html",)).get_content()  # type: ignore[union-attr]
    out = io.StringIO()
    ConsoleNotifier(name="console", stream=out).send_digest(held)
    console = [line for line in out.getvalue().splitlines() if line.startswith("    - ")]
    for lines in (slack, [line for line in text.splitlines() if line.startswith("  - ")],
                  console):
        flags = [line.split("Story")[0] for line in lines]
        assert ["[critical]" in f for f in flags] == [True, False, False, False], lines
        assert ["[high]" in f for f in flags] == [False, False, True, False], lines
    assert "<strong>[critical] </strong>" in html and "<strong>[high] </strong>" in html
    assert html.count("<strong>[") == 2
