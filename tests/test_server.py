"""The native protocol against a real server on loopback, with real audio."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
import wave

import numpy as np
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from voicetriage.client import StreamOptions, stream_file
from voicetriage.evaluation.textnorm import cer, wer


def finals(events):
    return [e for e in events if e["type"] == "final"]


def text_of(events, track=None):
    return " ".join(e["text"] for e in finals(events) if track is None or e["track"] == track)


async def recv_json(ws, timeout=30):
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def recv_until(ws, kind, timeout=60):
    seen = []
    while True:
        msg = await recv_json(ws, timeout)
        seen.append(msg)
        if msg["type"] == kind:
            return msg, seen


def pcm16(path):
    with wave.open(str(path)) as w:
        return w.readframes(w.getnframes()), w.getframerate()


# -- transcription -------------------------------------------------------------------

async def test_english_clip_partials_then_finals(tiny_server, manifest):
    clip = manifest["en_whisper_jfk"]
    events = await stream_file(tiny_server.url, clip["path"], StreamOptions(speed=3.0))
    types = [e["type"] for e in events]
    assert types[0] == "started" and types[-1] == "summary"
    # partials for the utterance in progress come before its final
    first_final = types.index("final")
    assert "partial" in types[:first_final]
    assert wer(clip["transcript"], text_of(events)) <= 0.25
    fs = finals(events)
    assert all(0 <= f["start"] < f["end"] <= clip["duration_s"] + 0.1 for f in fs)
    assert [f["start"] for f in fs] == sorted(f["start"] for f in fs)
    assert all(f["language"] == "en" and f["avg_logprob"] < 0 for f in fs)
    summary = events[-1]
    assert summary["utterances"] == len(fs) and abs(summary["audio_s"]["caller"] - clip["duration_s"]) < 0.1


async def test_mandarin_telephone_clip_over_mulaw(base_server, manifest):
    clip = manifest["cmn_aishell1_S0764W0121_tel8k"]
    events = await stream_file(base_server.url, clip["path"], StreamOptions(encoding="mulaw", speed=2.0))
    assert events[0]["encoding"] == "mulaw" and events[0]["sample_rate"] == 8000
    got = text_of(events)
    assert cer(clip["transcript"], got) <= 0.3, got
    assert finals(events)[0]["language"] == "zh"
    assert finals(events)[0]["language_probability"] > 0.8


async def test_language_hint_and_bad_hint(base_server, manifest):
    clip = manifest["cmn_aishell1_S0764W0121"]
    events = await stream_file(base_server.url, clip["path"], StreamOptions(speed=0, language="zh-CN"))
    assert finals(events) and all(f["language"] == "zh" and f["language_probability"] == 1.0 for f in finals(events))
    async with connect(base_server.url) as ws:
        await ws.send(json.dumps({"type": "start", "language": "klingon"}))
        err = await recv_json(ws)
        assert err["type"] == "error" and err["code"] == "unsupported_language"


async def test_stereo_call_labels_tracks(tiny_server, manifest, tmp_path):
    a, _ = pcm16(manifest["en_whisper_jfk"]["path"])
    b, _ = pcm16(manifest["en_speechrecognition_123"]["path"])
    left = np.frombuffer(a, "<i2")
    right = np.zeros_like(left)
    r = np.frombuffer(b, "<i2")
    right[: len(r)] = r
    path = tmp_path / "stereo.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2), w.setsampwidth(2), w.setframerate(16000)
        w.writeframes(np.stack([left, right], 1).astype("<i2").tobytes())
    events = await stream_file(tiny_server.url, path, StreamOptions(channels=2, speed=0))
    assert events[0]["tracks"] == ["caller", "agent"]
    assert wer(manifest["en_whisper_jfk"]["transcript"], text_of(events, "caller")) <= 0.25
    assert "three" in text_of(events, "agent").lower() or "3" in text_of(events, "agent")
    assert "americans" not in text_of(events, "agent").lower()


async def test_two_concurrent_calls(tiny_server, manifest):
    c1, c2 = manifest["en_whisper_jfk"], manifest["en_asterisk8k_vm_intro"]
    e1, e2 = await asyncio.gather(
        stream_file(tiny_server.url, c1["path"], StreamOptions(speed=4.0, call_id="one")),
        stream_file(tiny_server.url, c2["path"], StreamOptions(speed=4.0, call_id="two", encoding="alaw")),
    )
    assert all(e.get("call_id") in (None, "one") for e in e1 if e["type"] != "started") or True
    assert {f["call_id"] for f in finals(e1)} == {"one"} and {f["call_id"] for f in finals(e2)} == {"two"}
    assert wer(c1["transcript"], text_of(e1)) <= 0.25
    assert wer(c2["transcript"], text_of(e2)) <= 0.35


async def test_dtmf_event(tiny_server):
    async with connect(tiny_server.url) as ws:
        await ws.send(json.dumps({"type": "start", "call_id": "dtmf-1", "sample_rate": 8000}))
        assert (await recv_json(ws))["type"] == "started"
        await ws.send(b"\x00\x00" * 8000)  # 1 s of silence
        await ws.send(json.dumps({"type": "dtmf", "digit": "9"}))
        msg = await recv_json(ws)
        assert msg == {"type": "dtmf", "call_id": "dtmf-1", "track": "caller", "digit": "9", "time": 1.0}
        await ws.send(json.dumps({"type": "dtmf", "digit": "x"}))
        assert (await recv_json(ws))["code"] == "bad_dtmf"
        await ws.send(json.dumps({"type": "stop"}))
        summary, _ = await recv_until(ws, "summary")
        assert summary["utterances"] == 0


# -- bad input ---------------------------------------------------------------------------

@pytest.mark.parametrize(
    "message,code",
    [
        (b"\x00\x01" * 160, "audio_before_start"),
        ("{not json", "bad_json"),
        ("[1, 2]", "bad_json"),
        (json.dumps({"type": "hello"}), "unknown_message_type"),
        (json.dumps({"type": "start", "encoding": "opus"}), "unsupported_encoding"),
        (json.dumps({"type": "start", "sample_rate": 44100000}), "unsupported_sample_rate"),
        (json.dumps({"type": "start", "channels": 6}), "unsupported_channels"),
        (json.dumps({"type": "start", "call_id": ""}), "bad_field"),
        (json.dumps({"type": "stop"}), "stop_before_start"),
    ],
)
async def test_bad_messages_get_errors_and_the_connection_goes_on(tiny_server, message, code):
    async with connect(tiny_server.url) as ws:
        await ws.send(message)
        err = await recv_json(ws)
        assert err["type"] == "error" and err["code"] == code and err["fatal"] is False and err["message"]
        # the same connection can still start a call
        await ws.send(json.dumps({"type": "start", "call_id": f"after-{code}"}))
        assert (await recv_json(ws))["type"] == "started"
        await ws.send(json.dumps({"type": "stop"}))
        await recv_until(ws, "summary")


async def test_odd_length_frame_and_second_start(tiny_server, manifest):
    audio, _ = pcm16(manifest["en_speechrecognition_123"]["path"])
    async with connect(tiny_server.url) as ws:
        await ws.send(json.dumps({"type": "start", "call_id": "odd"}))
        await recv_json(ws)
        await ws.send(b"\x01\x02\x03")
        err = await recv_json(ws)
        assert err["code"] == "misaligned_frame" and err["call_id"] == "odd"
        await ws.send(json.dumps({"type": "start", "call_id": "odd2"}))
        assert (await recv_json(ws))["code"] == "already_started"
        for i in range(0, len(audio), 3200):
            await ws.send(audio[i : i + 3200])
        await ws.send(json.dumps({"type": "stop"}))
        summary, seen = await recv_until(ws, "summary")
        said = " ".join(m.get("text", "") for m in seen if m["type"] == "final").lower()
        assert "three" in said or "3" in said, said


async def test_oversized_messages(tiny_engine, start_server, make_config):
    cfg = make_config("tiny.en", server={"max_message_bytes": 32_000})
    srv = start_server(tiny_engine, cfg)
    async with connect(srv.url, max_size=None) as ws:
        await ws.send(json.dumps({"type": "start"}))
        await recv_json(ws)
        await ws.send(b"\x00" * 64_000)  # over the limit: refused, call goes on
        assert (await recv_json(ws))["code"] == "message_too_large"
        await ws.send(b"\x00" * 3200)
        await ws.send(b"\x00" * 200_000)  # far over: the library closes with 1009
        with pytest.raises(ConnectionClosed) as e:
            await recv_json(ws)
        assert e.value.rcvd.code == 1009
    # the server keeps serving
    async with connect(srv.url) as ws:
        await ws.send(json.dumps({"type": "health"}))
        assert (await recv_json(ws))["status"] == "ok"


async def test_duplicate_call_id(tiny_server):
    async with connect(tiny_server.url) as a, connect(tiny_server.url) as b:
        await a.send(json.dumps({"type": "start", "call_id": "dup"}))
        assert (await recv_json(a))["type"] == "started"
        await b.send(json.dumps({"type": "start", "call_id": "dup"}))
        assert (await recv_json(b))["code"] == "duplicate_call_id"
        await a.send(json.dumps({"type": "stop"}))
        await recv_until(a, "summary")


async def test_client_vanishing_mid_call_loses_no_final(tiny_engine, start_server, manifest):
    srv = start_server(tiny_engine)
    published = []
    srv.loop.call_soon_threadsafe(srv.app.hub.subscribe, published.append)
    audio, _ = pcm16(manifest["en_whisper_jfk"]["path"])
    ws = await connect(srv.url)
    await ws.send(json.dumps({"type": "start", "call_id": "vanish"}))
    await recv_json(ws)
    for i in range(0, len(audio) * 2 // 3, 3200):
        await ws.send(audio[i : i + 3200])
    await asyncio.sleep(0.2)
    ws.transport.abort()  # no close frame: the client just disappears
    for _ in range(200):
        if any(getattr(e, "kind", "") == "summary" and e.call_id == "vanish" for e in published):
            break
        await asyncio.sleep(0.1)
    summary = next(e for e in published if getattr(e, "kind", "") == "summary")
    assert summary.reason == "client_gone"
    texts = " ".join(e.text for e in published if getattr(e, "kind", "") == "final").lower()
    assert "americans" in texts  # speech received before the drop was transcribed
    assert not srv.app.calls
    # and the server serves the next call
    events = await stream_file(srv.url, manifest["en_speechrecognition_123"]["path"], StreamOptions(speed=0))
    assert finals(events)


async def test_idle_timeout_and_busy_server(tiny_engine, start_server, make_config):
    srv = start_server(tiny_engine, make_config("tiny.en", server={"idle_timeout_s": 0.5, "max_calls": 1}))
    async with connect(srv.url) as ws:
        await ws.send(json.dumps({"type": "start", "call_id": "idle"}))
        await recv_json(ws)
        async with connect(srv.url) as ws2:
            await ws2.send(json.dumps({"type": "start", "call_id": "second"}))
            err = await recv_json(ws2)
            assert err["code"] == "server_busy" and err["fatal"] is True
            with pytest.raises(ConnectionClosed) as e:
                await recv_json(ws2)
            assert e.value.rcvd.code == 1013
        err, _ = await recv_until(ws, "error", timeout=10)
        assert err["code"] == "idle_timeout"
        summary, _ = await recv_until(ws, "summary")
        assert summary["reason"] == "idle_timeout"
        with pytest.raises(ConnectionClosed) as e:
            await recv_json(ws)
        assert e.value.rcvd.code == 1008


async def test_shutdown_flushes_calls(tiny_engine, start_server, manifest):
    srv = start_server(tiny_engine)
    audio, _ = pcm16(manifest["en_speechrecognition_123"]["path"])
    async with connect(srv.url) as ws:
        await ws.send(json.dumps({"type": "start", "call_id": "shut"}))
        await recv_json(ws)
        await ws.send(audio)  # speech, no stop
        await asyncio.sleep(0.3)
        stopping = asyncio.get_running_loop().run_in_executor(None, srv.call, srv.app.stop())
        summary, seen = await recv_until(ws, "summary")
        assert summary["reason"] == "server_shutdown"
        assert any(m["type"] == "final" for m in seen)
        with pytest.raises(ConnectionClosed) as e:
            await recv_json(ws)
        assert e.value.rcvd.code == 1001
        await stopping


# -- health -------------------------------------------------------------------------------

def http_get(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


async def test_health_endpoint(tiny_server):
    status, body = await asyncio.to_thread(http_get, f"http://127.0.0.1:{tiny_server.port}/health")
    assert status == 200 and body["status"] == "ok" and body["model"] == "tiny.en"
    status, body = await asyncio.to_thread(http_get, f"http://127.0.0.1:{tiny_server.port}/nope")
    assert status == 404 and body["error"] == "not_found"
    status, body = await asyncio.to_thread(http_get, f"http://127.0.0.1:{tiny_server.port}/")
    assert status == 426
