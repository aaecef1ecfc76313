"""The one connection layer: the native state machine, the driver, failures made visible."""

from __future__ import annotations

import asyncio
import json

import numpy as np
from health_reader import read_health
from websockets.asyncio.client import connect

from voicetriage.core.errors import ProtocolError, VoiceTriageError
from voicetriage.core.events import Final
from voicetriage.protocols import audiohook, audiosocket, native, twilio
from voicetriage.protocols.actions import EndCall, PushAudio, PushDigit, QueryHealth, Send, StartCall
from voicetriage.protocols.machine import Close, Machine, close_code_for


def sent(actions):
    return [json.loads(a.message) for a in actions if isinstance(a, Send)]


def started(proto: native.NativeConnection, call_id="c1"):
    [start] = proto.receive_text(json.dumps({"type": "start", "call_id": call_id}))
    assert isinstance(start, StartCall) and start.info.call_id == call_id
    [msg] = sent(proto.call_started())
    assert msg["type"] == "started" and msg["model"] == "m" and msg["call_id"] == call_id
    return start


# -- the native protocol, sans I/O -----------------------------------------------------

def test_every_protocol_is_a_machine():
    for cls in (native.NativeConnection, twilio.TwilioStream, audiohook.AudioHookSession,
                audiosocket.AudioSocketCall):
        assert issubclass(cls, Machine)


def test_native_errors_before_start_and_the_call_goes_on():
    p = native.NativeConnection(model="m", max_message_bytes=1000)
    [err] = sent(p.receive_bytes(b"\0\0"))
    assert err["code"] == "audio_before_start" and err["fatal"] is False and "call_id" not in err
    assert sent(p.receive_text('{"type": "stop"}'))[0]["code"] == "stop_before_start"
    assert sent(p.receive_text('{"type": "dtmf", "digit": "9"}'))[0]["code"] == "dtmf_before_start"
    assert sent(p.receive_text("[1]"))[0]["code"] == "bad_json"
    forged = json.dumps({"type": "start", "call_id": "c1\n2026-12-02 WARNING forged line"})
    assert sent(p.receive_text(forged))[0]["code"] == "bad_field"
    assert sent(p.receive_text(json.dumps({"type": "start", "call_id": "x" * 129})))[0]["code"] == "bad_field"
    assert sent(p.receive_bytes(b"\0" * 1001))[0]["code"] == "message_too_large"
    assert p.receive_text('{"type": "health"}') == [QueryHealth()]
    assert p.reading
    started(p)
    assert p.receive_bytes(b"\1\0") == [PushAudio(b"\1\0")]
    assert p.receive_text('{"type": "dtmf", "digit": "9"}') == [PushDigit("9", None)]
    assert sent(p.receive_text('{"type": "start"}'))[0]["code"] == "already_started"
    [end] = p.receive_text('{"type": "stop"}')
    assert end == EndCall("stop") and not p.reading
    p.ended = end
    assert p.close_frame() == Close(1000, "call ended")
    assert p.receive_bytes(b"\0\0") == []  # after stop: nothing


def test_native_fatal_ends_close_with_their_codes():
    p = native.NativeConnection(model="m", max_message_bytes=1000)
    started(p)
    actions = p.idle_timeout(0.5)
    [err] = sent(actions)
    assert err == {"type": "error", "code": "idle_timeout", "message": "no message for 0.5 s", "fatal": True,
                   "call_id": "c1"}
    p.ended = actions[-1]
    assert p.ended.reason == "idle_timeout" and p.close_frame() == Close(1008, "idle timeout")

    busy = native.NativeConnection(model="m", max_message_bytes=1000)
    busy.receive_text('{"type": "start"}')
    actions = busy.start_failed(VoiceTriageError("full", code="server_busy"))
    assert sent(actions)[0]["fatal"] is True
    busy.ended = actions[-1]
    assert busy.close_frame() == Close(1013, "server_busy")

    bad_language = native.NativeConnection(model="m", max_message_bytes=1000)
    bad_language.receive_text('{"type": "start"}')
    [err] = sent(bad_language.start_failed(ProtocolError("no such language", code="unsupported_language")))
    assert err["fatal"] is False and bad_language.reading  # the client may start again
    started(bad_language, "c2")

    gone = native.NativeConnection(model="m", max_message_bytes=1000)
    started(gone)
    gone.lost = True
    assert gone.connection_lost() == [EndCall("client_gone")] and gone.close_frame() is None


