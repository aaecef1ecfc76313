"""Codecs on arbitrary bytes and specs: AudioFormatError or the right number of samples."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from fuzzwire import FUZZ, hostile
from voicetriage.audio.codecs import (
    SAMPLE_RATES,
    AudioSpec,
    StreamDecoder,
    alaw_decode,
    alaw_encode,
    decode_pcm,
    ulaw_decode,
    ulaw_encode,
)
from voicetriage.core.errors import AudioFormatError

specs = st.builds(AudioSpec, st.sampled_from(["pcm16", "mulaw", "alaw"]), st.sampled_from(SAMPLE_RATES),
                  st.sampled_from([1, 2]))
field = st.one_of(hostile, st.sampled_from(["pcm16", "PCMU", "audio/x-mulaw", "alaw", 8000, 16000, 1, 2, 2.0, True]))


@FUZZ
@given(field, field, field)
def test_spec_parse_takes_any_value(encoding, rate, channels):
    try:
        spec = AudioSpec.parse(encoding, rate, channels)
    except AudioFormatError:
        return
    assert spec.encoding in ("pcm16", "mulaw", "alaw") and spec.sample_rate in SAMPLE_RATES
    assert spec.channels in (1, 2) and type(spec.channels) is int and type(spec.sample_rate) is int


@FUZZ
@given(specs, st.lists(st.binary(max_size=3000), max_size=5))
def test_stream_decoder_output_is_bounded_by_input(spec, chunks):
    d = StreamDecoder(spec)
    out = 0
    got = 0
    for chunk in chunks:
        try:
            pcm = decode_pcm(chunk, spec)
        except AudioFormatError:
            assert len(chunk) % spec.frame_bytes
            continue
        assert pcm.shape == (len(chunk) // spec.frame_bytes, spec.channels)
        chans = d.decode(chunk)
        assert len(chans) == spec.channels
        got += len(chunk) // spec.frame_bytes
        out += len(chans[0])
        assert all(np.isfinite(c).all() and (np.abs(c) <= 1.5).all() for c in chans)
    tail = d.flush()
    out += len(tail[0])
    # 16 kHz out per input sample, plus the resampler's rounding
    assert out <= got * 16000 / spec.sample_rate + 64


@FUZZ
@given(st.binary(max_size=2000))
def test_g711_round_trip(data):
    for decode, encode in ((ulaw_decode, ulaw_encode), (alaw_decode, alaw_encode)):
        pcm = decode(data)
        assert pcm.dtype == np.int16 and len(pcm) == len(data)
        assert np.array_equal(decode(encode(pcm)), pcm)


@FUZZ
@given(specs, st.one_of(st.floats(allow_nan=True, allow_infinity=True).filter(lambda x: not 5 < x <= 3600),
                        st.floats(0, 5)))
def test_silence_is_as_long_as_asked_or_refused(spec, seconds):
    d = StreamDecoder(spec)
    try:
        chans = d.silence(seconds)
    except AudioFormatError:
        assert not 0 <= seconds <= 3600
        return
    n = len(chans[0]) + len(d.flush()[0])
    assert len(chans) == spec.channels
    assert abs(n - seconds * 16000) <= 64 and all(not c.any() for c in chans)
