"""Publish a server's events to the Redis Stream, at least once, never blocking a call.

The hub callback only numbers the event (per call), encodes it and appends it
to a bounded in-memory buffer. One asyncio task writes the buffer to Redis in
pipelined XADD batches and removes entries only once Redis has taken them, so
while Redis is unreachable the buffer holds them (up to ``[bus] buffer``;
beyond that the oldest are dropped and counted) and replays them in order when
it is back. A batch cut short by a failure is written again whole: that is
where duplicates come from, and why every entry carries ``(node, run,
call_id, seq)``.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import os
import time
from dataclasses import dataclass
from typing import Any

from voicetriage.bus.config import BusConfig, require_redis
from voicetriage.bus.entry import encode_entry
from voicetriage.core.serialize import client_message

log = logging.getLogger(__name__)

PROBE_S = 5.0  # PING an idle bus this often


@dataclass
class BusStats:
    published: int = 0  # entries Redis acknowledged (replays of a cut-short batch count again)
    dropped: int = 0  # buffer full while Redis was unreachable: oldest entries lost
    errors: int = 0  # failed writes (each followed by a retry)
    outages: int = 0  # times the bus went from reachable to unreachable
    connected: bool = False
    last_error: str | None = None


def run_token() -> str:
    """Tells this server process's sequences from those of an earlier run of the same node."""
    return f"{os.getpid():x}-{time.time_ns() // 1_000_000:x}"


class BusPublisher:
    """A hub subscriber that publishes events to ``config.stream``.

    Call :meth:`start` on the event loop, :meth:`aclose` after the server stopped.
    """

    def __init__(self, config: BusConfig, node: str, *, run: str | None = None, client: Any = None,
                 max_calls: int = 100_000) -> None:
        self.config = config
        self.node = node
        self.run = run or run_token()
        self.kinds = frozenset(config.events)
        self.stats = BusStats()
        self._buf: collections.deque[tuple[int, dict[str, str]]] = collections.deque()
        self._n = itertools.count(1)
        self._seq: collections.OrderedDict[str, int] = collections.OrderedDict()
        self._max_calls = max_calls
        self._client = client
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._closing = False

    # -- hub side (event loop, synchronous) ----------------------------------------
    def __call__(self, event: object) -> None:
        if getattr(event, "kind", None) not in self.kinds:
            return
        self.publish_message(client_message(event))

    def publish_message(self, msg: dict) -> None:
        call_id = str(msg.get("call_id") or "")
        seq = self._seq.pop(call_id, 0) + 1
        self._seq[call_id] = seq  # most recent last; the oldest calls are forgotten first
        if len(self._seq) > self._max_calls:
            self._seq.popitem(last=False)
        fields = encode_entry(msg, node=self.node, run=self.run, seq=seq, ts=time.time())
        if len(self._buf) >= self.config.buffer:
            self._buf.popleft()
            self.stats.dropped += 1
            if self.stats.dropped == 1 or self.stats.dropped % 1000 == 0:
                log.error("event bus: buffer of %d full (Redis unreachable); %d oldest event(s) dropped so far",
                          self.config.buffer, self.stats.dropped)
        self._buf.append((next(self._n), fields))
        if self._wake is not None:
            self._wake.set()

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def health(self) -> dict[str, Any]:
        s = self.stats
        return {
            "url": _redacted(self.config.url),
            "stream": self.config.stream,
            "node": self.node,
            "connected": s.connected,
            "buffered": len(self._buf),
            "buffer": self.config.buffer,
            "published": s.published,
            "dropped": s.dropped,
            "errors": s.errors,
            "outages": s.outages,
            "last_error": s.last_error,
        }

    # -- writer task ------------------------------------------------------------------
    def start(self) -> None:
        if self._client is None:
            aioredis = require_redis()
            self._client = aioredis.Redis.from_url(
                self.config.url, socket_timeout=self.config.timeout_s,
                socket_connect_timeout=self.config.timeout_s, retry_on_timeout=False,
            )
        self._wake = asyncio.Event()
        if self._buf:
            self._wake.set()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="voicetriage-bus-publisher")

    async def _run(self) -> None:
        from redis.exceptions import RedisError

        backoff = 0.1
        idle_probe = True  # the first round PINGs at once
        while True:
            probe = False
            if not self._buf:
                if self._closing:
                    return
                self._wake.clear()
                try:
                    # idle: PING now and then so /health tells a dead bus before the next event
                    await asyncio.wait_for(self._wake.wait(), 0.0 if idle_probe else PROBE_S)
                    continue
                except asyncio.TimeoutError:
                    probe = True
            idle_probe = False
            batch = list(itertools.islice(self._buf, 0, self.config.batch))
            try:
                if probe:
                    await self._client.ping()
                else:
                    await self._write([f for _, f in batch])
            except (RedisError, OSError, asyncio.TimeoutError) as e:
                self.stats.errors += 1
                self.stats.last_error = f"{type(e).__name__}: {e}"
                if self.stats.connected or self.stats.outages == 0:
                    self.stats.outages += 1
                    log.error("event bus %s unreachable (%s); buffering events (up to %d)",
                              _redacted(self.config.url), self.stats.last_error, self.config.buffer)
                self.stats.connected = False
                if self._closing:
                    await asyncio.sleep(min(backoff, 0.5))
                else:
                    await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
                continue
            backoff = 0.1
            if not self.stats.connected:
                if self.stats.outages:
                    log.warning("event bus %s reachable again; replaying %d buffered event(s)",
                                _redacted(self.config.url), len(self._buf))
                self.stats.connected = True
                self.stats.last_error = None
            if probe:
                continue
            last = batch[-1][0]
            # entries dropped meanwhile (buffer full) are already gone from the left
            while self._buf and self._buf[0][0] <= last:
                self._buf.popleft()
            self.stats.published += len(batch)

    async def _write(self, entries: list[dict[str, str]]) -> None:
        c = self.config
        trim: dict[str, Any] = {}
        if c.retention_s > 0:
            trim = {"minid": f"{int((time.time() - c.retention_s) * 1000)}-0", "approximate": True}
        elif c.maxlen > 0:
            trim = {"maxlen": c.maxlen, "approximate": True}
        async with self._client.pipeline(transaction=False) as pipe:
            for f in entries:
                pipe.xadd(c.stream, f, **trim)
            await pipe.execute()

    async def aclose(self, timeout: float = 5.0) -> None:
        """Write what is buffered (for up to ``timeout`` s), then stop."""
        self._closing = True
        if self._task is not None:
            self._wake.set()
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout)
            except asyncio.TimeoutError:
                self._task.cancel()
                try:
                    await self._task
                except (asyncio.CancelledError, Exception):  # noqa: BLE001
                    pass
        if self._buf:
            log.error("event bus: %d event(s) not published at shutdown (Redis unreachable)", len(self._buf))
        if self._client is not None:
            try:
                await self._client.aclose()
            except Exception:  # noqa: BLE001
                pass


def _redacted(url: str | None) -> str | None:
    """The URL without its password (health output and logs)."""
    if not url or "@" not in url:
        return url
    scheme, rest = url.split("://", 1) if "://" in url else ("", url)
    creds, host = rest.rsplit("@", 1)
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user + ':***' if ':' in creds else '***'}@{host}"


__all__ = ["BusPublisher", "BusStats", "run_token"]
