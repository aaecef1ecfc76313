"""Read the bus with a consumer group: each event to one consumer of the group, once.

A routing engine (or ``voicetriage relay``) reads with XREADGROUP, handles an
event, then acknowledges it with XACK. What a consumer read but did not
acknowledge stays pending: a restarted consumer (same name) gets its own
pending entries first, and entries left pending by a consumer that died are
claimed after ``claim_idle_s`` (XAUTOCLAIM) by another one. Duplicates (the
publisher writes an entry again after a lost reply) are dropped by
``(node, run, call_id, seq)``; with ``shared_dedup`` the record of what the
group has handled is kept in Redis (a set per call, expiring after
``dedup_ttl_s``), so that several consumers of one group never both handle the
same event.

    async with BusConsumer("redis://bus:6379/0", group="routing", consumer="engine-1") as bus:
        async for ev in bus:              # BusEvent: ev.type, ev.call_id, ev.node, ev.seq, ev.message
            route(ev.message)
            await bus.ack(ev)
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, AsyncIterator

from voicetriage.bus.config import check_url, require_redis
from voicetriage.bus.entry import BadEntry, BusEvent, Dedup, parse_entry
from voicetriage.core.errors import ConfigError

log = logging.getLogger(__name__)

# SADD the seq to the call's set; a 1 means the group had not handled it yet
# Claim (node, run, call_id, seq) for one stream entry, atomically: the first entry
# to claim it owns it (a redelivery of that same entry still does); another entry
# carrying the same event is a duplicate. Checking first and marking after handling
# let two consumers both post one hint (seen in the two-relay test).
_CLAIM = """
local set = redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
if set == 1 then return 1 end
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then return 1 end
return 0
"""


class BusConsumer:
    """One consumer of a consumer group on the event stream."""

    def __init__(
        self,
        url: str,
        *,
        group: str,
        consumer: str,
        stream: str = "voicetriage:events",
        start: str = "$",
        kinds: frozenset[str] | set[str] | None = None,
        claim_idle_s: float = 60.0,
        shared_dedup: bool = True,
        dedup_ttl_s: int = 24 * 3600,
        block_ms: int = 1000,
        count: int = 100,
        client: Any = None,
    ) -> None:
        check_url(url)
        if not group or not consumer:
            raise ConfigError("a bus consumer needs a group and a consumer name")
        if start not in ("$", "0") and "-" not in start:
            raise ConfigError(f"start must be '$' (new events), '0' (the whole stream) or an entry id, got {start!r}")
        self.url = url
        self.group = group
        self.consumer = consumer
        self.stream = stream
        self.start = start
        self.kinds = frozenset(kinds) if kinds else None
        self.claim_idle_ms = int(claim_idle_s * 1000)
        self.shared_dedup = shared_dedup
        self.dedup_ttl_s = int(dedup_ttl_s)
        self.block_ms = block_ms
        self.count = count
        self.dedup = Dedup()
        self.duplicates = 0
        self.skipped = 0  # other kinds and entries that are not events: acknowledged unhandled
        self._client = client
        self._mark = None
        self._pending_done = False
        self._next_claim = 0.0

    async def __aenter__(self) -> "BusConsumer":
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def open(self) -> None:
        """Connect and create the group (MKSTREAM) if it does not exist."""
        from redis.exceptions import ResponseError

        if self._client is None:
            aioredis = require_redis()
            self._client = aioredis.Redis.from_url(self.url, socket_timeout=self.block_ms / 1000 + 5,
                                                   socket_connect_timeout=5)
        try:
            await self._client.xgroup_create(self.stream, self.group, id=self.start, mkstream=True)
        except ResponseError as e:
            if "BUSYGROUP" not in str(e):
                raise
        self._claim = self._client.register_script(_CLAIM)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def _dedup_key(self, ev: BusEvent) -> str:
        return f"{self.stream}:seen:{self.group}:{ev.node}:{ev.run}:{ev.call_id}"

    async def read(self) -> list[BusEvent]:
        """The next events for this consumer (possibly none after ``block_ms``).

        Own pending entries come first, then claimed ones of dead consumers, then
        new ones. Duplicates and other kinds are acknowledged here and not returned.
        """
        loop = asyncio.get_running_loop()
        raw: list[tuple[Any, Any]] = []
        if not self._pending_done:
            got = await self._client.xreadgroup(self.group, self.consumer, {self.stream: "0"}, count=self.count)
            raw = [e for _s, entries in got or () for e in entries if e[1]]
            if not raw:
                self._pending_done = True
        if not raw and self.claim_idle_ms and loop.time() >= self._next_claim:
            self._next_claim = loop.time() + max(1.0, self.claim_idle_ms / 4000)
            res = await self._client.xautoclaim(self.stream, self.group, self.consumer,
                                                self.claim_idle_ms, start_id="0-0", count=self.count)
            raw = [e for e in res[1] if e[1]]
            if raw:
                log.warning("bus consumer %s/%s: claimed %d entries left pending by another consumer",
                            self.group, self.consumer, len(raw))
        if not raw:
            got = await self._client.xreadgroup(self.group, self.consumer, {self.stream: ">"},
                                                count=self.count, block=self.block_ms)
            raw = [e for _s, entries in got or () for e in entries]
        out: list[BusEvent] = []
        done: list[Any] = []
        for entry_id, fields in raw:
            try:
                ev = parse_entry(entry_id, fields)
            except BadEntry as e:
                log.warning("bus consumer %s/%s: skipped %s", self.group, self.consumer, e)
                self.skipped += 1
                done.append(entry_id)
                continue
            if self.kinds is not None and ev.type not in self.kinds:
                self.skipped += 1
                done.append(entry_id)
                continue
            if self.dedup.seen(ev) or (self.shared_dedup and not await self._claim(
                    keys=[self._dedup_key(ev)], args=[ev.seq, ev.id, self.dedup_ttl_s])):
                self.duplicates += 1
                done.append(entry_id)
                continue
            out.append(ev)
        if done:
            await self._client.xack(self.stream, self.group, *done)
        return out

    async def ack(self, ev: BusEvent) -> None:
        """The event is handled: record it for the group and XACK it."""
        await self._client.xack(self.stream, self.group, ev.id)

    async def __aiter__(self) -> AsyncIterator[BusEvent]:
        while True:
            for ev in await self.read():
                yield ev


__all__ = ["BusConsumer"]
