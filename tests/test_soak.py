"""A bounded soak on loopback: many short calls and a few long ones, some clients vanishing
mid-call, others sending garbage; the server stays up, forgets every call, logs every final
exactly once, and its memory comes back to where it was."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
import resource
from collections import Counter

import numpy as np
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

SHORT = ["en_speechrecognition_123", "en_espeak_fast", "en_espeak_urgent", "en_asterisk8k_queue_callswaiting",
         "en_asterisk8k_pbx_invalid"]
LONG = ["en_asterisk8k_demo_congrats", "en_whisper_jfk"]


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


async def one_call(url, pcm: bytes, call_id: str, fate: str, rng: random.Random):
    """fate: "normal", "vanish" (transport aborted mid-call) or "garbage" (bad messages, then stop)."""
    got = []
    ws = await connect(url, max_size=None)
    try:
        await ws.send(json.dumps({"type": "start", "call_id": call_id}))
        got.append(json.loads(await ws.recv()))
        cut = len(pcm) if fate != "vanish" else rng.randrange(len(pcm) // 4, len(pcm)) // 2 * 2
        for i in range(0, cut, 3200):
            await ws.send(pcm[i : min(i + 3200, cut)])
            if fate == "garbage" and i == 6400:
                await ws.send("{not json")
                await ws.send(b"\x01")  # half a sample
                await ws.send(json.dumps({"type": "dtmf", "digit": "Z"}))
        if fate == "vanish":
            ws.transport.abort()
            return call_id, fate, got
        await ws.send(json.dumps({"type": "stop"}))
        async for m in ws:
            got.append(json.loads(m))
    except ConnectionClosed:
        pass
    finally:
        if fate != "vanish":
            await ws.close()
    return call_id, fate, got


async def test_soak_short_and_long_calls_with_faults(tiny_engine, start_server, manifest, tmp_path):
    from voicetriage.audio.files import read_audio

    log = tmp_path / "events.jsonl"
    cfg = tiny_engine.config
    config = dataclasses.replace(cfg, server=dataclasses.replace(cfg.server, event_log=str(log), max_calls=16))

    def setup(app):
        from voicetriage.server.setup import install

        install(app, app.config)

    srv = start_server(tiny_engine, config, setup)
    audio = {}
    for clip in SHORT + LONG:
        [a] = read_audio(manifest[clip]["path"], 16000)
        audio[clip] = (np.clip(a, -1, 1) * 32767).astype("<i2").tobytes()
    rng = random.Random(7)

    async def wave(n, clips, tag):
        calls = []
        for i in range(n):
            fate = rng.choices(["normal", "vanish", "garbage"], [0.6, 0.25, 0.15])[0]
            calls.append(one_call(srv.url, audio[rng.choice(clips)], f"{tag}-{i}", fate, rng))
        return await asyncio.gather(*calls)

    await wave(4, SHORT, "warm")  # models and buffers warmed up: the baseline
    await asyncio.sleep(0.5)
    baseline = rss_mb()
    results = []
    for w in range(5):  # 5 waves of 8 short calls, 2 of them beside a long one
        extra = [wave(1, LONG, f"long{w}")] if w in (1, 3) else []
        for got in await asyncio.gather(wave(8, SHORT, f"w{w}"), *extra):
            results.extend(got)
    for _ in range(100):  # vanished clients' calls are flushed in the background
        if not srv.app.calls:
            break
        await asyncio.sleep(0.1)
    assert not srv.app.calls, "every call was forgotten"
    assert len(results) == 42 and Counter(f for _, f, _ in results)["vanish"] > 0

    async def health_now():
        return srv.app.health()

    health = await asyncio.to_thread(srv.call, health_now())
    assert health["status"] == "ok" and health["calls"] == 0

    # every final exactly once in the event log, and for calls that ended normally
    # exactly the finals their client received
    await asyncio.sleep(0.2)
    lines = [json.loads(x) for x in log.read_text(encoding="utf-8").splitlines()]
    finals = [m for m in lines if m["type"] == "final"]
    keys = Counter((m["call_id"], m["track"], m["utterance"]) for m in finals)
    assert keys and max(keys.values()) == 1
    for call_id, fate, got in results:
        if fate == "vanish":
            continue
        assert got[-1]["type"] == "summary", (call_id, fate, got[-3:])
        mine = [(m["utterance"], m["text"]) for m in got if m["type"] == "final"]
        logged = [(m["utterance"], m["text"]) for m in finals if m["call_id"] == call_id]
        assert mine == logged, call_id
        if fate == "garbage":
            assert {"bad_json", "misaligned_frame", "bad_dtmf"} <= {m.get("code") for m in got}
    # memory back to where the warmed-up server was (a leak per call would show)
    grown = rss_mb() - baseline
    fates = Counter(f for _, f, _ in results)
    print(f"\nsoak: {len(results)} calls ({dict(fates)}), {len(finals)} finals logged once each, "
          f"RSS {baseline:.0f} MB -> {baseline + grown:.0f} MB")
    assert grown < 150, f"RSS grew by {grown:.0f} MB over 42 calls"
