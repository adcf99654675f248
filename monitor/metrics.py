"""Prometheus metrics: what the pipeline and the outbox report, and what the store holds.

Counters and histograms are fed by small hook calls from the poller and the
deliverer (the :class:`Observer` protocol; :data:`NO_METRICS` when nothing is
listening). Gauges that describe the database (outbox depth, failing feeds)
are read from the store at scrape time, so every instance sharing a database
reports the same truth and nothing drifts after a restart.

Each :class:`Metrics` has its own registry: no module-level state, so tests
and several monitors in one process do not see each other's numbers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterator
from datetime import datetime
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram, Info, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger("wirewatch.metrics")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Feeds are polled every few minutes: lag under a second is normal, tens of
# seconds mean the poller cannot keep up.
LAG_BUCKETS = (0.1, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0, 300.0)
FETCH_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 60.0)
# From publication to alert spans seconds (a live feed) to days (a feed that
# backdates); from first seen to alert is seconds unless a channel is down.
LATENCY_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 900, 1800, 3600, 4 * 3600, 86400, 7 * 86400)


class Observer(Protocol):
    """What the poller and the deliverer tell about their work."""

    def feed_polled(self, *, outcome: str, new_items: int, lag_seconds: float) -> None: ...

    def fetch_finished(self, *, seconds: float) -> None: ...

    def hit_stored(self, *, rule: str) -> None: ...

    def delivery_finished(
        self,
        *,
        notifier: str,
        outcome: str,
        now: datetime | None = None,
        published_at: datetime | None = None,
        first_seen_at: datetime | None = None,
    ) -> None: ...


class _NoMetrics:
    def feed_polled(self, *, outcome: str, new_items: int, lag_seconds: float) -> None:
        pass

    def fetch_finished(self, *, seconds: float) -> None:
        pass

    def hit_stored(self, *, rule: str) -> None:
        pass

    def delivery_finished(
        self,
        *,
        notifier: str,
        outcome: str,
        now: datetime | None = None,
        published_at: datetime | None = None,
        first_seen_at: datetime | None = None,
    ) -> None:
        pass


NO_METRICS: Observer = _NoMetrics()


class StoreGauges(Protocol):
    """The store's answers the gauges need (read at scrape time)."""

    def outbox_depth(self) -> int: ...

    def failing_feeds(self) -> int: ...


class Metrics:
    """Every wirewatch metric, in one registry; an :class:`Observer`."""

    def __init__(self, *, gauges: Callable[[], StoreGauges | None] | None = None,
                 instance_id: str | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        if instance_id is not None:
            # Which of several instances sharing a database answers this scrape.
            Info("wirewatch_instance", "This wirewatch instance (hostname:pid by default).",
                 registry=r).info({"instance_id": instance_id})
        self.polls = Counter("wirewatch_polls", "Feed polls by outcome (new, unchanged, error).",
                             ["outcome"], registry=r)
        self.fetch_seconds = Histogram("wirewatch_fetch_duration_seconds",
                                       "Time to fetch one feed document.",
                                       buckets=FETCH_BUCKETS, registry=r)
        self.new_items = Counter("wirewatch_new_items", "Items seen for the first time.",
                                 registry=r)
        self.hits = Counter("wirewatch_hits", "Rule hits stored, by rule.", ["rule"], registry=r)
        self.deliveries = Counter("wirewatch_deliveries",
                                  "Delivery attempts by notifier and outcome "
                                  "(sent, retry, failed, held).",
                                  ["notifier", "outcome"], registry=r)
        self.scheduler_lag = Histogram("wirewatch_scheduler_lag_seconds",
                                       "How late a feed was polled after it fell due.",
                                       buckets=LAG_BUCKETS, registry=r)
        self.alert_latency = Histogram("wirewatch_alert_latency_seconds",
                                       "From the item's published time (since=published) or "
                                       "from when wirewatch first saw it (since=first_seen) "
                                       "to the alert being sent.",
                                       ["since"], buckets=LATENCY_BUCKETS, registry=r)
        self.reloads = Counter("wirewatch_config_reloads", "Config reloads by outcome.",
                               ["outcome"], registry=r)
        self.pruned = Counter("wirewatch_pruned_rows", "Rows removed by retention, by table.",
                              ["table"], registry=r)
        if gauges is not None:
            r.register(_StoreCollector(gauges))
        #: Called after each poll (a progress bar); None when nobody watches.
        self.on_feed_polled: Callable[[int], None] | None = None

    # -- Observer ---------------------------------------------------------

    def feed_polled(self, *, outcome: str, new_items: int, lag_seconds: float) -> None:
        self.polls.labels(outcome).inc()
        if new_items:
            self.new_items.inc(new_items)
        self.scheduler_lag.observe(max(0.0, lag_seconds))
        if self.on_feed_polled is not None:
            self.on_feed_polled(1)

    def fetch_finished(self, *, seconds: float) -> None:
        self.fetch_seconds.observe(seconds)

    def hit_stored(self, *, rule: str) -> None:
        self.hits.labels(rule).inc()

    def delivery_finished(
        self,
        *,
        notifier: str,
        outcome: str,
        now: datetime | None = None,
        published_at: datetime | None = None,
        first_seen_at: datetime | None = None,
    ) -> None:
        self.deliveries.labels(notifier, outcome).inc()
        if outcome != "sent" or now is None:
            return
        if published_at is not None:
            self.alert_latency.labels("published").observe(
                max(0.0, (now - published_at).total_seconds()))
        if first_seen_at is not None:
            self.alert_latency.labels("first_seen").observe(
                max(0.0, (now - first_seen_at).total_seconds()))

    def forget_all_but(self, *, rules: Collection[str], notifiers: Collection[str]) -> None:
        """Drop the series of rules and notifiers no longer configured (after a reload).

        Editors rename and remove rules and channels while the daemon runs for months:
        kept, every name it ever counted stayed in each scrape for the rest of the run.
        A counter that disappears reads to Prometheus like one of a restarted process.
        """
        for rule in _label_values(self.hits, "rule") - set(rules):
            self.hits.remove(rule)
        for notifier in _label_values(self.deliveries, "notifier") - set(notifiers):
            for outcome in _label_values(self.deliveries, "outcome", notifier=notifier):
                self.deliveries.remove(notifier, outcome)

    # -- exposition -------------------------------------------------------

    def render(self) -> bytes:
        return generate_latest(self.registry)


def _label_values(counter: Counter, label: str, **where: str) -> set[str]:
    """The values of ``label`` among ``counter``'s series (those matching ``where``)."""
    return {sample.labels[label]
            for family in counter.collect() for sample in family.samples
            if all(sample.labels.get(key) == value for key, value in where.items())}


class _StoreCollector(Collector):
    def __init__(self, gauges: Callable[[], StoreGauges | None]) -> None:
        self._gauges = gauges

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(())  # values come from the database; nothing to describe up front

    def collect(self) -> Iterator[GaugeMetricFamily]:
        source = self._gauges()
        if source is None:
            return
        try:
            depth, failing = source.outbox_depth(), source.failing_feeds()
        except Exception as exc:  # a scrape must answer even when the database does not
            log.warning("metrics: store gauges unavailable: %s", exc.__class__.__name__)
            return
        yield GaugeMetricFamily("wirewatch_outbox_depth",
                                "Deliveries not yet finished "
                                "(pending, held for a batch, or being sent).",
                                value=depth)
        yield GaugeMetricFamily("wirewatch_failing_feeds",
                                "Enabled feeds whose last poll failed.", value=failing)
