"""A ready-made alert for notifier tests; override any field by keyword."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from notifiers import Alert

SNIPPET = "Pashinyan expressed his intentions to withdraw from the CSTO on Friday."


def make_alert(**changes: Any) -> Alert:
    base = Alert(
        alert_id="rule=csto;item=42;channel=desk",
        rule="csto-exit",
        title="Armenia weighs leaving the CSTO",
        link="https://news.example/armenia/csto?id=42&lang=en",
        feed="regional-wire",
        published_at=datetime(2024, 5, 1, 12, 30, tzinfo=UTC),
        snippet=SNIPPET,
        marks=(
            (SNIPPET.index("withdraw"), SNIPPET.index("withdraw") + len("withdraw")),
            (SNIPPET.index("CSTO"), SNIPPET.index("CSTO") + len("CSTO")),
        ),
    )
    return replace(base, **changes)
