"""The pause partial runs its final's fallback and probe ahead (asr.speculate, asr/reuse.py)."""

from __future__ import annotations

import asyncio

import pytest

from tests.test_reuse import _audio, _call, _fresh
from voicetriage.asr.engine import AsrRequest

# Wu, heard as zh by base with an average log-probability under -1.0: the greedy decode
# fails the check (one fallback temperature) and the track probes
WU = "wuu_wswu_06"


def _delta(asr, before):
    after = asr.counters.snapshot()["counts"]
    return {k: after[k] - before.get(k, 0) for k in after}


@pytest.mark.model
def test_final_after_a_speculating_pause_partial_costs_no_decode(base_engine, manifest):
    audio = _audio(manifest, WU)
    plain = _fresh(base_engine, reuse_cache=0)
    expect = plain.transcribe_batch([AsrRequest(audio, final=True, dialect_probe=True)])[0]
    assert expect.temperature > 0 and expect.language == "zh"  # the clip needs the fallback

    asr = _fresh(base_engine)
    partial = asr.transcribe_batch([AsrRequest(audio, cache=True, speculate=True, dialect_probe=True)])[0]
    spent = asr.counters.snapshot()["counts"]
    assert spent["speculated"] == 1 and spent["fallback"] >= 1 and spent["probe"] == 2
    final = asr.transcribe_batch([AsrRequest(audio, final=True, dialect_probe=True)])[0]
    d = _delta(asr, spent)
    # nothing new: no encoder pass, detection, greedy, fallback or probe decode
    assert d["encode"] == d["detect"] == d["greedy_final"] == d["fallback"] == d["probe"] == 0
    assert d["speculation_used"] == 1
    assert final.text == partial.text and final.temperature == partial.temperature > 0  # language cue kept
    assert final.dialect_probe == expect.dialect_probe  # greedy: the probe a fresh final gets
    assert final.language_candidates == expect.language_candidates


@pytest.mark.model
def test_without_speculation_the_final_pays_its_fallback(base_engine, manifest):
    audio = _audio(manifest, WU)
    asr = _fresh(base_engine)
    asr.transcribe_batch([AsrRequest(audio, cache=True)])
    before = asr.counters.snapshot()["counts"]
    assert before["fallback"] == before["probe"] == before["speculated"] == 0  # a plain pause partial
    asr.transcribe_batch([AsrRequest(audio, final=True, dialect_probe=True)])
    d = _delta(asr, before)
    assert d["greedy_reused"] == 1 and d["fallback"] >= 1 and d["probe"] == 2 and d["speculation_used"] == 0


@pytest.mark.model
def test_a_final_that_does_not_probe_ignores_the_speculated_probe(base_engine, manifest):
    audio = _audio(manifest, WU)
    asr = _fresh(base_engine)
    asr.transcribe_batch([AsrRequest(audio, cache=True, speculate=True, dialect_probe=True)])
    final = asr.transcribe_batch([AsrRequest(audio, final=True)])[0]  # the track's probe budget is spent
    assert final.dialect_probe is None and final.temperature > 0


@pytest.mark.model
def test_a_call_final_takes_its_pause_partials_fallback(base_engine, manifest):
    clip = _audio(manifest, WU)
    asr = _fresh(base_engine, speculate=True)  # off by default (docs/capacity.md)
    finals, _ = asyncio.run(_call(asr, clip, reuse=32))
    c = asr.counters.snapshot()
    assert finals and c["counts"]["speculated"] >= 1 and c["counts"]["speculation_used"] >= 1
    assert finals[-1].temperature > 0 and finals[-1].dialect_probe is not None
    # the fallback rows all ran at the partial: the final's batch sampled none
    assert c["counts"]["fallback"] >= 1 and c["seconds"]["speculated"] > 0


@pytest.mark.model
def test_probe_beside_the_fallback_gives_the_serial_probe(base_engine, manifest, monkeypatch):
    audio = _audio(manifest, WU)
    serial = _fresh(base_engine, reuse_cache=0, split_final_work=False, inference_workers=2)
    expect = serial.transcribe_batch([AsrRequest(audio, final=True, dialect_probe=True)])[0]
    asr = _fresh(base_engine, reuse_cache=0, split_final_work=True, inference_workers=2)  # off by default
    seen = []
    probe = asr._dialect_probe

    def spy(*args, **kw):
        import threading

        seen.append(threading.current_thread().name)
        return probe(*args, **kw)

    monkeypatch.setattr(asr, "_dialect_probe", spy)
    got = asr.transcribe_batch([AsrRequest(audio, final=True, dialect_probe=True)])[0]
    assert seen and seen[0].startswith("voicetriage-side")  # not on the caller's thread
    assert got.dialect_probe == expect.dialect_probe and got.temperature > 0 and expect.temperature > 0
    assert serial._side is None
    assert asr.counters.snapshot()["counts"]["probe_beside"] == 1
    # while the other inference worker is busy (the worker says so), the probe stays serial
    asr.side_allowed = lambda: False
    seen.clear()
    busy = asr.transcribe_batch([AsrRequest(audio, final=True, dialect_probe=True)])[0]
    assert seen and not seen[0].startswith("voicetriage-side")
    assert busy.dialect_probe == expect.dialect_probe and asr.counters.snapshot()["counts"]["probe_beside"] == 1


@pytest.mark.model
def test_a_final_says_its_fallback_was_due_even_when_it_did_not_sample(base_engine, manifest):
    audio = _audio(manifest, WU)
    none = _fresh(base_engine, fallback_logprob_temperatures=0)
    got = none.transcribe_batch([AsrRequest(audio, final=True)])[0]
    assert got.temperature == 0 and got.fallback_needed and none.counters.snapshot()["counts"]["fallback"] == 0
    clean = none.transcribe_batch([AsrRequest(_audio(manifest, "en_speechrecognition_123"), final=True)])[0]
    assert not clean.fallback_needed
