"""The pause partial reaches the caller and the extractors even when its utterance ends while it is decoded.

A request at the end of an utterance ("我要转人工。") is first seen by the partial
asked for on the 200 ms pause after it. On a busy recogniser that decode is
still running when the utterance ends (500 ms of silence) and the final is
queued behind it; the partial used to be dropped then, and the request waited
for the final's own decode (issue 9 item 5).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
import wave

import numpy as np

from voicetriage.asr.worker import InferenceWorker
from voicetriage.audio import AudioSpec
from voicetriage.audio.vad import VadModel
from voicetriage.core.config import StreamConfig
from voicetriage.core.events import AsrResult, CallInfo, Final, Partial
from voicetriage.pipeline.session import CallSession
from voicetriage.triage.signals.human_request import HumanRequestExtractor


class SlowRequest:
    """Decodes of over a second of audio say "我要转人工" (shorter ones "你好"), with
    confident scores; a partial takes ``partial_s``."""

    def __init__(self, partial_s: float):
        self.partial_s = partial_s
        self.requests: list[tuple[bool, float]] = []

    def window_seconds(self, duration):
        return 10.0

    def transcribe_batch(self, reqs):
        self.requests += [(r.final, time.monotonic()) for r in reqs]
        if not any(r.final for r in reqs):
            time.sleep(self.partial_s)
        return [AsrResult("我要转人工" if len(r.audio) > 16000 else "你好", "zh", 0.93, -0.2, 0.01) for r in reqs]


class Extractors:
    def __init__(self):
        self.hr = HumanRequestExtractor("c")
        self.signals = []

    def on_audio(self, track, samples, t0):
        return []

    def on_event(self, event):
        out = self.hr.on_event(event)
        self.signals += out
        return out

    def on_close(self, summary):
        return []


async def _call(path: str, partial_s: float) -> tuple[list, Extractors, SlowRequest]:
    rec = SlowRequest(partial_s)
    worker = InferenceWorker(rec)
    worker.start()
    obs = Extractors()
    events: list = []
    # only the first partial (0.3 s into speech) and the pause partial
    cfg = dataclasses.replace(StreamConfig(), partial_interval_s=60.0, pause_partial_ms=200)
    session = CallSession(CallInfo("c"), AudioSpec("pcm16", 16000, 1), worker=worker, vad=VadModel(),
                          config=cfg, emit=events.append, observers=[obs])
    with wave.open(path) as w:
        data = w.readframes(w.getnframes())
    data += b"\0" * 96000  # three seconds of silence: the utterance ends on its pause
    for i in range(0, len(data), 640):  # 20 ms of audio every 5 ms: 4x real time
        session.push_audio(data[i: i + 640])
        await asyncio.sleep(0.005)
    await session.close()
    worker.stop()
    return events, obs, rec


async def test_a_pause_partial_still_decoding_when_the_utterance_ends_is_shown_before_the_final(manifest):
    path = manifest["cmn_aishell1_S0764W0121"]["path"]
    # a 0.4 s partial decode: the utterance ends (0.3 s of silence later, 75 ms at 4x)
    # while the pause partial is still running
    events, obs, rec = await _call(path, partial_s=0.4)
    finals = [e for e in events if isinstance(e, Final)]
    assert len(finals) == 1
    final_at = events.index(finals[0])
    # the final was queued while the pause partial ran (the situation under test)
    first_final_request = next(t for final, t in rec.requests if final)
    assert sum(not final for final, t in rec.requests if t < first_final_request) == 2
    pause = [e for e in events[:final_at] if isinstance(e, Partial) and e.pause_s > 0]
    assert pause, f"no pause partial before the final: {[type(e).__name__ for e in events]}"
    assert pause[0].utterance == finals[0].utterance and "转人工" in pause[0].text
    assert pause[0].end - pause[0].pause_s <= finals[0].end  # its speech is the final's
    # the request fired from it, not from the final
    assert obs.signals and obs.signals[0].evidence["source"] == "partial_pause"
    assert events.index(obs.signals[0]) < final_at


async def test_no_partial_of_an_utterance_comes_after_its_final(manifest):
    path = manifest["cmn_aishell1_S0764W0121"]["path"]
    events, _, _ = await _call(path, partial_s=0.05)
    seen_final: set[int] = set()
    for e in events:
        if isinstance(e, Final):
            seen_final.add(e.utterance)
        elif isinstance(e, Partial):
            assert e.utterance not in seen_final


class _Segmenter:
    """What _maybe_partial reads from the segmenter, set by the test."""

    def __init__(self, speech_s: float, pause_s: float):
        self.active, self.active_start = 0, 0.0
        self.active_speech_s = speech_s
        self.trailing_silence_s = pause_s
        self._audio = np.zeros(int((speech_s + pause_s) * 16000), np.float32)

    def active_audio(self):
        return self._audio

    def ending_audio(self):  # the speech and a 0.2 s tail (asr.reuse_cache)
        return self._audio[: int((self.active_speech_s + min(self.trailing_silence_s, 0.2)) * 16000)]


class _Recorder:
    def __init__(self):
        self.asked: list[float] = []

    def submit(self, call_id, track, request, final):
        self.asked.append(len(request.audio) / 16000)
        return asyncio.get_running_loop().create_future()  # never answers: the track stays busy

    def load(self):
        return 0.0

    def forget(self, call_id):
        pass


async def test_a_pause_that_has_begun_holds_the_interval_partial_for_the_pause_partial():
    """Between the start of a pause and its 200 ms mark no interval partial is asked, so the
    recogniser is free for the pause partial when it is due."""
    rec = _Recorder()
    cfg = dataclasses.replace(StreamConfig(), partial_interval_s=0.5, pause_partial_ms=200)
    session = CallSession(CallInfo("c"), AudioSpec("pcm16", 16000, 1), worker=rec, vad=VadModel(),
                          config=cfg, emit=lambda e: None)
    t = session._track(None)
    t.partial_at = 1.0  # the last partial covered 1 s; 1.1 s of new audio is over the interval
    t.segmenter = _Segmenter(speech_s=2.0, pause_s=0.1)
    session._maybe_partial(t)
    assert rec.asked == []  # held: the pause may be the end of a request
    t.segmenter = _Segmenter(speech_s=2.0, pause_s=0.2)
    session._maybe_partial(t)
    assert rec.asked == [2.2] and t.pause_partial  # the pause partial, with the whole phrase
    # with pause partials off, the interval partial is not held
    rec2 = _Recorder()
    off = CallSession(CallInfo("c"), AudioSpec("pcm16", 16000, 1), worker=rec2, vad=VadModel(),
                      config=dataclasses.replace(cfg, pause_partial_ms=0), emit=lambda e: None)
    t2 = off._track(None)
    t2.partial_at = 1.0
    t2.segmenter = _Segmenter(speech_s=2.0, pause_s=0.1)
    off._maybe_partial(t2)
    assert rec2.asked == [2.1]


async def test_any_partial_of_an_ended_utterance_is_shown_until_its_final_is_out():
    """An interval partial still decoding when its utterance ends is shown too (its tail then
    counts for a request only from a confident decode); once the final is out it is dropped."""
    events: list = []
    session = CallSession(CallInfo("c"), AudioSpec("pcm16", 16000, 1), worker=_Recorder(), vad=VadModel(),
                          config=StreamConfig(), emit=events.append)
    t = session._track(None)
    ended = _Segmenter(speech_s=2.0, pause_s=0.0)
    ended.active = None  # the utterance ended while the partial was decoded
    t.segmenter = ended

    async def answer():
        return AsrResult(" 我要转人工", "zh", 0.93, -0.2, 0.01)

    await session._on_partial(t, 0, 0.5, 2.0, asyncio.ensure_future(answer()), 0.0)
    shown = [e for e in events if isinstance(e, Partial)]
    assert len(shown) == 1
    assert (shown[0].utterance, shown[0].stable, shown[0].unstable, shown[0].pause_s) == (0, "", "我要转人工", 0.0)
    assert 0 in t.late_shown and not t.shown  # the next utterance has shown nothing
    t.finished = 0  # its final went out
    await session._on_partial(t, 0, 0.5, 2.0, asyncio.ensure_future(answer()), 0.0)
    assert len([e for e in events if isinstance(e, Partial)]) == 1
    assert session.dropped_partials == 1


async def test_the_worker_serves_a_pause_partial_before_other_calls_partials():
    import threading

    from voicetriage.asr.engine import AsrRequest

    gate, order = threading.Event(), []

    class Gated:
        def window_seconds(self, duration):
            return 10.0

        def transcribe_batch(self, reqs):
            gate.wait(10)
            order.extend(r.prompt for r in reqs)
            return [AsrResult(r.prompt, "zh", 0.9, -0.2, 0.01) for r in reqs]

    def req(tag, urgent=False):
        return AsrRequest(np.zeros(16000, np.float32), "zh", tag, urgent=urgent)

    w = InferenceWorker(Gated(), max_batch=1)
    w.start()
    try:
        busy = w.submit("X", "caller", req("X-final"), final=True)  # occupies the worker
        await asyncio.sleep(0.05)
        futs = [w.submit("A", "caller", req("A-interval"), final=False),
                w.submit("B", "caller", req("B-interval"), final=False),
                w.submit("C", "caller", req("C-pause", urgent=True), final=False),
                w.submit("D", "caller", req("D-final"), final=True)]
        gate.set()
        await asyncio.gather(busy, *futs)
        # finals still first; then the pause partial ahead of the calls before it in the rotation
        assert order == ["X-final", "D-final", "C-pause", "A-interval", "B-interval"]
    finally:
        w.stop()


async def test_the_pause_partial_request_is_marked_urgent():
    rec = _Recorder()
    urgent = []
    submit = rec.submit

    def spy(call_id, track, request, final):
        urgent.append(request.urgent)
        return submit(call_id, track, request, final)

    rec.submit = spy
    session = CallSession(CallInfo("c"), AudioSpec("pcm16", 16000, 1), worker=rec, vad=VadModel(),
                          config=dataclasses.replace(StreamConfig(), partial_interval_s=0.5), emit=lambda e: None)
    t = session._track(None)
    t.segmenter = _Segmenter(speech_s=2.0, pause_s=0.0)
    session._maybe_partial(t)  # the first partial: no pause
    t.partial_busy = False
    t.partial_at = 0.5
    t.segmenter = _Segmenter(speech_s=2.0, pause_s=0.25)
    session._maybe_partial(t)
    assert urgent == [False, True]
