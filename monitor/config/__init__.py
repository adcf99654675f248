"""The wirewatch configuration: pydantic models of config.yaml, validated once at load.

``load_config(text, source=..., environ=...)`` either returns a complete, frozen ``Config``
whose rules are already compiled, or raises ``ConfigError`` listing *every* problem found,
in file order, each with its file, line and key path::

    config.yaml:14: rules[1].query: expected a term after AND
    config.yaml:20: feeds[3]: missing required key 'url'

The loader never touches files or the process environment (only ``cli.py`` does); it is
given the text, a name for it and an environment mapping.

Exceptions::

    ConfigError          .problems: list[ConfigProblem], one per line of str()

Messages never repeat the value of a secret field (``token``, ``password``,
``webhook_url``, ``database``) nor any value that took text from the environment.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from email.utils import parseaddr
from typing import Annotated, Any, Literal, Union
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from monitor.durations import DURATION_HINT, DurationError, format_duration, parse_duration
from monitor.quiet import parse_clock
from monitor.scheduler import check_cron
from monitor.yamlsource import Path, read_yaml
from rules import RuleError, RuleSet, RuleSetError, RuleSpec, compile_rules

__all__ = [
    "CONSOLE_NOTIFIER",
    "Concurrency",
    "Config",
    "ConfigError",
    "ConfigProblem",
    "ConsoleConfig",
    "Defaults",
    "EmailConfig",
    "FeedConfig",
    "HttpConfig",
    "NotifierConfig",
    "Retention",
    "RuleConfig",
    "SlackConfig",
    "host_port",
    "load_config",
]

#: Name of the notifier that runs when `notifiers:` is empty or missing.
CONSOLE_NOTIFIER = "console"
NOTIFIER_TYPES = ("slack", "email", "console")
SECRET_KEYS = frozenset({"token", "password", "webhook_url", "database"})
TAG_PREFIX = "tag:"


# --------------------------------------------------------------------------- problems


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong with a config file, pointing at where it is written."""

    source: str
    line: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = self.source if self.line is None else f"{self.source}:{self.line}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class ConfigError(Exception):
    """The configuration is not valid; ``problems`` lists every problem, in file order."""

    def __init__(self, problems: Iterable[ConfigProblem]) -> None:
        self.problems: list[ConfigProblem] = list(problems)
        super().__init__(str(self))

    def __str__(self) -> str:
        return "\n".join(str(problem) for problem in self.problems)


# --------------------------------------------------------------------------- value types


def _custom(message: str, **context: Any) -> PydanticCustomError:
    # Our own error type: the translator below uses the message as written.
    return PydanticCustomError("wirewatch", message, context or None)


def _read_duration(value: object) -> object:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, str):
        try:
            return parse_duration(value)
        except DurationError as exc:
            raise _custom(str(exc), show_value=True) from None
    raise _custom(DURATION_HINT, show_value=True)


Duration = Annotated[timedelta, BeforeValidator(_read_duration)]

_SIZE = re.compile(r"(\d+)\s*(B|KB|KiB|MB|MiB|GB|GiB)?")
_SIZE_UNITS = {
    None: 1,
    "B": 1,
    "KB": 10**3,
    "KiB": 2**10,
    "MB": 10**6,
    "MiB": 2**20,
    "GB": 10**9,
    "GiB": 2**30,
}
_SIZE_HINT = "expected a size in bytes like 10485760 or 10MiB"


def _read_size(value: object) -> object:
    if isinstance(value, bool):
        raise _custom(_SIZE_HINT, show_value=True)
    if isinstance(value, int):
        return value
    if isinstance(value, str) and (match := _SIZE.fullmatch(value.strip())):
        return int(match.group(1)) * _SIZE_UNITS[match.group(2)]
    raise _custom(_SIZE_HINT, show_value=True)


ByteSize = Annotated[int, BeforeValidator(_read_size), Field(ge=1)]


def _empty_as(default: Any) -> BeforeValidator:
    """`notifiers:` with nothing after it means "none", not a type error."""
    return BeforeValidator(lambda value: default() if value is None else value)


def _check_http_url(value: str, *, what: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise _custom(f"{what} must be an http:// or https:// URL", show_value=True)
    return value


def _check_one_line(value: str) -> str:
    # CR/LF in a header value (User-Agent, From, To) would let config text forge headers.
    if "\r" in value or "\n" in value:
        raise _custom("must be on one line")
    return value


_MODEL = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, hide_input_in_errors=True)


