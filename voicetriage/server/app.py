"""The server: routes, health, calls.

One :class:`App` holds the loaded :class:`~voicetriage.pipeline.engine.Engine`, the
:class:`~voicetriage.core.hub.EventHub` and the routes. Protocol adapters add
their own routes (``add_route``) or TCP listeners (``add_tcp_server``); every
connection runs through :func:`voicetriage.server.connection.serve_connection`.
"""

from __future__ import annotations

import asyncio
import collections
import errno
import contextlib
import dataclasses
import json
import logging
import ssl
import urllib.parse
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Awaitable, Callable, Iterable

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from voicetriage import __version__
from voicetriage.asr.capacity import resolve as resolve_capacity
from voicetriage.core.config import Config
from voicetriage.core.errors import ConfigError, ProtocolError, VoiceTriageError
from voicetriage.core.events import CallError, CallInfo
from voicetriage.core.hub import EventHub
from voicetriage.core.logsafe import safe
from voicetriage.pipeline.engine import Engine
from voicetriage.pipeline.session import CallObserver, CallSession, ObserverFactory
from voicetriage.protocols import native
from voicetriage.protocols.machine import CLOSE_INTERNAL
from voicetriage.server.auth import Authenticator, Principal
from voicetriage.server.connection import WebSocketTransport, serve_connection
from voicetriage.server.metrics import Metrics

log = logging.getLogger(__name__)

