"""Partials adapt to the recogniser's load (issue 14): fewer when it is busy, finals untouched."""

from __future__ import annotations

import asyncio
import wave

import numpy as np

from voicetriage.audio import AudioSpec
from voicetriage.audio.vad import VadModel
from voicetriage.core.config import StreamConfig
from voicetriage.core.events import AsrResult, CallInfo, Final
from voicetriage.pipeline.session import CallSession


class LoadedWorker:
    """Answers at once, reports a fixed load, records what it was asked."""

    def __init__(self, load: float):
        self._load = load
        self.partials: list[float] = []  # audio seconds of each partial request
        self.finals: list[int] = []

    def load(self) -> float:
        return self._load

    def submit(self, call_id, track, request, final):
        (self.finals.append(len(request.audio)) if final else self.partials.append(len(request.audio) / 16000))
        fut = asyncio.get_running_loop().create_future()
        fut.set_result(AsrResult("你好 hello", "zh", 0.9, -0.2, 0.01))
        return fut

    def forget(self, call_id):
        pass


async def _run(data: bytes, load: float, **stream) -> tuple[LoadedWorker, list]:
    worker = LoadedWorker(load)
    events: list = []
    session = CallSession(CallInfo("c"), AudioSpec("pcm16", 16000, 1), worker=worker, vad=VadModel(),
                          config=StreamConfig(pause_partial_ms=0, **stream), emit=events.append)
    for i in range(0, len(data), 640):
        session.push_audio(data[i : i + 640])
        await asyncio.sleep(0)
    await session.close()
    return worker, events


def _clip(manifest) -> bytes:
    with wave.open(manifest["yue_wsyue_03"]["path"]) as w:  # 15 s of continuous speech
        x = w.readframes(w.getnframes())
    return x + np.zeros(16000, "<i2").tobytes()


def test_partials_thin_out_under_load_and_finals_do_not_change(manifest):
    data = _clip(manifest)
    idle, ev_idle = asyncio.run(_run(data, 0.0))
    busy, ev_busy = asyncio.run(_run(data, 3.0))  # 3 requests waiting per thread
    fixed, _ = asyncio.run(_run(data, 3.0, partial_backoff=0.0))
    assert len(idle.partials) >= 8
    assert len(fixed.partials) == len(idle.partials)  # backoff 0: the load is ignored
    assert len(busy.partials) < len(idle.partials) / 2
    # interval 1 s x (1 + 3) = 4 s (the cap) between partials of one utterance
    gaps = np.diff(busy.partials)
    assert ((gaps >= 4.0 - 0.04) | (gaps < 0)).all()
    assert busy.finals == idle.finals  # same utterances, same audio
    assert [e.text for e in ev_busy if isinstance(e, Final)] == [e.text for e in ev_idle if isinstance(e, Final)]


def test_interval_formula():
    class W:
        def __init__(self, x):
            self.x = x

        def load(self):
            return self.x

    def interval(load, **kw):
        s = CallSession(CallInfo("c"), AudioSpec("pcm16", 16000, 1), worker=W(load), vad=VadModel(),
                        config=StreamConfig(**kw), emit=lambda e: None)
        return s.partial_interval()

    assert interval(0.0) == 1.0
    assert interval(0.5) == 1.5
    assert interval(10.0) == 4.0
    assert interval(1.0, partial_backoff=0.5, partial_interval_s=0.5) == 0.75
    assert interval(5.0, partial_backoff=0.0) == 1.0


def test_worker_load_counts_waiting_requests_per_thread():
    from voicetriage.asr.engine import AsrRequest
    from voicetriage.asr.worker import InferenceWorker

    async def go():
        w = InferenceWorker(object(), threads=2)  # not started: nothing is taken off the queue
        assert w.load() == 0.0
        audio = np.zeros(16000, np.float32)
        w.submit("a", "caller", AsrRequest(audio), final=True)
        w.submit("b", "caller", AsrRequest(audio), final=True)
        w.submit("a", "caller", AsrRequest(audio), final=False)
        w.submit("a", "caller", AsrRequest(audio), final=False)  # replaces the queued partial
        return w.load()

    assert asyncio.run(go()) == 1.5