def _check_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise _custom(
            "unknown time zone; use an IANA name like Europe/Berlin or UTC", show_value=True
        ) from None
    return value


def _check_cron_line(value: str) -> str:
    try:
        check_cron(value, "UTC")
    except ValueError as exc:
        raise _custom(
            f'expected a crontab line of 5 fields like "0 8 * * *" ({exc})', show_value=True
        ) from None
    return value


def _check_clock(value: str) -> str:
    try:
        parse_clock(value)
    except ValueError:
        raise _custom("expected a time of day like 22:00", show_value=True) from None
    return value


#: An IANA time zone name ("Europe/Berlin").
TimeZone = Annotated[str, AfterValidator(_check_timezone)]
#: A 5-field crontab line ("0 8 * * *"), read by APScheduler's CronTrigger.
Cron = Annotated[str, AfterValidator(_check_cron_line)]
ClockTime = Annotated[str, AfterValidator(_check_clock)]

# Slack's special mentions and user/group ids (https://api.slack.com/reference/surfaces/formatting#mentioning-users).
_MENTION = re.compile(r"@here|@channel|@everyone|<@[UW][A-Z0-9]+>|<!subteam\^S[A-Z0-9]+>")


class BurstConfig(BaseModel):
    """Flood control: past ``max`` alerts of one rule within ``window``, one summary."""

    model_config = _MODEL

    max: int = Field(default=10, ge=1)
    window: Duration = timedelta(minutes=10)


class QuietHoursConfig(BaseModel):
    """A daily window when only critical alerts go out; the rest follow as one digest."""

    model_config = _MODEL

    from_: ClockTime = Field(alias="from")
    to: ClockTime
    timezone: TimeZone | None = None


# --------------------------------------------------------------------------- sections


class Defaults(BaseModel):
    """Polling settings that apply to every feed unless the feed sets its own."""

    model_config = _MODEL

    interval: Duration = timedelta(minutes=5)
    timeout: Duration = timedelta(seconds=20)
    min_interval: Duration = timedelta(seconds=60)
    max_interval: Duration = timedelta(days=1)
    max_bytes: ByteSize = 10 * 2**20
    alert_after: Duration = timedelta(hours=6)
    #: How long matching waits for a full_text feed's article text before using the feed text.
    full_text_timeout: Duration = timedelta(seconds=30)


class Concurrency(BaseModel):
    model_config = _MODEL

    global_: int = Field(default=50, alias="global", ge=1)
    per_host: int = Field(default=2, ge=1)


class FeedConfig(BaseModel):
    model_config = _MODEL

    name: str = Field(min_length=1)
    url: str
    interval: Duration | None = None
    min_interval: Duration | None = None
    max_interval: Duration | None = None
    tags: Annotated[list[Annotated[str, Field(min_length=1)]], _empty_as(list)] = []
    expect_every: Duration | None = None
    enabled: bool = True
    #: Fetch each new item's link and match rules on the article text too.
    full_text: bool = False
    full_text_timeout: Duration | None = None

    @field_validator("name")
    @classmethod
    def _name_is_not_a_tag(cls, value: str) -> str:
        if value.startswith(TAG_PREFIX):
            raise _custom(f"a feed name cannot start with '{TAG_PREFIX}' (rules use it for tags)")
        return value

    @field_validator("url")
    @classmethod
    def _url_is_http(cls, value: str) -> str:
        return _check_http_url(value, what="a feed URL")

    @field_validator("tags")
    @classmethod
    def _tags_are_words(cls, value: list[str]) -> list[str]:
        for tag in value:
            if any(char.isspace() for char in tag):
                raise _custom(f"tag '{tag}' contains whitespace; use - or _ instead")
        return value


