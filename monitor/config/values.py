"""Readers and validators of single config values, and the small models made of them.

``Duration`` ("90s", "5m"), ``ByteSize`` ("10MiB"), ``TimeZone``, ``Cron`` and
``ClockTime`` are checked in one place so that every section reads them alike;
``BurstConfig`` and ``QuietHoursConfig`` are shared by all notifier types. Validators raise
``invalid(message)``, worded for whoever edits config.yaml; the loader reports it as
written.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field
from pydantic_core import PydanticCustomError

from monitor.durations import DURATION_HINT, DurationError, parse_duration
from monitor.quiet import parse_clock
from monitor.scheduler import check_cron


def invalid(message: str, **context: Any) -> PydanticCustomError:
    # Our own error type: Loading.add_pydantic (reporting.py) uses the message as written.
    return PydanticCustomError("wirewatch", message, context or None)


def _read_duration(value: object) -> object:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, str):
        try:
            return parse_duration(value)
        except DurationError as exc:
            raise invalid(str(exc), show_value=True) from None
    raise invalid(DURATION_HINT, show_value=True)


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
        raise invalid(_SIZE_HINT, show_value=True)
    if isinstance(value, int):
        return value
    if isinstance(value, str) and (match := _SIZE.fullmatch(value.strip())):
        return int(match.group(1)) * _SIZE_UNITS[match.group(2)]
    raise invalid(_SIZE_HINT, show_value=True)


ByteSize = Annotated[int, BeforeValidator(_read_size), Field(ge=1)]


def empty_as(default: Any) -> BeforeValidator:
    """`notifiers:` with nothing after it means "none", not a type error."""
    return BeforeValidator(lambda value: default() if value is None else value)


def check_http_url(value: str, *, what: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise invalid(f"{what} must be an http:// or https:// URL", show_value=True)
    return value


def check_one_line(value: str) -> str:
    # CR/LF in a header value (User-Agent, From, To) would let config text forge headers.
    if "\r" in value or "\n" in value:
        raise invalid("must be on one line")
    return value


MODEL_CONFIG = ConfigDict(
    extra="forbid", frozen=True, populate_by_name=True, hide_input_in_errors=True
)


def _check_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise invalid(
            "unknown time zone; use an IANA name like Europe/Berlin or UTC", show_value=True
        ) from None
    return value


def _check_cron_line(value: str) -> str:
    try:
        check_cron(value, "UTC")
    except ValueError as exc:
        raise invalid(
            f'expected a crontab line of 5 fields like "0 8 * * *" ({exc})', show_value=True
        ) from None
    return value


def _check_clock(value: str) -> str:
    try:
        parse_clock(value)
    except ValueError:
        raise invalid("expected a time of day like 22:00", show_value=True) from None
    return value


#: An IANA time zone name ("Europe/Berlin").
TimeZone = Annotated[str, AfterValidator(_check_timezone)]
#: A 5-field crontab line ("0 8 * * *"), read by APScheduler's CronTrigger.
Cron = Annotated[str, AfterValidator(_check_cron_line)]
ClockTime = Annotated[str, AfterValidator(_check_clock)]


class BurstConfig(BaseModel):
    """Flood control: past ``max`` alerts of one rule within ``window``, one summary."""

    model_config = MODEL_CONFIG

    max: int = Field(default=10, ge=1)
    window: Duration = timedelta(minutes=10)


class QuietHoursConfig(BaseModel):
    """A daily window when only critical alerts go out; the rest follow as one digest."""

    model_config = MODEL_CONFIG

    from_: ClockTime = Field(alias="from")
    to: ClockTime
    timezone: TimeZone | None = None
