"""The Prometheus metrics of one app: decisions by verdict, request latency by route, each
exchange's fetches and each webhook's deliveries (both read from the database when
scraped: fetches and deliveries run in any process).

Under ``amber serve --workers N`` (``PROMETHEUS_MULTIPROC_DIR`` set) every worker writes
its counts to files there and ``/v1/metrics`` sums them; otherwise the app has a registry
of its own, so two apps in one process never share counts.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from datetime import datetime

    from amber.exchanges import ExchangeStatus
    from amber.webhooks import Webhook


class Metrics:
    """The metrics an app counts and ``/v1/metrics`` exposes."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        shared = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        if shared:
            multiprocess.MultiProcessCollector(self.registry)  # type: ignore[no-untyped-call]
        own = None if shared else self.registry
        self.decided = Counter(
            "amber_decisions_total", "Posts decided, by verdict", ["verdict"], registry=own
        )
        self.latency = Histogram(
            "amber_request_seconds", "Request latency", ["route"], registry=own
        )

    def render(
        self,
        exchanges: Iterable[ExchangeStatus] = (),
        webhooks: Iterable[Webhook] = (),
        *,
        now: datetime | None = None,
    ) -> str:
        """The Prometheus text format; with ``exchanges``, their fetch metrics too
        (``ExchangeMetrics``); with ``webhooks``, their deliveries' (``WebhookMetrics``,
        ages as of ``now``)."""
        text = generate_latest(self.registry).decode()
        found = list(exchanges)
        hooks = list(webhooks)
        if found or hooks:
            registry = CollectorRegistry()
            if found:
                registry.register(ExchangeMetrics(found))
            if hooks:
                registry.register(WebhookMetrics(hooks, now))
            text += generate_latest(registry).decode()
        return text


class ExchangeMetrics(Collector):
    """Each exchange's fetches, by ``exchange`` label: when the last ended
    (``amber_exchange_last_fetch_timestamp_seconds``), whether it succeeded, whether it is
    up to date or running, its checkpoint's time, what it counted (``..._last_fetch_items``
    by ``kind``: fetched, added, removed, held, skipped, invalid), what the exchange holds
    (``amber_exchange_items`` by ``state``: entries, held, removed), and over every fetch:
    fetches, failures and items fetched (counters)."""

    def __init__(self, statuses: list[ExchangeStatus]) -> None:
        self.statuses = statuses

    def collect(self) -> Iterator[Metric]:
        labels = ["exchange"]
        ended = GaugeMetricFamily(
            "amber_exchange_last_fetch_timestamp_seconds",
            "When the exchange's last fetch ended (Unix time)",
            labels=labels,
        )
        success = GaugeMetricFamily(
            "amber_exchange_last_fetch_success",
            "1 if the exchange's last fetch succeeded, 0 if it failed",
            labels=labels,
        )
        current = GaugeMetricFamily(
            "amber_exchange_up_to_date",
            "1 if the last fetch read all the source had",
            labels=labels,
        )
        running = GaugeMetricFamily(
            "amber_exchange_fetch_running", "1 while a fetch of the exchange runs", labels=labels
        )
        checkpoint = GaugeMetricFamily(
            "amber_exchange_checkpoint_timestamp_seconds",
            "The upstream time the exchange's checkpoint has reached (Unix time)",
            labels=labels,
        )
        last = GaugeMetricFamily(
            "amber_exchange_last_fetch_items",
            "What the exchange's last fetch counted, by kind",
            labels=["exchange", "kind"],
        )
        items = GaugeMetricFamily(
            "amber_exchange_items",
            "Upstream records the exchange holds, by state",
            labels=["exchange", "state"],
        )
        fetches = CounterMetricFamily(
            "amber_exchange_fetches", "Fetches of the exchange", labels=labels
        )
        failures = CounterMetricFamily(
            "amber_exchange_fetch_failures", "Failed fetches of the exchange", labels=labels
        )
        fetched = CounterMetricFamily(
            "amber_exchange_fetched_items", "Updates the exchange's fetches read", labels=labels
        )
        for s in self.statuses:
            name = [s.exchange.name]
            if s.last_ended_at is not None:
                ended.add_metric(name, s.last_ended_at.timestamp())
            if s.last_succeeded is not None:
                success.add_metric(name, 1.0 if s.last_succeeded else 0.0)
            current.add_metric(name, 1.0 if s.up_to_date else 0.0)
            running.add_metric(name, 0.0 if s.running_since is None else 1.0)
            if s.checkpoint_at is not None:
                checkpoint.add_metric(name, s.checkpoint_at.timestamp())
            if s.last_counts is not None:
                c = s.last_counts
                for kind, value in (
                    ("fetched", c.fetched),
                    ("added", c.added),
                    ("removed", c.removed),
                    ("held", c.held),
                    ("skipped", sum(c.skipped.values())),
                    ("invalid", c.invalid),
                ):
                    last.add_metric([*name, kind], float(value))
            for state, value in (("entries", s.entries), ("held", s.held), ("removed", s.removed)):
                items.add_metric([*name, state], float(value))
            fetches.add_metric(name, float(s.fetches))
            failures.add_metric(name, float(s.failures))
            fetched.add_metric(name, float(s.fetched_total))
        yield from (
            ended,
            success,
            current,
            running,
            checkpoint,
            last,
            items,
            fetches,
            failures,
            fetched,
        )


class WebhookMetrics(Collector):
    """Each webhook's deliveries, by ``webhook`` label (its id): pending now
    (``amber_webhook_pending``, retries included), failed now (``amber_webhook_failed``:
    given up, waiting for a hand retry), how long the oldest pending one has waited
    (``amber_webhook_oldest_pending_seconds``), and over its life: deliveries delivered
    and attempts failed (counters ``amber_webhook_delivered_total`` and
    ``amber_webhook_failed_attempts_total``)."""

    def __init__(self, webhooks: list[Webhook], now: datetime | None) -> None:
        self.webhooks = webhooks
        self.now = now

    def collect(self) -> Iterator[Metric]:
        labels = ["webhook"]
        pending = GaugeMetricFamily(
            "amber_webhook_pending",
            "Deliveries waiting to be sent or retried",
            labels=labels,
        )
        failed = GaugeMetricFamily(
            "amber_webhook_failed",
            "Deliveries given up after the most attempts (retry them by hand)",
            labels=labels,
        )
        oldest = GaugeMetricFamily(
            "amber_webhook_oldest_pending_seconds",
            "How long the oldest pending delivery has waited (0 when none)",
            labels=labels,
        )
        delivered = CounterMetricFamily(
            "amber_webhook_delivered", "Deliveries the webhook answered with 2xx", labels=labels
        )
        attempts = CounterMetricFamily(
            "amber_webhook_failed_attempts",
            "Delivery attempts that failed (no answer, or not 2xx)",
            labels=labels,
        )
        for w in self.webhooks:
            name = [str(w.id)]
            pending.add_metric(name, float(w.pending))
            failed.add_metric(name, float(w.failed))
            waited = 0.0
            if w.oldest_pending_at is not None and self.now is not None:
                waited = max(0.0, (self.now - w.oldest_pending_at).total_seconds())
            oldest.add_metric(name, waited)
            delivered.add_metric(name, float(w.delivered))
            attempts.add_metric(name, float(w.failures))
        yield from (pending, failed, oldest, delivered, attempts)
