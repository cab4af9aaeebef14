"""The Prometheus metrics of one app: decisions by verdict, request latency by route.

Under ``amber serve --workers N`` (``PROMETHEUS_MULTIPROC_DIR`` set) every worker writes
its counts to files there and ``/v1/metrics`` sums them; otherwise the app has a registry
of its own, so two apps in one process never share counts.
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, multiprocess


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

    def render(self) -> str:
        """The Prometheus text format."""
        return generate_latest(self.registry).decode()
