"""Limits and backpressure on a real server: audio pacing, trickling peers, connection caps,
a degraded status before calls get slow."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
import uuid

import pytest
from health_reader import read_health
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from voicetriage.client import StreamOptions, stream_file


def server_with(tiny_engine, start_server, telephony=False, **server):
    cfg = tiny_engine.config
    config = dataclasses.replace(cfg, server=dataclasses.replace(cfg.server, host="127.0.0.1", port=0, **server))

    def setup(app):
        if telephony:
            from voicetriage.server.telephony import TelephonyConfig, install

            install(app, TelephonyConfig(audiosocket_port=0))

    return start_server(tiny_engine, config, setup)


health = read_health


async def test_audio_faster_than_allowed_is_paced_not_dropped(tiny_engine, start_server, manifest):
    clip = manifest["en_whisper_jfk"]
    srv = server_with(tiny_engine, start_server, max_audio_speed=4.0, audio_burst_s=2.0)
    t = time.monotonic()
    events = await stream_file(srv.url, clip["path"], StreamOptions(speed=0))  # as fast as the client can
    took = time.monotonic() - t
    audio_s = events[-1]["audio_s"]["caller"]
    assert events[-1]["type"] == "summary" and events[-1]["reason"] == "stop"
    assert [e for e in events if e["type"] == "final"], "the call was transcribed, not dropped"
    assert took >= (audio_s - 2.0) / 4.0 * 0.95  # held to 4x real time after the 2 s burst
    status, body = await asyncio.to_thread(health, srv.port)
    assert body["throttled_s"] > 0


async def test_a_trickling_audiosocket_peer_is_idle(tiny_engine, start_server):
    srv = server_with(tiny_engine, start_server, telephony=True, idle_timeout_s=1.0)
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.app.tcp_ports[0])
    writer.write(b"\x01\x00\x10" + uuid.uuid4().bytes)
    await writer.drain()
    t = time.monotonic()
    closed = False
    header = b"\x10\x01\x40"  # a 320-byte audio frame, sent one byte at a time, never finished
    for byte in header + b"\x00" * 40:
        try:
            writer.write(bytes([byte]))
            await writer.drain()
        except ConnectionError:
            closed = True
            break
        if reader.at_eof():
            closed = True
            break
        try:
            if await asyncio.wait_for(reader.read(1), 0.25) == b"":
                closed = True
                break
        except asyncio.TimeoutError:
            pass
        except ConnectionError:  # closed with unread bytes in the server's buffer: a reset
            closed = True
            break
    assert closed, "a peer sending a byte every 0.25 s was never closed"
    assert time.monotonic() - t < 5.0
    writer.close()


async def test_connection_caps_per_peer(tiny_engine, start_server):
    srv = server_with(tiny_engine, start_server, telephony=True, max_connections_per_peer=2)
    a = await connect(srv.url)
    b = await connect(srv.url)
    with pytest.raises(InvalidStatus) as e:
        await connect(srv.url, open_timeout=10)
    assert e.value.response.status_code == 503
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.app.tcp_ports[0])
    assert await asyncio.wait_for(reader.read(), 10) == b""  # AudioSocket counts too
    writer.close()
    await a.close()
    await asyncio.sleep(0.2)
    c = await connect(srv.url)  # a slot is free again
    await c.send(json.dumps({"type": "health"}))
    got = json.loads(await c.recv())
    assert got["type"] == "health" and got["connections"] == 2 and got["errors"]["too_many_connections"] == 2
    await b.close()
    await c.close()


async def test_health_says_degraded_when_finals_queue_up(tiny_engine, start_server, monkeypatch):
    srv = server_with(tiny_engine, start_server)
    worker = tiny_engine.worker
    real = worker.stats
    monkeypatch.setattr(worker, "stats", lambda: dataclasses.replace(real(), queued_finals=3 * worker.n_threads))
    status, body = await asyncio.to_thread(health, srv.port)
    assert status == 503 and body["status"] == "degraded"
    monkeypatch.setattr(worker, "stats", real)
    status, body = await asyncio.to_thread(health, srv.port)
    assert status == 200 and body["status"] == "ok"


async def test_a_call_whose_finals_pile_up_is_held_not_dropped(tiny_engine, start_server, manifest, tmp_path,
                                                                monkeypatch):
    """A slow recogniser and a client sending as fast as it can: the reader waits while
    more than max_pending_finals of the call's finals are queued; every final still comes."""
    import wave

    import numpy as np

    from voicetriage.audio.files import read_audio

    clip = read_audio(manifest["en_whisper_jfk"]["path"], 16000)[0]
    gap = np.zeros(16000, np.float32)
    path = tmp_path / "three.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes((np.concatenate([clip, gap, clip, gap, clip, gap]) * 32767).astype("<i2").tobytes())
    srv = server_with(tiny_engine, start_server, max_audio_speed=0.0, max_pending_finals=1)
    asr = tiny_engine.asr
    real = asr.transcribe_batch

    def slow(requests):
        time.sleep(0.3)
        return real(requests)

    monkeypatch.setattr(asr, "transcribe_batch", slow)
    peak = 0
    done = False

    async def watch():
        nonlocal peak
        while not done:
            for s in list(srv.app.calls.values()):
                peak = max(peak, s.finals_pending)
            await asyncio.sleep(0.005)

    watcher = asyncio.ensure_future(watch())
    try:
        events = await stream_file(srv.url, str(path), StreamOptions(speed=0))
    finally:
        done = True
        await watcher
    finals = [e for e in events if e["type"] == "final"]
    assert events[-1]["type"] == "summary" and events[-1]["reason"] == "stop"
    assert len(finals) >= 3 and sum("country" in f["text"].lower() for f in finals) >= 3
    assert peak <= 2, f"{peak} finals of one call were queued at once (limit 1, plus the one that tipped it)"
    status, body = await asyncio.to_thread(health, srv.port)
    assert body["throttled_s"] > 0


