"""Slack channel: a bot token + channel (chat.postMessage) or an incoming webhook.

This is the only module that imports slack-sdk; its exceptions are translated here into
`NotifyError`. Retries are ours, not slack-sdk's: both clients are built with
`retry_handlers=[]` so a 429 or a dropped connection comes straight back to the outbox,
which schedules the next attempt (honouring Retry-After) instead of a worker thread
sleeping inside the SDK.

Feed text is escaped by Slack's rules
(https://api.slack.com/reference/surfaces/formatting#escaping): only `&`, `<` and `>`
are control characters, so escaping them is what stops a title such as `<!channel>`
from pinging a whole channel or `<https://evil|Official>` from forging a link.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import math
from collections.abc import Callable
from datetime import UTC
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.webhook import WebhookClient

from notifiers.base import (
    Alert,
    Digest,
    Notice,
    NotifyError,
    Receipt,
    format_published,
    group_by_rule,
    one_line,
    other_sources_text,
    safe_link,
    severity_flag,
    split_marked,
    strip_control_chars,
)

__all__ = [
    "SlackNotifier",
    "build_digest_message",
    "build_notice_message",
    "build_slack_message",
    "escape_mrkdwn",
    "mention_token",
    "truncate_words",
]

# Longest title shown; Slack allows 3000 characters in a section's text.
_MAX_TITLE = 300
# Slack's limits: https://api.slack.com/reference/block-kit/blocks
_MAX_HEADER = 150  # header block, plain_text
_MAX_SECTION = 3000  # section block text
# Longest link target kept: with a title (_MAX_TITLE, even fully escaped) and the
# source it stays within a section. News links are a tenth of it.
_MAX_LINK = 1000
_MAX_BLOCKS = 50  # blocks per message
# A digest entry's "Also:" line: a story in fifty outlets must not crowd the others out.
_MAX_DIGEST_ALSO = 500
#: The longest Retry-After taken from Slack, in seconds (68 years, as for feeds).
_LONGEST_RETRY_AFTER = float(2**31)
# Slack asks for no more than one message per second per channel:
# https://api.slack.com/apis/rate-limits#posting-messages
MIN_INTERVAL = 1.0



class _HandledHere(logging.Filter):
    """slack-sdk logs its own ERROR for every failed request ("Failed to send a request
    to Slack API server") before raising; the exception reaches this module, and the
    deliverer logs it once, naming the channel and the fix. Its debug lines stay."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno < logging.WARNING


_SDK_LOG = logging.getLogger("wirewatch.slack_sdk")
_SDK_LOG.addFilter(_HandledHere())

# Mentions as written in the config, and the token Slack needs in message text.
_SPECIAL_MENTIONS = {"@here": "<!here>", "@channel": "<!channel>", "@everyone": "<!everyone>"}

# `*` inside a bold run would end the bold early; U+2217 ASTERISK OPERATOR looks the same.
_ASTERISK_LOOKALIKE = "\u2217"
# A `|` in a link label is fine for Slack's parser after the first one, but older clients
# and the fallback text split on it; U+FF5C FULLWIDTH VERTICAL LINE reads the same.
_PIPE_LOOKALIKE = "\uff5c"

# Slack "error" codes after which retrying cannot help, each with the fix to tell the
# operator. https://api.slack.com/methods/chat.postMessage#errors
_OUR_FAULT = ("a fault in how wirewatch builds messages, not in the config: report it "
              "with the alert's rule and item title")

_PERMANENT_ERRORS: dict[str, str] = {
    # The notifier does not know which variable its token came from: point at the key.
    "invalid_auth": "the bot token is wrong or revoked; check this notifier's `token` in "
    "the config and the environment variable it names",
    "not_authed": "no token was sent; set this notifier's `token` in the config",
    "account_inactive": "the bot's user or workspace is deactivated; reinstall the app",
    "token_revoked": "the token was revoked; reinstall the app and update the token",
    "token_expired": "the token expired; rotate it and update the token",
    "no_permission": "the token lacks permission; add the chat:write scope",
    "missing_scope": "the token lacks a scope; add chat:write and reinstall the app",
    "not_allowed_token_type": "use a bot token (xoxb-...), not a user or app token",
    "channel_not_found": "the channel does not exist or the bot cannot see it; "
    "check `channel` (use the channel ID) and invite the bot",
    "not_in_channel": "the bot is not a member of the channel; /invite the bot there",
    "is_archived": "the channel is archived; unarchive it or choose another channel",
    "restricted_action": "the workspace does not allow the bot to post there",
    "restricted_action_read_only_channel": "the channel is read-only for the bot",
    # wirewatch caps every part of a message it builds, so these are its own fault,
    # not the operator's: nothing in the config fixes them.
    "msg_too_long": "the message is too long for Slack; " + _OUR_FAULT,
    "invalid_blocks": "Slack rejected the message layout; " + _OUR_FAULT,
    "invalid_blocks_format": "Slack rejected the message layout; " + _OUR_FAULT,
    "too_many_attachments": "Slack rejected the message layout; " + _OUR_FAULT,
    "invalid_arguments": "Slack rejected the request arguments; " + _OUR_FAULT,
    "team_access_not_granted": "the token has no access to this workspace",
    "ekm_access_denied": "the workspace's encryption keys deny access",
}

# "ok": false codes that mean Slack itself had trouble: try again later.
_TRANSIENT_ERRORS = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)

