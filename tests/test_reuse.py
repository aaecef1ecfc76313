"""A final reuses its pause partial's encoder pass and greedy decode (asr/reuse.py)."""

from __future__ import annotations

import asyncio
import dataclasses
import wave

import numpy as np
import pytest

from voicetriage.asr.engine import AsrEngine, AsrRequest
from voicetriage.asr.reuse import ReuseCache, WorkCounters, audio_key
from voicetriage.asr.worker import InferenceWorker


def _audio(manifest, cid):
    with wave.open(manifest[cid]["path"]) as w:
        return np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float32) / 32768


def _fresh(base_engine, **config):
    asr = base_engine.asr
    return AsrEngine(asr.model, asr.resolved, dataclasses.replace(asr.config, **config))


def test_cache_keys_and_lru():
    a = np.zeros(1600, np.float32)
    b = a.copy()
    b[5] = 1e-4
    assert audio_key(a) == audio_key(a.copy()) != audio_key(b)
    assert audio_key(a) != audio_key(a[:-1])
    cache = ReuseCache(2)
    from voicetriage.asr.reuse import Entry

    for k in (b"1", b"2", b"3"):
        cache.put(k, Entry(10.0, np.zeros(1), None))
    assert len(cache) == 2 and cache.get(b"1", 10.0) is None and cache.get(b"3", 10.0) is not None
    assert cache.get(b"3", 15.0) is None  # another window: another encoder output
    c = WorkCounters()
    c.add("encode", 2, 0.5)
    assert c.snapshot()["counts"]["encode"] == 2 and c.snapshot()["seconds"]["encode"] == 0.5


@pytest.mark.model
@pytest.mark.parametrize("cid", ["cmn_aishell1_S0764W0121", "en_speechrecognition_123"])
def test_final_after_its_pause_partial_is_the_fresh_final(base_engine, manifest, cid):
    audio = _audio(manifest, cid)
    plain = _fresh(base_engine, reuse_cache=0)
    expect = plain.transcribe_batch([AsrRequest(audio, final=True, dialect_probe=True)])[0]

    asr = _fresh(base_engine)
    partial = asr.transcribe_batch([AsrRequest(audio, cache=True)])[0]
    before = asr.counters.snapshot()["counts"]
    final = asr.transcribe_batch([AsrRequest(audio, final=True, dialect_probe=True)])[0]
    after = asr.counters.snapshot()["counts"]
    d = {k: after[k] - before[k] for k in after}
    assert final.text == expect.text == partial.text
    assert final.language == expect.language and final.language_candidates == expect.language_candidates
    assert final.dialect_probe == expect.dialect_probe  # the probe runs on the reused encoder row
    assert d["encode"] == 0 and d["encode_reused"] == 1 and d["detect"] == 0
    assert d["greedy_final"] == 0 and d["greedy_reused"] == 1
    # a final of other audio (one sample less) is decoded afresh
    other = asr.transcribe_batch([AsrRequest(audio[:-1], final=True)])[0]
    assert asr.counters.snapshot()["counts"]["encode"] == after["encode"] + 1 and other.text


@pytest.mark.model
def test_batch_mixing_cached_and_fresh_finals(base_engine, manifest):
    zh, en = _audio(manifest, "cmn_aishell1_S0764W0121"), _audio(manifest, "en_speechrecognition_123")
    plain = _fresh(base_engine, reuse_cache=0)
    expect = [r.text for r in plain.transcribe_batch([AsrRequest(zh, final=True), AsrRequest(en, final=True)])]
    asr = _fresh(base_engine)
    asr.transcribe_batch([AsrRequest(en, cache=True)])
    got = asr.transcribe_batch([AsrRequest(zh, final=True), AsrRequest(en, final=True)])
    counts = asr.counters.snapshot()["counts"]
    assert [r.text for r in got] == expect
    assert counts["encode_reused"] == 1 and counts["greedy_reused"] == 1 and counts["greedy_final"] == 1


