"""Decoding safeguards on finals: temperature fallback on a looping or doubtful
decode, the loop guard, and the loop definition the benchmarks count."""

from __future__ import annotations

import dataclasses
import types
import wave

import numpy as np
import pytest

from voicetriage.asr.engine import AsrEngine, AsrRequest, cut_loops, is_loop


def test_loop_definition():
    assert is_loop("它是一個一個一個一個一個")  # a unit repeated 4+ times
    assert is_loop("O som de turma, " * 6)  # and zlib agrees on the longer ones
    assert is_loop("嗯" * 8) and not is_loop("嗯" * 7)
    assert not is_loop("一二线城市虽然也处于调整中")
    assert not is_loop("对对对，谢谢")
    assert not is_loop("Please leave your message after the tone.")
    assert cut_loops("它是一個一個一個一個一個") == "它是一個"


class _Result:
    def __init__(self, ids, score, no_speech=0.01):
        self.sequences_ids = [ids]
        self.scores = [score]
        self.no_speech_prob = no_speech


class LoopingGreedy:
    """The real CTranslate2 model, except that greedy decoding (temperature 0)
    returns a loop with a good score: only the fallback can fix it."""

    def __init__(self, real, loop_ids, always=False):
        self._real = real
        self._loop = loop_ids
        self.always = always
        self.calls = []

    def __getattr__(self, name):
        return getattr(self._real, name)

    def generate(self, encoded, prompts, **kw):
        t = kw.get("sampling_temperature", 0.0)
        self.calls.append((t, len(prompts), kw.get("num_hypotheses", 1)))
        if t == 0.0 or self.always:
            return [_Result(list(self._loop), -0.2) for _ in prompts]
        return self._real.generate(encoded, prompts, **kw)


def _engine(base_engine, always=False, **config):
    real = base_engine.asr.model
    tok = base_engine.asr._tokenizer("zh")
    loop_ids = tok.encode("一个" * 20)
    fake = LoopingGreedy(real.model, loop_ids, always)
    whisper = types.SimpleNamespace(model=fake, feature_extractor=real.feature_extractor,
                                    hf_tokenizer=real.hf_tokenizer, max_length=real.max_length)
    cfg = dataclasses.replace(base_engine.asr.config, **config)
    return AsrEngine(whisper, base_engine.asr.resolved, cfg), fake


def _audio(manifest, cid):
    with wave.open(manifest[cid]["path"]) as w:
        return np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float32) / 32768


@pytest.mark.model
def test_high_compression_ratio_triggers_fallback(base_engine, manifest):
    asr, fake = _engine(base_engine)
    audio = _audio(manifest, "cmn_aishell1_S0764W0121")
    final = asr.transcribe_batch([AsrRequest(audio, final=True)])[0]
    assert final.temperature > 0  # sampled again
    assert any(t > 0 and n == asr.config.best_of for t, _, n in fake.calls)
    assert not is_loop(final.text) and final.compression_ratio <= 2.4
    assert "停滞" in final.text or "交易" in final.text  # the real words came back
    # partials stay greedy and cheap: no fallback
    fake.calls.clear()
    partial = asr.transcribe_batch([AsrRequest(audio)])[0]
    assert partial.temperature == 0.0 and all(t == 0.0 for t, _, _ in fake.calls)
    assert is_loop(partial.text)


@pytest.mark.model
def test_loop_guard_when_every_temperature_loops(base_engine, manifest):
    asr, fake = _engine(base_engine, always=True, fallback_loop_temperatures=5)  # the whole ladder
    final = asr.transcribe_batch([AsrRequest(_audio(manifest, "cmn_aishell1_S0764W0121"), final=True)])[0]
    assert [t for t, _, _ in fake.calls if t > 0] == list(asr.config.temperatures[1:])
    assert final.text == "一个"  # one copy of the repeated run, not forty characters of loop
    assert final.temperature == asr.config.temperatures[-1]


@pytest.mark.model
def test_dialect_probe_on_zh_finals(base_engine, manifest):
    audio = _audio(manifest, "cmn_aishell1_S0764W0121")
    res = base_engine.asr.transcribe_batch(
        [AsrRequest(audio, final=True, dialect_probe=True), AsrRequest(audio, final=True)]
    )
    assert res[0].language == "zh" and isinstance(res[0].dialect_probe, float)
    assert res[1].dialect_probe is None
    en = _audio(manifest, "en_speechrecognition_123")
    assert base_engine.asr.transcribe_batch([AsrRequest(en, final=True, dialect_probe=True)])[0].dialect_probe is None


class UnsureModel(LoopingGreedy):
    """Every decode is plain text with a poor score (dialect speech the model cannot follow)."""

    def generate(self, encoded, prompts, **kw):
        t = kw.get("sampling_temperature", 0.0)
        n = kw.get("num_hypotheses", 1)
        self.calls.append((t, len(prompts), n))
        return [types.SimpleNamespace(sequences_ids=[list(self._loop)] * n, scores=[-2.0] * n, no_speech_prob=0.01)
                for _ in prompts]


@pytest.mark.model
@pytest.mark.parametrize("budget", [1, 2, 5])
def test_an_unsure_decode_tries_only_the_first_fallback_temperatures(base_engine, manifest, budget):
    real = base_engine.asr.model
    ids = base_engine.asr._tokenizer("zh").encode("一二线城市虽然也处于调整中")
    fake = UnsureModel(real.model, ids)
    whisper = types.SimpleNamespace(model=fake, feature_extractor=real.feature_extractor,
                                    hf_tokenizer=real.hf_tokenizer, max_length=real.max_length)
    asr = AsrEngine(whisper, base_engine.asr.resolved,
                    dataclasses.replace(base_engine.asr.config, fallback_logprob_temperatures=budget))
    final = asr.transcribe_batch([AsrRequest(_audio(manifest, "cmn_aishell1_S0764W0121"), final=True)])[0]
    tried = [t for t, _, _ in fake.calls if t > 0]
    assert tried == list(asr.config.temperatures[1 : 1 + budget])
    assert asr.counters.snapshot()["counts"]["fallback"] == budget
    # still reported as needing the fallback (the language signal reads temperature > 0)
    assert final.temperature == tried[-1] > 0 and final.text


@pytest.mark.model
@pytest.mark.parametrize("budget", [0, 2, 5])
def test_a_looping_decode_tries_only_the_first_fallback_loop_temperatures(base_engine, manifest, budget):
    asr, fake = _engine(base_engine, always=True, fallback_loop_temperatures=budget)
    final = asr.transcribe_batch([AsrRequest(_audio(manifest, "cmn_aishell1_S0764W0121"), final=True)])[0]
    tried = [t for t, _, _ in fake.calls if t > 0]
    assert tried == list(asr.config.temperatures[1 : 1 + budget])
    work = asr.counters.snapshot()["counts"]
    assert work["loop_finals"] == 1 and work["fallback_loop"] == budget == work["fallback"]
    assert work["loop_guard"] == 1 and final.text == "一个"  # the guard still cuts what is left
    assert final.fallback_needed