# Incoming webhooks answer in plain text; these bodies name a setup problem.
# https://api.slack.com/messaging/webhooks#handling_errors
_WEBHOOK_FIXES: dict[str, str] = {
    "invalid_token": "the webhook URL is wrong or revoked; create a new one",
    "no_service": "the webhook is disabled or removed; create a new one",
    "no_service_id": "the webhook URL is incomplete; copy it again",
    "no_team": "the webhook's workspace is gone; create a new webhook",
    "team_disabled": "the workspace is disabled",
    "channel_not_found": "the webhook's channel is gone; create a new webhook",
    "channel_is_archived": "the webhook's channel is archived",
    "action_prohibited": "an admin restricted posting to that channel",
    "posting_to_general_channel_denied": "only admins may post to that channel",
    "invalid_payload": "Slack rejected the message layout",
    "user_not_found": "the webhook's user is gone; create a new webhook",
}


def escape_mrkdwn(text: str) -> str:
    """Escape Slack's three control characters; everything else is shown as written."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _bold(text: str) -> str:
    """`*text*` with escaping, and no `*` inside that could end the bold early."""
    return f"*{escape_mrkdwn(text.replace('*', _ASTERISK_LOOKALIKE))}*"


def _link_target(url: str) -> str:
    """A URL made safe inside `<...|...>`: percent-encode the characters that delimit it.

    `|` would end the URL and start the label, `>` would close the link; `&` is
    entity-escaped as Slack expects in message text.
    """
    url = url.replace("|", "%7C").replace("<", "%3C").replace(">", "%3E")
    return url.replace("&", "&amp;")


def _link_label(title: str) -> str:
    return escape_mrkdwn(title.replace("|", _PIPE_LOOKALIKE))


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def truncate_words(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters on a word boundary, with an ellipsis.

    A single word longer than the budget (a URL, say) is cut mid-word rather than
    dropped whole.
    """
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    # Drop the partial word, unless the cut already falls at the end of a word.
    if not text[limit - 1].isspace() and space > limit // 2:
        cut = cut[:space]
    return cut.rstrip() + "…"


