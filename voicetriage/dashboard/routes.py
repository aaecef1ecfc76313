"""The dashboard's endpoints on an App (docs/dashboard.md).

* ``GET /dashboard`` (and ``/dashboard/call?id=ID``): the page; an anonymous
  visitor gets the login form (HTTP 401) instead. ``?token=TOKEN`` logs in: the
  HttpOnly ``vt_session`` cookie is set and the answer is a 303 to the same URL
  without the token.
* ``GET /dashboard/static/NAME``: the page's ES modules and stylesheet (no credential:
  they hold no data).
* ``GET /dashboard/state``: a JSON snapshot (active calls, ended calls, queue counts);
  ``GET /dashboard/call/ID``: one call with its transcript, hints and timeline.
* ``/dashboard/ws``: a websocket (login cookie or bearer token, scope ``events``)
  of numbered deltas; ``{"type": "watch", "call_id": ID}`` from the page asks for
  that call's transcript lines and timeline points too.

Everything is cut to the token's scopes (:mod:`voicetriage.dashboard.scope`).
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import re
import urllib.parse
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING, Any

from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Response

from voicetriage.core.logsafe import safe
from voicetriage.core.serialize import dumps
from voicetriage.dashboard import pages, scope
from voicetriage.dashboard.config import DashboardConfig
from voicetriage.dashboard.state import Aggregator
from voicetriage.protocols.machine import CLOSE_GOING_AWAY

if TYPE_CHECKING:
    from websockets.asyncio.server import ServerConnection
    from websockets.http11 import Request

    from voicetriage.server.app import App
    from voicetriage.server.auth import Principal

log = logging.getLogger(__name__)

PAGE = "/dashboard"
STATIC = Path(__file__).resolve().parent / "static"
CONTENT_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
                 ".svg": "image/svg+xml"}
_STATIC_NAME = re.compile(r"^[a-z0-9_-]{1,64}\.(js|css|svg)$")
# the page loads only its own modules and talks only to its own server
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
RECONCILE_S = 5.0  # how often a subscriber's loop checks the calls against the server's


def _response(status: int, body: bytes, content_type: str, extra: list[tuple[str, str]] = ()) -> Response:
    headers = Headers([("Content-Type", content_type), ("Content-Length", str(len(body))),
                       ("Cache-Control", "no-store"), ("X-Content-Type-Options", "nosniff"),
                       ("Referrer-Policy", "no-referrer"), ("Connection", "close"), *extra])
    return Response(status, HTTPStatus(status).phrase, headers, body)


def _html(status: int, text: str, extra: list[tuple[str, str]] = ()) -> Response:
    return _response(status, text.encode("utf-8"), "text/html; charset=utf-8",
                     [("Content-Security-Policy", CSP), *extra])


def _json(status: int, body: Any) -> Response:
    return _response(status, dumps(body).encode("utf-8"), "application/json")


def _without_token(path: str) -> str:
    parts = urllib.parse.urlsplit(path)
    query = [(k, v) for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True) if k != "token"]
    return parts.path + (f"?{urllib.parse.urlencode(query)}" if query else "")


class Dashboard:
    """The aggregator on an App's hub, and the routes that show it."""

    def __init__(self, app: "App", cfg: DashboardConfig | None = None) -> None:
        self.app = app
        self.cfg = cfg or DashboardConfig()
        self.agg = Aggregator(self.cfg)
        self._unsubscribe = app.hub.subscribe(self.agg)
        app.observer_factories.append(self.agg.observer_factory)
        self.resyncs = 0  # subscribers told to resync because they fell behind
        app.add_http_route(PAGE, self.page, auth="none")
        app.add_http_route(PAGE + "/", self.below, auth="none")
        app.add_route(PAGE + "/ws", self.ws_handler, self.check_origin, auth="token", scope="events")
        self.subscribers = 0
        app.health_sections["dashboard"] = lambda: {"calls": len(self.agg.active), "ended": len(self.agg.ended),
                                                    "subscribers": self.subscribers, "resyncs": self.resyncs}

    def close(self) -> None:
        self._unsubscribe()
        if self.agg.observer_factory in self.app.observer_factories:
            self.app.observer_factories.remove(self.agg.observer_factory)

    # -- HTTP -------------------------------------------------------------------------
    def _who(self, request: "Request") -> "Principal | None":
        who = self.app.principal(request)
        return who if who is not None and who.may("events") else None

    def page(self, app: "App", request: "Request") -> Response:
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(request.path).query)
        if "token" in query:  # a kiosk or a scripted check: log in, then the clean URL
            who = app.auth.check_token(query["token"][0]) if app.auth.enabled else app.principal(request)
            if who is None or not who.may("events"):
                app.count_error("unauthorized")
                log.warning("dashboard: login with a bad token refused")
                return _html(401, pages.login("That token was not accepted."))
            extra = [("Location", _without_token(request.path))]
            if app.auth.enabled:
                extra.append(("Set-Cookie", app.auth.session_cookie(who, secure=app.tls)))
                log.info("dashboard login: %s", who.name)
            return _response(303, b"", "text/plain", extra)
        who = app.principal(request)
        if who is None:
            return _html(401, pages.login(), [("WWW-Authenticate", 'Bearer realm="voicetriage"')])
        if not who.may("events"):
            return _html(403, pages.login(f"Token {who.name!r} may not watch calls (it needs scope events)."))
        return _html(200, pages.page(who.name if app.auth.enabled else None))

    def below(self, app: "App", request: "Request") -> Response:
        path = urllib.parse.urlsplit(request.path).path
        rest = path[len(PAGE) + 1:]
        if rest.startswith("static/"):
            return self.static(rest[len("static/"):])
        if rest == "call":  # /dashboard/call?id=ID: the call page
            return self.page(app, request)
        if rest == "ws":
            return _json(426, {"error": "upgrade_required", "message": f"{PAGE}/ws is a websocket endpoint"})
        if rest != "state" and not rest.startswith("call/"):
            return _json(404, {"error": "not_found", "message": f"no endpoint at {safe(path)}"})
        who = self._who(request)
        if who is None:
            from voicetriage.server.app import unauthorized

            app.count_error("unauthorized")
            return unauthorized()
        view = scope.View.of(who.scopes)
        self.agg.reconcile(app.calls)
        if rest == "state":
            return _json(200, scope.snapshot(view, self.agg.snapshot()))
        call_id = urllib.parse.unquote(rest[len("call/"):])
        detail = self.agg.detail(call_id)
        if detail is None:
            return _json(404, {"error": "unknown_call", "message": f"no call {safe(call_id)!r} (active or recent)"})
        return _json(200, scope.detail(view, detail))

    def static(self, name: str) -> Response:
        path = STATIC / name
        if not _STATIC_NAME.match(name) or not path.is_file():
            return _json(404, {"error": "not_found", "message": f"no asset {safe(name)!r}"})
        return _response(200, path.read_bytes(), CONTENT_TYPES[path.suffix])

    # -- websocket ----------------------------------------------------------------------
    def check_origin(self, app: "App", connection: "ServerConnection", request: "Request") -> Response | None:
        """A browser's socket must come from this server's own page (no cross-site hijack)."""
        origin = request.headers.get("Origin")
        if origin is None:
            return None  # not a browser
        if urllib.parse.urlsplit(origin).netloc != request.headers.get("Host", ""):
            app.count_error("unauthorized")
            log.warning("dashboard socket from foreign origin %s refused", safe(origin))
            return _json(403, {"error": "forbidden", "message": "the dashboard socket only serves its own page"})
        return None

    async def ws_handler(self, app: "App", ws: "ServerConnection") -> None:
        principal = getattr(ws, "principal", None)
        view = scope.View.of(principal.scopes if principal is not None else frozenset({"all"}))
        sub = _Subscriber(view, self.cfg.subscriber_queue)
        unsubscribe = self.agg.subscribe(sub)
        reader = asyncio.ensure_future(_read_watch(ws, sub, lambda: self.agg.seq))
        stop = asyncio.ensure_future(app.shutdown.wait())
        self.subscribers += 1
        try:
            await ws.send(dumps({"type": "hello", "seq": self.agg.seq, "view": view.describe()}))
            while True:
                wake = asyncio.ensure_future(sub.ready.wait())
                await asyncio.wait({wake, reader, stop}, timeout=RECONCILE_S, return_when=asyncio.FIRST_COMPLETED)
                wake.cancel()
                sub.ready.clear()
                if not wake.done():
                    self.agg.reconcile(app.calls)
                if sub.overflowed:
                    sub.overflowed = False
                    self.resyncs += 1
                    await ws.send(dumps({"type": "resync", "seq": self.agg.seq}))
                while sub.queue:
                    await ws.send(dumps(sub.queue.popleft()))
                if reader.done():
                    return
                if stop.done():
                    await ws.close(CLOSE_GOING_AWAY, "server shutting down")
                    return
        except ConnectionClosed:
            pass
        finally:
            self.subscribers -= 1
            unsubscribe()
            reader.cancel()
            stop.cancel()


