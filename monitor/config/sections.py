"""The sections of config.yaml, one pydantic model each: ``defaults``, ``concurrency``, a
feed, a rule, each notifier type (Slack, e-mail, console), ``http`` and ``retention``.

A model checks what can be judged within its own section; whatever needs two sections at
once (a rule naming a feed, a lease against a timeout) is left to ``checks``.
"""

from __future__ import annotations

import re
from datetime import timedelta
from email.utils import parseaddr
from typing import Annotated, Any, Literal, Union
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator

from monitor.config.values import (
    MODEL_CONFIG,
    BurstConfig,
    ByteSize,
    Cron,
    Duration,
    QuietHoursConfig,
    TimeZone,
    check_http_url,
    check_one_line,
    empty_as,
    invalid,
)

NOTIFIER_TYPES = ("slack", "email", "console")
TAG_PREFIX = "tag:"


# Slack's special mentions and user/group ids (https://api.slack.com/reference/surfaces/formatting#mentioning-users).
_MENTION = re.compile(r"@here|@channel|@everyone|<@[UW][A-Z0-9]+>|<!subteam\^S[A-Z0-9]+>")


class Defaults(BaseModel):
    """Polling settings that apply to every feed unless the feed sets its own."""

    model_config = MODEL_CONFIG

    interval: Duration = timedelta(minutes=5)
    timeout: Duration = timedelta(seconds=20)
    min_interval: Duration = timedelta(seconds=60)
    max_interval: Duration = timedelta(days=1)
    max_bytes: ByteSize = 10 * 2**20
    alert_after: Duration = timedelta(hours=6)
    #: How long matching waits for a full_text feed's article text before using the feed text.
    full_text_timeout: Duration = timedelta(seconds=30)


class Concurrency(BaseModel):
    model_config = MODEL_CONFIG

    global_: int = Field(default=50, alias="global", ge=1)
    per_host: int = Field(default=2, ge=1)


class FeedConfig(BaseModel):
    model_config = MODEL_CONFIG

    name: str = Field(min_length=1)
    url: str
    interval: Duration | None = None
    min_interval: Duration | None = None
    max_interval: Duration | None = None
    tags: Annotated[list[Annotated[str, Field(min_length=1)]], empty_as(list)] = []
    expect_every: Duration | None = None
    enabled: bool = True
    #: Fetch each new item's link and match rules on the article text too.
    full_text: bool = False
    full_text_timeout: Duration | None = None

    @field_validator("name")
    @classmethod
    def _name_is_not_a_tag(cls, value: str) -> str:
        if value.startswith(TAG_PREFIX):
            raise invalid(f"a feed name cannot start with '{TAG_PREFIX}' (rules use it for tags)")
        return value

    @field_validator("url")
    @classmethod
    def _url_is_http(cls, value: str) -> str:
        return check_http_url(value, what="a feed URL")

    @field_validator("tags")
    @classmethod
    def _tags_are_words(cls, value: list[str]) -> list[str]:
        for tag in value:
            if any(char.isspace() for char in tag):
                raise invalid(f"tag '{tag}' contains whitespace; use - or _ instead")
        return value


