"""The Slack stand-in answers the real slack-sdk the way Slack does."""

from __future__ import annotations

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.webhook import WebhookClient

from tests.support import SlackStandIn


def client(standin: SlackStandIn, token: str | None = None) -> WebClient:
    return WebClient(token=token or standin.token, base_url=standin.base_url, retry_handlers=[])


def test_auth_test_and_token_check(slack_standin: SlackStandIn) -> None:
    assert client(slack_standin).auth_test()["team"] == "Wirewatch Test"
    with pytest.raises(SlackApiError) as wrong:
        client(slack_standin, token="xoxb-other").auth_test()
    assert wrong.value.response["error"] == "invalid_auth"
    anonymous = WebClient(base_url=slack_standin.base_url, retry_handlers=[])
    with pytest.raises(SlackApiError) as missing:
        anonymous.auth_test()
    assert missing.value.response["error"] == "not_authed"


def test_post_update_and_channel_info(slack_standin: SlackStandIn) -> None:
    web = client(slack_standin)
    first = web.chat_postMessage(channel="#desk", text="one")
    second = web.chat_postMessage(channel="desk", text="two")
    updated = web.chat_update(channel=first["channel"], ts=first["ts"], text="one, edited")
    info = web.conversations_info(channel=first["channel"])

    assert first["channel"] == second["channel"] == slack_standin.channel_id("desk")
    assert float(second["ts"]) > float(first["ts"])
    assert updated["ts"] == first["ts"]
    assert info["channel"] == {"id": first["channel"], "name": "desk"}
    assert [c.method for c in slack_standin.calls] == [
        "chat.postMessage",
        "chat.postMessage",
        "chat.update",
        "conversations.info",
    ]
    assert [m.body["text"] for m in slack_standin.messages] == ["one", "two"]


def test_strict_channels() -> None:
    with SlackStandIn(channels={"desk": "C0DESK"}, strict_channels=True) as standin:
        web = client(standin)
        assert web.chat_postMessage(channel="desk", text="x")["channel"] == "C0DESK"
        assert web.chat_postMessage(channel="C0DESK", text="x")["channel"] == "C0DESK"
        with pytest.raises(SlackApiError) as caught:
            web.chat_postMessage(channel="elsewhere", text="x")
    assert caught.value.response["error"] == "channel_not_found"


def test_canned_failures_are_consumed_in_order_and_per_method(
    slack_standin: SlackStandIn,
) -> None:
    slack_standin.fail_next(status=429, headers={"Retry-After": "7"}, method="chat.postMessage")
    slack_standin.fail_next(error="is_archived", method="chat.postMessage")
    web = client(slack_standin)

    assert web.auth_test()["ok"]  # the 429 is kept for chat.postMessage
    with pytest.raises(SlackApiError) as limited:
        web.chat_postMessage(channel="c", text="x")
    with pytest.raises(SlackApiError) as archived:
        web.chat_postMessage(channel="c", text="x")
    web.chat_postMessage(channel="c", text="x")

    assert limited.value.response.status_code == 429
    assert limited.value.response.headers["Retry-After"] == "7"
    assert archived.value.response["error"] == "is_archived"
    assert [c.status for c in slack_standin.calls] == [200, 429, 200, 200]
    assert len(slack_standin.messages) == 1


def test_webhook(slack_standin: SlackStandIn) -> None:
    hook = WebhookClient(slack_standin.webhook_url, retry_handlers=[])
    assert hook.send(text="hello").body == "ok"
    slack_standin.fail_next(method="webhook", status=404, body="no_service")
    failed = hook.send(text="again")
    assert (failed.status_code, failed.body) == (404, "no_service")
    assert [m.body["text"] for m in slack_standin.messages] == ["hello"]


def test_wait_for_messages(slack_standin: SlackStandIn) -> None:
    client(slack_standin).chat_postMessage(channel="c", text="x")
    assert len(slack_standin.wait_for_messages(1, timeout=1)) == 1
    with pytest.raises(TimeoutError, match="got 1 messages, expected 2"):
        slack_standin.wait_for_messages(2, timeout=0.1)
