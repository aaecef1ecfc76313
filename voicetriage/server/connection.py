"""The one connection layer: an outbox, a driver and a read loop for every protocol.

Each connection (a websocket for native, Twilio and AudioHook; a TCP stream for
AudioSocket) gets a protocol :class:`~voicetriage.protocols.machine.Machine`.
:func:`serve_connection` reads from the transport, feeds the machine, and the
:class:`Driver` performs the actions it returns against the call's session and
the :class:`Outbox`. Shutdown, idle timeouts, the call-length limit and the
close frame are handled here once for all four protocols.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from typing import TYPE_CHECKING, Awaitable, Callable

from websockets.exceptions import ConnectionClosed

from voicetriage.core.errors import VoiceTriageError
from voicetriage.core.logsafe import CALL_ID, safe
from voicetriage.protocols.actions import (
    Action,
    EndCall,
    EndUtterance,
    PushAudio,
    PushDigit,
    PushGap,
    QueryHealth,
    Send,
    StartCall,
)
from voicetriage.protocols.machine import CLOSE_INTERNAL, Close, Machine

if TYPE_CHECKING:
    from websockets.asyncio.server import ServerConnection

    from voicetriage.pipeline.session import CallSession
    from voicetriage.server.app import App

log = logging.getLogger(__name__)

_UNDELIVERED_LOGGED = ("final", "hint", "summary")
DSP_QUEUE_MAX = 25  # chunks a call may have waiting for the DSP thread before its reader waits


class PeerGone(Exception):
    """The transport closed (websocket closed, TCP EOF or reset)."""


class Outbox:
    """Ordered sender for one connection (replies and events keep their order).

    ``send`` is None for a peer that gets nothing back (Twilio, AudioSocket).
    What can no longer be delivered is counted, and a final, hint or summary
    is logged (the hub has published it to the event log, webhook and ``/events``).
    """

    def __init__(self, send: Callable[[str | bytes], Awaitable[None]] | None, label: Callable[[], str]) -> None:
        self._send = send
        self._label = label
        self._queue: asyncio.Queue[Send | None] = asyncio.Queue()
        self.gone = False
        self.undelivered = 0
        self._task = asyncio.ensure_future(self._run()) if send is not None else None

    def put(self, item: Send) -> None:
        if self._send is None:
            return
        if self.gone:
            self._lost(item)
        else:
            self._queue.put_nowait(item)

    def _lost(self, item: Send) -> None:
        self.undelivered += 1
        if item.kind in _UNDELIVERED_LOGGED:
            log.warning("%s: peer gone, %s not delivered: %.500s", self._label(), item.kind, item.message)

    async def _run(self) -> None:
        assert self._send is not None
        while (item := await self._queue.get()) is not None:
            if self.gone:
                self._lost(item)
                continue
            try:
                await self._send(item.message)
            except (ConnectionClosed, ConnectionError, OSError):  # the peer is gone
                self.gone = True
                self._lost(item)

    async def drain(self) -> None:
        if self._task is not None:
            self._queue.put_nowait(None)
            await self._task


class Driver:
    """Performs one connection's actions against its call session and its peer."""

    def __init__(self, app: "App", proto: Machine, out: Outbox) -> None:
        self.app = app
        self.proto = proto
        self.out = out
        self.session: CallSession | None = None
        self._audio_t0: float | None = None  # wall clock of the call's first audio

    @property
    def ended(self) -> EndCall | None:
        return self.proto.ended

    def label(self) -> str:
        call = self.session.info.call_id if self.session is not None else "(no call)"
        return f"{self.proto.name} call {call}"

    def _emit(self, event: object) -> None:
        """A pipeline event of this call, after the hub published it: format it for
        this peer. A formatting failure costs this peer the message, nothing else."""
        try:
            actions = self.proto.on_event(event)
        except Exception:  # noqa: BLE001 - the event log, webhook, /events and triage have it
            self.app.count_error("format_failed")
            log.exception("%s: %s event not formatted for the peer", self.label(), getattr(event, "kind", "?"))
            return
        for action in actions:
            if isinstance(action, Send):
                self.out.put(action)

    async def run(self, actions: list[Action]) -> None:
        """Perform ``actions`` in order; stops after an ``EndCall``."""
        queue = list(actions)
        while queue:
            action = queue.pop(0)
            if isinstance(action, Send):
                self.out.put(action)
            elif isinstance(action, StartCall):
                queue = self._start(action) + queue
            elif isinstance(action, QueryHealth):
                queue = self.proto.health_report(self.app.health()) + queue
            elif isinstance(action, EndCall):
                await self.end(action)
                return
            elif self.session is not None and not self.session.closed:
                queue = self._push(action) + queue
                if isinstance(action, (PushAudio, PushGap)):
                    await self._pace(action.track)

    def _start(self, a: StartCall) -> list[Action]:
        info, languages = a.info, a.track_languages
        for attempt in (1, 2):
            try:
                CALL_ID.set(safe(info.call_id, 64))  # this connection's task and all it starts
                self.session = self.app.open_call(info, a.spec, self._emit, tracks=a.tracks,
                                                  track_languages=languages)
                return self.proto.call_started()  # e.g. AudioHook's 'opened', native 'started'
            except VoiceTriageError as e:
                if e.code == "unsupported_language" and attempt == 1 and self.proto.retry_without_language:
                    log.warning("%s call %s: %s; detecting the language instead", self.proto.name, info.call_id, e)
                    info = dataclasses.replace(info, language_hint=None)
                    languages = {k: None for k in languages or {}}
                    continue
                log.warning("%s call %s not started: %s", self.proto.name, info.call_id, e)
                return self.proto.start_failed(e)
        return []  # pragma: no cover

    def _push(self, a: Action) -> list[Action]:
        s = self.session
        assert s is not None
        try:
            if isinstance(a, PushAudio):
                s.push_audio(a.data, a.track)
                limit = self.app.config.server.max_call_s
                if s.time(a.track) > limit:
                    return self.proto.abort(f"call longer than {limit:g} s", "call_too_long")
            elif isinstance(a, PushGap):
                self.app.count_gap(self.session, a.seconds, s.push_gap(a.seconds, a.track, hold=a.hold))
                limit = self.app.config.server.max_call_s
                if s.time(a.track) > limit:
                    return self.proto.abort(f"call longer than {limit:g} s", "call_too_long")
            elif isinstance(a, EndUtterance):
                s.end_utterance(a.track, a.reason)
            elif isinstance(a, PushDigit):
                s.push_dtmf(a.digit, a.track, time=a.time)
        except VoiceTriageError as e:
            return self.proto.push_failed(e)
        return []

    async def _pace(self, track: str | None) -> None:
        """Hold the reader while the call's audio is ahead of what its rate allows,
        or while more of its finals wait for the recogniser than the limit allows.

        The rate counts what the pipeline processed (audio and the gaps filled with
        silence), not the gaps the call clock jumped over; a held reader is woken when
        one of its finals completes, the call ends or the server stops."""
        s, cfg = self.session, self.app.config.server
        if s is None:
            return
        now = time.monotonic()
        if cfg.max_audio_speed > 0:
            if self._audio_t0 is None:
                self._audio_t0 = now
            ahead = s.processed_s(track) - cfg.audio_burst_s - (now - self._audio_t0) * cfg.max_audio_speed
            if ahead > 0:
                self.app.throttled_s += ahead / cfg.max_audio_speed
                await asyncio.sleep(ahead / cfg.max_audio_speed)
        if s.queued > DSP_QUEUE_MAX:
            # audio waiting for the DSP thread is not yet in finals_pending: a reader
            # let run ahead of it would turn one drained batch into many finals at once
            held = time.monotonic()
            await s.settled()
            self.app.throttled_s += time.monotonic() - held
        if s.finals_pending > cfg.max_pending_finals:
            held = time.monotonic()
            await self.app.until_shutdown(s.finals_drained(cfg.max_pending_finals), None)
            self.app.throttled_s += time.monotonic() - held

    async def end(self, a: EndCall) -> None:
        """Flush and close the call (once), then the protocol's last replies."""
        if self.proto.ended is not None:
            return
        self.proto.ended = a
        if self.session is not None:
            try:
                await self.app.end_call(self.session, a.reason)
            except Exception:  # noqa: BLE001 - the peer must still get its last replies
                log.exception("%s: closing failed", self.label())
        for action in self.proto.finish():
            if isinstance(action, Send):
                self.out.put(action)


