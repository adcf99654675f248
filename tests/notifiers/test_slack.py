"""SlackNotifier with the real slack-sdk against the Slack stand-in on loopback."""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest

from notifiers import Notifier, NotifyError, SlackNotifier
from notifiers.slack import build_slack_message, escape_mrkdwn
from tests.notifiers.alerts import make_alert
from tests.support import SlackStandIn

# Slack control sequences: anything between < and > is a link, mention or special
# command such as <!channel>. https://api.slack.com/reference/surfaces/formatting
CONTROL_SEQUENCE = re.compile(r"<([^<>]*)>")


def bot(standin: SlackStandIn, **overrides: Any) -> SlackNotifier:
    options: dict[str, Any] = {
        "name": "desk",
        "channel": "newsdesk",
        "token": standin.token,
        "base_url": standin.base_url,
        "timeout": 5.0,
    }
    options.update(overrides)
    return SlackNotifier(**options)


def mrkdwn_texts(body: dict[str, Any]) -> list[str]:
    """Every string Slack will parse as mrkdwn: the fallback and each block's text.

    Header blocks take only plain_text, which Slack shows as written (no mentions, no
    links); that is checked here too."""
    texts = [body["text"]]
    for block in body["blocks"]:
        if block["type"] == "header":
            assert block["text"]["type"] == "plain_text"
            continue
        if "text" in block:
            texts.append(block["text"]["text"])
        texts.extend(element["text"] for element in block.get("elements", []))
    return texts


def headline_of(message: dict[str, Any]) -> str:
    """The first line of the title section: the linked (or bold) title."""
    return str(message["blocks"][1]["text"]["text"].split("\n")[0])


def control_sequences(body: dict[str, Any]) -> list[str]:
    return [m for text in mrkdwn_texts(body) for m in CONTROL_SEQUENCE.findall(text)]


def test_posts_title_link_feed_rule_time_and_bold_marks(slack_standin: SlackStandIn) -> None:
    notifier = bot(slack_standin)

    receipt = notifier.send(make_alert())

    (call,) = slack_standin.calls_to("chat.postMessage")
    assert isinstance(notifier, Notifier)
    assert call.headers["Authorization"] == f"Bearer {slack_standin.token}"
    body = call.body
    assert body["channel"] == "newsdesk"
    header, headline, snippet = body["blocks"]
    assert header["type"] == "header"
    assert header["text"]["text"] == "csto-exit · normal"
    assert headline["text"] == {
        "type": "mrkdwn",
        "text": "*<https://news.example/armenia/csto?id=42&amp;lang=en"
        "|Armenia weighs leaving the CSTO>*\n"
        "*regional-wire* · <!date^1714566600^{date_short_pretty} {time}|2024-05-01 12:30 UTC>",
    }
    assert snippet["text"]["text"] == (
        "Pashinyan expressed his intentions to *withdraw* from the *CSTO* on Friday."
    )
    assert "Armenia weighs leaving the CSTO" in body["text"]
    assert "csto-exit" in body["text"]
    # The receipt names the channel ID Slack answered with and the message's ts.
    assert isinstance(call.response, dict)
    assert receipt.external_id == f"{call.response['channel']}:{call.response['ts']}"
    assert receipt.external_id.startswith(slack_standin.channel_id("newsdesk") + ":")


@pytest.mark.parametrize(
    ("changes", "forbidden"),
    [
        pytest.param({"title": "<!channel> Breaking news"}, "<!channel>", id="channel-ping"),
        pytest.param({"title": "Hey <!here|here>"}, "<!here", id="here-ping"),
        pytest.param({"title": "<@U024BE7LH> look"}, "<@U024BE7LH>", id="user-mention"),
        pytest.param({"title": "<script>alert(1)</script>"}, "<script>", id="script-tag-in-title"),
        pytest.param(
            {"title": "<https://evil.example|Official statement>"},
            "<https://evil.example",
            id="forged-link",
        ),
        pytest.param(
            {"snippet": "Ping <!everyone> now", "marks": ((5, 16),)},
            "<!everyone>",
            id="ping-in-bold-snippet",
        ),
        pytest.param({"rule": "<!channel>"}, "<!channel>", id="ping-in-rule-name"),
        pytest.param({"feed": "<!subteam^S123>"}, "<!subteam", id="ping-in-feed-name"),
    ],
)
def test_feed_text_cannot_ping_or_inject(
    slack_standin: SlackStandIn, changes: dict[str, Any], forbidden: str
) -> None:
    bot(slack_standin).send(make_alert(**changes))

    (call,) = slack_standin.calls_to("chat.postMessage")
    for text in mrkdwn_texts(call.body):
        assert forbidden not in text
    # The only control sequences left are the ones we wrote: the link and the date.
    sequences = control_sequences(call.body)
    assert [s.split("|")[0] for s in sequences] == [
        "https://news.example/armenia/csto?id=42&amp;lang=en",  # fallback text
        "https://news.example/armenia/csto?id=42&amp;lang=en",  # headline
        "!date^1714566600^{date_short_pretty} {time}",  # source line
    ]


