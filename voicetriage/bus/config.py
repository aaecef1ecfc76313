"""``[bus]``: the typed event-bus section of the config file (and its flags)."""

from __future__ import annotations

import socket
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from voicetriage.core.config import Config, build_section
from voicetriage.core.errors import ConfigError

#: event kinds a server can publish
KINDS = ("call", "partial", "final", "dtmf", "signal", "hint", "summary")
EXTRA = "bus"  # the pip extra that installs redis (and psycopg)


@dataclass(frozen=True)
class BusConfig:
    """The ``[bus]`` section.

    ``url``: ``redis://HOST:PORT/DB`` (``rediss://`` for TLS, ``unix:///path``);
    None: no bus. ``stream``: the Redis Stream key. ``node``: this server's id
    on the bus (default ``HOSTNAME:PORT``). ``events``: kinds published.
    ``maxlen``: approximate cap on the stream's length (XADD MAXLEN ~; 0: no
    cap); ``retention_s``: instead of a length, trim entries older than this
    (XADD MINID ~; 0: off). ``buffer``: events held in memory while Redis is
    unreachable (beyond it the oldest are dropped and counted). ``batch``:
    entries per pipelined write. ``view``: feed the other nodes' events into
    this node's ``/events``. ``timeout_s``: connect and command timeout.
    """

    url: str | None = None
    stream: str = "voicetriage:events"
    node: str | None = None
    events: list = field(default_factory=lambda: ["final", "hint", "summary", "signal"])
    maxlen: int = 1_000_000
    retention_s: float = 0.0
    buffer: int = 10_000
    batch: int = 200
    view: bool = True
    timeout_s: float = 2.0

    def node_id(self, port: int) -> str:
        return self.node or f"{socket.gethostname()}:{port}"


def validate(bc: BusConfig) -> BusConfig:
    if bc.url is not None:
        check_url(bc.url)
    if not bc.stream:
        raise ConfigError("bus.stream: the stream key must not be empty")
    bad = sorted(set(bc.events) - set(KINDS))
    if bad or not bc.events:
        raise ConfigError(f"bus.events: unknown or no kind(s) {', '.join(map(repr, bad))} (use {', '.join(KINDS)})")
    if bc.maxlen < 0 or bc.retention_s < 0:
        raise ConfigError("bus.maxlen and bus.retention_s must be >= 0")
    if bc.buffer < 1 or bc.batch < 1 or bc.timeout_s <= 0:
        raise ConfigError("bus.buffer >= 1, bus.batch >= 1 and bus.timeout_s > 0 please")
    if bc.node is not None and (not bc.node or any(c.isspace() for c in bc.node)):
        raise ConfigError(f"bus.node: {bc.node!r} is not a usable node id (no spaces)")
    return bc


def check_url(url: str) -> str:
    if not isinstance(url, str):
        raise ConfigError(f"event bus URL must be a string, got {url!r}")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise ConfigError(f"event bus URL must be redis://HOST:PORT/DB, rediss:// or unix://, got {url!r}")
    if parts.scheme != "unix" and not parts.hostname:
        raise ConfigError(f"event bus URL {url!r} has no host")
    try:
        parts.port
    except ValueError:
        raise ConfigError(f"event bus URL {url!r} has a bad port") from None
    db = parts.path.strip("/")
    if parts.scheme != "unix" and db and not db.isdigit():
        raise ConfigError(f"event bus URL {url!r}: the database must be a number (redis://HOST:PORT/0)")
    return url


def bus_config(config: Config, **overrides: Any) -> BusConfig:
    """The typed ``[bus]`` section (from ``config.extra``) plus CLI overrides."""
    values = dict(config.extra.get(EXTRA, {}) or {})
    values.update({k: v for k, v in overrides.items() if v is not None})
    return validate(build_section(BusConfig, values, EXTRA, config.source))


def require_redis():
    """``redis.asyncio``, or a ConfigError naming the extra that installs it."""
    try:
        import redis.asyncio as aioredis
    except ImportError:
        raise ConfigError(
            "the event bus needs the 'redis' package: pip install 'voicetriage[bus]'"
        ) from None
    return aioredis


__all__ = ["BusConfig", "KINDS", "bus_config", "check_url", "require_redis", "validate"]
