"""A quiet talker after a loud one: the VAD state carried across the call must
not hide the quiet utterance (it used to, completely)."""

from __future__ import annotations

import wave

import numpy as np
import pytest
import soxr

from voicetriage.audio.vad import VadModel
from voicetriage.client import StreamOptions, stream_file
from voicetriage.evaluation.textnorm import cer, wer

QUIET = 0.05  # -26 dB: the Mandarin clip alone still scores 0.97


def read16k(path) -> np.ndarray:
    with wave.open(str(path)) as w:
        x = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float32) / 32768
        rate = w.getframerate()
    return x if rate == 16000 else soxr.resample(x, rate, 16000).astype(np.float32)


def loud_then_quiet(manifest, gap_s: float = 1.5) -> tuple[np.ndarray, int]:
    """The English voicemail prompt, a pause, then the Mandarin clip made quiet.
    Returns the audio and the sample where the quiet clip starts."""
    loud = read16k(manifest["en_asterisk8k_vm_intro"]["path"])
    quiet = read16k(manifest["cmn_aishell1_S0764W0122"]["path"]) * QUIET
    start = len(loud) + int(gap_s * 16000)
    return np.concatenate([loud, np.zeros(start - len(loud), np.float32), quiet]), start


@pytest.fixture(scope="module")
def vad():
    return VadModel()


def test_state_reset_recovers_the_quiet_talker(manifest, vad):
    audio, start = loud_then_quiet(manifest)
    quiet_alone = audio[start:]
    first = start // 512 + 1
    carried = vad.stream().feed(audio)[first:].max()
    reset = vad.stream(reset_after=31).feed(audio)[first:].max()
    alone = vad.stream(reset_after=31).feed(quiet_alone).max()
    assert carried < 0.5  # the problem, as measured: the quiet clip never reaches the threshold
    assert alone > 0.9 and reset > 0.9


def test_reset_does_not_depend_on_frame_sizes(manifest, vad):
    audio, _ = loud_then_quiet(manifest)
    whole = vad.stream(reset_after=31).feed(audio)
    for size in (320, 160, 4096):
        s = vad.stream(reset_after=31)
        parts = np.concatenate([s.feed(audio[i : i + size]) for i in range(0, len(audio), size)])
        assert np.array_equal(parts, whole), size
    assert s.resets >= 1


@pytest.mark.model
async def test_loud_then_quiet_gives_both_finals(base_server, manifest, tmp_path):
    audio, start = loud_then_quiet(manifest)
    path = tmp_path / "loud_then_quiet.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(np.clip(audio * 32768, -32768, 32767).astype("<i2").tobytes())
    events = await stream_file(base_server.url, path, StreamOptions(speed=1.0))
    finals = [e for e in events if e["type"] == "final"]
    en = [f for f in finals if f["end"] <= start / 16000]
    zh = [f for f in finals if f["start"] >= start / 16000 - 0.5]
    assert en and wer(manifest["en_asterisk8k_vm_intro"]["transcript"], " ".join(f["text"] for f in en)) <= 0.2
    assert zh, finals
    assert [f["language"] for f in zh] == ["zh"] * len(zh)
    assert cer(manifest["cmn_aishell1_S0764W0122"]["transcript"], "".join(f["text"] for f in zh)) <= 0.5
