"""Wire audio encodings and a streaming decoder to the model's 16 kHz float.

G.711 follows ITU-T G.711 (the same tables as Sun's g711.c / audioop). The
resampler is soxr's streaming one, so frame boundaries leave no clicks and
no drift: state is carried from frame to frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import soxr

from voicetriage.core.errors import AudioFormatError
from voicetriage.core.events import SAMPLE_RATE as TARGET_RATE

ENCODINGS = ("pcm16", "mulaw", "alaw")
SAMPLE_RATES = (8000, 16000, 24000, 48000)
MAX_SILENCE_S = 3600.0  # the longest gap one call may fill with zeros (Twilio's max_gap_s ceiling)
_ALIASES = {
    "pcm16": "pcm16", "linear16": "pcm16", "s16le": "pcm16", "l16": "pcm16", "pcm_s16le": "pcm16",
    "mulaw": "mulaw", "ulaw": "mulaw", "pcmu": "mulaw", "audio/x-mulaw": "mulaw", "g711u": "mulaw",
    "alaw": "alaw", "pcma": "alaw", "audio/x-alaw": "alaw", "g711a": "alaw",
}


def _ulaw_table() -> np.ndarray:
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    t = ((u & 0x0F) << 3) + 0x84
    t <<= (u & 0x70) >> 4
    return np.where(u & 0x80, 0x84 - t, t - 0x84).astype(np.int16)


def _alaw_table() -> np.ndarray:
    a = np.arange(256, dtype=np.int32) ^ 0x55
    seg = (a & 0x70) >> 4
    t = (a & 0x0F) << 4
    t = np.where(seg == 0, t + 8, np.where(seg == 1, t + 0x108, (t + 0x108) << np.maximum(seg - 1, 0)))
    return np.where(a & 0x80, t, -t).astype(np.int16)


_ULAW = _ulaw_table()
_ALAW = _alaw_table()


def ulaw_decode(data: bytes) -> np.ndarray:
    """G.711 µ-law bytes to int16 samples."""
    return _ULAW[np.frombuffer(data, dtype=np.uint8)]


def alaw_decode(data: bytes) -> np.ndarray:
    """G.711 A-law bytes to int16 samples."""
    return _ALAW[np.frombuffer(data, dtype=np.uint8)]


def ulaw_encode(samples: np.ndarray) -> bytes:
    """int16 samples to G.711 µ-law bytes (for tests and clients)."""
    x = np.asarray(samples, dtype=np.int32) >> 2  # 14-bit
    mask = np.where(x < 0, 0x7F, 0xFF)
    x = np.minimum(np.abs(x), 8159) + 0x21
    seg = np.searchsorted(np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF]), x)
    code = np.where(seg >= 8, 0x7F, (seg << 4) | ((x >> (seg + 1)) & 0x0F))
    return (code ^ mask).astype(np.uint8).tobytes()


def alaw_encode(samples: np.ndarray) -> bytes:
    """int16 samples to G.711 A-law bytes (for tests and clients)."""
    x = np.asarray(samples, dtype=np.int32) >> 3  # 13-bit
    sign = np.where(x >= 0, 0x80, 0)
    x = np.where(x >= 0, x, -x - 1)
    x = np.minimum(x, 0xFFF)
    exp = np.where(x < 32, 0, np.floor(np.log2(np.maximum(x, 1))).astype(np.int32) - 4)
    mant = np.where(exp == 0, x >> 1, x >> exp) & 0x0F
    return ((sign | (exp << 4) | mant) ^ 0x55).astype(np.uint8).tobytes()


@dataclass(frozen=True)
class AudioSpec:
    """How audio arrives on the wire: encoding, sample rate, channel count.

    Stereo is interleaved sample by sample (L R L R ...).
    """

    encoding: str = "pcm16"
    sample_rate: int = 16000
    channels: int = 1

    @classmethod
    def parse(cls, encoding: object, sample_rate: object, channels: object = 1) -> "AudioSpec":
        """Validate untrusted values (from a wire message) into a spec."""
        if not isinstance(encoding, str) or encoding.lower() not in _ALIASES:
            raise AudioFormatError(
                f"unsupported encoding {encoding!r}; use one of {', '.join(ENCODINGS)}",
                code="unsupported_encoding",
            )
        if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or sample_rate not in SAMPLE_RATES:
            raise AudioFormatError(
                f"unsupported sample rate {sample_rate!r}; use one of "
                f"{', '.join(map(str, SAMPLE_RATES))} Hz",
                code="unsupported_sample_rate",
            )
        if isinstance(channels, bool) or channels not in (1, 2):
            raise AudioFormatError(
                f"unsupported channel count {channels!r}; use 1 (mono) or 2 (interleaved stereo)",
                code="unsupported_channels",
            )
        return cls(_ALIASES[encoding.lower()], sample_rate, int(channels))

    @property
    def bytes_per_sample(self) -> int:
        return 2 if self.encoding == "pcm16" else 1

    @property
    def frame_bytes(self) -> int:
        """Bytes of one sample across all channels; every chunk is a multiple."""
        return self.bytes_per_sample * self.channels

    def duration(self, nbytes: int) -> float:
        return nbytes / (self.frame_bytes * self.sample_rate)


def decode_pcm(data: bytes, spec: AudioSpec) -> np.ndarray:
    """Wire bytes to int16 samples, shape (n, channels). Checks alignment."""
    if len(data) % spec.frame_bytes:
        raise AudioFormatError(
            f"audio frame of {len(data)} bytes is not a multiple of {spec.frame_bytes} "
            f"({spec.encoding}, {spec.channels} channel(s))",
            code="misaligned_frame",
        )
    if spec.encoding == "pcm16":
        pcm = np.frombuffer(data, dtype="<i2")
    elif spec.encoding == "mulaw":
        pcm = ulaw_decode(data)
    else:
        pcm = alaw_decode(data)
    return pcm.reshape(-1, spec.channels)


class StreamDecoder:
    """Stateful wire-bytes → per-channel 16 kHz float32 converter for one call."""

    def __init__(self, spec: AudioSpec) -> None:
        self.spec = spec
        self._resamplers = (
            [soxr.ResampleStream(spec.sample_rate, TARGET_RATE, 1, dtype="float32", quality="HQ")
             for _ in range(spec.channels)]
            if spec.sample_rate != TARGET_RATE
            else None
        )
        self.bytes_in = 0

    def decode(self, data: bytes) -> list[np.ndarray]:
        """One chunk of wire audio to one float32 array per channel."""
        pcm = decode_pcm(data, self.spec)
        self.bytes_in += len(data)
        return self._convert(pcm, last=False)

    def silence(self, seconds: float) -> list[np.ndarray]:
        """Zero audio for a gap (lost packets), through the same resampler: at most
        ``MAX_SILENCE_S`` (a longer gap is the caller's to count, not to materialise)."""
        if not 0 <= seconds <= MAX_SILENCE_S:  # also NaN
            raise AudioFormatError(f"a gap of {seconds!r} s is not 0..{MAX_SILENCE_S:g} s", code="bad_gap")
        n = int(round(seconds * self.spec.sample_rate))
        return self._convert(np.zeros((n, self.spec.channels), dtype=np.int16), last=False)

    def flush(self) -> list[np.ndarray]:
        """The resampler's tail at the end of the call."""
        return self._convert(np.zeros((0, self.spec.channels), dtype=np.int16), last=True)

    def restart(self) -> list[np.ndarray]:
        """The resampler's tail, then fresh resamplers: the stream resumes after a
        gap that is counted rather than decoded (nothing of before leaks across it)."""
        tail = self.flush()
        if self._resamplers is not None:
            self._resamplers = [soxr.ResampleStream(self.spec.sample_rate, TARGET_RATE, 1, dtype="float32",
                                                    quality="HQ") for _ in range(self.spec.channels)]
        return tail

    def _convert(self, pcm: np.ndarray, last: bool) -> list[np.ndarray]:
        out = []
        for ch in range(self.spec.channels):
            x = pcm[:, ch].astype(np.float32) / 32768.0
            if self._resamplers is not None:
                x = self._resamplers[ch].resample_chunk(x, last=last)
            out.append(np.ascontiguousarray(x, dtype=np.float32))
        return out


__all__ = [
    "TARGET_RATE",
    "ENCODINGS",
    "SAMPLE_RATES",
    "MAX_SILENCE_S",
    "AudioSpec",
    "StreamDecoder",
    "decode_pcm",
    "ulaw_decode",
    "ulaw_encode",
    "alaw_decode",
    "alaw_encode",
]