async def test_a_paced_call_outlives_the_keepalive(tiny_engine, start_server, manifest, tmp_path):
    """``stream --speed 0`` of a long recording died after 41 s with "keepalive ping timeout":
    the server held the reader and the client's pong waited behind the audio it had sent.
    Here: a 10 s burst (the kernel's buffers grow while the server reads at full speed),
    then 1x, so a pong waits behind half a minute of audio, past the server's 20 s ping
    interval and its former 20 s ping timeout."""
    import wave

    import numpy as np

    from voicetriage.audio.files import read_audio

    clip = read_audio(manifest["en_whisper_jfk"]["path"], 16000)[0]
    path = tmp_path / "long.wav"
    audio = np.concatenate([clip, np.zeros(8000, np.float32)] * 5)  # 57.5 s
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes((audio * 32767).astype("<i2").tobytes())
    srv = server_with(tiny_engine, start_server, max_audio_speed=1.0, audio_burst_s=10.0)
    events = await stream_file(srv.url, str(path), StreamOptions(speed=0))
    assert events[-1]["type"] == "summary" and events[-1]["reason"] == "stop", events[-1]
    assert events[-1]["audio_s"]["caller"] > 57
    assert sum("country" in e["text"].lower() for e in events if e["type"] == "final") >= 5


# -- the pending-finals hold, without a server --------------------------------------------
class Gate:
    """A recogniser that answers nothing until ``opened`` is set (no timing involved)."""

    def __init__(self) -> None:
        import threading

        self.opened = threading.Event()
        self.asked = threading.Event()

    def window_seconds(self, duration):
        return 10.0

    def transcribe_batch(self, reqs):
        from voicetriage.core.events import AsrResult

        self.asked.set()
        self.opened.wait(60)
        return [AsrResult("hello there", "en", 0.9, -0.2, 0.01) for _ in reqs]


def held_call(limit: int):
    """A call whose finals wait on a closed Gate, and a Driver pacing its reader."""
    import functools
    import wave
    from pathlib import Path
    from types import SimpleNamespace

    import voicetriage
    from voicetriage.asr.worker import InferenceWorker
    from voicetriage.audio import AudioSpec
    from voicetriage.audio.vad import VadModel
    from voicetriage.core.config import ServerConfig, StreamConfig
    from voicetriage.core.events import CallInfo, Final
    from voicetriage.pipeline.session import CallSession
    from voicetriage.server.app import App
    from voicetriage.server.connection import Driver

    gate = Gate()
    worker = InferenceWorker(gate)
    worker.start()
    order: list = []
    s = CallSession(CallInfo("c"), AudioSpec("pcm16", 16000, 1), worker=worker, vad=VadModel(),
                    config=StreamConfig(), emit=lambda e: order.append("final") if isinstance(e, Final) else None)
    with wave.open(str(Path(voicetriage.__file__).parent / "data" / "sample_call.wav")) as w:
        data = w.readframes(w.getnframes()) + bytes(2 * 16000)  # the clip and 1 s of silence
    for i in range(0, len(data), 640):
        s.push_audio(data[i : i + 640])
    app = SimpleNamespace(config=SimpleNamespace(server=ServerConfig(max_audio_speed=0.0, max_pending_finals=limit)),
                          throttled_s=0.0, shutdown=asyncio.Event(), _shutdown_waiter=None)
    app.until_shutdown = functools.partial(App.until_shutdown, app)
    driver = Driver(app, None, None)
    driver.session = s
    return s, driver, gate, worker, order


