"""The operations keys of config.yaml (`http`, `retention`): values and exact errors."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pytest

from monitor.config import ConfigError, load_config

FEED = """\
feeds:
  - name: bbc
    url: https://example.org/bbc.xml
"""


@dataclass(frozen=True)
class Broken:
    name: str
    text: str
    expected: str


BROKEN = [
    Broken("listen without a port", "http:\n  listen: 127.0.0.1\n",
           "config.yaml:5: http.listen: expected HOST:PORT like 127.0.0.1:9464 or [::1]:9464, "
           "got '127.0.0.1'"),
    Broken("listen port out of range", "http:\n  listen: 127.0.0.1:70000\n",
           "config.yaml:5: http.listen: expected HOST:PORT like 127.0.0.1:9464 or [::1]:9464, "
           "got '127.0.0.1:70000'"),
    Broken("http without listen", "http:\n  port: 9464\n",
           "config.yaml:4: http: missing required key 'listen'\n"
           "config.yaml:5: http.port: unknown key 'port'"),
    Broken("retention shorter than a day", "retention:\n  items: 2h\n",
           "config.yaml:5: retention.items: must be at least 1d, got '2h'"),
    Broken("retention not a duration", "retention:\n  deliveries: forever\n",
           "config.yaml:5: retention.deliveries: expected a duration like 30s, 5m, 2h or 1d, "
           "got 'forever'"),
    Broken("retention key typo", "retention:\n  item: 10d\n",
           "config.yaml:5: retention.item: unknown key 'item' (did you mean 'items'?)"),
]


@pytest.mark.parametrize("case", BROKEN, ids=[c.name for c in BROKEN])
def test_broken_ops_keys_name_line_and_key(case: Broken) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(FEED + case.text, source="config.yaml", environ={})
    assert str(caught.value) == case.expected


@pytest.mark.parametrize(
    ("text", "listen", "items", "deliveries"),
    [
        pytest.param("", None, timedelta(days=30), timedelta(days=90), id="defaults"),
        pytest.param("http:\n  listen: '[::1]:9464'\nretention:\n  items: 7d\n", "[::1]:9464",
                     timedelta(days=7), timedelta(days=90), id="ipv6 listener, short items"),
        pytest.param("retention:\n", None, timedelta(days=30), timedelta(days=90),
                     id="empty retention means defaults"),
    ],
)
def test_ops_keys_values(
    text: str, listen: str | None, items: timedelta, deliveries: timedelta
) -> None:
    config = load_config(FEED + text, source="config.yaml", environ={})
    assert (config.http.listen if config.http else None) == listen
    assert (config.retention.items, config.retention.deliveries) == (items, deliveries)