@pytest.mark.parametrize(
    ("title", "label"),
    [
        pytest.param("Tom & Jerry", "Tom &amp; Jerry", id="ampersand"),
        pytest.param("Profits > costs", "Profits &gt; costs", id="greater-than"),
        pytest.param("Left | Right", "Left ｜ Right", id="pipe-in-label"),
        pytest.param("Already &amp; escaped", "Already &amp;amp; escaped", id="entity-kept"),
        pytest.param("5 * 3 *bold*", "5 ∗ 3 ∗bold∗", id="asterisk-in-bold-title"),
        pytest.param("Two\r\nlines", "Two lines", id="newline"),
    ],
)
def test_link_label_escaping(title: str, label: str) -> None:
    headline = headline_of(build_slack_message(make_alert(title=title)))
    assert headline == f"*<https://news.example/armenia/csto?id=42&amp;lang=en|{label}>*"


@pytest.mark.parametrize(
    ("link", "headline"),
    [
        pytest.param(
            "https://a.example/x|y>z<w", "*<https://a.example/x%7Cy%3Ez%3Cw|T>*", id="delimiters"
        ),
        pytest.param("javascript:alert(1)", "*T*", id="javascript-not-linked"),
        pytest.param(None, "*T*", id="no-link"),
    ],
)
def test_link_target_is_neutralised(link: str | None, headline: str) -> None:
    message = build_slack_message(make_alert(title="T", link=link))
    assert headline_of(message) == headline
    assert "javascript:" not in message["text"]


@pytest.mark.parametrize(
    ("snippet", "marks", "expected"),
    [
        pytest.param("a*b CSTO c*d", ((4, 8),), "a∗b *CSTO* c∗d", id="stray-asterisks"),
        pytest.param("x *CS*TO* y", ((2, 9),), "x *∗CS∗TO∗* y", id="asterisks-inside-mark"),
        pytest.param("say  CSTO  now", ((3, 11),), "say *CSTO* now", id="mark-edges-trimmed"),
        pytest.param("AT&T <b>", ((0, 4),), "*AT&amp;T* &lt;b&gt;", id="escaped-in-and-out"),
    ],
)
def test_asterisks_in_feed_text_cannot_break_bold(
    snippet: str, marks: tuple[tuple[int, int], ...], expected: str
) -> None:
    blocks = build_slack_message(make_alert(snippet=snippet, marks=marks))["blocks"]
    assert blocks[2]["text"]["text"] == expected
    # Exactly our own two asterisks per bold run remain.
    assert blocks[2]["text"]["text"].count("*") == 2


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("a & b", "a &amp; b", id="amp"),
        pytest.param("<!channel>", "&lt;!channel&gt;", id="angle-brackets"),
        pytest.param("&lt;", "&amp;lt;", id="entity-not-trusted"),
        pytest.param("plain", "plain", id="plain"),
    ],
)
def test_escape_mrkdwn(text: str, expected: str) -> None:
    assert escape_mrkdwn(text) == expected


def test_empty_snippet_leaves_out_its_block() -> None:
    blocks = build_slack_message(make_alert(snippet="", marks=()))["blocks"]
    assert [b["type"] for b in blocks] == ["header", "section"]


def test_base_url_without_trailing_slash_still_reaches_the_api(
    slack_standin: SlackStandIn,
) -> None:
    bot(slack_standin, base_url=slack_standin.base_url.rstrip("/")).send(make_alert())
    assert len(slack_standin.calls_to("chat.postMessage")) == 1


def test_webhook_mode_posts_the_same_message(slack_standin: SlackStandIn) -> None:
    notifier = SlackNotifier(name="hook", webhook_url=slack_standin.webhook_url)

    receipt = notifier.send(make_alert())

    (call,) = slack_standin.calls
    assert call.method == "webhook"
    assert receipt.external_id is None
    assert call.body["blocks"] == build_slack_message(make_alert())["blocks"]
    assert call.body["text"] == build_slack_message(make_alert())["text"]


