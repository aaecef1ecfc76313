import numpy as np

from voicetriage.audio.segmenter import Segmenter, SpeechEnded, SpeechStarted
from voicetriage.audio.vad import WINDOW
from voicetriage.core.config import StreamConfig

W = WINDOW / 16000  # 32 ms


class ScriptedVad:
    """Probabilities from a script: one value per 512-sample window."""

    def __init__(self, probs):
        self.probs = list(probs)
        self.pending = 0

    def __call__(self, samples):
        self.pending += len(samples)
        n = self.pending // WINDOW
        self.pending -= n * WINDOW
        out, self.probs = self.probs[:n], self.probs[n:]
        return np.array(out + [0.0] * (n - len(out)), dtype=np.float32)


def run(probs, config=StreamConfig(), chunk=320, flush=True):
    seg = Segmenter(config, ScriptedVad(probs))
    audio = np.arange(len(probs) * WINDOW, dtype=np.float32)  # sample index as value
    events = []
    for i in range(0, len(audio), chunk):
        events += seg.feed(audio[i : i + chunk])
    if flush:
        events += seg.flush()
    return seg, events


def windows(seconds):
    return int(round(seconds / W))


def test_utterance_with_trailing_silence():
    probs = [0.0] * windows(1) + [0.9] * windows(2) + [0.0] * windows(1)
    _, ev = run(probs)
    starts = [e for e in ev if isinstance(e, SpeechStarted)]
    ends = [e for e in ev if isinstance(e, SpeechEnded)]
    assert len(starts) == 1 and len(ends) == 1
    e = ends[0]
    assert e.reason == "silence"
    # pre-roll of 200 ms before the first speech window
    assert abs(e.start - (windows(1) * W - 0.2)) < 0.01
    # ends 200 ms into the silence (tail kept for the last word)
    assert abs(e.end - (windows(1) + windows(2)) * W - 0.2) < W + 1e-6
    assert abs(e.speech_s - windows(2) * W) < 1e-6
    # the audio is exactly the samples between start and end
    assert e.audio[0] == round(e.start * 16000) and len(e.audio) == round((e.end - e.start) * 16000)


def test_short_click_is_not_an_utterance():
    probs = [0.0] * 10 + [0.9] * 3 + [0.0] * 40  # 96 ms < min_speech 200 ms
    _, ev = run(probs)
    assert ev == []


def test_short_pause_does_not_split():
    probs = [0.9] * windows(1) + [0.0] * windows(0.3) + [0.9] * windows(1) + [0.0] * windows(1)
    _, ev = run(probs)
    ends = [e for e in ev if isinstance(e, SpeechEnded)]
    assert len(ends) == 1


def test_end_silence_is_configurable():
    probs = [0.9] * windows(1) + [0.0] * windows(0.3) + [0.9] * windows(1) + [0.0] * windows(1)
    _, ev = run(probs, StreamConfig(end_silence_ms=200))
    assert len([e for e in ev if isinstance(e, SpeechEnded)]) == 2


def test_max_length_cuts_at_quietest_point_and_continues():
    probs = [0.9] * windows(13) + [0.4] + [0.1] + [0.9] * windows(6) + [0.0] * windows(1)
    _, ev = run(probs, StreamConfig(max_utterance_s=15))
    ends = [e for e in ev if isinstance(e, SpeechEnded)]
    assert [e.reason for e in ends] == ["max_length", "silence"]
    cut = (windows(13) + 2) * W
    assert abs(ends[0].end - cut) < 1e-6 and abs(ends[1].start - cut) < 1e-6
    assert ends[0].end - ends[0].start <= 15.0


def test_flush_ends_speech_in_progress():
    probs = [0.9] * windows(2)
    seg, ev = run(probs, flush=False)
    assert seg.active is not None
    assert abs(len(seg.active_audio()) / 16000 - 2.0) < 0.05
    ends = seg.flush()
    assert len(ends) == 1 and ends[0].reason == "stop"
    assert seg.active is None and seg.flush() == []


def test_chunking_does_not_change_result():
    rng = np.random.default_rng(1)
    probs = list((rng.random(600) > 0.4).astype(float) * 0.9)
    _, a = run(probs, chunk=160)
    _, b = run(probs, chunk=4000)
    key = lambda evs: [(type(e).__name__, getattr(e, "start", None), getattr(e, "end", None)) for e in evs]  # noqa: E731
    assert key(a) == key(b)


def test_long_silence_memory_is_trimmed():
    seg, _ = run([0.0] * windows(120), flush=False)
    assert len(seg._audio) < 3 * 16000