def test_native_events_use_the_one_serializer():
    p = native.NativeConnection(model="m", max_message_bytes=1000)
    final = Final("c1", "caller", 1, 0.0, 1.0, "hello", "en", 0.9, -0.2, 0.01, "silence",
                  language_candidates=(("en", 0.9), ("de", 0.05)))
    [msg] = sent(p.on_event(final))
    assert msg["type"] == "final" and msg["language_candidates"] == [["en", 0.9], ["de", 0.05]]


def test_close_codes_are_one_table():
    assert close_code_for("server_shutdown") == 1001
    assert close_code_for("server_busy") == 1013
    assert close_code_for("malformed_message") == 1007
    assert close_code_for("anything_else") == 1008


# -- live: failures are visible, events are never lost -----------------------------------

def speech(manifest, clip="en_speechrecognition_123"):
    from voicetriage.audio.files import read_audio

    [audio] = read_audio(manifest[clip]["path"], 16000)
    return (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()


async def run_native(url, audio, call_id):
    got = []
    async with connect(url) as ws:
        await ws.send(json.dumps({"type": "start", "call_id": call_id}))
        for i in range(0, len(audio), 6400):
            await ws.send(audio[i : i + 6400])
        await ws.send(json.dumps({"type": "stop"}))
        async for text in ws:
            got.append(json.loads(text))
    return got


def health(port):
    return read_health(port)[1]


async def test_a_formatting_failure_loses_the_event_for_that_peer_only(tiny_engine, start_server, manifest,
                                                                       monkeypatch):
    srv = start_server(tiny_engine)
    published = []
    srv.loop.call_soon_threadsafe(srv.app.hub.subscribe, published.append)
    real = native.NativeConnection.on_event

    def broken(self, event):
        if event.kind == "final":
            raise OverflowError("cannot format this")
        return real(self, event)

    monkeypatch.setattr(native.NativeConnection, "on_event", broken)
    got = await run_native(srv.url, speech(manifest), "fmt-1")
    kinds = [m["type"] for m in got]
    assert "final" not in kinds and kinds[-1] == "summary"  # the call went on to its end
    finals = [e for e in published if e.kind == "final" and e.call_id == "fmt-1"]
    assert finals, "the hub (event log, webhook, /events, triage) still has every final"
    summary = next(e for e in published if e.kind == "summary" and e.call_id == "fmt-1")
    assert len(summary.finals) == len(finals)
    assert (await asyncio.to_thread(health, srv.port))["errors"]["format_failed"] == len(finals)


async def test_a_failed_final_is_an_error_event_and_a_counter(tiny_engine, start_server, manifest, monkeypatch):
    srv = start_server(tiny_engine)
    worker = tiny_engine.worker
    real = worker.submit

    def failing(call_id, track, request, final):
        if not final:
            return real(call_id, track, request, final)
        fut = asyncio.get_running_loop().create_future()
        fut.set_exception(RuntimeError("inference crashed"))
        return fut

    monkeypatch.setattr(worker, "submit", failing)
    got = await run_native(srv.url, speech(manifest), "fail-1")
    errors = [m for m in got if m["type"] == "error"]
    assert errors and all(e["code"] == "final_failed" and e["fatal"] is False for e in errors)
    e = errors[0]
    assert e["call_id"] == "fail-1" and e["track"] == "caller" and e["end"] > e["start"] >= 0
    assert "inference crashed" in e["message"]
    assert got[-1]["type"] == "summary"
    assert (await asyncio.to_thread(health, srv.port))["errors"]["final_failed"] == len(errors)


async def test_a_disabled_extractor_shows_in_health(tiny_engine, start_server, manifest):
    from voicetriage.triage.observer import install_triage

    class Broken:
        name = "broken_extractor"

        def on_audio(self, track, samples, t0):
            raise ValueError("bug")

        def on_event(self, event):
            return []

        def on_close(self):
            return []

    srv = start_server(tiny_engine, None, lambda app: install_triage(
        app, app.config, extractors=lambda call_id, cfg: [Broken()]))
    assert (await asyncio.to_thread(health, srv.port))["triage"]["extractors_disabled"] == {}
    got = await run_native(srv.url, speech(manifest)[:32000], "ext-1")
    assert got[-1]["type"] == "summary"
    h = await asyncio.to_thread(health, srv.port)
    assert h["triage"]["extractors_disabled"] == {"broken_extractor": 1}
    srv2 = await run_native(srv.url, speech(manifest)[:32000], "ext-2")
    assert srv2[-1]["type"] == "summary"
    assert (await asyncio.to_thread(health, srv.port))["triage"]["extractors_disabled"] == {"broken_extractor": 2}