@pytest.mark.parametrize(
    ("failure", "retryable", "retry_after", "reason"),
    [
        pytest.param(
            {"status": 429, "headers": {"Retry-After": "2"}}, True, 2.0, "rate limited", id="429"
        ),
        pytest.param({"status": 500}, True, None, "HTTP 500", id="500"),
        pytest.param({"status": 503}, True, None, "HTTP 503", id="503"),
        pytest.param({"error": "internal_error"}, True, None, "internal_error", id="internal"),
        pytest.param(
            {"error": "invalid_auth"}, False, None, "invalid_auth — the bot token", id="bad-token"
        ),
        pytest.param({"error": "token_revoked"}, False, None, "token_revoked", id="revoked"),
        pytest.param(
            {"error": "channel_not_found"}, False, None, "channel_not_found —", id="no-channel"
        ),
        pytest.param({"error": "not_in_channel"}, False, None, "/invite", id="not-in-channel"),
        pytest.param({"error": "is_archived"}, False, None, "archived", id="archived"),
        pytest.param({"error": "invalid_blocks"}, False, None, "invalid_blocks", id="blocks"),
        pytest.param({"error": "msg_too_long"}, False, None, "not in the config: report it",
                     id="too-long"),
        pytest.param({"error": "something_new"}, False, None, "something_new", id="unknown-error"),
        pytest.param({"error": "fatal_error"}, True, None, "fatal_error", id="fatal"),
        pytest.param({"status": 429}, True, None, "rate limited", id="429-no-retry-after"),
        pytest.param({"error": "account_inactive"}, False, None, "reinstall", id="inactive"),
        # A body that is not JSON comes from something between us and Slack, or is cut
        # off: with HTTP 200 it failed the alert for good, quoting slack-sdk's "Received
        # a response in a non-JSON format" and pointing at chat.postMessage's errors.
        pytest.param({"status": 200, "body": ""}, True, None, "not JSON", id="empty-200"),
        pytest.param({"status": 200, "body": '{"ok": tr', "headers": {
            "Content-Type": "application/json"}}, True, None, "not JSON", id="cut-json-200"),
        pytest.param({"status": 200, "body": "<html>Sign in to the Wi-Fi</html>", "headers": {
            "Content-Type": "text/html"}}, True, None, "Sign in", id="html-200"),
        pytest.param({"status": 502, "body": "<html><h1>502 Bad Gateway</h1></html>", "headers": {
            "Content-Type": "text/html"}}, True, None, "HTTP 502", id="html-502"),
        pytest.param({"status": 404, "body": "404 page not found"}, False, None,
                     "check `base_url`", id="not-json-404"),
        # JSON, but not Slack's answer: a list, string or number raised AttributeError
        # inside slack-sdk; null and an ok-less object failed the alert for good.
        *(pytest.param({"status": 200, "body": body, "headers": {
            "Content-Type": "application/json"}}, True, None, "not an object", id=name)
          for name, body in [("json-list", "[1, 2]"), ("json-string", '"ok"'),
                             ("json-number", "42")]),
        *(pytest.param({"status": 200, "body": body, "headers": {
            "Content-Type": "application/json"}}, True, None, "without an ok or an error",
            id=name)
          for name, body in [("json-null", "null"), ("not-ok-no-error", '{"ok": false}')]),
    ],
)
def test_api_errors_map_to_notify_error(
    slack_standin: SlackStandIn,
    failure: dict[str, Any],
    retryable: bool,
    retry_after: float | None,
    reason: str,
) -> None:
    slack_standin.fail_next(**failure)

    with pytest.raises(NotifyError) as caught:
        bot(slack_standin).send(make_alert())

    error = caught.value
    assert (error.retryable, error.retry_after) == (retryable, retry_after)
    assert reason in str(error)
    assert str(error).startswith("slack 'desk': ")
    assert slack_standin.token is not None and slack_standin.token not in str(error)
    # slack-sdk's own retries are off: the outbox schedules the next attempt.
    assert len(slack_standin.calls_to("chat.postMessage")) == 1


