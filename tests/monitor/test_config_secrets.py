"""Secrets from the environment (and secret fields) never appear in error text or reprs.

Each case puts the secret where a careless message would repeat it; the test fails if
the error text contains it anywhere, and also checks that the problem is still reported
(so a case cannot pass by not failing at all).
"""

from __future__ import annotations

import pytest

from monitor.config import ConfigError, load_config

SECRET = "xoxb-SECRET-0123456789"
FEED = "feeds:\n  - name: bbc\n    url: https://example.org/bbc.xml\n"
SLACK = "notifiers:\n  desk:\n    type: slack\n"
MAIL = (
    "notifiers:\n  mail:\n    type: email\n    host: smtp.example.org\n"
    "    from: wirewatch@example.org\n"
)

CASES = [
    ("token alongside a webhook", FEED + SLACK + "    token: ${S}\n    webhook_url: ${S}\n"),
    ("token without channel", FEED + SLACK + "    token: ${S}\n"),
    ("webhook that is not a URL", FEED + SLACK + "    webhook_url: ${S}\n"),
    ("secret written in the file itself", FEED + SLACK + f"    webhook_url: {SECRET}\n"),
    ("feed URL carrying a key", "feeds:\n  - name: bbc\n    url: ftp://x/?key=${S}\n"),
    ("database URL with a password", "database: ${S}\n" + FEED),
    ("rule query", FEED + "rules:\n  - name: r\n    query: ${S} AND\n"),
    ("e-mail address", MAIL + "    to: ['${S}']\n" + FEED),
    ("port from the environment", MAIL + "    to: [d@example.org]\n    port: ${S}\n" + FEED),
    ("duration", "defaults:\n  interval: ${S}\n" + FEED),
    ("notifier type", "notifiers:\n  desk:\n    type: ${S}\n" + FEED),
    ("duplicate feed name", "feeds:\n" + "  - name: ${S}\n    url: https://example.org/\n" * 2),
    ("notifier reference", FEED + "rules:\n  - name: r\n    query: CSTO\n    notify: ['${S}']\n"),
    ("tag reference", FEED + "rules:\n  - name: r\n    query: CSTO\n    feeds: ['tag:${S}']\n"),
    ("severity", FEED + "rules:\n  - name: r\n    query: CSTO\n    severity: ${S}\n"),
    ("boolean", FEED + "    enabled: ${S}\n"),
]


@pytest.mark.parametrize("text", [case[1] for case in CASES], ids=[case[0] for case in CASES])
def test_secret_never_appears_in_errors(text: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_config(text, source="config.yaml", environ={"S": SECRET})
    rendered = str(raised.value)
    assert raised.value.problems, "the broken config must still be reported"
    assert "SECRET" not in rendered
    assert all("SECRET" not in problem.message for problem in raised.value.problems)


def test_secret_never_appears_in_a_loaded_config_repr() -> None:
    config = load_config(
        "database: postgresql+psycopg://wirewatch:${S}@db/wirewatch\n"
        + FEED
        + "notifiers:\n  desk:\n    type: slack\n    token: ${S}\n    channel: '#news'\n"
        "  mail:\n    type: email\n    host: smtp.example.org\n    username: w\n"
        "    password: ${S}\n    from: w@example.org\n    to: [d@example.org]\n",
        source="config.yaml",
        environ={"S": SECRET},
    )
    assert SECRET not in repr(config)
    assert SECRET not in str(config)
    slack = config.notifiers["desk"]
    assert slack.token is not None and slack.token.get_secret_value() == SECRET  # type: ignore[union-attr]
