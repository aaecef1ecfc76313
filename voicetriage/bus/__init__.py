"""The event bus: many voicetriage servers, one Redis Stream, one view.

With ``--event-bus redis://HOST:PORT/DB`` (or ``[bus] url``) every server
publishes its calls' events (finals, hints, summaries, signals: ``[bus]
events``) to one Redis Stream, at least once, each entry carrying the call id,
the node id and a per-call sequence number so consumers can drop duplicates
(docs/deployment.md, "Event bus"):

* :class:`~voicetriage.bus.publisher.BusPublisher`: the hub subscriber that
  buffers events (bounded) and a background task that writes them with XADD,
  replaying the buffer in order after an outage;
* :class:`~voicetriage.bus.view.ClusterView`: reads the stream and feeds the
  other nodes' events into this node's ``/events`` view;
* :class:`~voicetriage.bus.consumer.BusConsumer`: a consumer-group reader
  (XREADGROUP/XACK, pending entries reclaimed) with duplicate dropping, used by
  ``voicetriage relay`` and usable by a routing engine.

The ``redis`` package is an optional extra (``pip install 'voicetriage[bus]'``)
and is imported only when a bus is configured.
"""

from __future__ import annotations

from voicetriage.bus.config import BusConfig, bus_config, require_redis
from voicetriage.bus.entry import BadEntry, BusEvent, Dedup, encode_entry, parse_entry

__all__ = [
    "BadEntry",
    "BusConfig",
    "BusEvent",
    "Dedup",
    "bus_config",
    "encode_entry",
    "parse_entry",
    "require_redis",
]