def test_wrong_token_is_refused_by_the_server_as_invalid_auth(
    slack_standin: SlackStandIn,
) -> None:
    with pytest.raises(NotifyError) as caught:
        bot(slack_standin, token="xoxb-wrong").send(make_alert())
    assert caught.value.retryable is False
    assert "invalid_auth" in str(caught.value)
    assert "xoxb-wrong" not in str(caught.value)


def test_rate_limit_then_success_on_the_next_attempt(slack_standin: SlackStandIn) -> None:
    slack_standin.fail_next(status=429, headers={"Retry-After": "1"}, times=2)
    notifier = bot(slack_standin)
    outcomes: list[float | bool | None] = []
    for _ in range(3):
        try:
            outcomes.append(notifier.send(make_alert()).external_id is not None)
        except NotifyError as exc:
            outcomes.append(exc.retry_after)
    assert outcomes == [1.0, 1.0, True]
    assert len(slack_standin.messages) == 1


def test_unreachable_slack_is_retryable() -> None:
    standin = SlackStandIn().start()
    base_url = standin.base_url
    standin.stop()  # nothing listens on the port now
    notifier = SlackNotifier(name="desk", channel="c", token="t", base_url=base_url, timeout=2)
    with pytest.raises(NotifyError) as caught:
        notifier.send(make_alert())
    assert caught.value.retryable is True
    assert "cannot reach Slack" in str(caught.value)


def test_a_failed_request_is_logged_once_by_wirewatch_not_by_the_sdk(
        slack_standin: SlackStandIn, caplog: pytest.LogCaptureFixture) -> None:
    # The deliverer logs the NotifyError, naming the channel; slack-sdk's own ERROR
    # lines for the same failure ("Failed to send a request ...") were a second,
    # channel-less report of it.
    standin = SlackStandIn().start()
    unreachable = standin.base_url
    standin.stop()
    slack_standin.fail_next(status=500)
    with caplog.at_level(logging.DEBUG):
        for notifier in (SlackNotifier(name="desk", channel="c", token="t",
                                       base_url=unreachable, timeout=2),
                         bot(slack_standin),
                         SlackNotifier(name="hook", webhook_url="http://127.0.0.1:9/hook")):
            with pytest.raises(NotifyError):
                notifier.send(make_alert())
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert loud == [], [r.getMessage() for r in loud]


def test_timeout_is_retryable(slack_standin: SlackStandIn) -> None:
    slack_standin.fail_next(delay=1.0)
    with pytest.raises(NotifyError) as caught:
        bot(slack_standin, timeout=0.2).send(make_alert())
    assert caught.value.retryable is True


@pytest.mark.parametrize(
    ("failure", "retryable", "retry_after", "reason"),
    [
        pytest.param(
            {"status": 429, "headers": {"Retry-After": "3"}, "body": "rate_limited"},
            True,
            3.0,
            "rate limited",
            id="429",
        ),
        pytest.param({"status": 500, "body": "oops"}, True, None, "HTTP 500", id="500"),
        pytest.param(
            {"status": 404, "body": "no_service"}, False, None, "no_service —", id="removed"
        ),
        pytest.param(
            {"status": 403, "body": "invalid_token"}, False, None, "invalid_token", id="bad-url"
        ),
        pytest.param(
            {"status": 400, "body": "invalid_payload"}, False, None, "invalid_payload", id="payload"
        ),
    ],
)
def test_webhook_errors_map_to_notify_error(
    slack_standin: SlackStandIn,
    failure: dict[str, Any],
    retryable: bool,
    retry_after: float | None,
    reason: str,
) -> None:
    slack_standin.fail_next(method="webhook", **failure)
    notifier = SlackNotifier(name="hook", webhook_url=slack_standin.webhook_url)

    with pytest.raises(NotifyError) as caught:
        notifier.send(make_alert())

    assert (caught.value.retryable, caught.value.retry_after) == (retryable, retry_after)
    assert reason in str(caught.value)
    # The webhook URL is a secret; it must not surface in messages that end up in logs.
    assert "standin-webhook-secret" not in str(caught.value)
    assert len(slack_standin.calls) == 1


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({}, id="nothing"),
        pytest.param({"token": "t"}, id="token-without-channel"),
        pytest.param({"channel": "c"}, id="channel-without-token"),
        pytest.param({"token": "t", "channel": "c", "webhook_url": "http://x/"}, id="both"),
    ],
)
def test_incomplete_or_ambiguous_configuration_is_refused(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="slack 'desk'"):
        SlackNotifier(name="desk", **options)