def _fit(render: Callable[[int], str], length: int, limit: int) -> str:
    """Render feed text truncated so that the *escaped* result fits ``limit``.

    Escaping can lengthen text (``&`` becomes ``&amp;``), so truncating after escaping
    could cut an entity or a bold run in half; instead the raw text is cut shorter until
    its rendering fits.
    """
    budget = length
    while True:
        rendered = render(budget)
        if len(rendered) <= limit or budget <= 1:
            return rendered[:limit]
        budget = max(1, min(budget - 1, budget * limit // len(rendered)))


def mention_token(mention: str) -> str:
    """"@here" → "<!here>"; ids already in Slack's syntax ("<@U123>") stay as written."""
    return _SPECIAL_MENTIONS.get(mention, mention)


def _snippet_mrkdwn(alert: Alert, length: int | None = None) -> str:
    """The snippet with matched spans in bold, cut to ``length`` raw characters on a word
    boundary.

    Every `*` from the feed becomes a lookalike, not only those inside the marks: a stray
    `*` just before one of our bold runs could otherwise pair with its opening `*`.
    """
    snippet = alert.snippet
    if length is not None and len(snippet) > length:
        snippet = truncate_words(snippet, length)
    out: list[str] = []
    for piece, marked in split_marked(snippet, alert.marks):
        if marked:
            out.append(_bold(piece))
        else:
            out.append(escape_mrkdwn(piece.replace("*", _ASTERISK_LOOKALIKE)))
    return one_line("".join(out))


def _published_mrkdwn(alert: Alert) -> str:
    """Slack's date token shows the time in each reader's own time zone; the text after
    `|` is the fallback for clients that cannot."""
    fallback = format_published(alert.published_at)
    if alert.published_at is None:
        return fallback
    published = alert.published_at
    if published.tzinfo is None:
        published = published.replace(tzinfo=UTC)
    epoch = math.floor(published.timestamp())
    return f"<!date^{epoch}^{{date_short_pretty}} {{time}}|{fallback}>"


def _headline(title: str, link: str | None) -> str:
    target = _fitting_link_target(link) if link else None
    if target:
        label = _link_label(title).replace("*", _ASTERISK_LOOKALIKE)
        return f"*<{target}|{label}>*"
    return _bold(title)


def _fitting_link_target(link: str) -> str | None:
    """``link`` as a link target short enough to share a section with its title.

    A section over 3,000 characters makes Slack refuse the whole message, and cutting
    the text would cut the link's markup. Links that long carry their bulk in the
    query (tracking and session parameters): without it the link usually fits and
    still leads to the page. Otherwise the title is shown without a link.
    """
    target = _link_target(link)
    if len(target) <= _MAX_LINK:
        return target
    parts = urlsplit(link)
    target = _link_target(urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")))
    return target if len(target) <= _MAX_LINK else None


def build_slack_message(alert: Alert, *, mention: str | None = None) -> dict[str, Any]:
    """`text` (notification fallback) and Block Kit `blocks` for one alert.

    Blocks: a header with the rule and severity; a section with the linked title, the
    source and the published time; the snippet with matched terms in bold; a context
    line naming other sources of the same story, when there are any. Every feed string
    is escaped, and every block kept within Slack's limits. ``mention`` ("@here",
    "<@U123>") is put in front of critical alerts.
    """
    title = truncate_words(one_line(alert.title), _MAX_TITLE) or "(no title)"
    link = safe_link(alert.link)
    rule = one_line(alert.rule)
    feed = one_line(alert.feed)
    severity = one_line(alert.severity)
    ping = mention_token(mention) + " " if mention and alert.severity == "critical" else ""

    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            # plain_text is shown as written: no escaping, and nothing in it can ping.
            "text": {"type": "plain_text", "text": truncate_words(f"{rule} · {severity}",
                                                                  _MAX_HEADER), "emoji": False},
        },
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": _shorten(
                    f"{ping}{_headline(title, link)}\n"
                    f"{_bold(feed)} · {_published_mrkdwn(alert)}",
                    _MAX_SECTION,
                ),
            },
        },
    ]
    snippet = _fit(lambda n: _snippet_mrkdwn(alert, n), len(alert.snippet), _MAX_SECTION)
    if snippet:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": snippet}})
    if alert.other_sources:
        others = escape_mrkdwn(other_sources_text(alert))
        blocks.append(
            {
                "type": "context",
                "elements": [
                    {"type": "mrkdwn", "text": truncate_words(f"Also: {others}", _MAX_SECTION)}
                ],
            }
        )

    # The fallback shows in notifications and screen readers; Slack parses it as mrkdwn
    # too, so it is escaped the same way.
    text = f"{ping}[{escape_mrkdwn(rule)}] {escape_mrkdwn(title)} ({escape_mrkdwn(feed)})"
    if link:
        text += f" <{_link_target(link)}>"
    return {"text": text, "blocks": blocks}


def _also_mrkdwn(alert: Alert, limit: int) -> str:
    """"Also: DW (first), Reuters (+4 min)", escaped, within ``limit`` characters."""
    others = other_sources_text(alert)
    return _fit(lambda n: "Also: " + escape_mrkdwn(truncate_words(others, n)), len(others),
                limit)