@pytest.mark.model
def test_plain_partials_are_not_kept(base_engine, manifest):
    audio = _audio(manifest, "en_speechrecognition_123")
    asr = _fresh(base_engine)
    asr.transcribe_batch([AsrRequest(audio)])  # an interval partial, not a pause partial
    asr.transcribe_batch([AsrRequest(audio, final=True)])
    assert asr.counters.snapshot()["counts"]["encode_reused"] == 0


class _SlowEngine:
    """Records the order of batches; a cached partial takes a while."""

    def __init__(self):
        self.order = []

    def window_seconds(self, d):
        return 10.0

    def transcribe_batch(self, reqs):
        import time

        self.order.append(("start", reqs[0].final))
        time.sleep(0.2 if reqs[0].cache else 0.01)
        self.order.append(("end", reqs[0].final))
        return [None for _ in reqs]


def test_a_final_waits_for_its_running_pause_partial():
    async def main():
        eng = _SlowEngine()
        w = InferenceWorker(eng, threads=2)
        w.start()
        try:
            a = np.zeros(16000, np.float32)
            p = w.submit("c", "caller", AsrRequest(a, cache=True), final=False)
            await asyncio.sleep(0.05)  # the partial is running on one thread
            f = w.submit("c", "caller", AsrRequest(a, final=True), final=True)
            await asyncio.gather(p, f)
        finally:
            w.stop()
        return eng.order

    order = asyncio.run(main())
    # the second thread was free, but the final started only after the partial ended
    assert order == [("start", False), ("end", False), ("start", True), ("end", True)]


async def _call(asr, clip: np.ndarray, reuse: int):
    from voicetriage.audio import AudioSpec
    from voicetriage.audio.vad import VadModel
    from voicetriage.core.config import StreamConfig
    from voicetriage.core.events import CallInfo, Final, Partial
    from voicetriage.pipeline.session import CallSession

    worker = InferenceWorker(asr, threads=2)
    worker.start()
    events: list = []
    try:
        session = CallSession(CallInfo("c"), AudioSpec("pcm16", 16000, 1), worker=worker, vad=VadModel(),
                              config=StreamConfig(), emit=events.append,
                              asr_config=dataclasses.replace(asr.config, reuse_cache=reuse))
        loud = np.flatnonzero(np.abs(clip) > 0.05)
        clip = clip[: loud[-1] + 1600]  # the clip's own trailing silence would end it while fed at once
        data = (np.concatenate([clip, np.zeros(16000, np.float32)]) * 32767).astype("<i2").tobytes()
        speech = len(clip) * 2 // 640 * 640
        for i in range(0, len(data), 640):
            if i == speech:  # the partials of the speech are done: the pause will get one
                while session._tracks["caller"].partial_busy:
                    await asyncio.sleep(0.01)
            session.push_audio(data[i : i + 640])
            # the trailing silence in real time, so the pause partial runs before the final
            await asyncio.sleep(0.02 if i >= speech else 0)
        await session.close()
    finally:
        worker.stop()
    return [e for e in events if isinstance(e, Final)], [e for e in events if isinstance(e, Partial)]


@pytest.mark.model
@pytest.mark.parametrize("cid", ["cmn_aishell1_S0764W0121", "yue_wsyue_01"])
def test_a_call_final_reuses_its_pause_partial(base_engine, manifest, cid):
    clip = _audio(manifest, cid)
    plain = _fresh(base_engine)
    finals0, _ = asyncio.run(_call(plain, clip, reuse=0))
    asr = _fresh(base_engine)
    finals, partials = asyncio.run(_call(asr, clip, reuse=32))
    counts = asr.counters.snapshot()["counts"]
    assert [f.text for f in finals] == [f.text for f in finals0] and finals
    assert [f.end for f in finals] == [f.end for f in finals0]
    # the final that ended in the trailing silence took the pause partial's work
    assert counts["encode_reused"] >= 1 and counts["greedy_reused"] >= 1
    assert counts["encode"] == counts["partials"] + counts["finals"] - counts["encode_reused"]
    assert plain.counters.snapshot()["counts"]["encode_reused"] == 0