class _Subscriber:
    """One page's queue of deltas, cut to its view and to the call it watches."""

    def __init__(self, view: scope.View, limit: int) -> None:
        self.view = view
        self.limit = limit
        self.watch: str | None = None
        self.queue: collections.deque[dict[str, Any]] = collections.deque()
        self.overflowed = False
        self.ready = asyncio.Event()

    def __call__(self, delta: dict[str, Any]) -> None:
        if delta["type"] in ("line", "point") and delta.get("call_id") != self.watch:
            return
        shown = scope.delta(self.view, delta)
        if shown is None:
            return
        if len(self.queue) >= self.limit:  # a page that cannot keep up reloads the snapshot
            self.queue.clear()
            self.overflowed = True
        else:
            self.queue.append(shown)
        self.ready.set()


async def _read_watch(ws: "ServerConnection", sub: _Subscriber, seq) -> None:
    """The page's messages: ``{"type": "watch", "call_id": ID or null}``, answered in turn
    with ``{"type": "watching", ...}`` (queued with the deltas: the page fetches the
    call's detail once it has the answer, so no line falls between); others are ignored."""
    try:
        async for raw in ws:
            try:
                msg = json.loads(raw)
            except (TypeError, ValueError):
                continue
            if isinstance(msg, dict) and msg.get("type") == "watch":
                cid = msg.get("call_id")
                sub.watch = cid if isinstance(cid, str) else None
                sub.queue.append({"type": "watching", "call_id": sub.watch, "seq": seq()})
                sub.ready.set()
    except ConnectionClosed:
        pass


def install(app: "App", cfg: DashboardConfig | None = None) -> Dashboard | None:
    """Add the dashboard to an App (None where ``[dashboard] enabled = false``)."""
    cfg = cfg or DashboardConfig()
    if not cfg.enabled:
        return None
    return Dashboard(app, cfg)


__all__ = ["Dashboard", "install", "PAGE", "CONTENT_TYPES"]
