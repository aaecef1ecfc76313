"""voicetriage.audio.sniff: slin or µ-law, one window of bytes at a time (no model)."""

from __future__ import annotations

import numpy as np
import pytest

from voicetriage.audio import sniff
from voicetriage.audio.codecs import ulaw_encode


@pytest.fixture(scope="module")
def speech(manifest) -> np.ndarray:
    import soxr
    import wave

    with wave.open(manifest["en_asterisk8k_vm_instructions"]["path"]) as w:
        rate, raw = w.getframerate(), w.readframes(w.getnframes())
    x = soxr.resample(np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0, rate, 8000)
    return np.clip(np.round(x * 32768.0), -32768, 32767).astype(np.int16)


def windows(data: bytes):
    w = sniff.WINDOW_BYTES
    return [sniff.classify(data[i:i + w]) for i in range(0, len(data) - w + 1, w)]


def test_speech_windows_are_read_right_both_ways(speech):
    slin = windows(speech.astype("<i2").tobytes())
    law = windows(ulaw_encode(speech))
    assert sniff.MULAW not in slin and slin.count(sniff.PCM16) > len(slin) // 2
    assert sniff.PCM16 not in law and law.count(sniff.MULAW) > len(law) // 2


def test_silence_and_short_input_say_nothing():
    assert sniff.classify(b"") is None and sniff.classify(b"\x7f\xff" * 100) is None  # under 400 bytes
    assert sniff.classify(b"\x00" * 4000) is None  # digital silence (slin)
    assert sniff.classify(b"\xff" * 4000) is None  # digital silence (µ-law: +0)
    assert sniff.quiet(b"\x00" * 4000) and sniff.quiet(b"\xff" * 4000)
    assert not sniff.quiet(b"\x7f\x7f" * 10)  # µ-law -0 read as PCM16: 32639


@pytest.mark.parametrize("sigma", [1, 10, 100, 1000, 10000])
def test_white_noise_in_slin_is_never_mulaw(sigma):
    rng = np.random.default_rng(sigma)
    pcm = np.clip(rng.normal(0, sigma, 16000), -32768, 32767).astype("<i2").tobytes()
    assert sniff.MULAW not in windows(pcm)