class Transport:
    """What :func:`serve_connection` reads from and closes."""

    async def receive(self, timeout: float | None) -> str | bytes:
        """The next message; raises TimeoutError or :class:`PeerGone`."""
        raise NotImplementedError

    send: Callable[[str | bytes], Awaitable[None]] | None = None

    async def close(self, frame: Close | None) -> None:
        raise NotImplementedError


class WebSocketTransport(Transport):
    def __init__(self, ws: "ServerConnection", *, replies: bool = True) -> None:
        self.ws = ws
        self.send = ws.send if replies else None
        # A call's reader may be held (pacing, finals backlog) while the peer's pong
        # waits behind the audio it already sent: a ping timeout would then drop a
        # call that is only fast. Calls end on idle_timeout_s (no input) instead,
        # and a dead peer is seen at the next read; pings still go out.
        ws.ping_timeout = None

    async def receive(self, timeout: float | None) -> str | bytes:
        try:
            return await asyncio.wait_for(self.ws.recv(), timeout)
        except ConnectionClosed:
            raise PeerGone from None

    async def close(self, frame: Close | None) -> None:
        if frame is None:
            return
        if frame.wait_peer_s > 0:
            try:
                await asyncio.wait_for(self.ws.wait_closed(), frame.wait_peer_s)
            except asyncio.TimeoutError:
                pass
        await self.ws.close(frame.code, frame.reason)