def test_split_ends_the_utterance_and_the_next_one_starts_at_the_split():
    """An AudioHook update/pause mid-speech: the utterance ends there, and the next
    one's pre-roll does not reach back over the split point."""
    seg = Segmenter(StreamConfig(), ScriptedVad([0.9] * windows(3)))
    audio = np.arange(windows(3) * WINDOW, dtype=np.float32)
    half = windows(1.5) * WINDOW
    events = seg.feed(audio[:half])
    [ended] = seg.flush("split")
    assert ended.reason == "split" and ended.end == half / 16000
    assert np.array_equal(ended.audio, audio[int(ended.start * 16000):half])
    events = seg.feed(audio[half:])
    [started] = [e for e in events if isinstance(e, SpeechStarted)]
    assert started.start == half / 16000  # not half - pre_roll
    [rest] = seg.flush()
    assert rest.start == half / 16000 and rest.reason == "stop"


def test_split_in_trailing_silence_ends_at_the_speech_like_a_silence_end():
    """An AudioHook update 0.4 s after speech stopped (end_silence_ms is 0.5 s): the
    utterance ends at its speech plus the 0.2 s tail, as the silence end would have."""
    speech, quiet = windows(1.0), windows(0.4)
    seg = Segmenter(StreamConfig(), ScriptedVad([0.9] * speech + [0.0] * quiet))
    seg.feed(np.zeros((speech + quiet) * WINDOW, dtype=np.float32))
    [ended] = seg.flush("split")
    tail = round(0.2 / W)
    assert ended.end == (speech + tail) * WINDOW / 16000 < (speech + quiet) * W
    assert len(ended.audio) == round((ended.end - ended.start) * 16000)
    # the same speech ended by silence ends at the same point
    _, events = run([0.9] * speech + [0.0] * windows(1.0), flush=False)
    [by_silence] = [e for e in events if isinstance(e, SpeechEnded)]
    assert by_silence.end == ended.end and by_silence.start == ended.start


def test_held_gap_neither_ends_nor_starts_an_utterance():
    cfg = StreamConfig()
    speech, gap = windows(1.0), windows(0.8)  # the gap is longer than end_silence_ms (500)
    seg = Segmenter(cfg, ScriptedVad([0.9] * speech + [0.0] * gap + [0.9] * speech))
    audio = np.zeros((2 * speech + gap) * WINDOW, dtype=np.float32)
    a, b = speech * WINDOW, (speech + gap) * WINDOW
    ev = seg.feed(audio[:a]) + seg.feed(audio[a:b], hold=True) + seg.feed(audio[b:]) + seg.flush()
    ends = [e for e in ev if isinstance(e, SpeechEnded)]
    assert len(ends) == 1 and ends[0].reason == "stop"
    assert ends[0].end == len(audio) / 16000  # the clock ran on through the gap
    # the same gap fed as ordinary silence ends the utterance
    seg = Segmenter(cfg, ScriptedVad([0.9] * speech + [0.0] * gap + [0.9] * speech))
    ev = seg.feed(audio[:a]) + seg.feed(audio[a:b]) + seg.feed(audio[b:]) + seg.flush()
    assert [e.reason for e in ev if isinstance(e, SpeechEnded)] == ["silence", "stop"]
    # nor does a held gap start one: speech-like probabilities inside it are ignored
    seg = Segmenter(cfg, ScriptedVad([0.9] * gap))
    assert seg.feed(np.zeros(gap * WINDOW, dtype=np.float32), hold=True) == [] and seg.active is None


def test_ending_audio_is_the_final_audio_once_the_pause_is_long_enough():
    """What the session sends as a cached pause partial (200 ms into a pause) is
    exactly the audio of the final when the pause goes on to end the utterance."""
    probs = [0.0] * windows(0.3) + [0.9] * windows(1.0) + [0.0] * windows(1.0)
    seg = Segmenter(StreamConfig(), ScriptedVad(probs))
    audio = np.arange(len(probs) * WINDOW, dtype=np.float32)
    seen, ended = [], []
    for i in range(0, len(audio), 320):
        for ev in seg.feed(audio[i : i + 320]):
            if isinstance(ev, SpeechEnded):
                ended.append(ev)
        if seg.active is not None and seg.trailing_silence_s >= 0.2:
            seen.append(seg.ending_audio().copy())
        if seg.active is not None and seg.trailing_silence_s == 0:
            # no pause: the utterance up to the last window the VAD classified
            a, cut = seg.active_audio(), seg.ending_audio()
            assert len(a) - WINDOW < len(cut) <= len(a) and np.array_equal(cut, a[: len(cut)])
    assert len(ended) == 1 and seen
    for cut in seen:  # from 200 ms into the pause to its end, the same samples
        assert np.array_equal(cut, ended[0].audio)