class SlackConfig(BaseModel):
    """Slack through a bot token (chat.postMessage) or an incoming webhook."""

    model_config = _MODEL

    type: Literal["slack"]
    token: SecretStr | None = None
    channel: str | None = None
    webhook_url: SecretStr | None = None
    #: Slack's API root; tests and GovSlack-style deployments point it elsewhere.
    base_url: str | None = None
    #: Flood control; the defaults apply when the key is absent.
    burst: Annotated[BurstConfig, _empty_as(BurstConfig)] = BurstConfig()
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
            raise _custom(
                'expected "@here", "@channel", "@everyone", a user id like "<@U0123ABC>" '
                'or a group like "<!subteam^S0123ABC>"',
                show_value=True,
            )
        return value

    @field_validator("base_url")
    @classmethod
    def _base_url_is_http(cls, value: str | None) -> str | None:
        return None if value is None else _check_http_url(value, what="base_url")

    @field_validator("webhook_url")
    @classmethod
    def _webhook_is_http(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            parts = urlsplit(value.get_secret_value())
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise _custom("webhook_url must be an http:// or https:// URL")
        return value

    @model_validator(mode="after")
    def _one_way_to_post(self) -> SlackConfig:
        if self.token is not None and self.webhook_url is not None:
            raise _custom("set either token + channel or webhook_url, not both", key="webhook_url")
        if self.token is not None and not self.channel:
            raise _custom(
                'token needs a channel to post to: add `channel: "#news-alerts"` '
                "(a channel name or ID the bot has been invited to)",
                key="token",
            )
        if self.webhook_url is not None and self.channel:
            raise _custom(
                "an incoming webhook posts to the channel it was created for: "
                "remove channel, or use token + channel instead",
                key="channel",
            )
        if self.token is None and self.webhook_url is None:
            if self.channel:
                raise _custom(
                    "channel needs a bot token: add `token: ${SLACK_BOT_TOKEN}`", key="channel"
                )
            raise _custom(
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

    model_config = _MODEL

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
    burst: Annotated[BurstConfig, _empty_as(BurstConfig)] = BurstConfig()
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
        _check_one_line(value)
        if not _is_plausible_address(value):
            raise _custom("expected an e-mail address like desk@example.org", show_value=True)
        return value

    @field_validator("to")
    @classmethod
    def _to_are_addresses(cls, value: list[str]) -> list[str]:
        for index, address in enumerate(value):
            if "\r" in address or "\n" in address or not _is_plausible_address(address):
                raise _custom(
                    f"to[{index}] is not an e-mail address like desk@example.org",
                    show_item=index,
                )
        return value

    @model_validator(mode="after")
    def _credentials_together(self) -> EmailConfig:
        if (self.username is None) != (self.password is None):
            missing = "password" if self.password is None else "username"
            raise _custom(f"username and password go together: add {missing}")
        return self


class ConsoleConfig(BaseModel):
    """Prints alerts to standard output."""

    model_config = _MODEL

    type: Literal["console"]
    #: Flood control; the defaults apply when the key is absent.
    burst: Annotated[BurstConfig, _empty_as(BurstConfig)] = BurstConfig()
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
    model_config = _MODEL

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
            raise _custom("an empty list selects nothing; remove the key to mean 'all'")
        return value


class HttpConfig(BaseModel):
    """The optional listener for /healthz and /metrics."""

    model_config = _MODEL

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
        raise _custom("expected HOST:PORT like 127.0.0.1:9464 or [::1]:9464", show_value=True)
    return host, int(port)


class Retention(BaseModel):
    """How long stored rows are kept; pruned once a day."""

    model_config = _MODEL

    items: Duration = timedelta(days=30)
    deliveries: Duration = timedelta(days=90)

    @field_validator("items", "deliveries")
    @classmethod
    def _at_least_a_day(cls, value: timedelta) -> timedelta:
        # Shorter than a day would drop items still in their feeds' documents,
        # which then come back as new and alert again.
        if value < timedelta(days=1):
            raise _custom("must be at least 1d", show_value=True)
        return value


# --------------------------------------------------------------------------- the config


class Config(BaseModel):
    """A validated configuration. Build it with ``load_config``.

    ``ruleset`` holds the compiled rules; ``warnings`` lists rendered warnings
    (``config.yaml:31: rules[2].query: <message>``) that do not stop wirewatch.
    """

    model_config = _MODEL

    database: str = Field("sqlite:///wirewatch.db", repr=False)
    #: How long a claimed feed stays leased to one instance (docs/scaling.md);
    #: None: twice ``defaults.timeout`` plus a minute (Poller.feed_lease).
    feed_lease: Duration | None = None
    user_agent: str | None = None
    defaults: Annotated[Defaults, _empty_as(Defaults)] = Defaults()
    concurrency: Annotated[Concurrency, _empty_as(Concurrency)] = Concurrency()
    ops_notify: str | None = None
    #: Article fetches (feeds with full_text) in flight at once, over all hosts.
    full_text_concurrency: int = Field(default=4, ge=1)
    #: Let article links reach loopback/private/link-local addresses (intranets, tests).
    allow_private_article_hosts: bool = False
    lists: Annotated[dict[str, list[str]], _empty_as(dict)] = {}
    feeds: Annotated[list[FeedConfig], _empty_as(list), Field(min_length=1)]
    notifiers: Annotated[dict[str, NotifierConfig], _empty_as(dict)] = {}
    rules: Annotated[list[RuleConfig], _empty_as(list)] = []
    http: HttpConfig | None = None
    retention: Annotated[Retention, _empty_as(Retention)] = Retention()

    _source: str = PrivateAttr(default="<config>")
    _lines: Mapping[Path, int] = PrivateAttr(default_factory=dict)
    _ruleset: RuleSet | None = PrivateAttr(default=None)
    _warnings: tuple[str, ...] = PrivateAttr(default=())

    @field_validator("database")
    @classmethod
    def _database_is_a_url(cls, value: str) -> str:
        if not re.match(r"[A-Za-z][A-Za-z0-9+.-]*://", value):
            raise _custom(
                "expected an SQLAlchemy URL like sqlite:///wirewatch.db "
                "or postgresql+psycopg://user@host/dbname"
            )
        return value

    @field_validator("user_agent")
    @classmethod
    def _user_agent_one_line(cls, value: str | None) -> str | None:
        return None if value is None else _check_one_line(value)

    # -- derived views -------------------------------------------------------

    @property
    def source(self) -> str:
        return self._source

    @property
    def ruleset(self) -> RuleSet:
        """The compiled rules (compiled at load; compiled on first use if built by hand)."""
        if self._ruleset is None:
            self._ruleset = compile_rules(self._rule_specs(), lists=self.lists)
        return self._ruleset

    @property
    def warnings(self) -> tuple[str, ...]:
        return self._warnings

    def line_of(self, path: Path) -> int | None:
        """The line a key path such as ``("feeds", 2, "url")`` was written on (or its parent's)."""
        return _line_for(self._lines, path)

    def effective_notifiers(self) -> dict[str, NotifierConfig]:
        """The notifiers that run: those configured, or the implicit console notifier."""
        if self.notifiers:
            return dict(self.notifiers)
        return {CONSOLE_NOTIFIER: ConsoleConfig(type="console")}

    def notifiers_for(self, rule: RuleConfig) -> list[str]:
        if rule.notify is not None:
            return list(rule.notify)
        return list(self.effective_notifiers())

    def rule_applies_to(self, rule: RuleConfig, feed: FeedConfig) -> bool:
        if rule.feeds is None:
            return True
        return any(
            feed.name == ref or (ref.startswith(TAG_PREFIX) and ref[len(TAG_PREFIX) :] in feed.tags)
            for ref in rule.feeds
        )

    def feed_interval_bounds(self, feed: FeedConfig) -> tuple[timedelta, timedelta]:
        """(min_interval, max_interval) for a feed: its own, else the defaults."""
        low = feed.min_interval or self.defaults.min_interval
        high = feed.max_interval or self.defaults.max_interval
        return low, high

    def feed_interval(self, feed: FeedConfig) -> timedelta:
        """The feed's polling interval (its own or the default), kept within its bounds."""
        low, high = self.feed_interval_bounds(feed)
        wanted = feed.interval or self.defaults.interval
        return min(max(wanted, low), high)

    def enabled_feeds(self) -> list[FeedConfig]:
        return [feed for feed in self.feeds if feed.enabled]

    def feed_named(self, name: str) -> FeedConfig | None:
        return next((feed for feed in self.feeds if feed.name == name), None)

    def rule_named(self, name: str) -> RuleConfig | None:
        return next((rule for rule in self.rules if rule.name == name), None)

    def _rule_specs(self) -> list[RuleSpec]:
        return [
            RuleSpec(rule.name, rule.query, self.line_of(("rules", index, "query")))
            for index, rule in enumerate(self.rules)
        ]


# --------------------------------------------------------------------------- loading


def load_config(text: str, *, source: str, environ: Mapping[str, str]) -> Config:
    """Validate config text; return the Config or raise ConfigError listing every problem.

    ``source`` names the text in messages (usually the file path); ``environ`` supplies
    ``${VAR}`` values. Rules are compiled here, so a Config that loads can run.
    """
    document = read_yaml(text, environ=environ)
    loading = _Loading(source, document.lines, document.expanded)
    for found in document.problems:
        loading.add_problem(
            ConfigProblem(source, found.line, _render_path(found.path), found.message)
        )
        # A value that could not be read stands in as "" or None; do not report it twice.
        loading.unreadable.add(found.path)
    data = document.data
    if data is None and not document.problems:
        loading.add_problem(
            ConfigProblem(source, None, "", "the file is empty; it needs at least a 'feeds:' list")
        )
    elif data is not None and not isinstance(data, dict):
        loading.add((), f"expected a mapping of settings at the top, got {_kind(data)}")
    if loading.problems and not isinstance(data, dict):
        raise ConfigError(loading.sorted_problems())

    config: Config | None = None
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors():
            loading.add_pydantic(error, data)
    checks = _CrossChecks(loading, data)
    checks.run()
    ruleset = checks.compiled_rules()
    if loading.problems or config is None or ruleset is None:
        raise ConfigError(loading.sorted_problems())
    config._source = source
    config._lines = dict(document.lines)
    config._ruleset = ruleset
    config._warnings = tuple(loading.warnings)
    return config


def _line_for(lines: Mapping[Path, int], path: Path) -> int | None:
    for end in range(len(path), -1, -1):
        line = lines.get(path[:end])
        if line is not None:
            return line
    return None


def _render_path(path: Path) -> str:
    rendered = ""
    for part in path:
        if isinstance(part, int):
            rendered += f"[{part}]"
        else:
            rendered += f".{part}" if rendered else str(part)
    return rendered


def _kind(value: object) -> str:
    if value is None:
        return "nothing (an empty value)"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _value_at(data: Any, path: Path) -> Any:
    for part in path:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _did_you_mean(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


@dataclass
class _Loading:
    """Collects problems and warnings while one config text is validated."""

    source: str
    lines: Mapping[Path, int]
    expanded: Mapping[Path, tuple[str, ...]]

    def __post_init__(self) -> None:
        self.problems: list[tuple[int, ConfigProblem]] = []
        self.warnings: list[str] = []
        self.unreadable: set[Path] = set()

    def problem(self, path: Path, message: str) -> ConfigProblem:
        return ConfigProblem(self.source, _line_for(self.lines, path), _render_path(path), message)

    def add(self, path: Path, message: str) -> None:
        if path not in self.unreadable:
            self.add_problem(self.problem(path, message))

    def add_problem(self, problem: ConfigProblem) -> None:
        self.problems.append((len(self.problems), problem))

    def warn(self, path: Path, message: str) -> None:
        self.warnings.append(str(self.problem(path, message)))

    def sorted_problems(self) -> list[ConfigProblem]:
        # File order; problems without a line (about the whole file) come first.
        ordered = sorted(self.problems, key=lambda item: (item[1].line or 0, item[0]))
        return [problem for _, problem in ordered]

    def show(self, path: Path, value: object) -> str:
        """Describe a value for a message without ever revealing secrets."""
        names = self.expanded.get(path)
        if names:
            return "the value of " + ", ".join(f"${{{name}}}" for name in names)
        if path and path[-1] in SECRET_KEYS:
            return "a value that is not shown (secret)"
        if isinstance(value, str):
            return repr(value) if "'" not in value else f'"{value}"'
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int | float):
            return str(value)
        return _kind(value)

    # -- pydantic errors → our messages ---------------------------------------

    def add_pydantic(self, error: Any, data: Any) -> None:
        kind: str = error["type"]
        path, model = _resolve_loc(tuple(error["loc"]))
        context: dict[str, Any] = error.get("ctx") or {}
        value = _value_at(data, path)
        got = f", got {self.show(path, value)}"
        if kind == "missing":
            self.add(path[:-1], f"missing required key '{path[-1]}'")
        elif kind == "extra_forbidden":
            allowed = _keys_of(model) if model is not None else []
            key = str(path[-1])
            hint = _did_you_mean(key, allowed)
            if not hint and allowed:
                hint = f"; expected one of: {', '.join(allowed)}"
            self.add(path, f"unknown key '{key}'{hint}")
        elif kind == "union_tag_invalid":
            tag_path = (*path, "type")
            shown = self.show(tag_path, _value_at(data, tag_path))
            self.add(
                tag_path,
                f"unknown notifier type {shown}: must be one of {', '.join(NOTIFIER_TYPES)}",
            )
        elif kind == "union_tag_not_found":
            self.add(path, f"missing required key 'type' (one of {', '.join(NOTIFIER_TYPES)})")
        elif kind == "wirewatch":
            self._add_custom(path, error["msg"], context, value, data)
        elif kind == "literal_error":
            choices = re.findall(r"'([^']*)'", str(context.get("expected", "")))
            self.add(path, f"must be one of {', '.join(choices)}{got}")
        elif kind == "string_type":
            quote = " (put it in quotes)" if isinstance(value, int | float) else ""
            self.add(path, f"expected text{got}{quote}")
        elif kind in ("int_type", "int_parsing", "int_from_float"):
            self.add(path, f"expected a whole number{got}")
        elif kind in ("bool_type", "bool_parsing"):
            self.add(path, f"expected true or false{got}")
        elif kind == "list_type":
            brackets = " (write [a, b] for a list)" if isinstance(value, str) else ""
            self.add(path, f"expected a list{got}{brackets}")
        elif kind in ("dict_type", "model_type", "model_attributes_type"):
            self.add(path, f"expected a mapping{got}")
        elif kind == "greater_than_equal":
            self.add(path, f"must be at least {context.get('ge')}{got}")
        elif kind == "less_than_equal":
            self.add(path, f"must be at most {context.get('le')}{got}")
        elif kind in ("too_short", "string_too_short"):
            self.add(path, "must not be empty")
        else:  # pragma: no cover - a pydantic error type we have not worded yet
            self.add(path, str(error["msg"]))

    def _add_custom(
        self, path: Path, message: str, context: Mapping[str, Any], value: Any, data: Any
    ) -> None:
        if "key" in context and isinstance(value, dict) and context["key"] in value:
            path = (*path, context["key"])
            value = value[context["key"]]
        if "show_item" in context:
            item_path = (*path, context["show_item"])
            message += f", got {self.show(item_path, _value_at(data, item_path))}"
            path = item_path
        elif context.get("show_value"):
            message += f", got {self.show(path, value)}"
        self.add(path, message)


def _unwrap(annotation: Any) -> Any:
    while typing.get_origin(annotation) is Annotated:
        annotation = typing.get_args(annotation)[0]
    return annotation


def _union_members(annotation: Any) -> tuple[Any, ...]:
    if typing.get_origin(annotation) in (Union, types.UnionType):
        return tuple(_unwrap(arg) for arg in typing.get_args(annotation))
    return ()


def _resolve_loc(loc: tuple[Any, ...]) -> tuple[Path, type[BaseModel] | None]:
    """Turn a pydantic error location into our key path, and find the model holding its last key.

    Discriminated unions put the tag in the location (``notifiers.desk.slack.token``);
    the tag is not a key in the file, so it is dropped from the path.
    """
    path: list[str | int] = []
    annotation: Any = Config
    holder: type[BaseModel] | None = None
    for part in loc:
        annotation = _unwrap(annotation)
        members = [m for m in _union_members(annotation) if m is not type(None)]
        if members and all(isinstance(m, type) and issubclass(m, BaseModel) for m in members):
            chosen = next((m for m in members if part in _literal_tags(m)), None)
            if chosen is not None:
                annotation = chosen
                continue
        elif len(members) == 1:
            annotation = members[0]
        path.append(part)
        holder = (
            annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel)
            else None
        )
        annotation = _child_annotation(annotation, part)
    return tuple(path), holder


def _literal_tags(model: type[BaseModel]) -> tuple[Any, ...]:
    field = model.model_fields.get("type")
    return typing.get_args(field.annotation) if field is not None else ()


def _child_annotation(annotation: Any, part: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        for name, field in annotation.model_fields.items():
            if part in (name, field.alias):
                return field.annotation
        return None
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is list and args:
        return args[0]
    if origin is dict and len(args) == 2:
        return args[1]
    return None


def _keys_of(model: type[BaseModel]) -> list[str]:
    return [field.alias or name for name, field in model.model_fields.items()]


# --------------------------------------------------------------------------- cross checks


@dataclass
class _CrossChecks:
    """Checks that span sections; they run on the raw data so that they report even when
    some other part failed validation (every problem in one go)."""

    loading: _Loading
    data: dict[str, Any]

    def run(self) -> None:
        feeds = list(self._entries("feeds"))
        rules_ = list(self._entries("rules"))
        self._check_unique(feeds, "feed")
        self._check_unique(rules_, "rule")
        self._check_intervals(feeds)
        self._check_feed_lease()
        notifiers = self._notifier_names()
        tags = {tag for _, feed in feeds for tag in _strings(feed.get("tags"))}
        feed_names = [name for _, feed in feeds if isinstance(name := feed.get("name"), str)]
        for index, rule in rules_:
            for position, ref in _indexed_strings(rule.get("feeds")):
                self._check_feed_ref(("rules", index, "feeds", position), ref, feed_names, tags)
            for position, name in _indexed_strings(rule.get("notify")):
                self._check_notifier_ref(("rules", index, "notify", position), name, notifiers)
        ops = self.data.get("ops_notify")
        if isinstance(ops, str):
            self._check_notifier_ref(("ops_notify",), ops, notifiers)
        self._check_lists()
        self._check_email_security()

    def _entries(self, section: str) -> Iterator[tuple[int, dict[str, Any]]]:
        items = self.data.get(section)
        if isinstance(items, list):
            for index, item in enumerate(items):
                if isinstance(item, dict):
                    yield index, item

    def _notifier_names(self) -> list[str]:
        configured = self.data.get("notifiers")
        if isinstance(configured, dict) and configured:
            return list(configured)
        return [CONSOLE_NOTIFIER]

    def _check_unique(self, entries: list[tuple[int, dict[str, Any]]], kind: str) -> None:
        first: dict[str, int] = {}
        for index, entry in entries:
            name = entry.get("name")
            if not isinstance(name, str):
                continue
            path = (f"{kind}s", index, "name")
            if name in first:
                first_line = self.loading.lines.get((f"{kind}s", first[name], "name"))
                self.loading.add(
                    path,
                    f"duplicate {kind} name {self.loading.show(path, name)} "
                    f"(first used on line {first_line})",
                )
            else:
                first[name] = index

    def _check_intervals(self, feeds: list[tuple[int, dict[str, Any]]]) -> None:
        """min_interval ≤ max_interval (an error); an interval outside them (a warning).

        A feed that sets none of the three follows the defaults, checked once for all.
        """
        defaults = _quietly(Defaults, self.data.get("defaults") or {}) or Defaults()
        self._check_bounds(
            ("defaults",),
            defaults.interval,
            defaults.min_interval,
            defaults.max_interval,
            interval_path=("defaults", "interval"),
            subject="the default interval",
        )
        for index, raw in feeds:
            feed = _quietly(FeedConfig, raw)
            if feed is None or (feed.interval, feed.min_interval, feed.max_interval) == (
                None,
                None,
                None,
            ):
                continue
            own = ("feeds", index, "interval")
            name = self.loading.show(("feeds", index, "name"), feed.name)
            self._check_bounds(
                ("feeds", index),
                feed.interval or defaults.interval,
                feed.min_interval or defaults.min_interval,
                feed.max_interval or defaults.max_interval,
                interval_path=own if feed.interval else ("feeds", index),
                subject=f"the interval of feed {name}",
            )

    def _check_feed_lease(self) -> None:
        """``feed_lease`` ≥ ``defaults.timeout``.

        A pass renews its leases every third of a lease, but a lease must also
        outlast one fetch on its own: otherwise one late or failed renewal (a busy
        event loop, a database hiccup) hands a feed to another instance mid-fetch.
        """
        raw = self.data.get("feed_lease")
        defaults = _quietly(Defaults, self.data.get("defaults") or {})
        if not isinstance(raw, str) or defaults is None:
            return  # unset, or a problem the model already reported
        try:
            lease = parse_duration(raw)
        except DurationError:
            return
        if lease < defaults.timeout:
            timeout = format_duration(defaults.timeout)
            self.loading.add(
                ("feed_lease",),
                f"{self.loading.show(('feed_lease',), raw)} is shorter than defaults.timeout "
                f"({timeout}): another instance could take a feed over while its fetch still "
                f"runs; set feed_lease to at least {timeout}, or leave it out for the default "
                "(twice defaults.timeout plus 1m)",
            )

    def _check_bounds(
        self,
        path: Path,
        interval: timedelta,
        low: timedelta,
        high: timedelta,
        *,
        interval_path: Path,
        subject: str,
    ) -> None:
        if low > high:
            self.loading.add(
                path,
                f"min_interval ({format_duration(low)}) is longer than "
                f"max_interval ({format_duration(high)})",
            )
        elif interval < low:
            self.loading.warn(
                interval_path,
                f"{subject} ({format_duration(interval)}) is below min_interval "
                f"({format_duration(low)}); it will be polled every {format_duration(low)} "
                "(lower min_interval to allow it)",
            )
        elif interval > high:
            self.loading.warn(
                interval_path,
                f"{subject} ({format_duration(interval)}) is above max_interval "
                f"({format_duration(high)}); it will be polled every {format_duration(high)}",
            )

    def _check_feed_ref(self, path: Path, ref: str, feed_names: list[str], tags: set[str]) -> None:
        shown = self.loading.show(path, ref)
        if ref.startswith(TAG_PREFIX):
            tag = ref[len(TAG_PREFIX) :]
            if tag not in tags:
                hint = _did_you_mean(tag, tags)
                self.loading.add(path, f"no feed has the tag {self.loading.show(path, tag)}{hint}")
        elif ref not in feed_names:
            hint = _did_you_mean(ref, feed_names) or " (write tag:NAME to select feeds by tag)"
            self.loading.add(path, f"unknown feed {shown}{hint}")

    def _check_notifier_ref(self, path: Path, name: str, notifiers: list[str]) -> None:
        if name not in notifiers:
            known = ", ".join(notifiers)
            self.loading.add(
                path,
                f"unknown notifier {self.loading.show(path, name)}"
                f"{_did_you_mean(name, notifiers)}; notifiers are: {known}",
            )

    def _check_lists(self) -> None:
        lists = self.data.get("lists")
        if not isinstance(lists, dict):
            return
        for name, terms in lists.items():
            if isinstance(terms, list) and not terms:
                self.loading.add(("lists", name), "a list needs at least one term")

    def _check_email_security(self) -> None:
        notifiers = self.data.get("notifiers")
        if not isinstance(notifiers, dict):
            return
        for name, raw in notifiers.items():
            if (
                isinstance(raw, dict)
                and raw.get("type") == "email"
                and raw.get("security") == "none"
                and raw.get("password") is not None
            ):
                self.loading.warn(
                    ("notifiers", name, "security"),
                    "security: none sends the SMTP password unencrypted",
                )

    def compiled_rules(self) -> RuleSet | None:
        """Compile every rule query; each error becomes a problem at that query's line.

        Returns None when any rule failed. A rule whose name repeats an earlier one (already
        reported above) is compiled on its own, so its query is still checked.
        """
        batches: list[dict[str, tuple[int, RuleSpec]]] = [{}]
        for index, rule in self._entries("rules"):
            name, query = rule.get("name"), rule.get("query")
            if isinstance(query, str):
                query = query.rstrip()  # as RuleConfig stores it
            if isinstance(name, str) and isinstance(query, str) and query:
                line = self.loading.lines.get(("rules", index, "query"))
                spec = RuleSpec(name, query, line)
                if name in batches[0]:
                    batches.append({name: (index, spec)})
                else:
                    batches[0][name] = (index, spec)
        compiled: list[RuleSet] = []
        for batch in batches:
            try:
                ruleset = compile_rules(
                    [spec for _, spec in batch.values()], lists=self._usable_lists()
                )
            except RuleSetError as exc:
                for error in exc.errors:
                    self._add_rule_error(batch, error)
                continue
            compiled.append(ruleset)
            for warning in ruleset.warnings:
                self.loading.warn(self._query_path(batch, warning.rule), warning.message)
        return compiled[0] if len(compiled) == len(batches) else None

    def _add_rule_error(self, batch: Mapping[str, tuple[int, RuleSpec]], error: RuleError) -> None:
        path = self._query_path(batch, error.rule)
        if self.loading.expanded.get(path):
            # The query took text from the environment: do not print it.
            message = f"rule '{error.rule}': {error.message} (at column {error.column})"
        else:
            # The problem's prefix gives file and line; render() adds the caret.
            message = error.for_rule(error.rule or "?", None).render()
        self.loading.add(path, message)

    @staticmethod
    def _query_path(batch: Mapping[str, tuple[int, RuleSpec]], rule: str | None) -> Path:
        if rule is not None and rule in batch:
            return ("rules", batch[rule][0], "query")
        return ("rules",)

    def _usable_lists(self) -> dict[str, list[str]]:
        """The `lists:` entries that are well-formed (the others are reported elsewhere)."""
        lists = self.data.get("lists")
        if not isinstance(lists, dict):
            return {}
        return {
            name: terms
            for name, terms in lists.items()
            if isinstance(terms, list) and all(isinstance(term, str) for term in terms)
        }


def _strings(value: Any) -> list[str]:
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []


def _indexed_strings(value: Any) -> list[tuple[int, str]]:
    if not isinstance(value, list):
        return []
    return [(index, item) for index, item in enumerate(value) if isinstance(item, str)]


_M = typing.TypeVar("_M", bound=BaseModel)


def _quietly(model: type[_M], data: Any) -> _M | None:
    """Validate one part on its own; its errors were already reported by the full pass."""
    try:
        return model.model_validate(data)
    except ValidationError:
        return None
