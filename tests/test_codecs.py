import numpy as np
import pytest

from voicetriage.audio.codecs import (
    AudioSpec,
    StreamDecoder,
    alaw_decode,
    alaw_encode,
    decode_pcm,
    ulaw_decode,
    ulaw_encode,
)
from voicetriage.core.errors import AudioFormatError

# ITU-T G.711 reference points (same values as Sun's g711.c and Python's audioop)
ULAW_POINTS = {0x00: -32124, 0x7F: 0, 0x80: 32124, 0xFF: 0, 0x0F: -16764, 0x70: -120}


def test_ulaw_decode_reference_points():
    out = ulaw_decode(bytes(ULAW_POINTS))
    assert list(out) == list(ULAW_POINTS.values())


def test_alaw_decode_reference_points():
    out = alaw_decode(bytes([0xD5, 0x55, 0x2A, 0xAA]))
    assert list(out) == [8, -8, -32256, 32256]


@pytest.mark.parametrize("enc,dec", [(ulaw_encode, ulaw_decode), (alaw_encode, alaw_decode)])
def test_g711_round_trip_is_exact_on_codewords(enc, dec):
    codes = bytes(range(256))
    decoded = dec(codes)
    again = dec(enc(decoded))
    assert np.array_equal(decoded, again)


@pytest.mark.parametrize("enc,dec", [(ulaw_encode, ulaw_decode), (alaw_encode, alaw_decode)])
def test_g711_quantisation_error_is_logarithmic(enc, dec):
    x = np.linspace(-30000, 30000, 5001).astype(np.int16)
    y = dec(enc(x)).astype(np.int32)
    rel = np.abs(y - x) / np.maximum(np.abs(x.astype(np.int32)), 256)
    assert rel.max() < 0.07  # 4-bit mantissa: within ~6% everywhere


def test_matches_audioop_where_available():
    audioop = pytest.importorskip("audioop")
    x = np.arange(-32768, 32768, 7, dtype=np.int16)
    assert ulaw_encode(x) == audioop.lin2ulaw(x.tobytes(), 2)
    assert alaw_encode(x) == audioop.lin2alaw(x.tobytes(), 2)


@pytest.mark.parametrize(
    "enc,rate,ch,code",
    [("opus", 8000, 1, "unsupported_encoding"), ("pcm16", 12345, 1, "unsupported_sample_rate"),
     ("pcm16", 10**9, 1, "unsupported_sample_rate"), ("pcm16", "8000", 1, "unsupported_sample_rate"),
     ("mulaw", 8000, 3, "unsupported_channels"), (None, 8000, 1, "unsupported_encoding")],
)
def test_spec_rejects_bad_values(enc, rate, ch, code):
    with pytest.raises(AudioFormatError) as e:
        AudioSpec.parse(enc, rate, ch)
    assert e.value.code == code


def test_spec_aliases():
    assert AudioSpec.parse("PCMU", 8000, 1).encoding == "mulaw"
    assert AudioSpec.parse("audio/x-mulaw", 8000, 1).encoding == "mulaw"
    assert AudioSpec.parse("linear16", 16000, 2).frame_bytes == 4


def test_misaligned_frame():
    with pytest.raises(AudioFormatError) as e:
        decode_pcm(b"\x00\x01\x02", AudioSpec("pcm16", 16000, 1))
    assert e.value.code == "misaligned_frame"
    with pytest.raises(AudioFormatError):
        decode_pcm(b"\x00\x01\x02", AudioSpec("mulaw", 8000, 2))


def test_stereo_split():
    left = np.full(80, 1000, np.int16)
    right = np.full(80, -2000, np.int16)
    inter = np.stack([left, right], 1).reshape(-1).astype("<i2").tobytes()
    d = StreamDecoder(AudioSpec("pcm16", 16000, 2))
    l, r = d.decode(inter)
    assert np.allclose(l, 1000 / 32768) and np.allclose(r, -2000 / 32768)


def test_streaming_resampler_is_chunking_independent():
    rate = 8000
    t = np.arange(rate * 2) / rate
    tone = (np.sin(2 * np.pi * 440 * t) * 12000).astype(np.int16)
    data = tone.astype("<i2").tobytes()
    whole = StreamDecoder(AudioSpec("pcm16", rate, 1))
    a = np.concatenate([whole.decode(data)[0], whole.flush()[0]])
    chunked = StreamDecoder(AudioSpec("pcm16", rate, 1))
    parts = [chunked.decode(data[i : i + 320])[0] for i in range(0, len(data), 320)] + [chunked.flush()[0]]
    b = np.concatenate(parts)
    assert abs(len(a) - 2 * 16000) <= 2 and len(a) == len(b)
    assert np.max(np.abs(a - b)) < 1e-4
    # 440 Hz survives, at the right frequency
    spec = np.abs(np.fft.rfft(a[4000:20000]))
    assert abs(np.argmax(spec) * 16000 / 16000 - 440) < 2


def test_48k_to_16k_and_gap_silence():
    d = StreamDecoder(AudioSpec("pcm16", 48000, 1))
    out = d.decode(np.zeros(4800, np.int16).tobytes())[0]
    gap = d.silence(0.5)[0]
    total = len(out) + len(gap) + len(d.flush()[0])
    assert abs(total - int(0.6 * 16000)) <= 2