class StreamTransport(Transport):
    """A TCP stream (AudioSocket): bytes in, nothing sent back, EOF ends it."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def receive(self, timeout: float | None) -> bytes:
        try:
            data = await asyncio.wait_for(self.reader.read(65536), timeout)
        except TimeoutError:  # an OSError too, but not a lost peer
            raise
        except (ConnectionError, OSError):
            raise PeerGone from None
        if not data:
            raise PeerGone
        return data

    async def close(self, frame: Close | None) -> None:
        self.writer.close()


async def serve_connection(app: "App", proto: Machine, transport: Transport) -> None:
    """Run one connection until its protocol stops reading, then close it.

    Every call is flushed before the close: finals and the summary reach the
    hub, and the peer while it is there.
    """
    driver = Driver(app, proto, Outbox(transport.send, lambda: driver.label()))
    idle = app.config.server.idle_timeout_s
    stopping = failed = False
    # the idle clock runs from the last input that did something: a peer trickling a
    # byte at a time (never a whole frame) is idle, however often it sends
    progress = time.monotonic()
    try:
        while proto.reading:
            if app.shutdown.is_set() and not stopping:
                stopping = True
                await driver.run(proto.shutdown())
                continue
            base = timeout = proto.read_timeout(idle)
            if base is not None and base == idle:
                timeout = max(0.0, progress + idle - time.monotonic())
            try:
                if stopping:  # only a close transaction is still awaited
                    message = await transport.receive(timeout)
                else:
                    message = await app.until_shutdown(transport.receive(timeout), None)
            except asyncio.TimeoutError:
                await driver.run(proto.idle_timeout(base if base is not None else 0.0))
                continue
            except PeerGone:
                proto.lost = True
                await driver.run(proto.connection_lost())
                break
            if message is None:  # the server is stopping: the loop's top tells the protocol
                continue
            actions = proto.receive_bytes(message) if isinstance(message, bytes) else proto.receive_text(message)
            if actions:
                progress = time.monotonic()
            await driver.run(actions)
    except Exception:  # noqa: BLE001 - one broken connection must not hurt the others
        failed = True
        app.count_error("internal_error")
        log.exception("%s: connection failed", driver.label())
    finally:
        if proto.ended is None and driver.session is not None:
            await driver.end(EndCall("server_error", error="internal error", code="internal_error"))
        await driver.out.drain()
    if failed and not proto.lost:
        await transport.close(Close(CLOSE_INTERNAL, "internal error"))
    else:
        await transport.close(proto.close_frame())

__all__ = ["Outbox", "Driver", "Transport", "WebSocketTransport", "StreamTransport", "PeerGone",
           "serve_connection"]