WsHandler = Callable[["App", ServerConnection], Awaitable[None]]
ProcessRequest = Callable[["App", ServerConnection, Request], "Response | None"]
TcpHandler = Callable[["App", asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
HttpHandler = Callable[["App", Request], Response]
HANDSHAKE_TIMEOUT_S = 10.0  # a connection that has not finished its upgrade by then is closed
# /health says "degraded" (503) while the event loop is this late (smoothed over about a second)
DEGRADED_LAG_S = 0.1


@dataclass
class _Route:
    handler: WsHandler
    process_request: ProcessRequest | None = None
    # "token": a bearer token or login cookie with ``scope``; "query": also ``?token=``
    # (browsers cannot set headers on websockets); "twilio": Twilio's signature or a
    # token; "own": the route's process_request checks its own credential (AudioHook)
    auth: str = "token"
    scope: str = "stream"


@dataclass
class _HttpRoute:
    handler: "HttpHandler"
    auth: str = "token"  # or "none": the handler decides (a login page)
    scope: str = "health"


def unauthorized(message: str = "a valid API token is required (Authorization: Bearer TOKEN)") -> Response:
    r = json_response(401, {"error": "unauthorized", "message": message})
    r.headers["WWW-Authenticate"] = 'Bearer realm="voicetriage"'
    return r


def tls_context(certfile: str | None, keyfile: str | None) -> ssl.SSLContext | None:
    """The server's TLS context (None: plain ws://), or ConfigError naming the file."""
    if not certfile and not keyfile:
        return None
    if not certfile or not keyfile:
        raise ConfigError("TLS needs both --certfile and --keyfile")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        ctx.load_cert_chain(certfile, keyfile)
    except (OSError, ssl.SSLError) as e:
        raise ConfigError(f"TLS certificate {certfile} / key {keyfile}: {e}") from None
    return ctx


def _peer_host(connection: Any) -> str:
    addr = getattr(connection, "remote_address", None)
    return str(addr[0]) if isinstance(addr, tuple) and addr else ""


def json_response(status: int, body: dict[str, Any]) -> Response:
    data = json.dumps(body).encode()
    headers = Headers([("Content-Type", "application/json"), ("Content-Length", str(len(data))),
                       ("Connection", "close")])
    return Response(status, HTTPStatus(status).phrase, headers, data)


class App:
    """A voicetriage server: one engine, many calls, several protocols."""

    def __init__(
        self,
        config: Config,
        engine: Engine,
        *,
        hub: EventHub | None = None,
        observer_factories: Iterable[ObserverFactory] = (),
    ) -> None:
        # max_calls 0 ("auto"): what the loaded model measurably holds here (asr/capacity.py);
        # the config the server runs with carries the number, /health says where it came from
        self.capacity = resolve_capacity(config.server.max_calls, engine.asr, config.server.target_utilisation)
        if self.capacity.max_calls != config.server.max_calls:
            config = dataclasses.replace(config, server=dataclasses.replace(config.server,
                                                                          max_calls=self.capacity.max_calls))
        log.info("%s", self.capacity.describe())
        self.config = config
        self.engine = engine
        self.hub = hub or EventHub()
        self.view = self.hub  # what /events shows; an event bus swaps in the cluster view
        self.health_sections: dict[str, Callable[[], dict[str, Any]]] = {}  # e.g. "bus"
        self.reuse_port = False  # SO_REUSEPORT: several processes share the ports (serve --workers)
        self.observer_factories = list(observer_factories)
        self.calls: dict[str, CallSession] = {}
        self._routes: dict[str, _Route] = {}
        self._http: dict[str, _HttpRoute] = {}
        self.auth = Authenticator(config.auth)  # a bad token file fails here, at start
        self.metrics = Metrics(self)
        self.metrics.install()  # /metrics
        self._tcp: list[tuple[str, int, TcpHandler]] = []
        self._tcp_servers: list[asyncio.base_events.Server] = []
        self._ws: Server | None = None
        self._ssl: ssl.SSLContext | None = None
        self._closing = False
        self.shutdown = asyncio.Event()  # set when the server stops; handlers end their calls
        self._shutdown_waiter: asyncio.Future | None = None  # until_shutdown's
        self._on_stop: list[Callable[[], None]] = []
        self.errors: dict[str, int] = {}  # error code -> count, in /health
        self.throttled_s = 0.0  # how long readers were held for audio faster than allowed
        # protocol gaps (audio that never arrived): filled with silence, or skipped (the
        # call clock jumped); counts and seconds, in /health and /metrics
        self.gaps = {"filled": 0, "skipped": 0, "filled_s": 0.0, "skipped_s": 0.0}
        self.peers: collections.Counter[str] = collections.Counter()  # open connections per address
        self.add_route("/", native_handler)
        self.add_route("/v1/stream", native_handler)

    # -- registration ---------------------------------------------------------
    def add_route(self, path: str, handler: WsHandler, process_request: ProcessRequest | None = None,
                  *, auth: str = "token", scope: str = "stream") -> None:
        """A websocket endpoint; ``auth``/``scope``: who may open it (see ``_Route``)."""
        self._routes[path] = _Route(handler, process_request, auth, scope)

    def add_http_route(self, path: str, handler: HttpHandler, *, auth: str = "token",
                       scope: str = "health") -> None:
        """A plain HTTP GET endpoint: ``handler(app, request) -> Response`` (runs on the
        event loop; keep it quick). ``path`` ending in "/" also serves everything below it.
        ``auth`` "none" leaves the credential to the handler (``app.principal(request)``)."""
        self._http[path] = _HttpRoute(handler, auth, scope)

    @property
    def http_paths(self) -> list[str]:
        """The HTTP GET paths served (routes ending in "/" serve what is below them)."""
        return list(self._http)

    def add_tcp_server(self, port: int, handler: TcpHandler, host: str | None = None) -> None:
        self._tcp.append((host or self.config.server.host, port, handler))

    def on_stop(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` at the end of :meth:`stop`, after every call is flushed (sinks)."""
        self._on_stop.append(callback)

    # -- calls ------------------------------------------------------------------
    def observers_for(self, info: CallInfo) -> list[CallObserver]:
        out = []
        for factory in self.observer_factories:
            obs = factory(info)
            if obs is not None:
                out.append(obs)
        return out

    def open_call(self, info: CallInfo, spec, emit, *, tracks=("caller",), track_languages=None) -> CallSession:
        """Open a call through the engine with this server's observers; every
        event is also published on the hub. ``track_languages``: see
        :meth:`Engine.open_call`. Raises VoiceTriageError."""
        if self._closing:
            raise VoiceTriageError("server is shutting down", code="server_shutting_down")
        if len(self.calls) >= self.config.server.max_calls:
            raise VoiceTriageError(
                f"server is at its limit of {self.config.server.max_calls} calls", code="server_busy"
            )
        if info.call_id in self.calls:
            raise ProtocolError(f"call id {info.call_id!r} is already active", code="duplicate_call_id")

        def emit_and_publish(event: object) -> None:
            # the hub first (event log, webhook, /events, the bus): whatever the
            # connection does with the event next cannot lose it there
            if isinstance(event, CallError):
                self.count_error(event.code)
            self.hub.publish(event)
            emit(event)

        session = self.engine.open_call(
            info, spec, emit_and_publish, tracks=tracks, observers=self.observers_for(info),
            track_languages=track_languages,
        )
        self.calls[info.call_id] = session
        log.info("call %s started (%s, %s)", info.call_id, info.platform, spec)
        return session

    async def end_call(self, session: CallSession, reason: str) -> None:
        """Flush and close a call (every final is emitted), then forget it."""
        try:
            await session.close(reason)
        finally:
            if self.calls.get(session.info.call_id) is session:
                del self.calls[session.info.call_id]
            log.info("call %s ended (%s)", session.info.call_id, reason)

    @property
    def tls(self) -> bool:
        """The server speaks TLS (wss://, https://): login cookies are ``Secure``."""
        return self._ssl is not None

    @property
    def closing(self) -> bool:
        """The server is shutting down (no new calls; the ones in progress are flushed)."""
        return self._closing

    def count_error(self, code: str) -> None:
        """Count a failure that did not stop the server (shown in ``/health``)."""
        self.errors[code] = self.errors.get(code, 0) + 1
        self.metrics.count_error(code)

    def count_gap(self, session: CallSession, seconds: float, skipped: bool) -> None:
        """A protocol gap a call's session took (``skipped``: its clock jumped over it)."""
        if not seconds > 0 or session.closed:
            return
        kind = "skipped" if skipped else "filled"
        self.gaps[kind] += 1
        self.gaps[kind + "_s"] += seconds
        self.metrics.count_gap(session.info.platform, kind, seconds)

    def health(self) -> dict[str, Any]:
        stats = self.engine.worker.stats()
        full = len(self.calls) >= self.config.server.max_calls
        # finals waiting for more than two rounds of the inference threads (the
        # backlog at which partials are shed): the next call would get slow finals,
        # so a load balancer should send it elsewhere
        backlog = stats.queued_finals > self.engine.worker.shed_backlog
        # or the event loop is late by more than DEGRADED_LAG_S (smoothed): every call's
        # audio, VAD results and events wait for it
        lagging = self.metrics.recent_lag_s > DEGRADED_LAG_S
        status = ("shutting_down" if self._closing else "full" if full
                  else "degraded" if backlog or lagging else "ok")
        out = {
            "status": status,
            "version": __version__,
            "model": self.engine.model_id,
            "calls": len(self.calls),
            "max_calls": self.config.server.max_calls,
            "capacity": self.capacity.as_dict(),
            "loop_lag_s": round(self.metrics.recent_lag_s, 4),
            "queued_finals": stats.queued_finals,
            "queued_partials": stats.queued_partials,
            "shed_partials": stats.shed_partials,
            "inference_busy_s": stats.busy_s,
            "asr_work": stats.work,  # decodes by kind and their seconds (asr/reuse.py KINDS)
            "errors": dict(sorted(self.errors.items())),
            "connections": sum(self.peers.values()),
            "throttled_s": round(self.throttled_s, 3),
            "gaps": {k: round(v, 3) if isinstance(v, float) else v for k, v in self.gaps.items()},
        }
        for name, section in self.health_sections.items():
            try:
                out[name] = section()
            except Exception:  # noqa: BLE001 - health must answer
                log.exception("health section %s failed", name)
        return out

    # -- serving ------------------------------------------------------------------
    def principal(self, request: Request, *, allow_query: bool = False) -> Principal | None:
        """Who ``request`` authenticated as (None: no valid credential)."""
        return self.auth.authenticate(request.headers, request.path, allow_query=allow_query)

    def _refuse(self, connection: ServerConnection, path: str, why: str) -> Response:
        log.warning("refused %s from %s: %s", safe(path), getattr(connection, "remote_address", None), why)
        self.count_error("unauthorized")
        return unauthorized()

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        path = request.path.split("?", 1)[0]
        if path == "/healthz":  # liveness only: no credential, nothing about the calls
            return json_response(200 if not self._closing else 503,
                                 {"status": "ok" if not self._closing else "shutting_down"})
        if path == "/login":
            return self._login(connection, request)
        upgrade = "upgrade" in request.headers.get("Connection", "").lower()
        route = self._routes.get(path)
        if route is not None and upgrade:
            crowded = self.too_many(_peer_host(connection))
            if crowded:
                log.warning("refused %s from %s: %s", safe(path), _peer_host(connection), crowded)
                self.count_error("too_many_connections")
                return json_response(503, {"error": "too_many_connections", "message": crowded})
        if path in ("/health", "/metrics") or route is None or not upgrade:
            http = self._http.get(path) or next(
                (h for p, h in self._http.items() if p.endswith("/") and path.startswith(p)), None)
            if path == "/health":
                http = _HttpRoute(lambda app, req: app._health_response())
            if http is not None:
                if http.auth != "none":
                    who = self.principal(request)
                    if who is None or not who.may(http.scope):
                        return self._refuse(connection, path, "no valid credential" if who is None
                                            else f"token {who.name!r} lacks scope {http.scope!r}")
                return http.handler(self, request)
        if route is None:
            return json_response(404, {"error": "not_found", "message": f"no endpoint at {safe(path)}"})
        if not upgrade:
            return json_response(426, {"error": "upgrade_required",
                                       "message": f"{safe(path)} is a websocket endpoint"})
        if route.auth != "own":
            who = self.principal(request, allow_query=route.auth == "query")
            if who is None and route.auth == "twilio" and self.auth.check_twilio(
                    request.headers, request.path, tls=self._ssl is not None):
                who = Principal("twilio", frozenset({"stream"}))
            if who is None:
                return self._refuse(connection, path, "no valid credential")
            if not who.may(route.scope):
                return self._refuse(connection, path, f"token {who.name!r} lacks scope {route.scope!r}")
            connection.principal = who  # type: ignore[attr-defined]  # read by the handler
        if route.process_request is not None:
            return route.process_request(self, connection, request)
        return None

    def _health_response(self) -> Response:
        h = self.health()
        return json_response(200 if h["status"] == "ok" else 503, h)

    def _login(self, connection: ServerConnection, request: Request) -> Response:
        """``GET /login`` with ``Authorization: Bearer TOKEN`` (the login form's fetch) or
        ``?token=TOKEN&next=/path``: sets the HttpOnly session cookie."""
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(request.path).query)
        who = self.principal(request, allow_query=True)
        if who is None or not self.auth.enabled:
            if not self.auth.enabled:
                return json_response(200, {"status": "ok", "message": "authentication is off"})
            return self._refuse(connection, "/login", "login with a bad token")
        cookie = self.auth.session_cookie(who, secure=self.tls)
        target = (query.get("next") or [""])[0]
        if target.startswith("/") and not target.startswith("//"):
            r = Response(303, "See Other", Headers([("Location", target), ("Set-Cookie", cookie),
                                                   ("Content-Length", "0"), ("Connection", "close")]), b"")
        else:
            r = json_response(200, {"status": "ok", "name": who.name})
            r.headers["Set-Cookie"] = cookie
        log.info("login: %s", who.name)
        return r

    def too_many(self, host: str) -> str | None:
        """Why a new connection from ``host`` is refused (None: it is not)."""
        s = self.config.server
        if sum(self.peers.values()) >= s.max_connections:
            return f"the server holds its limit of {s.max_connections} connections"
        if self.peers[host] >= s.max_connections_per_peer:
            return f"{s.max_connections_per_peer} connections from one address is the limit"
        return None

    @contextlib.contextmanager
    def connection_slot(self, host: str):
        self.peers[host] += 1
        try:
            yield
        finally:
            self.peers[host] -= 1
            if self.peers[host] <= 0:
                del self.peers[host]

    async def _dispatch(self, connection: ServerConnection) -> None:
        path = connection.request.path.split("?", 1)[0]
        route = self._routes[path]
        with self.connection_slot(_peer_host(connection)):
            try:
                await route.handler(self, connection)
            except ConnectionClosed:
                pass
            except Exception:  # noqa: BLE001 - one broken connection must not hurt the others
                log.exception("handler for %s failed", path)
                await connection.close(CLOSE_INTERNAL, "internal error")

    async def start(self) -> None:
        """Start listening (websocket and TCP). ``port`` 0 picks a free port."""
        s = self.config.server
        self._ssl = tls_context(s.certfile, s.keyfile)
        try:
            await self._listen()
        except OSError as e:
            await self._close_listeners()
            where = getattr(e, "voicetriage_where", f"{s.host}:{s.port}")
            raise ConfigError(f"cannot listen on {where}: {e.strerror or e}"
                              + (" (another server is using that port? pick another with --port)"
                                 if e.errno in (errno.EADDRINUSE, errno.EACCES) else "")) from None
        self.metrics.start()

    async def _close_listeners(self) -> None:
        for srv in self._tcp_servers:
            srv.close()
        if self._ws is not None:
            self._ws.close()
        self._tcp_servers.clear()
        self._ws = None

    async def _listen(self) -> None:
        s = self.config.server
        self._ws = await serve(
            self._dispatch,
            s.host,
            s.port,
            process_request=self._process_request,
            # a message up to 4x the limit is refused with an error message and the
            # call goes on; beyond that the library closes with 1009
            max_size=4 * s.max_message_bytes,  # also a fragmented message's total
            open_timeout=HANDSHAKE_TIMEOUT_S,
            ping_interval=20,
            ping_timeout=20,
            server_header=f"voicetriage/{__version__}",
            reuse_port=self.reuse_port or None,
            ssl=self._ssl,
        )
        for host, port, handler in self._tcp:
            try:
                srv = await asyncio.start_server(lambda r, w, h=handler: self._tcp_dispatch(h, r, w), host, port,
                                                 reuse_port=self.reuse_port or None)
            except OSError as e:
                e.voicetriage_where = f"{host}:{port} (TCP)"  # type: ignore[attr-defined]
                raise
            self._tcp_servers.append(srv)

    async def _tcp_dispatch(self, handler: TcpHandler, reader, writer) -> None:
        peer = writer.get_extra_info("peername")
        host = peer[0] if isinstance(peer, tuple) else ""
        crowded = self.too_many(host)
        if crowded:
            log.warning("TCP connection from %s refused: %s", host, crowded)
            self.count_error("too_many_connections")
            writer.close()
            return
        with self.connection_slot(host):
            try:
                await handler(self, reader, writer)
            except Exception:  # noqa: BLE001
                log.exception("TCP handler failed")
            finally:
                writer.close()

    @property
    def port(self) -> int:
        assert self._ws is not None
        return self._ws.sockets[0].getsockname()[1]

    @property
    def tcp_ports(self) -> list[int]:
        return [srv.sockets[0].getsockname()[1] for srv in self._tcp_servers]

    async def stop(self) -> None:
        """Stop accepting, let every handler flush its call (finals and summary
        are delivered, then close 1001), end whatever call is left, close."""
        self._closing = True
        self.shutdown.set()
        self.metrics.stop()
        for srv in self._tcp_servers:
            srv.close()
        if self._ws is not None:
            self._ws.close(close_connections=False)
            try:
                await asyncio.wait_for(self._ws.wait_closed(), timeout=15)
            except asyncio.TimeoutError:
                log.warning("connections still open after 15 s; closing them")
        await asyncio.gather(
            *(self.end_call(s, "server_shutdown") for s in list(self.calls.values())),
            return_exceptions=True,
        )
        # every call is flushed by now: what is left (a handshake half done, a peer that
        # never answers the close) must not keep the process from exiting
        if self._ws is not None:
            self._ws.close(close_connections=True)
            try:
                await asyncio.wait_for(self._ws.wait_closed(), timeout=5)
            except asyncio.TimeoutError:
                log.warning("websocket server not closed 5 s after its calls ended; exiting anyway")
        for srv in self._tcp_servers:
            try:
                await asyncio.wait_for(srv.wait_closed(), timeout=5)
            except asyncio.TimeoutError:
                log.warning("TCP server not closed 5 s after its calls ended; exiting anyway")
        for callback in self._on_stop:
            try:
                callback()
            except Exception:  # noqa: BLE001
                log.exception("stop callback %r failed", callback)

    async def until_shutdown(self, awaitable, timeout: float | None):
        """Await ``awaitable`` unless the server stops first (then ``None``).

        Raises ``asyncio.TimeoutError`` after ``timeout`` s; whatever the
        awaitable raises (``ConnectionClosed``, ...) propagates.
        """
        if self.shutdown.is_set():
            if asyncio.iscoroutine(awaitable):
                awaitable.close()
            return None
        task = asyncio.ensure_future(awaitable)
        # one waiter for the shutdown, shared by every read of every connection (a task
        # made and cancelled per audio frame cost the loop more than the call's VAD)
        stop = self._shutdown_waiter
        if stop is None or stop.get_loop() is not asyncio.get_running_loop():
            stop = self._shutdown_waiter = asyncio.ensure_future(self.shutdown.wait())
        done, _ = await asyncio.wait({task, stop}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            return task.result()
        task.cancel()
        try:
            await task
        except (asyncio.CancelledError, Exception):  # noqa: BLE001 - the read is abandoned
            pass
        if stop in done:
            return None
        raise asyncio.TimeoutError

    async def receive(self, ws: ServerConnection, timeout: float | None):
        """``ws.recv()``, or ``None`` when the server stops (see :meth:`until_shutdown`)."""
        return await self.until_shutdown(ws.recv(), timeout)

    async def serve_forever(self) -> None:
        await self.start()
        try:
            await asyncio.Future()
        finally:
            await self.stop()


async def native_handler(app: App, ws: ServerConnection) -> None:
    """One native-protocol connection (docs/protocol.md), run by the one driver."""
    proto = native.NativeConnection(model=app.engine.model_id, max_message_bytes=app.config.server.max_message_bytes)
    await serve_connection(app, proto, WebSocketTransport(ws))
