"""Two-speaker conversations built from the kit, and their truth."""

import numpy as np

from voicetriage.diarize.conversations import CONVERSATIONS, RATE, telephone, write_wav


def test_short_call_layout(short_call):
    c = short_call
    assert 20.0 <= c.duration <= 30.0
    speakers = [t.speaker for t in c.turns]
    assert speakers[0] == "agent" and set(speakers) == {"agent", "caller"}
    assert all(a != b for a, b in zip(speakers, speakers[1:]))  # alternating turns
    overlaps = [b.start < a.end for a, b in zip(c.turns, c.turns[1:])]
    gaps = [b.start > a.end for a, b in zip(c.turns, c.turns[1:])]
    assert any(overlaps) and any(gaps)
    for t in c.turns:  # reference speech lies inside its turn, in order
        assert t.voiced and all(t.start <= a < b <= t.end + 1e-6 for a, b in t.voiced)
    # silence between turns is silent in the mix
    a, b = c.turns[0].end, c.turns[1].start
    if b - a > 0.1:
        assert np.max(np.abs(c.samples[int(a * RATE) + 10: int(b * RATE) - 10])) < 1e-6


def test_rttm_matches_reference(short_call, diarize_extra):
    from voicetriage.diarize.labelling import parse_rttm

    (ann,) = parse_rttm(short_call.rttm()).values()
    ref = short_call.reference()
    assert abs(ann.label_duration("caller") - ref.label_duration("caller")) < 1e-6
    assert sorted(ann.labels()) == ["agent", "caller"]


def test_speakers_differ_and_ids_unique():
    assert len({c.id for c in CONVERSATIONS}) == len(CONVERSATIONS)
    for c in CONVERSATIONS:
        assert not set(c.agent.clips) & set(c.caller.clips)
    assert {c.split for c in CONVERSATIONS} == {"tune", "test"}


def test_telephone_copy_is_mulaw_8k(short_call, tmp_path):
    from faster_whisper import decode_audio

    data = telephone(short_call.samples)
    assert abs(len(data) - short_call.duration * 8000) <= 1  # one byte per 8 kHz sample
    path = write_wav(tmp_path / "c.wav", short_call.samples, mulaw_8k=True)
    import av

    with av.open(str(path)) as f:
        s = f.streams.audio[0]
        assert s.codec_context.name == "pcm_mulaw" and s.sample_rate == 8000
    back = decode_audio(str(path), sampling_rate=16000)
    assert abs(len(back) / 16000 - short_call.duration) < 0.01
    # the telephone copy is the same speech: correlated with the original
    n = min(len(back), len(short_call.samples))
    r = np.corrcoef(back[:n], short_call.samples[:n])[0, 1]
    assert r > 0.8