def _digest_line(alert: Alert) -> str:
    title = truncate_words(one_line(alert.title), _MAX_TITLE) or "(no title)"
    line = (f"• {severity_flag(alert)}{_headline(title, safe_link(alert.link))} · "
            f"{escape_mrkdwn(one_line(alert.feed))}")
    if alert.other_sources:
        # The story's other sources as of sending, as an immediate alert's context line.
        line += "\n      " + _also_mrkdwn(alert, _MAX_DIGEST_ALSO)
    return line


def build_digest_message(digest: Digest) -> dict[str, Any]:
    """One message listing many alerts, grouped by rule, titles as links.

    Within 50 blocks and 3,000 characters a section; what does not fit is counted in a
    closing line ("… and 12 more").
    """
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": truncate_words(one_line(digest.title),
                                                                  _MAX_HEADER), "emoji": False},
        }
    ]
    shown = 0
    room = _MAX_BLOCKS - 2  # the header, and a closing line if anything is left out
    for rule, alerts in group_by_rule(digest.alerts):
        lines = [f"*{escape_mrkdwn(one_line(rule))}* ({len(alerts)})"]
        for alert in alerts:
            # A line alone must fit a section: Slack refuses the whole message otherwise.
            line = _shorten(_digest_line(alert), _MAX_SECTION)
            if sum(len(x) + 1 for x in lines) + len(line) > _MAX_SECTION:
                if len(blocks) - 1 >= room:
                    break
                blocks.append({"type": "section", "text": {"type": "mrkdwn",
                                                           "text": "\n".join(lines)}})
                lines = []
            lines.append(line)
            shown += 1
        if lines and len(blocks) - 1 < room:
            blocks.append({"type": "section", "text": {"type": "mrkdwn",
                                                       "text": "\n".join(lines)}})
        else:
            shown -= len([x for x in lines if x.startswith("•")])
        if len(blocks) - 1 >= room:
            break
    left = len(digest.alerts) - shown
    if left > 0:
        blocks.append({"type": "context",
                       "elements": [{"type": "mrkdwn", "text": f"… and {left} more"}]})
    return {"text": escape_mrkdwn(one_line(digest.title)), "blocks": blocks}


def build_notice_message(notice: Notice) -> dict[str, Any]:
    """A plain message for the operators: the title in bold, then the body as written."""
    title = _shorten(one_line(notice.title), _MAX_TITLE) or "(no title)"
    body = escape_mrkdwn(strip_control_chars(notice.body).strip())
    text = _bold(title) + (f"\n{body}" if body else "")
    return {"text": _shorten(text, 3000)}


def _header(headers: Any, name: str) -> str | None:
    if not headers:
        return None
    for key, value in dict(headers).items():
        if key.lower() == name.lower():
            return str(value[0] if isinstance(value, list) else value)
    return None


def _retry_after(headers: Any) -> float | None:
    """Retry-After in seconds (Slack sends delta-seconds, RFC 9110 §10.2.3)."""
    value = _header(headers, "Retry-After")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    if not math.isfinite(seconds):
        return None
    # Capped as a feed's Retry-After is: "1e20" overflowed the date arithmetic of the
    # retry, which then escaped the delivery pass and left the row claimed.
    return min(max(0.0, seconds), _LONGEST_RETRY_AFTER)


