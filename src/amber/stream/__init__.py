"""Stream ingest: posts from a NATS JetStream stream or a Kafka topic, decisions back out.

``amber.stream.core`` holds what every transport shares: read a message as a post, decide
it once (``Engine.submit``), publish its decision, acknowledge only once the decision and
its evidence are stored, retry what failed and dead-letter what keeps failing, drain on a
signal. ``amber.stream.nats`` and ``amber.stream.kafka`` adapt it to each broker; their
client libraries (``amber[stream]``) are imported only when one is opened.
"""

from __future__ import annotations

from amber.stream.core import (
    Delivery,
    Settings,
    Tally,
    Transport,
    consume,
    message_id,
    read_post,
    result_line,
)

__all__ = [
    "Delivery",
    "Settings",
    "Tally",
    "Transport",
    "consume",
    "message_id",
    "read_post",
    "result_line",
]
