"""Log formats: fixed keys lifted into JSON fields, secrets masked everywhere."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.cli import main
from monitor.config import load_config
from monitor.logs import MASK, RedactingStream, Redactor, configure_logging, fixed_fields
from monitor.ops_wiring import config_secrets

TOKEN = "xoxb-1111-2222-abcdefSECRET"
HOOK = "https://hooks.slack.example/services/T000/B000/hookSECRETpart"


@pytest.fixture
def captured() -> Iterator[tuple[io.StringIO, Redactor]]:
    stream = io.StringIO()
    redactor = configure_logging(level="INFO", fmt="json", stream=stream)
    yield stream, redactor
    logging.getLogger().handlers.clear()


def _record(msg: str, *args: object, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("wirewatch.test", logging.INFO, __file__, 1, msg, args, None)
    for key, value in extra.items():
        setattr(record, key, value)
    return record


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        pytest.param(_record("feed=%s new_items=%d hits=%d", "bbc", 3, 1), {"feed": "bbc"},
                     id="feed from the format"),
        pytest.param(_record("notifier=%s rule=%s delivery=%d sent", "desk", "csto", 7),
                     {"notifier": "desk", "rule": "csto"}, id="notifier and rule"),
        pytest.param(_record("feed=%s item_key=%s", "dw", "guid:1"),
                     {"feed": "dw", "item_key": "guid:1"}, id="item key"),
        pytest.param(_record("polled %s", "bbc", feed="bbc"), {"feed": "bbc"},
                     id="from extra"),
        pytest.param(_record("channel=%s sent", "desk"), {}, id="not a fixed key"),
        pytest.param(_record("no arguments feed=x"), {}, id="no arguments"),
    ],
)
def test_fixed_keys(record: logging.LogRecord, expected: dict[str, object]) -> None:
    assert fixed_fields(record) == expected


def test_json_lines_carry_fixed_keys_and_mask_secrets(
    captured: tuple[io.StringIO, Redactor],
) -> None:
    stream, redactor = captured
    redactor.add([TOKEN, HOOK])
    log = logging.getLogger("wirewatch.test")
    log.warning("notifier=%s rule=%s failed: POST %s with %s", "desk", "csto", HOOK, TOKEN)
    try:
        raise RuntimeError(f"auth failed for {TOKEN}")
    except RuntimeError:
        log.exception("feed=%s crashed", "bbc")
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["notifier"] == "desk" and first["rule"] == "csto"
    assert first["message"] == f"notifier=desk rule=csto failed: POST {MASK} with {MASK}"
    assert second["feed"] == "bbc" and TOKEN not in second["exception"]
    assert TOKEN not in stream.getvalue() and "hookSECRETpart" not in stream.getvalue()


def test_text_format_masks_too() -> None:
    stream = io.StringIO()
    redactor = configure_logging(level="INFO", fmt="text", stream=stream)
    try:
        redactor.add([TOKEN])
        logging.getLogger("wirewatch.test").info("token=%s", TOKEN)
    finally:
        logging.getLogger().handlers.clear()
    assert stream.getvalue().rstrip().endswith(f"token={MASK}")


def test_redacting_stream_and_short_values() -> None:
    target = io.StringIO()
    redactor = Redactor(["on", TOKEN])  # "on" is too short to be a secret
    RedactingStream(target, redactor).write(f"on: {TOKEN}\n")
    assert target.getvalue() == f"on: {MASK}\n"


def test_config_secrets_cover_env_values_fields_and_url_passwords() -> None:
    text = """\
database: postgresql+psycopg://wirewatch:dbPassw0rd@127.0.0.1/ww
feeds:
  - name: paid
    url: https://reader:feedPassw0rd@example.org/feed?key=${FEED_KEY}
notifiers:
  desk:
    type: slack
    token: ${SLACK_BOT_TOKEN}
    channel: "#news"
  hook:
    type: slack
    webhook_url: https://hooks.slack.example/services/T000/B000/literalSECRET
"""
    environ = {"FEED_KEY": "k-123456789", "SLACK_BOT_TOKEN": TOKEN, "UNUSED": "not-in-config"}
    config = load_config(text, source="config.yaml", environ=environ)
    secrets = config_secrets(config, text=text, environ=environ)
    assert {"k-123456789", TOKEN, "dbPassw0rd", "feedPassw0rd",
            "https://hooks.slack.example/services/T000/B000/literalSECRET",
            "/services/T000/B000/literalSECRET"} <= secrets
    assert "not-in-config" not in secrets


@pytest.mark.parametrize(
    ("config_text", "expected"),
    [
        ("feeds:\n  - name: a\n    url: http://127.0.0.1:1/a\nrules:\n"
         "  - name: r\n    query: CSTO AND\n  - name: w\n    query: NOT sport\n",
         ["rules[0].query: rule 'r': expected a term after AND\n  CSTO AND\n          ^",
          "rules[1].query: rule 'w': matches nearly every item"]),
        (None, ["no such file; pass --config PATH or set WIREWATCH_CONFIG"]),
    ],
)
def test_with_json_logs_the_reasons_a_command_cannot_run_are_json_too(
    tmp_path: Path, config_text: str | None, expected: list[str]
) -> None:
    config = tmp_path / "config.yaml"
    if config_text is not None:
        config.write_text(config_text)
    err = io.StringIO()
    code = main(["--log-format", "json", "--config", str(config), "run", "--once"],
                stdout=io.StringIO(), stderr=err, environ={})
    assert code == 1
    records = [json.loads(line) for line in err.getvalue().splitlines()]
    assert len(records) == len(expected)
    for record, text in zip(records, expected, strict=True):
        assert text in record["message"]
    assert [r["level"] for r in records] == ["error", "warning"][: len(records)]
