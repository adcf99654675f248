from __future__ import annotations

import io

import pytest

from notifiers import ConsoleNotifier, Notifier, NotifyError
from tests.notifiers.alerts import make_alert


class CountingStream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.flushes = 0

    def flush(self) -> None:
        self.flushes += 1
        super().flush()


def test_prints_one_readable_block_per_alert_and_flushes() -> None:
    stream = CountingStream()
    notifier = ConsoleNotifier(name="console", stream=stream)

    receipt = notifier.send(make_alert())
    notifier.send(make_alert(rule="second-rule"))

    assert isinstance(notifier, Notifier)
    assert receipt.external_id is None
    assert stream.flushes == 2
    first, second = stream.getvalue().split("\n\n")[:2]
    assert first.splitlines() == [
        "[wirewatch] csto-exit",
        "  title:     Armenia weighs leaving the CSTO",
        "  link:      https://news.example/armenia/csto?id=42&lang=en",
        "  feed:      regional-wire",
        "  published: 2024-05-01 12:30 UTC",
        "  snippet:   Pashinyan expressed his intentions to **withdraw** from the **CSTO**"
        " on Friday.",
    ]
    assert second.startswith("[wirewatch] second-rule\n")


@pytest.mark.parametrize(
    ("changes", "expected_line"),
    [
        pytest.param(
            {"title": "Red\x1b[2J\x1b[31m alert"},
            "  title:     Red[2J[31m alert",
            id="ansi-stripped",
        ),
        pytest.param(
            {"title": "Line one\nFAKE: line two"},
            "  title:     Line one FAKE: line two",
            id="newline-collapsed",
        ),
        pytest.param({"link": None}, "  link:      (none)", id="no-link"),
        pytest.param({"published_at": None}, "  published: unknown", id="no-date"),
        pytest.param({"severity": "high"}, "[wirewatch] csto-exit (high)", id="severity"),
        pytest.param({"other_sources": ("DW (first)", "Reuters\n(+4 min)")},
                     "  also:      DW (first), Reuters (+4 min)", id="story-sources"),
    ],
)
def test_untrusted_or_missing_fields(changes: dict[str, object], expected_line: str) -> None:
    stream = io.StringIO()
    ConsoleNotifier(name="console", stream=stream).send(make_alert(**changes))
    assert expected_line in stream.getvalue().splitlines()
    assert "\x1b" not in stream.getvalue()


def test_closed_stream_is_a_permanent_error_naming_the_channel() -> None:
    stream = io.StringIO()
    stream.close()
    with pytest.raises(NotifyError) as caught:
        ConsoleNotifier(name="tty", stream=stream).send(make_alert())
    assert caught.value.retryable is False
    assert "console 'tty'" in str(caught.value)
