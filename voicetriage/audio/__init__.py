"""Audio in: wire encodings (PCM16, G.711) and files, to 16 kHz float32 mono."""

from voicetriage.audio.codecs import (
    ENCODINGS,
    SAMPLE_RATES,
    TARGET_RATE,
    AudioSpec,
    StreamDecoder,
    alaw_decode,
    alaw_encode,
    ulaw_decode,
    ulaw_encode,
)

__all__ = [
    "ENCODINGS",
    "SAMPLE_RATES",
    "TARGET_RATE",
    "AudioSpec",
    "StreamDecoder",
    "ulaw_decode",
    "ulaw_encode",
    "alaw_decode",
    "alaw_encode",
]
