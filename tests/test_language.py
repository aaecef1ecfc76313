"""How a final's language is decided: on its own audio, with the call's prior,
within the configured languages, never inherited from a partial."""

from __future__ import annotations

import asyncio
import dataclasses

import numpy as np
import pytest

from voicetriage.asr.engine import AsrEngine, AsrRequest, decide_language
from voicetriage.client import StreamOptions, stream_file
from voicetriage.core.config import load_config
from voicetriage.core.errors import ConfigError

DETECTED = [("en", 0.30), ("zh", 0.25), ("ja", 0.25), ("hi", 0.20)]


def test_detection_restricted_to_allowed_languages_is_renormalised():
    lang, dist = decide_language(DETECTED, ("zh", "en"))
    assert lang == "en"
    assert [c for c, _ in dist] == ["en", "zh"]
    assert dist[0][1] == pytest.approx(0.30 / 0.55) and sum(p for _, p in dist) == pytest.approx(1.0)
    assert decide_language(DETECTED)[1][0] == ("en", 0.30)  # no restriction: the detector's own figures


def test_prior_keeps_the_call_language_but_a_strong_detection_switches():
    prior = (("zh", 9.0),)  # several confident Mandarin finals before
    assert decide_language([("en", 0.6), ("zh", 0.4)], prior=prior)[0] == "zh"
    assert decide_language([("en", 0.95), ("zh", 0.05)], prior=prior)[0] == "en"
    assert decide_language([("en", 0.6), ("zh", 0.4)])[0] == "en"


def test_languages_option_is_validated():
    assert load_config(asr={"languages": ["zh", "en"]}).asr.languages == ("zh", "en")
    with pytest.raises(ConfigError, match="languages"):
        load_config(asr={"languages": "zh"})
    with pytest.raises(ConfigError, match="languages"):
        load_config(asr={"languages": [1]})


def test_unknown_language_in_languages_is_refused_at_start(base_engine):
    from voicetriage.pipeline.engine import Engine

    cfg = dataclasses.replace(base_engine.config, asr=dataclasses.replace(base_engine.config.asr, languages=("zh", "klingon")))
    with pytest.raises(ConfigError, match="klingon"):
        Engine(cfg, base_engine.asr, base_engine.vad)


def _clip(manifest, cid):
    import wave

    with wave.open(manifest[cid]["path"]) as w:
        return np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float32) / 32768


@pytest.mark.model
def test_allowed_languages_restrict_the_real_detector(base_engine, manifest):
    # the English voicemail prompt was labelled Hindi (p = 1.0) on main
    audio = _clip(manifest, "en_asterisk8k_vm_intro")
    free = base_engine.asr.transcribe_batch([AsrRequest(audio, final=True)])[0]
    assert len(free.language_candidates) == 5 and free.language_source == "detected"
    asr = AsrEngine(base_engine.asr.model, base_engine.asr.resolved,
                    dataclasses.replace(base_engine.asr.config, languages=("zh", "en")))
    res = asr.transcribe_batch([AsrRequest(audio, languages=("zh", "en"), final=True)])[0]
    assert res.language == "en" and {c for c, _ in res.language_candidates} == {"zh", "en"}
    assert sum(p for _, p in res.language_candidates) == pytest.approx(1.0, abs=1e-3)
    # a forced language says who forced it; the detector's view stays in the candidates
    forced = asr.transcribe_batch([AsrRequest(audio, "zh", language_source="config")])[0]
    assert (forced.language, forced.language_probability, forced.language_source) == ("zh", 1.0, "config")
    assert forced.language_candidates[0][0] == "en"
    provisional = asr.transcribe_batch([AsrRequest(audio, "zh", language_source="provisional")])[0]
    assert provisional.language_probability < 0.5


@pytest.mark.model
async def test_mandarin_clips_give_zh_finals_in_real_time(base_server, manifest):
    """Streamed at 1x, the utterance's language used to be fixed by its first 0.3 s partial."""
    ids = ["cmn_aishell1_S0764W0122", "cmn_cosyvoice_prompt", "cmn_cosyvoice_prompt_tel8k"]
    runs = await asyncio.gather(
        *(stream_file(base_server.url, manifest[i]["path"], StreamOptions(speed=1.0, call_id=f"rt-{i}")) for i in ids)
    )
    for cid, events in zip(ids, runs):
        finals = [e for e in events if e["type"] == "final"]
        assert finals, cid
        assert [f["language"] for f in finals] == ["zh"] * len(finals), (cid, finals)
        for f in finals:
            assert f["language_source"] == "detected"
            assert f["language_candidates"][0][0] == "zh"
            assert f["language_probability"] == f["language_candidates"][0][1]


@pytest.mark.model
async def test_languages_option_through_the_server(base_engine, start_server, manifest):
    from voicetriage.pipeline.engine import Engine

    cfg = dataclasses.replace(base_engine.config, asr=dataclasses.replace(base_engine.config.asr, languages=("zh", "en")))
    engine = Engine(cfg, base_engine.asr, base_engine.vad)
    try:
        server = start_server(engine)
        events = await stream_file(server.url, manifest["en_asterisk8k_pbx_invalid"]["path"], StreamOptions(speed=0))
        finals = [e for e in events if e["type"] == "final"]
        assert finals and all(f["language"] == "en" for f in finals)
        assert all({c for c, _ in f["language_candidates"]} <= {"zh", "en"} for f in finals)
    finally:
        engine.worker.stop()