class SlackConfig(BaseModel):
    """Slack through a bot token (chat.postMessage) or an incoming webhook."""

    model_config = MODEL_CONFIG

    type: Literal["slack"]
    token: SecretStr | None = None
    channel: str | None = None
    webhook_url: SecretStr | None = None
    #: Slack's API root; tests and GovSlack-style deployments point it elsewhere.
    base_url: str | None = None
    #: Flood control; the defaults apply when the key is absent.
    burst: Annotated[BurstConfig, empty_as(BurstConfig)] = BurstConfig()
    #: Crontab line: hold alerts and send one digest per run instead.
    digest: Cron | None = None
    #: Time zone of `digest` (and of `quiet_hours` unless it names its own).
    timezone: TimeZone | None = None
    quiet_hours: QuietHoursConfig | None = None
    #: Who is mentioned on critical alerts: "@here", "@channel", "<@U123>", "<!subteam^S123>".
    mention: str | None = None
    #: A later source of an alerted story: edit the alert (chat.update), reply in its
    #: thread, or stay quiet (docs/stories.md).
    story_updates: Literal["edit", "thread", "off"] = "thread"

    @field_validator("mention")
    @classmethod
    def _mention_is_slack_syntax(cls, value: str | None) -> str | None:
        if value is not None and not _MENTION.fullmatch(value):
            raise invalid(
                'expected "@here", "@channel", "@everyone", a user id like "<@U0123ABC>" '
                'or a group like "<!subteam^S0123ABC>"',
                show_value=True,
            )
        return value

    @field_validator("base_url")
    @classmethod
    def _base_url_is_http(cls, value: str | None) -> str | None:
        return None if value is None else check_http_url(value, what="base_url")

    @field_validator("webhook_url")
    @classmethod
    def _webhook_is_http(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            parts = urlsplit(value.get_secret_value())
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise invalid("webhook_url must be an http:// or https:// URL")
        return value

    @model_validator(mode="after")
    def _one_way_to_post(self) -> SlackConfig:
        if self.token is not None and self.webhook_url is not None:
            raise invalid("set either token + channel or webhook_url, not both", key="webhook_url")
        if self.token is not None and not self.channel:
            raise invalid(
                'token needs a channel to post to: add `channel: "#news-alerts"` '
                "(a channel name or ID the bot has been invited to)",
                key="token",
            )
        if self.webhook_url is not None and self.channel:
            raise invalid(
                "an incoming webhook posts to the channel it was created for: "
                "remove channel, or use token + channel instead",
                key="channel",
            )
        if self.token is None and self.webhook_url is None:
            if self.channel:
                raise invalid(
                    "channel needs a bot token: add `token: ${SLACK_BOT_TOKEN}`", key="channel"
                )
            raise invalid(
                "needs either token + channel (a bot token) or webhook_url (an incoming webhook)"
            )
        return self


EmailSecurity = Literal["starttls", "ssl", "none"]
_DEFAULT_PORTS: dict[str, int] = {"starttls": 587, "ssl": 465, "none": 25}


def _is_plausible_address(value: str) -> bool:
    _display_name, address = parseaddr(value)
    local, at, domain = address.partition("@")
    return bool(at and local and domain) and not any(c.isspace() for c in address)


class EmailConfig(BaseModel):
    """SMTP delivery. ``port`` defaults by ``security``: 587 starttls, 465 ssl, 25 none."""

    model_config = MODEL_CONFIG

    type: Literal["email"]
    host: str = Field(min_length=1)
    port: int | None = Field(None, ge=1, le=65535)
    security: EmailSecurity = "starttls"
    username: str | None = None
    password: SecretStr | None = None
    from_: str = Field(alias="from")
    to: Annotated[list[str], Field(min_length=1)]
    #: Extra CA bundle (PEM) trusted for this relay, for internal CAs and tests.
    ca_file: str | None = None
    #: Flood control; the defaults apply when the key is absent.
    burst: Annotated[BurstConfig, empty_as(BurstConfig)] = BurstConfig()
    #: Crontab line: hold alerts and send one digest per run instead.
    digest: Cron | None = None
    #: Time zone of `digest` (and of `quiet_hours` unless it names its own).
    timezone: TimeZone | None = None
    quiet_hours: QuietHoursConfig | None = None
    #: A later source of an alerted story: a reply in the alert's thread
    #: (In-Reply-To/References), or nothing. Mail cannot be edited once sent.
    story_updates: Literal["thread", "off"] = "thread"

    @model_validator(mode="before")
    @classmethod
    def _port_from_security(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("port") is None:
            security = data.get("security", "starttls")
            if isinstance(security, str) and security in _DEFAULT_PORTS:
                data = {**data, "port": _DEFAULT_PORTS[security]}
        return data

    @field_validator("from_")
    @classmethod
    def _from_is_an_address(cls, value: str) -> str:
        check_one_line(value)
        if not _is_plausible_address(value):
            raise invalid("expected an e-mail address like desk@example.org", show_value=True)
        return value

    @field_validator("to")
    @classmethod
    def _to_are_addresses(cls, value: list[str]) -> list[str]:
        for index, address in enumerate(value):
            if "\r" in address or "\n" in address or not _is_plausible_address(address):
                raise invalid(
                    f"to[{index}] is not an e-mail address like desk@example.org",
                    show_item=index,
                )
        return value

    @model_validator(mode="after")
    def _credentials_together(self) -> EmailConfig:
        if (self.username is None) != (self.password is None):
            missing = "password" if self.password is None else "username"
            raise invalid(f"username and password go together: add {missing}")
        return self


class ConsoleConfig(BaseModel):
    """Prints alerts to standard output."""

    model_config = MODEL_CONFIG

    type: Literal["console"]
    #: Flood control; the defaults apply when the key is absent.
    burst: Annotated[BurstConfig, empty_as(BurstConfig)] = BurstConfig()
    #: Crontab line: hold alerts and send one digest per run instead.
    digest: Cron | None = None
    #: Time zone of `digest` (and of `quiet_hours` unless it names its own).
    timezone: TimeZone | None = None
    quiet_hours: QuietHoursConfig | None = None


NotifierConfig = Annotated[
    Union[SlackConfig, EmailConfig, ConsoleConfig],  # noqa: UP007 - the discriminator needs Union
    Field(discriminator="type"),
]

Severity = Literal["low", "normal", "high", "critical"]


class RuleConfig(BaseModel):
    model_config = MODEL_CONFIG

    name: str = Field(min_length=1)
    query: str = Field(min_length=1)
    #: Feed names or ``tag:X``; None means every feed.
    feeds: list[str] | None = None
    #: Notifier names; None means every configured notifier.
    notify: list[str] | None = None
    severity: Severity = "normal"
    #: Crontab line: this rule's hits go out as one digest per run, on every channel.
    digest: Cron | None = None
    #: Time zone of `digest`.
    timezone: TimeZone | None = None

    @field_validator("query")
    @classmethod
    def _without_trailing_newline(cls, value: str) -> str:
        # A block scalar (`query: >`) ends in a newline; an error at the end of the query
        # would put its caret on an empty line after it.
        return value.rstrip()

    @field_validator("feeds", "notify")
    @classmethod
    def _not_empty_when_given(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and not value:
            raise invalid("an empty list selects nothing; remove the key to mean 'all'")
        return value


class HttpConfig(BaseModel):
    """The optional listener for /healthz and /metrics."""

    model_config = MODEL_CONFIG

    listen: str

    @field_validator("listen")
    @classmethod
    def _host_and_port(cls, value: str) -> str:
        host_port(value)
        return value


def host_port(value: str) -> tuple[str, int]:
    """``127.0.0.1:9464`` or ``[::1]:9464`` → (host, port); raises a config error otherwise."""
    host, sep, port = value.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise invalid("expected HOST:PORT like 127.0.0.1:9464 or [::1]:9464", show_value=True)
    return host, int(port)


class Retention(BaseModel):
    """How long stored rows are kept; pruned once a day."""

    model_config = MODEL_CONFIG

    items: Duration = timedelta(days=30)
    deliveries: Duration = timedelta(days=90)

    @field_validator("items", "deliveries")
    @classmethod
    def _at_least_a_day(cls, value: timedelta) -> timedelta:
        # Shorter than a day would drop items still in their feeds' documents,
        # which then come back as new and alert again.
        if value < timedelta(days=1):
            raise invalid("must be at least 1d", show_value=True)
        return value