async def test_a_reader_held_on_pending_finals_resumes_when_they_drain():
    """The hold waits on the session's event, set by each final that completes: the reader
    goes on only after enough finals were published to bring the call under its limit."""
    s, driver, gate, worker, order = held_call(limit=1)
    try:
        held = s.finals_pending
        assert held >= 2, held  # the clip's utterances ended in silence, none decoded yet

        async def reader():
            await driver._pace(None)
            order.append(("resumed", s.finals_pending))

        task = asyncio.ensure_future(reader())
        await asyncio.to_thread(gate.asked.wait, 60)  # the recogniser has the first final
        for _ in range(20):
            await asyncio.sleep(0)
        assert not task.done() and order == []  # held: nothing completed, nothing published
        gate.opened.set()
        await asyncio.wait_for(task, 30)  # a hang (no wake-up) fails here, not a slow wake-up
        resumed = next(i for i, e in enumerate(order) if isinstance(e, tuple))
        # published first: at least the finals that took the call from `held` to the limit
        assert order[:resumed] == ["final"] * resumed and resumed >= held - 1
        assert order[resumed][1] <= 1
        assert driver.app.throttled_s > 0
    finally:
        gate.opened.set()
        await s.close()
        worker.stop()


async def test_a_reader_held_on_pending_finals_resumes_when_the_server_stops():
    s, driver, gate, worker, order = held_call(limit=1)
    try:
        assert s.finals_pending >= 2
        task = asyncio.ensure_future(driver._pace(None))
        await asyncio.to_thread(gate.asked.wait, 60)
        for _ in range(20):
            await asyncio.sleep(0)
        assert not task.done()
        driver.app.shutdown.set()  # no final completed: the shutdown lets the reader go
        await asyncio.wait_for(task, 60)
        assert order == [] and s.finals_pending >= 2
    finally:
        gate.opened.set()
        await s.close()
        worker.stop()


async def test_a_peer_that_never_finishes_its_handshake_is_closed(tiny_engine, start_server, monkeypatch):
    """The websocket port: a TCP peer that sends half an upgrade request and then nothing
    is closed at the handshake timeout (10 s; 0.5 s here), holding no slot after it."""
    import voicetriage.server.app as app_module

    monkeypatch.setattr(app_module, "HANDSHAKE_TIMEOUT_S", 0.5)
    srv = server_with(tiny_engine, start_server)
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    writer.write(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # never the blank line that ends it
    await writer.drain()
    got = await asyncio.wait_for(reader.read(), 30)  # EOF: the server closed it
    assert b"101" not in got
    writer.close()
    status, body = await asyncio.to_thread(health, srv.port)
    assert body["connections"] == 0


async def test_a_fragmented_message_is_bounded_like_a_whole_one(tiny_engine, start_server):
    """Fragments count towards the message limit together (4 x max_message_bytes): a
    message sent as many small fragments is closed with 1009 once their sum passes it,
    rather than buffered without bound; the server goes on."""
    from websockets.exceptions import ConnectionClosed

    srv = server_with(tiny_engine, start_server, max_message_bytes=1024)
    async with connect(srv.url) as ws:
        await ws.send(json.dumps({"type": "start", "call_id": "frag", "encoding": "pcm16", "sample_rate": 16000}))
        assert json.loads(await ws.recv())["type"] == "started"
        with pytest.raises(ConnectionClosed) as e:
            # 5 kB in 1 kB fragments: the last one passes the limit, so nothing follows it that
            # the server would leave unread (unread data makes its close a reset, and the client
            # could lose the 1009 frame)
            await ws.send(b"\0\0" * 500 for _ in range(5))
            while True:
                await asyncio.wait_for(ws.recv(), 30)
    assert e.value.rcvd is not None and e.value.rcvd.code == 1009
    # the server goes on, and the call ends (its finals flushed after the close was sent,
    # so /health may still count it for a moment)
    deadline = time.monotonic() + 30
    while True:
        status, body = await asyncio.to_thread(health, srv.port)
        if body["calls"] == 0 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    assert status == 200 and body["calls"] == 0


async def test_an_idle_websocket_that_never_starts_a_call_is_closed(tiny_engine, start_server):
    """Issue 11: 2,000 idle websockets were accepted and kept. One that authenticates (auth is
    off here) and then says nothing is closed at idle_timeout_s, before any call."""
    from websockets.exceptions import ConnectionClosed

    srv = server_with(tiny_engine, start_server, idle_timeout_s=0.5)
    async with connect(srv.url) as ws:
        with pytest.raises(ConnectionClosed) as e:
            while True:
                await asyncio.wait_for(ws.recv(), 30)
    assert e.value.rcvd is not None and e.value.rcvd.code == 1008
