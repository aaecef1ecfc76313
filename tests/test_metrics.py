"""/metrics: Prometheus text from a real server, behind the same credential."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import urllib.error
import urllib.request

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import connect

from voicetriage.core.config import AuthConfig

TOKEN = "metrics-token-0123456789abcdef"


def scrape(port, token=TOKEN):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/metrics",
                                 headers={"Authorization": f"Bearer {token}"} if token else {})
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.headers["Content-Type"].startswith("text/plain")
        text = r.read().decode()
    return {s.name + str(sorted(s.labels.items())): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def value(samples, name, **labels):
    return samples.get(name + str(sorted(labels.items())), 0.0)


async def test_metrics_count_calls_finals_hints_and_latency(tiny_engine, start_server, manifest):
    from voicetriage.audio.files import read_audio
    from voicetriage.server.setup import install

    cfg = tiny_engine.config
    config = dataclasses.replace(cfg, auth=AuthConfig(token=TOKEN))
    srv = start_server(tiny_engine, config, lambda app: install(app, app.config))
    with pytest.raises(urllib.error.HTTPError) as e:
        await asyncio.to_thread(scrape, srv.port, None)
    assert e.value.code == 401
    [audio] = read_audio(manifest["en_speechrecognition_123"]["path"], 16000)
    pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()
    async with connect(f"ws://127.0.0.1:{srv.port}/", additional_headers={"Authorization": f"Bearer {TOKEN}"}) as ws:
        await ws.send(json.dumps({"type": "start", "call_id": "m-1"}))
        await ws.send(json.dumps({"type": "dtmf", "digit": "9"}))  # the elders' line: a hint
        for i in range(0, len(pcm), 6400):
            await ws.send(pcm[i : i + 6400])
        await ws.send(json.dumps({"type": "stop"}))
        got = [json.loads(m) async for m in ws]
    finals = [m for m in got if m["type"] == "final"]
    hints = [m for m in got if m["type"] == "hint"]
    assert finals and hints
    await asyncio.sleep(1.2)  # two lag probes
    s = await asyncio.to_thread(scrape, srv.port)
    assert value(s, "voicetriage_finals_total", platform="native") == len(finals)
    assert value(s, "voicetriage_final_latency_seconds_count", platform="native") == len(finals)
    assert value(s, "voicetriage_audio_seconds_total", platform="native") == pytest.approx(len(audio) / 16000, abs=0.1)
    h = hints[0]
    assert value(s, "voicetriage_hints_total", queue=h["queue"], rule=h["rules"][0]) == 1
    by_queue = {q: sum(1 for m in hints if m["queue"] == q) for q in {m["queue"] for m in hints}}
    for q, n in by_queue.items():  # every hint is timed, under its own queue
        assert value(s, "voicetriage_hint_latency_seconds_count", queue=q) == n
    assert value(s, "voicetriage_active_calls", platform="native") == 0
    assert value(s, "voicetriage_asr_queue_wait_seconds_count", kind="final") >= len(finals)
    assert value(s, "voicetriage_event_loop_lag_seconds_count") >= 1
    assert value(s, "voicetriage_errors_total", code="unauthorized") == 1  # the anonymous scrape
    assert "voicetriage_sink_dropped" in "".join(s)