class SlackNotifier:
    """Posts alerts to Slack with a bot token + channel, or through an incoming webhook.

    `base_url` points the Web API client elsewhere (tests, GovSlack); it is the API root
    such as "https://slack.com/api/". The token and webhook URL are secrets: they never
    appear in messages or logs.
    """

    def __init__(
        self,
        *,
        name: str,
        channel: str | None = None,
        token: str | None = None,
        webhook_url: str | None = None,
        base_url: str | None = None,
        timeout: float = 10.0,
        mention: str | None = None,
    ) -> None:
        self.name = name
        self.channel = channel
        self.mention = mention
        # Pacing is per Slack channel: two notifiers posting to one channel share it.
        # The webhook URL is a secret, so only a hash of it names the key.
        where = f"{base_url or ''}|{channel}" if channel else f"webhook|{webhook_url}"
        self.pacing_key = "slack:" + hashlib.sha256(where.encode()).hexdigest()[:16]
        self.min_interval = MIN_INTERVAL
        if webhook_url and (token or channel):
            raise ValueError(
                f"slack {name!r}: give either `webhook_url`, or `token` and `channel`, not both"
            )
        if not webhook_url and not (token and channel):
            raise ValueError(f"slack {name!r}: needs `token` and `channel`, or `webhook_url`")
        self._web: WebClient | None = None
        self._webhook: WebhookClient | None = None
        # slack-sdk types its timeout as int, but passes it to urllib, which takes float
        # seconds; keep sub-second timeouts as given.
        sdk_timeout: Any = timeout
        if webhook_url:
            self._webhook = WebhookClient(url=webhook_url, timeout=sdk_timeout, retry_handlers=[],
                                          logger=_SDK_LOG)
        else:
            root = base_url or WebClient.BASE_URL
            # The SDK joins method names onto the root with urljoin, which drops the last
            # path segment unless the root ends with "/" ("/api" + "chat.postMessage"
            # would become "/chat.postMessage").
            if not root.endswith("/"):
                root += "/"
            self._web = WebClient(
                token=token, base_url=root, timeout=sdk_timeout, retry_handlers=[],
                logger=_SDK_LOG,
            )

    def send(self, alert: Alert) -> Receipt:
        return self._post(build_slack_message(alert, mention=self.mention))

    def send_digest(self, digest: Digest) -> Receipt:
        return self._post(build_digest_message(digest))

    def send_notice(self, notice: Notice) -> Receipt:
        return self._post(build_notice_message(notice))

    def update(self, original: str, alert: Alert) -> Receipt:
        """Edit the message ``original`` ("channel:ts", the receipt of `send`) so it
        shows ``alert`` as it reads now (`chat.update`): a story's later sources."""
        message = build_slack_message(alert, mention=None)
        return self._post({**message, **self._target(original, "update_ts")})

    def reply(self, original: str, text: str) -> Receipt:
        """Reply ``text`` (plain, escaped here) in the thread of ``original`` ("channel:ts")."""
        message = {"text": escape_mrkdwn(one_line(text))}
        return self._post({**message, **self._target(original, "thread_ts")})

    def _target(self, original: str, key: str) -> dict[str, str]:
        channel, _, ts = original.rpartition(":")
        if self._web is None or not channel or not ts:
            raise NotifyError(
                f"slack {self.name!r}: cannot edit or reply to message {original!r}; an "
                "incoming webhook gives no message id: use token + channel, or "
                "story_updates: off",
                retryable=False,
            )
        return {"channel": channel, key: ts}

    def _post(self, message: dict[str, Any]) -> Receipt:
        try:
            if self._webhook is not None:
                return self._send_webhook(message)
            return self._send_web(message)
        except NotifyError:
            raise
        except SlackApiError as exc:
            raise self._api_error(exc) from exc
        except (OSError, http.client.HTTPException) as exc:
            # Connection refused/reset, DNS failure, timeout (TimeoutError is an OSError):
            # Slack may be fine a moment later.
            raise NotifyError(
                f"slack {self.name!r}: cannot reach Slack ({type(exc).__name__}: {exc}); "
                "will retry",
                retryable=True,
            ) from exc
        except SlackClientError as exc:
            raise NotifyError(
                f"slack {self.name!r}: the request could not be made ({exc})", retryable=False
            ) from exc
        except AttributeError as exc:
            # slack-sdk reads any JSON answer as an object: a list, string or number
            # (from something in between, never from Slack) fails inside its check.
            if not _raised_in_slack_sdk(exc):
                raise
            raise NotifyError(
                f"slack {self.name!r}: Slack answered with JSON that is not an object "
                "(not Slack's API answer; check `base_url` and any proxy); will retry",
                retryable=True,
            ) from exc

    def _send_web(self, message: dict[str, Any]) -> Receipt:
        assert self._web is not None
        if "update_ts" in message:
            response = self._web.chat_update(
                channel=message["channel"], ts=message["update_ts"], text=message["text"],
                blocks=message.get("blocks"),
            )
        else:
            thread = {"thread_ts": message["thread_ts"]} if "thread_ts" in message else {}
            response = self._web.chat_postMessage(
                channel=message.get("channel") or self.channel or "",
                text=message["text"],
                blocks=message.get("blocks"),
                # Alerts stay compact: no preview cards from untrusted pages.
                unfurl_links=False,
                unfurl_media=False,
                **thread,
            )
        channel_id = response.get("channel") or self.channel
        ts = response.get("ts")
        return Receipt(external_id=f"{channel_id}:{ts}" if ts else None)

    def _send_webhook(self, message: dict[str, Any]) -> Receipt:
        assert self._webhook is not None
        response = self._webhook.send(
            text=message["text"],
            blocks=message.get("blocks"),
            unfurl_links=False,
            unfurl_media=False,
        )
        status = response.status_code
        body = (response.body or "").strip()
        if status == 200:
            return Receipt(external_id=None)
        reason = body[:200] or f"HTTP {status}"
        if status == 429:
            raise NotifyError(
                f"slack {self.name!r}: rate limited by the webhook; will retry",
                retryable=True,
                retry_after=_retry_after(response.headers),
            )
        if status >= 500:
            raise NotifyError(
                f"slack {self.name!r}: Slack answered HTTP {status} ({reason}); will retry",
                retryable=True,
            )
        fix = _WEBHOOK_FIXES.get(body, "check the webhook URL (SLACK_WEBHOOK_URL)")
        raise NotifyError(f"slack {self.name!r}: {reason} — {fix}", retryable=False)

    def _api_error(self, exc: SlackApiError) -> NotifyError:
        response = exc.response
        status = response.status_code
        data = response.data if isinstance(response.data, dict) else {}
        error = str(data.get("error") or f"HTTP {status}")
        if status == 429 or error == "ratelimited":
            return NotifyError(
                f"slack {self.name!r}: rate limited; will retry",
                retryable=True,
                retry_after=_retry_after(response.headers),
            )
        if status >= 500 or error in _TRANSIENT_ERRORS:
            # A 5xx from a proxy has an HTML body the SDK turns into a long sentence;
            # only a real Slack error code is worth repeating.
            detail = f"HTTP {status}, {error}" if error.isidentifier() else f"HTTP {status}"
            return NotifyError(
                f"slack {self.name!r}: Slack is having trouble ({detail}); will retry",
                retryable=True,
            )
        if status == 200 and not data.get("error"):
            # Slack names the error of every refused call; an answer of 200 without one
            # (JSON null, {"ok": false}) is garbled on the way, like a body cut off.
            return NotifyError(
                f"slack {self.name!r}: Slack answered HTTP 200 without an ok or an error "
                "code; will retry",
                retryable=True,
            )
        if not error.isidentifier() and not error.startswith("HTTP "):
            # Slack's error codes are identifiers; anything else is slack-sdk's note on
            # a body that is not JSON ("Received a response in a non-JSON format: ..."):
            # an answer from something in between (a proxy, a captive portal), or one
            # cut off on the way.
            excerpt = error.partition(":")[2].strip() or "empty"
            if status == 200 or status == 408:
                return NotifyError(
                    f"slack {self.name!r}: Slack answered HTTP {status} with a body that is "
                    f"not JSON ({excerpt}); will retry",
                    retryable=True,
                )
            return NotifyError(
                f"slack {self.name!r}: HTTP {status} with a body that is not JSON ({excerpt}) "
                "— not Slack's API: check `base_url` and any proxy between wirewatch and Slack",
                retryable=False,
            )
        fix = _PERMANENT_ERRORS.get(error, "see https://api.slack.com/methods/chat.postMessage")
        return NotifyError(f"slack {self.name!r}: {error} — {fix}", retryable=False)

    def close(self) -> None:
        """Both clients open one connection per request; nothing is held open."""


def _raised_in_slack_sdk(exc: BaseException) -> bool:
    """Whether ``exc`` came from slack-sdk's own code, not from wirewatch's."""
    trace = exc.__traceback__
    while trace is not None and trace.tb_next is not None:
        trace = trace.tb_next
    return trace is not None and "slack_sdk" in trace.tb_frame.f_code.co_filename
