"""Wire the bus into a running App: publisher, cluster view, health."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from voicetriage.bus.config import BusConfig, require_redis
from voicetriage.bus.publisher import BusPublisher
from voicetriage.bus.view import ClusterView, LocalEvent
from voicetriage.core.hub import EventHub

log = logging.getLogger(__name__)


@dataclass
class BusRuntime:
    """What :func:`start_bus` added; ``await aclose()`` after ``app.stop()``."""

    publisher: BusPublisher
    view: ClusterView | None
    unsubscribe: Any

    def health(self) -> dict[str, Any]:
        h = self.publisher.health()
        if self.view is not None:
            h["view"] = {"connected": self.view.connected, "received": self.view.received}
        return h

    async def aclose(self, timeout: float = 5.0) -> None:
        for u in self.unsubscribe:
            u()
        if self.view is not None:
            await self.view.aclose()
        await self.publisher.aclose(timeout)


async def start_bus(app: Any, config: BusConfig) -> BusRuntime:
    """Publish ``app``'s events to the bus and, with ``config.view``, show the
    other nodes' events on its ``/events``. Call after ``app.start()`` (the
    default node id needs the port). Redis need not be up: events are buffered."""
    require_redis()
    node = config.node_id(app.port)
    publisher = BusPublisher(config, node)
    unsubscribe = [app.hub.subscribe(publisher)]
    view = None
    if config.view:
        hub = EventHub()
        unsubscribe.append(app.hub.subscribe(lambda ev: hub.publish(LocalEvent(ev, node))))
        view = ClusterView(config, node, publisher.run, hub)
        app.view = hub
    publisher.start()
    if view is not None:
        view.start()
    runtime = BusRuntime(publisher, view, unsubscribe)
    app.health_sections["bus"] = runtime.health
    app.metrics.add_source("bus", lambda: publisher.stats.dropped)
    log.info("event bus: publishing %s to %s stream %s as node %s", ",".join(config.events),
             publisher.health()["url"], config.stream, node)
    return runtime


__all__ = ["BusRuntime", "start_bus"]
