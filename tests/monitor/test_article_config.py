"""Config keys for article text: defaults, per-feed overrides, and the exact errors."""

from __future__ import annotations

from datetime import timedelta

import pytest

from monitor.config import ConfigError, load_config
from monitor.plan import plan_from_config

FEEDS = """\
feeds:
  - name: teasers
    url: https://example.org/teasers.xml
    full_text: true
  - name: slow-site
    url: https://example.org/slow.xml
    full_text: true
    full_text_timeout: 1m
  - name: full
    url: https://example.org/full.xml
"""


def test_defaults() -> None:
    config = load_config(FEEDS, source="config.yaml", environ={})
    assert config.full_text_concurrency == 4
    assert config.allow_private_article_hosts is False
    assert config.defaults.full_text_timeout == timedelta(seconds=30)
    plan = plan_from_config(config)
    assert [(f.name, f.full_text, f.full_text_timeout) for f in plan.feeds.values()] == [
        ("teasers", True, timedelta(seconds=30)),
        ("slow-site", True, timedelta(minutes=1)),
        ("full", False, timedelta(seconds=30)),
    ]
    assert (plan.full_text_concurrency, plan.allow_private_article_hosts) == (4, False)


def test_everything_set() -> None:
    text = ("full_text_concurrency: 2\nallow_private_article_hosts: true\n"
            "defaults:\n  full_text_timeout: 10s\n" + FEEDS)
    plan = plan_from_config(load_config(text, source="config.yaml", environ={}))
    assert plan.full_text_concurrency == 2 and plan.allow_private_article_hosts is True
    assert plan.feeds["teasers"].full_text_timeout == timedelta(seconds=10)
    assert plan.feeds["slow-site"].full_text_timeout == timedelta(minutes=1)


@pytest.mark.parametrize(
    ("case", "text", "expected"),
    [
        ("full_text not a boolean",
         "feeds:\n  - name: a\n    url: https://example.org/a\n    full_text: yes please\n",
         "config.yaml:4: feeds[0].full_text: expected true or false, got 'yes please'"),
        ("full_text_timeout not a duration",
         "feeds:\n  - name: a\n    url: https://example.org/a\n    full_text_timeout: soon\n",
         "config.yaml:4: feeds[0].full_text_timeout: "),
        ("concurrency below 1",
         "full_text_concurrency: 0\nfeeds:\n  - name: a\n    url: https://example.org/a\n",
         "config.yaml:1: full_text_concurrency: must be at least 1, got 0"),
        ("switch not a boolean",
         "allow_private_article_hosts: sometimes\nfeeds:\n  - name: a\n    url: https://e.org/a\n",
         "config.yaml:1: allow_private_article_hosts: expected true or false, got 'sometimes'"),
        ("typo in the feed key",
         "feeds:\n  - name: a\n    url: https://example.org/a\n    fulltext: true\n",
         "config.yaml:4: feeds[0].fulltext: unknown key 'fulltext' (did you mean 'full_text'?)"),
    ],
)
def test_errors(case: str, text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(text, source="config.yaml", environ={})
    assert str(caught.value).startswith(expected), (case, str(caught.value))
