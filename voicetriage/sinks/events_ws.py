"""``/events``: a websocket that streams every call's events to a subscriber.

A supervisor dashboard or a routing engine connects to
``ws://HOST:PORT/events`` and receives JSON messages (the same as on the
native protocol, each with its ``call_id``), optionally filtered with the
query string: ``?types=hint,summary`` (event kinds) and
``?call_id=A&call_id=B`` (or comma-separated). The first message is
``{"type": "subscribed", ...}`` echoing the filters. A subscriber that cannot
keep up loses the oldest events, and is told so with
``{"type": "dropped", "count": N}`` before the next message it gets. When the
server stops, subscribers stay connected until the calls in progress have been
flushed (their last finals, hints and summaries), then get close code 1001. When
``token`` is configured, the handshake needs ``Authorization: Bearer TOKEN``
(or ``?token=TOKEN``), otherwise it is refused with HTTP 401. With an event
bus (``--event-bus``) the route shows ``app.view``: the calls of every node,
each message with its ``node`` (docs/deployment.md).
"""

from __future__ import annotations

import asyncio
import collections
import difflib
import hmac
import logging
import urllib.parse
from typing import TYPE_CHECKING, Any

from websockets.exceptions import ConnectionClosed

from voicetriage.core.events import EVENT_KINDS
from voicetriage.core.serialize import client_message, dumps
from voicetriage.protocols.machine import CLOSE_GOING_AWAY

if TYPE_CHECKING:
    from websockets.asyncio.server import ServerConnection
    from websockets.http11 import Request, Response

    from voicetriage.server.app import App

log = logging.getLogger(__name__)

PATH = "/events"


class BadFilter(ValueError):
    pass


def parse_filters(path: str) -> tuple[frozenset[str], frozenset[str]]:
    """(call ids, event kinds) from the request path's query; empty = all."""
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(path).query, keep_blank_values=False)
    unknown = set(query) - {"call_id", "types", "type", "token"}
    if unknown:
        raise BadFilter(f"unknown query parameter(s): {', '.join(sorted(unknown))} (use call_id, types)")

    def values(*names: str) -> frozenset[str]:
        return frozenset(v.strip() for n in names for item in query.get(n, ()) for v in item.split(",") if v.strip())

    kinds = values("types", "type")
    bad = sorted(k for k in kinds if k not in EVENT_KINDS)
    if bad:
        hints = "".join(f" ({k!r}: did you mean {m[0]!r}?)" for k in bad
                        if (m := difflib.get_close_matches(k, EVENT_KINDS, n=1)))
        raise BadFilter(f"unknown event type(s): {', '.join(map(repr, bad))}{hints}; "
                        f"use {', '.join(EVENT_KINDS)}")
    return values("call_id"), kinds


message = client_message  # the cluster view's events come ready-made (``bus_message``)


# fields that carry what the caller said (a transcript-free token never sees them)
_TRANSCRIPT_KEYS = frozenset({"text", "stable", "unstable", "finals", "phrase", "transcript", "words"})


def scrub_transcripts(value: Any) -> Any:
    """``value`` without transcript fields, at any depth (hint evidence quotes the caller)."""
    if isinstance(value, dict):
        return {k: scrub_transcripts(v) for k, v in value.items() if k not in _TRANSCRIPT_KEYS}
    if isinstance(value, list):
        return [scrub_transcripts(v) for v in value]
    return value


def scoped_kinds(kinds: frozenset[str], scopes: frozenset[str]) -> frozenset[str] | None:
    """The kinds a subscriber with ``scopes`` gets (None: nothing it asked for is allowed)."""
    if "all" in scopes or "events" in scopes or "hints" not in scopes:
        return kinds
    allowed = frozenset({"hint"})
    kept = (kinds & allowed) if kinds else allowed
    return kept or None


class _Subscriber:
    def __init__(self, call_ids: frozenset[str], kinds: frozenset[str], limit: int) -> None:
        self.call_ids = call_ids
        self.kinds = kinds
        self.queue: collections.deque[object] = collections.deque()
        self.limit = limit
        self.dropped = 0
        self.total_dropped = [0]  # shared by a route's subscribers (/metrics)
        self.ready = asyncio.Event()

    def __call__(self, event: object) -> None:
        if self.kinds and getattr(event, "kind", None) not in self.kinds:
            return
        if self.call_ids and getattr(event, "call_id", None) not in self.call_ids:
            return
        if len(self.queue) >= self.limit:
            self.queue.popleft()
            self.dropped += 1
            self.total_dropped[0] += 1
        self.queue.append(event)
        self.ready.set()


