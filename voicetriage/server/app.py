"""The websocket server: routes, health, the native protocol's connection loop.

One :class:`App` holds the loaded :class:`~voicetriage.pipeline.engine.Engine`, the
:class:`~voicetriage.core.hub.EventHub` and the routes. Protocol adapters add
their own routes (``add_route``) or TCP listeners (``add_tcp_server``); this
module implements the native protocol of docs/protocol.md.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Awaitable, Callable, Iterable

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from voicetriage import __version__
from voicetriage.core.config import Config
from voicetriage.core.errors import ProtocolError, VoiceTriageError
from voicetriage.core.events import CallInfo
from voicetriage.core.hub import EventHub
from voicetriage.pipeline.engine import Engine
from voicetriage.pipeline.session import CallObserver, CallSession, ObserverFactory
from voicetriage.protocols import native

log = logging.getLogger(__name__)

WsHandler = Callable[["App", ServerConnection], Awaitable[None]]
ProcessRequest = Callable[["App", ServerConnection, Request], "Response | None"]
TcpHandler = Callable[["App", asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@dataclass
class _Route:
    handler: WsHandler
    process_request: ProcessRequest | None = None


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
        self.config = config
        self.engine = engine
        self.hub = hub or EventHub()
        self.view = self.hub  # what /events shows; an event bus swaps in the cluster view
        self.health_sections: dict[str, Callable[[], dict[str, Any]]] = {}  # e.g. "bus"
        self.reuse_port = False  # SO_REUSEPORT: several processes share the ports (serve --workers)
        self.observer_factories = list(observer_factories)
        self.calls: dict[str, CallSession] = {}
        self._routes: dict[str, _Route] = {}
        self._tcp: list[tuple[str, int, TcpHandler]] = []
        self._tcp_servers: list[asyncio.base_events.Server] = []
        self._ws: Server | None = None
        self._closing = False
        self.shutdown = asyncio.Event()  # set when the server stops; handlers end their calls
        self._on_stop: list[Callable[[], None]] = []
        self.add_route("/", native_handler)
        self.add_route("/v1/stream", native_handler)

    # -- registration ---------------------------------------------------------
    def add_route(self, path: str, handler: WsHandler, process_request: ProcessRequest | None = None) -> None:
        self._routes[path] = _Route(handler, process_request)

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
            emit(event)
            self.hub.publish(event)

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

    def health(self) -> dict[str, Any]:
        stats = self.engine.worker.stats()
        full = len(self.calls) >= self.config.server.max_calls
        out = {
            "status": "shutting_down" if self._closing else ("full" if full else "ok"),
            "version": __version__,
            "model": self.engine.model_id,
            "calls": len(self.calls),
            "max_calls": self.config.server.max_calls,
            "queued_finals": stats.queued_finals,
            "queued_partials": stats.queued_partials,
            "inference_busy_s": stats.busy_s,
        }
        for name, section in self.health_sections.items():
            try:
                out[name] = section()
            except Exception:  # noqa: BLE001 - health must answer
                log.exception("health section %s failed", name)
        return out

    # -- serving ------------------------------------------------------------------
    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        path = request.path.split("?", 1)[0]
        if path in ("/health", "/healthz"):
            h = self.health()
            return json_response(200 if h["status"] == "ok" else 503, h)
        route = self._routes.get(path)
        if route is None:
            return json_response(404, {"error": "not_found", "message": f"no endpoint at {path}"})
        if "upgrade" not in request.headers.get("Connection", "").lower():
            return json_response(426, {"error": "upgrade_required", "message": f"{path} is a websocket endpoint"})
        if route.process_request is not None:
            return route.process_request(self, connection, request)
        return None

    async def _dispatch(self, connection: ServerConnection) -> None:
        path = connection.request.path.split("?", 1)[0]
        route = self._routes[path]
        try:
            await route.handler(self, connection)
        except ConnectionClosed:
            pass
        except Exception:  # noqa: BLE001 - one broken connection must not hurt the others
            log.exception("handler for %s failed", path)
            await connection.close(native.CLOSE_INTERNAL, "internal error")

    async def start(self) -> None:
        """Start listening (websocket and TCP). ``port`` 0 picks a free port."""
        s = self.config.server
        self._ws = await serve(
            self._dispatch,
            s.host,
            s.port,
            process_request=self._process_request,
            # a message up to 4x the limit is refused with an error message and the
            # call goes on; beyond that the library closes with 1009
            max_size=4 * s.max_message_bytes,
            ping_interval=20,
            ping_timeout=20,
            server_header=f"voicetriage/{__version__}",
            reuse_port=self.reuse_port or None,
        )
        for host, port, handler in self._tcp:
            srv = await asyncio.start_server(lambda r, w, h=handler: self._tcp_dispatch(h, r, w), host, port,
                                             reuse_port=self.reuse_port or None)
            self._tcp_servers.append(srv)

    async def _tcp_dispatch(self, handler: TcpHandler, reader, writer) -> None:
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
        stop = asyncio.ensure_future(self.shutdown.wait())
        try:
            done, _ = await asyncio.wait({task, stop}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
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


class _Outbox:
    """Ordered sender for one connection; logs what it can no longer deliver."""

    def __init__(self, ws: ServerConnection, call_id: Callable[[], str | None]) -> None:
        self.ws = ws
        self._call_id = call_id
        self._queue: asyncio.Queue[dict | None] = asyncio.Queue()
        self.gone = False
        self._task = asyncio.ensure_future(self._run())

    def put(self, msg: dict) -> None:
        if self.gone:
            self._undelivered(msg)
        else:
            self._queue.put_nowait(msg)

    def _undelivered(self, msg: dict) -> None:
        if msg.get("type") in ("final", "hint", "summary"):
            log.warning("call %s: client gone, %s not delivered: %s", self._call_id(), msg["type"],
                        native.dumps(msg))

    async def _run(self) -> None:
        while True:
            msg = await self._queue.get()
            if msg is None:
                return
            if self.gone:
                self._undelivered(msg)
                continue
            try:
                await self.ws.send(native.dumps(msg))
            except ConnectionClosed:
                self.gone = True
                self._undelivered(msg)

    async def drain(self) -> None:
        self._queue.put_nowait(None)
        await self._task


async def native_handler(app: App, ws: ServerConnection) -> None:
    """One native-protocol connection: one call from ``start`` to ``stop``."""
    cfg = app.config.server
    session: CallSession | None = None
    out = _Outbox(ws, lambda: session.info.call_id if session else None)

    def error(e: VoiceTriageError, fatal: bool = False) -> None:
        out.put(native.ErrorOut.of(e, fatal, session.info.call_id if session else None).to_json())

    close_code, close_reason, end_reason = native.CLOSE_NORMAL, "call ended", "stop"
    try:
        while True:
            try:
                message = await app.receive(ws, cfg.idle_timeout_s)
            except asyncio.TimeoutError:
                error(ProtocolError(f"no message for {cfg.idle_timeout_s:g} s", code="idle_timeout"), fatal=True)
                close_code, close_reason, end_reason = native.CLOSE_POLICY, "idle timeout", "idle_timeout"
                break
            except ConnectionClosed:
                close_code, end_reason = None, "client_gone"
                break
            if message is None:  # server shutting down
                close_code, close_reason, end_reason = native.CLOSE_GOING_AWAY, "server shutting down", "server_shutdown"
                break
            if len(message) > cfg.max_message_bytes:
                error(ProtocolError(
                    f"message of {len(message)} bytes exceeds the limit of {cfg.max_message_bytes}",
                    code="message_too_large"))
                continue
            if isinstance(message, bytes):
                if session is None:
                    error(ProtocolError("binary audio before 'start'; send a start message first",
                                        code="audio_before_start"))
                    continue
                try:
                    session.push_audio(message)
                except VoiceTriageError as e:
                    error(e)
                if session.time() > cfg.max_call_s:
                    error(ProtocolError(f"call longer than {cfg.max_call_s:g} s", code="call_too_long"), fatal=True)
                    close_code, close_reason, end_reason = native.CLOSE_POLICY, "call too long", "call_too_long"
                    break
                continue
            try:
                cmd = native.parse_text(message)
            except VoiceTriageError as e:
                error(e)
                continue
            if isinstance(cmd, native.Health):
                out.put({"type": "health", **app.health()})
            elif isinstance(cmd, native.Start):
                if session is not None:
                    error(ProtocolError("call already started on this connection", code="already_started"))
                    continue
                try:
                    session = app.open_call(cmd.info, cmd.spec, lambda ev: out.put(native.event_message(ev)),
                                            tracks=cmd.tracks)
                except VoiceTriageError as e:
                    busy = e.code in ("server_busy", "server_shutting_down")
                    error(e, fatal=busy)
                    if busy:
                        close_code, close_reason, end_reason = native.CLOSE_TRY_AGAIN, e.code, e.code
                        break
                    continue
                out.put(native.started_message(cmd, app.engine.model_id))
            elif isinstance(cmd, native.DtmfIn):
                if session is None:
                    error(ProtocolError("dtmf before 'start'", code="dtmf_before_start"))
                    continue
                try:
                    session.push_dtmf(cmd.digit, cmd.track)
                except VoiceTriageError as e:
                    error(e)
            elif isinstance(cmd, native.Stop):
                if session is None:
                    error(ProtocolError("'stop' before 'start'", code="stop_before_start"))
                    continue
                break
    finally:
        if session is not None:
            await app.end_call(session, end_reason)
        await out.drain()
        if close_code is not None:
            await ws.close(close_code, close_reason)
