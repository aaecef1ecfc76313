"""Tell signed-linear 16-bit audio from G.711 µ-law bytes sent under the same label.

Asterisk's AudioSocket channel sends whatever format the channel has under kind
``0x10`` (nominally signed linear 8 kHz) when it is not one of the slin rates:
``Dial(AudioSocket/host:port/uuid/c(ulaw))`` sends µ-law, one byte a sample. Read
as 16-bit samples that is noise near full scale, and the recogniser gets nothing.

Two properties separate the two readings of one window of bytes:

* **Even and odd bytes.** In µ-law both are codes of neighbouring samples, so their
  histograms match (total variation distance <= 0.21 on every 0.5 s window of the
  eval kit's clips). In little-endian PCM16 the even byte is the low byte, spread
  over 0..255, and the odd byte the high one, concentrated near 0x00/0xff unless
  the audio is loud: the distance is >= 0.34 on every window with any level.
* **Where the energy goes.** µ-law bytes read as PCM16 put a sample in every other
  code near +/-32767 (a negative quiet sample, code 0x7x, becomes 0x7x.. as a high
  byte), and decoding them as µ-law gives the smoother signal; real speech read as
  µ-law is white noise.

A window is called µ-law only when both agree, PCM16 when the bytes have PCM's
structure (distance >= 0.25, a non-silent level and a spread low byte), and left
undecided otherwise (silence, low-level noise, pure tones, hard-clipped audio), so
that real slin speech, silence and noise are never taken for µ-law. The figures
come from ``python -m benchmarks.g711_sniff`` (see docs/audiosocket.md).
"""

from __future__ import annotations

import numpy as np

from voicetriage.audio.codecs import ulaw_decode

PCM16 = "pcm16"
MULAW = "mulaw"
WINDOW_BYTES = 4000  # 0.5 s of 8 kHz µ-law (0.25 s of slin)
MAX_DISTANCE = 0.25  # even/odd byte histograms closer than this look like one codec
MIN_LOUD = 0.02  # share of PCM16 readings at |x| >= 16384 that µ-law bytes produce
MIN_PEAK = 64  # a PCM16 window quieter than this says nothing
MIN_LOW_BYTE_BITS = 7.0  # entropy of PCM16's low byte when the level is high


def _roughness(x: np.ndarray) -> float:
    """Energy of the first difference over the signal's (0: flat, 2: white noise)."""
    v = x - x.mean()
    e = float(np.dot(v, v))
    if e <= 0.0:
        return 0.0
    d = np.diff(v)
    return float(np.dot(d, d)) / e


def _entropy_bits(values: np.ndarray) -> float:
    p = np.bincount(values, minlength=256) / max(len(values), 1)
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


def classify(data: bytes) -> str | None:
    """``"mulaw"``, ``"pcm16"`` or None (cannot tell) for one window of audio bytes."""
    raw = np.frombuffer(data, dtype=np.uint8)
    n = len(raw) // 2 * 2
    if n < 400:
        return None
    even, odd = raw[0:n:2], raw[1:n:2]
    distance = 0.5 * float(np.abs(np.bincount(even, minlength=256) - np.bincount(odd, minlength=256)).sum()) / (n // 2)
    pcm = np.frombuffer(raw[:n].tobytes(), dtype="<i2").astype(np.int32)
    loud = float(np.mean(np.abs(pcm) >= 16384))
    if distance < MAX_DISTANCE and loud >= MIN_LOUD:
        if _roughness(ulaw_decode(raw.tobytes()).astype(np.float64)) < _roughness(pcm.astype(np.float64)):
            return MULAW
        return None
    if distance >= MAX_DISTANCE and int(np.abs(pcm).max()) >= MIN_PEAK \
            and (loud < MIN_LOUD or _entropy_bits(even) > MIN_LOW_BYTE_BITS):
        return PCM16
    return None


def quiet(data: bytes, peak: int = 1024) -> bool:
    """True when the bytes read as PCM16 stay under ``peak``: passed on as PCM16 before
    the codec is known, they give the recogniser nothing loud whichever codec it is."""
    n = len(data) // 2 * 2
    if n == 0:
        return True
    pcm = np.frombuffer(data[:n], dtype="<i2").astype(np.int32)
    return int(np.abs(pcm).max()) < peak


__all__ = ["classify", "quiet", "PCM16", "MULAW", "WINDOW_BYTES"]
