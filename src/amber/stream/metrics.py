"""Prometheus metrics of ``amber consume`` (``--metrics HOST:PORT``).

Names (all prefixed ``amber_consume_``):

* ``decisions_total{verdict}``: posts decided and their results published;
* ``acknowledged_total``: messages acknowledged (NATS ack, Kafka commit);
* ``redeliveries_total``: messages received that had been delivered before;
* ``dead_letters_total{reason}``: messages sent to the dead letters (``malformed``,
  ``rejected``, ``failed`` after retries, ``unacknowledged`` too often);
* ``errors_total{error}``: failures that will be retried, by error class;
* ``lag``: messages of the stream the consumer (group) has not acknowledged yet
  (JetStream: the consumer's ``num_pending``; Kafka: high watermark - committed offset,
  summed over the topic's partitions).

With ``--workers N`` each worker process records into ``PROMETHEUS_MULTIPROC_DIR`` and the
parent serves their sum (``lag``: the highest of the live workers').
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from typing import Any

from amber.errors import MissingExtraError, UserError

#: The packages that ``amber[serve]`` installs and the metrics need.
METRICS_PACKAGES = frozenset({"prometheus_client"})
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def _prometheus() -> Any:
    try:
        import prometheus_client
    except ModuleNotFoundError as exc:
        MissingExtraError.check(exc, METRICS_PACKAGES, "serve")
        raise
    return prometheus_client


@dataclass(frozen=True, slots=True)
class Metrics:
    """The counters and the gauge a consume loop updates."""

    decisions: Any
    acknowledged: Any
    redeliveries: Any
    dead_letters: Any
    errors: Any
    lag: Any


def build_metrics(registry: Any = None) -> Metrics:
    """The metrics, registered in ``registry`` (default: prometheus_client's)."""
    prom = _prometheus()
    where = {} if registry is None else {"registry": registry}
    return Metrics(
        decisions=prom.Counter(
            "amber_consume_decisions", "Posts decided, by verdict", ["verdict"], **where
        ),
        acknowledged=prom.Counter(
            "amber_consume_acknowledged", "Messages acknowledged (ack or commit)", **where
        ),
        redeliveries=prom.Counter(
            "amber_consume_redeliveries", "Messages received that were delivered before", **where
        ),
        dead_letters=prom.Counter(
            "amber_consume_dead_letters", "Messages sent to the dead letters", ["reason"], **where
        ),
        errors=prom.Counter(
            "amber_consume_errors", "Failures that will be retried", ["error"], **where
        ),
        lag=prom.Gauge(
            "amber_consume_lag",
            "Messages not yet acknowledged by the consumer (group)",
            multiprocess_mode="livemax",
            **where,
        ),
    )


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (or ``:PORT``, all interfaces) as a pair. Raises ``UserError``."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise UserError(f"--metrics {text!r} is not HOST:PORT (e.g. 127.0.0.1:9108)")
    return host.strip("[]") or "0.0.0.0", int(port)


def serve_metrics(address: str, registry: Any = None) -> None:
    """Serve /metrics on ``address`` (of ``registry``; default prometheus_client's).
    Raises ``UserError`` when the address cannot be bound."""
    prom = _prometheus()
    host, port = parse_address(address)
    where = {} if registry is None else {"registry": registry}
    try:
        prom.start_http_server(port, addr=host, **where)
    except OSError as exc:
        raise UserError(f"--metrics {address!r} cannot be served: {exc.strerror or exc}") from None


def serve_workers_metrics(address: str) -> str:
    """Serve on ``address`` the sum of the metrics of worker processes that record into
    the folder returned (set it as ``MULTIPROC_ENV`` in their environment)."""
    prom = _prometheus()
    from prometheus_client import multiprocess

    folder = tempfile.mkdtemp(prefix="amber-metrics-")
    registry = prom.CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=folder)  # type: ignore[no-untyped-call]
    serve_metrics(address, registry)
    return folder


def worker_metrics() -> Metrics | None:
    """The metrics of a worker process that records for its parent (``MULTIPROC_ENV``
    set), else ``None``."""
    return build_metrics() if os.environ.get(MULTIPROC_ENV) else None
