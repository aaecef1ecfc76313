"""Incremental pitch/voicing analysis (numpy), checked against known tones and Praat."""

import numpy as np
import pytest
from sigtools import RATE, tone

from voicetriage.triage.signals.prosody import ProsodyTracker, voice_stats


def feed(tracker, x, chunk, t0=0.0):
    for i in range(0, len(x), chunk):
        tracker.feed(x[i : i + chunk], t0 + i / RATE)


@pytest.mark.parametrize("f0", [85.0, 150.0, 240.0])
def test_pitch_of_a_harmonic_tone(f0):
    tr = ProsodyTracker()
    feed(tr, tone(f0, 1.5), 320)
    st = tr.stats(0, 2)
    assert st is not None
    assert st.f0_median_hz == pytest.approx(f0, rel=0.02)
    assert st.hnr_db > 15 and st.f0_sd_st < 0.3


def test_noise_and_silence_are_unvoiced():
    tr = ProsodyTracker()
    rng = np.random.default_rng(1)
    feed(tr, (0.05 * rng.standard_normal(RATE)).astype(np.float32), 320)
    feed(tr, np.zeros(RATE, np.float32), 320, t0=1.0)
    f0, r, db = tr.frames(0, 2)
    assert len(f0) > 150 and (f0 > 0).mean() < 0.05
    assert tr.stats(0, 2) is None


def test_chunk_size_does_not_change_the_result():
    x = np.concatenate([tone(120, 1.0), np.zeros(4000, np.float32), tone(180, 1.0, seed=2)])
    a, b = ProsodyTracker(), ProsodyTracker()
    feed(a, x, 160)
    feed(b, x, 16000)
    fa, fb = a.frames(0, 3), b.frames(0, 3)
    assert np.allclose(fa[0], fb[0]) and len(fa[0]) == len(fb[0])


def test_shared_tracker_skips_audio_it_has_seen_and_bounds_work_per_feed():
    tr = ProsodyTracker(max_frames_per_feed=5)
    x = tone(150, 0.5)
    tr.feed(x[:3200], 0.0)
    tr.feed(x[:3200], 0.0)  # the second extractor of the call feeds the same chunk
    tr.feed(x[3200:], 0.2)
    n = len(tr.frames(0, 1)[0])
    assert n <= (len(x) - 640) // 160 + 1
    tr.stats(0, 1)  # finishing an utterance analyses what is pending
    assert len(tr.frames(0, 1)[0]) == (len(x) - 640) // 160 + 1


def test_gap_keeps_call_time():
    tr = ProsodyTracker()
    tr.feed(tone(150, 0.5), 0.0)
    tr.feed(tone(200, 0.5), 2.0)  # 1.5 s lost
    assert tr.stats(2.0, 2.5).f0_median_hz == pytest.approx(200, rel=0.02)
    assert tr.stats(0.0, 0.5).f0_median_hz == pytest.approx(150, rel=0.02)


def test_agrees_with_praat_on_real_speech(manifest):
    parselmouth = pytest.importorskip("parselmouth", reason="praat-parselmouth (test extra) not installed")
    import wave

    errs = []
    for cid in ("cmn_aishell1_S0764W0122", "wuu_wswu_14", "en_asterisk8k_pbx_invalid", "yue_wsyue_05"):
        with wave.open(manifest[cid]["path"]) as w:
            x = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float32) / 32768
        tr = ProsodyTracker()
        feed(tr, x, 320)
        mine = tr.stats(0, 1e9).f0_median_hz
        p = parselmouth.Sound(x.astype(np.float64), RATE).to_pitch_ac(0.01, 60, 15, False, 0.03, 0.45, 0.01, 0.35, 0.14, 500)
        f = p.selected_array["frequency"]
        errs.append(abs(12 * np.log2(mine / np.median(f[f > 0]))))
    assert max(errs) < 1.0, errs  # within a semitone of Praat's median F0


def test_voice_stats_needs_voiced_frames():
    assert voice_stats(np.zeros(50), np.zeros(50), np.full(50, -60.0)) is None
