"""The cluster view: this node's ``/events`` shows the calls of every node.

With a bus, ``/events`` subscribers listen to a view hub instead of the
server's own hub. The view gets this node's events straight from the server
hub (as before, with ``node`` added) and the other nodes' events from a reader
task that follows the stream with XREAD. The reader only publishes into the
view, never into the server hub, so nothing read from the bus is published to
it again, and it skips entries of its own ``(node, run)``, so a local event
never shows twice.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from voicetriage.bus.config import BusConfig, require_redis
from voicetriage.bus.entry import BadEntry, Dedup, parse_entry
from voicetriage.core.hub import EventHub
from voicetriage.core.serialize import client_message

log = logging.getLogger(__name__)


class LocalEvent:
    """A server-hub event as the view shows it: its message plus this node's id."""

    __slots__ = ("event", "node", "_msg")

    def __init__(self, event: object, node: str) -> None:
        self.event = event
        self.node = node
        self._msg: dict | None = None

    @property
    def kind(self) -> str | None:
        return getattr(self.event, "kind", None)

    @property
    def call_id(self) -> str | None:
        return getattr(self.event, "call_id", None)

    @property
    def bus_message(self) -> dict:
        if self._msg is None:
            self._msg = {**client_message(self.event), "node": self.node}
        return self._msg


class ClusterView:
    """Follows the stream and publishes other nodes' events on ``hub``."""

    def __init__(self, config: BusConfig, node: str, run: str, hub: EventHub, *, client: Any = None) -> None:
        self.config = config
        self.node = node
        self.run = run
        self.hub = hub
        self.dedup = Dedup()
        self.received = 0
        self.connected = False
        self.last_id: str | None = None
        self._client = client
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        if self._client is None:
            aioredis = require_redis()
            # blocking XREAD waits up to 1 s; the socket timeout must be longer
            self._client = aioredis.Redis.from_url(
                self.config.url, socket_timeout=self.config.timeout_s + 2.0,
                socket_connect_timeout=self.config.timeout_s,
            )
        self._task = asyncio.get_running_loop().create_task(self._run(), name="voicetriage-bus-view")

    async def _run(self) -> None:
        from redis.exceptions import RedisError

        stream = self.config.stream
        backoff = 0.1
        while True:
            try:
                if self.last_id is None:
                    # start at the stream's end (XREAD "$" would miss what arrives between calls)
                    top = await self._client.xrevrange(stream, count=1)
                    self.last_id = top[0][0].decode() if top else "0-0"
                got = await self._client.xread({stream: self.last_id}, count=500, block=1000)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError, asyncio.TimeoutError) as e:
                if self.connected:
                    log.warning("cluster view: event bus unreachable (%s); retrying", e)
                self.connected = False
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
                continue
            backoff = 0.1
            self.connected = True
            for _stream, entries in got or ():
                for entry_id, fields in entries:
                    self.last_id = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
                    try:
                        ev = parse_entry(entry_id, fields)
                    except BadEntry as e:
                        log.warning("cluster view: skipped %s", e)
                        continue
                    if (ev.node, ev.run) == (self.node, self.run) or self.dedup.seen(ev):
                        continue
                    self.received += 1
                    self.hub.publish(ev)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            # redis-py can sit out a cancellation inside a blocking XREAD (seen: a
            # worker never exited on SIGTERM); wait briefly, then drop the connection
            # under it, which ends the read
            await asyncio.wait({self._task}, timeout=1.0)
        if self._client is not None:
            try:
                await asyncio.wait_for(self._client.aclose(), timeout=2.0)
            except Exception:  # noqa: BLE001
                pass
            if self._task is not None and not self._task.done():
                try:
                    await self._client.connection_pool.disconnect(inuse_connections=True)
                except Exception:  # noqa: BLE001
                    pass
        if self._task is not None and not self._task.done():
            await asyncio.wait({self._task}, timeout=2.0)
            if not self._task.done():
                log.warning("cluster view: bus reader did not stop; leaving it")


__all__ = ["ClusterView", "LocalEvent"]
