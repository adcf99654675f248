"""A Slack Web API stand-in over real HTTP, for the real slack-sdk to talk to.

Point `slack_sdk.WebClient(base_url=standin.base_url)` at it, or post to
`standin.webhook_url` with `WebhookClient`. It implements what wirewatch uses
(`auth.test`, `chat.postMessage`, `chat.update`, `conversations.info`, an incoming
webhook), answers like Slack does (HTTP 200 with `{"ok": false, "error": ...}` for API
errors), records every call, and can be scripted to fail::

    standin.fail_next(status=429, headers={"Retry-After": "2"}, times=3)
    standin.fail_next(error="channel_not_found")
    standin.fail_next(status=500)

Canned failures are consumed in order, one per request (optionally only for one method).
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from tests.support.http_base import BackgroundHTTPServer, read_body, send_response

__all__ = ["SlackCall", "SlackStandIn"]

WEBHOOK_PATH = "/services/T0WIREWATCH/B0WIREWATCH/standin-webhook-secret"


@dataclass(frozen=True, slots=True)
class SlackCall:
    """One request the stand-in received.

    `method` is the Web API method ("chat.postMessage") or "webhook"; `body` is the parsed
    JSON or form body; `status` is the HTTP status the stand-in answered with.
    """

    method: str
    body: dict[str, Any]
    headers: dict[str, str]
    received_at: float
    status: int
    response: dict[str, Any] | str

    @property
    def ok(self) -> bool:
        if isinstance(self.response, dict):
            return self.status == 200 and bool(self.response.get("ok"))
        return self.status == 200


@dataclass(frozen=True, slots=True)
class _Canned:
    status: int
    body: dict[str, Any] | str
    headers: Mapping[str, str]
    method: str | None
    delay: float


@dataclass(slots=True)
class _State:
    calls: list[SlackCall] = field(default_factory=list)
    canned: deque[_Canned] = field(default_factory=deque)
    channels: dict[str, str] = field(default_factory=dict)


class SlackStandIn(BackgroundHTTPServer):
    """Slack Web API + incoming webhook on 127.0.0.1.

    `token`: when set, API calls must carry `Authorization: Bearer <token>`; a wrong one
    gets `invalid_auth`, none gets `not_authed` (as Slack answers). Channels are created
    on first use with a stable ID ("C" + hash of the name) unless `channels` lists them
    and `strict_channels=True`, in which case unknown ones get `channel_not_found`.
    """

    def __init__(
        self,
        *,
        token: str | None = "xoxb-wirewatch-test",
        channels: Mapping[str, str] | None = None,
        strict_channels: bool = False,
        port: int = 0,
    ) -> None:
        super().__init__(port=port)
        self.token = token
        self.strict_channels = strict_channels
        self._lock = threading.Condition()
        self._state = _State(channels=dict(channels or {}))
        self._ts_counter = itertools.count(1)

    # --- addresses --------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """The Web API root for `WebClient(base_url=...)`, with its trailing slash."""
        return f"{self.origin}/api/"

    @property
    def webhook_url(self) -> str:
        return f"{self.origin}{WEBHOOK_PATH}"

    # --- scripting --------------------------------------------------------------------

    def fail_next(
        self,
        *,
        status: int | None = None,
        error: str | None = None,
        headers: Mapping[str, str] | None = None,
        body: dict[str, Any] | str | None = None,
        times: int = 1,
        method: str | None = None,
        delay: float = 0.0,
    ) -> None:
        """Answer the next `times` requests (to `method`, or any) with a canned response.

        - `error="invalid_auth"` → HTTP 200 `{"ok": false, "error": "invalid_auth"}`
        - `status=429` → `{"ok": false, "error": "ratelimited"}`, add Retry-After via headers
        - `status=500` → a plain-text error page, as a proxy in front of Slack would send
        - `body=` gives the exact body (a dict is sent as JSON, a str as text)
        - `delay` holds the answer back, to exercise client timeouts
        For the webhook, use `method="webhook"` and a text `body` ("invalid_token").
        """
        if status is None:
            status = 200
        if body is None:
            if error is not None:
                body = {"ok": False, "error": error}
            elif status == 429:
                body = {"ok": False, "error": "ratelimited"}
            elif status >= 500:
                body = "<html><body>Internal Server Error</body></html>"
            else:
                body = {"ok": False, "error": "unknown_error"}
        canned = _Canned(status, body, dict(headers or {}), method, delay)
        with self._lock:
            self._state.canned.extend([canned] * times)

    def reset(self) -> None:
        """Forget recorded calls and pending failures (channels stay)."""
        with self._lock:
            self._state.calls.clear()
            self._state.canned.clear()

    def channel_id(self, name_or_id: str) -> str:
        """The ID the stand-in uses for a channel name (creating it if needed)."""
        with self._lock:
            found = self._resolve_channel(name_or_id)
        if found is None:
            raise KeyError(name_or_id)
        return found

    # --- what was received ------------------------------------------------------------

    @property
    def calls(self) -> list[SlackCall]:
        with self._lock:
            return list(self._state.calls)

    def calls_to(self, method: str) -> list[SlackCall]:
        return [call for call in self.calls if call.method == method]

    @property
    def messages(self) -> list[SlackCall]:
        """Messages really posted: successful chat.postMessage and webhook calls."""
        return [call for call in self.calls if _is_posted(call)]

    def wait_for_messages(self, count: int, timeout: float = 60.0) -> list[SlackCall]:
        """Block until at least `count` messages were posted; raise TimeoutError if not."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                posted = [call for call in self._state.calls if _is_posted(call)]
                if len(posted) >= count:
                    return posted
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"Slack stand-in got {len(posted)} messages, expected {count}"
                    )
                self._lock.wait(remaining)

    # --- HTTP ------------------------------------------------------------------------

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        raw = read_body(handler)
        path = urlsplit(handler.path).path
        headers = {k: v for k, v in handler.headers.items()}
        body = _parse_body(raw, handler.headers.get("Content-Type", ""))
        if path == WEBHOOK_PATH:
            method = "webhook"
        elif path.startswith("/api/"):
            method = path[len("/api/") :]
        else:
            send_response(handler, 404, {"Content-Type": "text/plain"}, b"not found")
            return

        with self._lock:
            canned = self._take_canned(method)
        if canned is not None:
            if canned.delay:
                time.sleep(canned.delay)
            status, response, extra = canned.status, canned.body, dict(canned.headers)
        else:
            extra = {}
            with self._lock:
                status, response = self._answer(method, body, headers)

        with self._lock:
            self._state.calls.append(
                SlackCall(method, body, headers, time.time(), status, response)
            )
            self._lock.notify_all()

        if isinstance(response, dict):
            payload = json.dumps(response).encode()
            extra.setdefault("Content-Type", "application/json; charset=utf-8")
        else:
            payload = response.encode()
            extra.setdefault("Content-Type", "text/plain; charset=utf-8")
        # the client gave up (timeout test); the call is recorded anyway
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            send_response(handler, status, extra, payload)

    def _take_canned(self, method: str) -> _Canned | None:
        for index, canned in enumerate(self._state.canned):
            if canned.method is None or canned.method == method:
                del self._state.canned[index]
                return canned
        return None

    def _answer(
        self, method: str, body: dict[str, Any], headers: Mapping[str, str]
    ) -> tuple[int, dict[str, Any] | str]:
        if method == "webhook":
            if not body.get("text") and not body.get("blocks"):
                return 400, "no_text"
            return 200, "ok"

        auth_error = self._check_auth(headers)
        if auth_error:
            return 200, {"ok": False, "error": auth_error}

        if method == "auth.test":
            return 200, {
                "ok": True,
                "url": f"{self.origin}/",
                "team": "Wirewatch Test",
                "user": "wirewatch",
                "team_id": "T0WIREWATCH",
                "user_id": "U0WIREWATCH",
                "bot_id": "B0WIREWATCH",
            }
        if method in ("chat.postMessage", "chat.update", "conversations.info"):
            channel = self._resolve_channel(str(body.get("channel") or ""))
            if channel is None:
                return 200, {"ok": False, "error": "channel_not_found"}
            if method == "conversations.info":
                name = next((n for n, i in self._state.channels.items() if i == channel), channel)
                return 200, {"ok": True, "channel": {"id": channel, "name": name}}
            if not body.get("text") and not body.get("blocks"):
                return 200, {"ok": False, "error": "no_text"}
            ts = body.get("ts") if method == "chat.update" else self._next_ts()
            message = {"type": "message", "text": body.get("text", ""), "ts": ts}
            if "blocks" in body:
                message["blocks"] = body["blocks"]
            return 200, {"ok": True, "channel": channel, "ts": ts, "message": message}
        return 200, {"ok": False, "error": "unknown_method"}

    def _check_auth(self, headers: Mapping[str, str]) -> str | None:
        if self.token is None:
            return None
        value = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
        if not value.startswith("Bearer ") or not value[len("Bearer ") :].strip():
            return "not_authed"
        if value[len("Bearer ") :].strip() != self.token:
            return "invalid_auth"
        return None

    def _resolve_channel(self, name_or_id: str) -> str | None:
        name = name_or_id.lstrip("#")
        if not name:
            return None
        channels = self._state.channels
        if name in channels:
            return channels[name]
        if name in channels.values():
            return name
        if self.strict_channels:
            return None
        if name[:1] in ("C", "G", "D") and name[1:].isalnum() and name.isupper():
            channels[name] = name  # looks like an ID already
            return name
        channel_id = "C" + hashlib.sha1(name.encode()).hexdigest()[:9].upper()
        channels[name] = channel_id
        return channel_id

    def _next_ts(self) -> str:
        # Slack ts: epoch seconds "." six digits, unique per channel; a counter keeps
        # them unique and increasing even within one microsecond.
        return f"{int(time.time())}.{next(self._ts_counter):06d}"


def _is_posted(call: SlackCall) -> bool:
    return call.method in ("chat.postMessage", "webhook") and call.ok


def _parse_body(raw: bytes, content_type: str) -> dict[str, Any]:
    if not raw:
        return {}
    text = raw.decode("utf-8", errors="replace")
    if "json" in content_type or text.lstrip().startswith("{"):
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError:
            return {"_raw": text}
        return parsed if isinstance(parsed, dict) else {"_raw": parsed}
    body: dict[str, Any] = dict(parse_qsl(text, keep_blank_values=True))
    # slack-sdk sends blocks in form bodies as a JSON string
    for key in ("blocks", "attachments"):
        if isinstance(body.get(key), str):
            with contextlib.suppress(json.JSONDecodeError):
                body[key] = json.loads(body[key])
    return body