def make_process_request(token: str | None):
    """Handshake check for ``/events``: filters and, if configured, the token."""

    def process_request(app: "App", connection: "ServerConnection", request: "Request") -> "Response | None":
        from voicetriage.server.app import json_response

        try:
            _, kinds = parse_filters(request.path)
        except BadFilter as e:
            return json_response(400, {"error": "bad_filter", "message": str(e)})
        principal = getattr(connection, "principal", None)
        if principal is not None and scoped_kinds(kinds, principal.scopes) is None:
            return json_response(403, {"error": "forbidden", "message": "this token may subscribe to hints only"})
        if token is not None:
            given = request.headers.get("Authorization", "")
            given = given[7:] if given.lower().startswith("bearer ") else ""
            if not given:
                q = urllib.parse.parse_qs(urllib.parse.urlsplit(request.path).query)
                given = (q.get("token") or [""])[0]
            if not hmac.compare_digest(given.encode(), token.encode()):
                return json_response(401, {"error": "unauthorized", "message": "a valid events token is required"})
        return None

    return process_request


def make_handler(limit: int = 1000, dropped: list[int] | None = None):
    dropped = dropped if dropped is not None else [0]

    async def events_handler(app: "App", ws: "ServerConnection") -> None:
        """One subscriber: hub events out until the client or the server goes."""
        call_ids, kinds = parse_filters(ws.request.path)  # checked at the handshake
        principal = getattr(ws, "principal", None)
        scopes = principal.scopes if principal is not None else frozenset({"all"})
        allowed = scoped_kinds(kinds, scopes)
        kinds = frozenset({"hint"}) if allowed is None else allowed
        plain = "all" in scopes or "events" in scopes or "no_transcripts" not in scopes
        sub = _Subscriber(call_ids, kinds, limit)
        sub.total_dropped = dropped
        unsubscribe = app.view.subscribe(sub)  # app.hub, or the cluster view with a bus
        reader = asyncio.ensure_future(_read_until_closed(ws))
        stop: asyncio.Future = asyncio.ensure_future(app.shutdown.wait())
        flushing: asyncio.Future | None = None
        try:
            await ws.send(dumps({"type": "subscribed", "call_ids": sorted(call_ids),
                                      "types": sorted(kinds)}))
            while True:
                wake = asyncio.ensure_future(sub.ready.wait())
                await asyncio.wait({wake, reader, stop}, return_when=asyncio.FIRST_COMPLETED)
                wake.cancel()
                # deliver what is queued before honouring a shutdown
                sub.ready.clear()
                while sub.queue:
                    if sub.dropped:
                        n, sub.dropped = sub.dropped, 0
                        await ws.send(dumps({"type": "dropped", "count": n}))
                    event = sub.queue.popleft()
                    msg = message(event)
                    await ws.send(dumps(msg if plain else scrub_transcripts(msg)))
                if reader.done():
                    return
                if stop.done():
                    if app.calls and not flushing:
                        # the server is flushing its calls: stay for their last finals,
                        # hints and summaries (bounded by the server's own stop timeout)
                        flushing = asyncio.ensure_future(_calls_ended(app))
                        stop = flushing
                        continue
                    await ws.close(CLOSE_GOING_AWAY, "server shutting down")
                    return
        except ConnectionClosed:
            pass
        finally:
            unsubscribe()
            reader.cancel()
            stop.cancel()

    return events_handler


async def _calls_ended(app: "App", limit_s: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + limit_s
    while app.calls and loop.time() < end:
        await asyncio.sleep(0.05)
    await asyncio.sleep(0)  # let the last call's summary reach the hub


async def _read_until_closed(ws: "ServerConnection") -> None:
    """Subscribers only listen; whatever they send is ignored."""
    try:
        async for _ in ws:
            pass
    except ConnectionClosed:
        pass


def install(app: "App", *, token: str | None = None, limit: int = 1000) -> None:
    """Add the ``/events`` route to a server."""
    dropped = [0]
    app.add_route(PATH, make_handler(limit, dropped), make_process_request(token), auth="query", scope="events")
    app.metrics.add_source("events_ws", lambda: dropped[0])


__all__ = ["install", "parse_filters", "PATH"]
