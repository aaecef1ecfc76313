"""VAD and prosody on a DSP thread (issue 14): the same results as on the event loop.

A real call (three kit clips with pauses, µ-law at 8 kHz, a keypad digit and a
platform split in the middle) goes through a CallSession once with the VAD
and the pitch tracker inline and once with a DspPool: the utterances (hence
the VAD's decisions), the prosody frames and statistics, and the order of the
call's events must be identical, and the work must really have run on the
DSP thread.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import wave

import numpy as np
import pytest

from voicetriage.asr.worker import InferenceWorker
from voicetriage.audio import AudioSpec
from voicetriage.audio.codecs import ulaw_encode
from voicetriage.audio.vad import VadModel
from voicetriage.core.config import StreamConfig
from voicetriage.core.events import AsrResult, CallInfo, CallSummary, Dtmf, Final, Hint, Signal
from voicetriage.pipeline.dsp import DspPool
from voicetriage.pipeline.session import CallSession
from voicetriage.triage.observer import CallTriage
from voicetriage.triage.policy import load_policy
from voicetriage.triage.signals import default_extractors

CLIPS = ("cmn_aishell1_S0764W0121", "yue_wsyue_02", "en_whisper_jfk")


class Fingerprint:
    """A recogniser whose text names the audio it was given (length and digest)."""

    def window_seconds(self, duration):
        return 10.0

    def transcribe_batch(self, reqs):
        out = []
        for r in reqs:
            digest = hashlib.sha1(np.ascontiguousarray(r.audio, dtype=np.float32).tobytes()).hexdigest()[:10]
            out.append(AsrResult(f"u {len(r.audio)} {digest} 你好", "zh", 0.9, -0.3, 0.01))
        return out


class ThreadSpy:
    """An observer that records which thread ran its prepare_audio."""

    def __init__(self):
        self.threads = set()

    def prepare_audio(self, track, samples, t0):
        self.threads.add(threading.current_thread().name)

    def on_audio(self, track, samples, t0):
        return []

    def on_event(self, event):
        return []

    def on_close(self, summary):
        return []


def _call_audio(manifest) -> bytes:
    parts = []
    for cid in CLIPS:
        rec = manifest[cid]
        with wave.open(rec["path"]) as w:
            assert w.getframerate() == 16000
            x = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float32) / 32768
        parts += [x[::2], np.zeros(8000 * 2, np.float32)]  # to 8 kHz (the codec resamples back), 2 s pause
    return ulaw_encode((np.concatenate(parts) * 32767).astype(np.int16))


async def _run(data: bytes, dsp: DspPool | None):
    worker = InferenceWorker(Fingerprint())
    worker.start()
    events: list = []
    extractors = default_extractors("c")
    triage = CallTriage(CallInfo("c", started_at=0.0), load_policy(), extractors)
    spy = ThreadSpy()
    session = CallSession(CallInfo("c"), AudioSpec("mulaw", 8000, 1), worker=worker, vad=VadModel(),
                          config=StreamConfig(), emit=events.append, observers=[triage, spy], dsp=dsp)
    frame = 160  # 20 ms of µ-law at 8 kHz
    for i in range(0, len(data), frame):
        session.push_audio(data[i : i + frame])
        if i == frame * 300:
            session.push_dtmf("5")
        if i == frame * 500:
            session.end_utterance(reason="split")
        if i % (frame * 5) == 0:
            await asyncio.sleep(0)
    await session.close()
    worker.stop()
    prosody = next(e.prosody for e in extractors if hasattr(e, "prosody"))
    return events, prosody, spy


def _key(ev):
    """What must not change with the DSP thread (partials depend on decode timing)."""
    if isinstance(ev, Final):
        return ("final", ev.utterance, ev.start, ev.end, ev.text, ev.reason, ev.speech_s)
    if isinstance(ev, Dtmf):
        return ("dtmf", ev.digit, ev.time)
    if isinstance(ev, Signal) and ev.name in ("distress", "age_band", "keypad", "profile"):
        return ("signal", ev.name, repr(ev.value), ev.confidence)
    if isinstance(ev, CallSummary):
        return ("summary", ev.utterances, tuple(sorted(ev.audio_s.items())))
    return None


@pytest.fixture(scope="module")
def runs(manifest):
    data = _call_audio(manifest)
    inline = asyncio.run(_run(data, None))
    pool = DspPool(1)
    try:
        offloaded = asyncio.run(_run(data, pool))
    finally:
        pool.close()
    return inline, offloaded, pool


def _by_kind(keys):
    out = {}
    for k in keys:
        out.setdefault(k[0] if k[0] != "signal" else k[1], []).append(k)
    return out


def test_same_utterances_and_event_order(runs):
    (a, _, _), (b, _, _), _ = runs
    ka = [k for k in map(_key, a) if k]
    kb = [k for k in map(_key, b) if k]
    finals = [k for k in ka if k[0] == "final"]
    assert len(finals) >= 3 and any(k[0] == "dtmf" for k in ka)
    assert any(k[5] == "split" for k in finals)  # the platform split cut an utterance
    # finals arrive when the recogniser is done, so where they fall between digits
    # depends on its speed either way; within each kind nothing may differ or move
    assert _by_kind(kb) == _by_kind(ka)
    assert [k[1] for k in (x for x in kb if x[0] == "final")] == sorted(k[1] for k in finals)
    # what an event causes still comes right after it, the summary last
    for i, e in enumerate(b):
        if isinstance(e, Dtmf):
            assert isinstance(b[i + 1], Signal) and b[i + 1].name == "keypad"
    assert isinstance(b[-1], CallSummary)
    assert sum(isinstance(e, Hint) for e in a) == sum(isinstance(e, Hint) for e in b)


def test_same_prosody_frames(runs):
    (_, pa, _), (_, pb, _), _ = runs
    fa, fb = pa.frames(0.0, 1e9), pb.frames(0.0, 1e9)
    assert len(fa[0]) > 1000 and np.count_nonzero(fa[0]) > 100  # voiced frames were found
    for x, y in zip(fa, fb):
        np.testing.assert_array_equal(x, y)
    assert pa.stats(0.0, 1e9) == pb.stats(0.0, 1e9)


def test_work_ran_on_the_dsp_thread(runs):
    (_, _, spy_inline), (_, _, spy), pool = runs
    assert spy_inline.threads == set()  # inline, on_audio does the work itself
    assert spy.threads and all(n.startswith("voicetriage-dsp") for n in spy.threads)
    assert pool.jobs > 0
