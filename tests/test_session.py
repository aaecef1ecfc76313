"""CallSession with a scripted recogniser: what reaches the caller, in order."""

import asyncio
import wave

from voicetriage.asr.worker import InferenceWorker
from voicetriage.audio import AudioSpec
from voicetriage.audio.vad import VadModel
from voicetriage.core.config import StreamConfig
from voicetriage.core.events import AsrResult, CallInfo, Final, Partial
from voicetriage.pipeline.session import CallSession


class NoSpeechGuess:
    """Always answers with text Whisper itself doubts (no-speech 0.9, low score)."""

    def window_seconds(self, duration):
        return 10.0

    def transcribe_batch(self, reqs):
        return [AsrResult("嗯嗯", "zh", 0.5, -1.5, 0.9) for _ in reqs]


async def run_call(path, pace):
    worker = InferenceWorker(NoSpeechGuess())
    worker.start()
    events = []
    session = CallSession(CallInfo("c"), AudioSpec("pcm16", 16000, 1), worker=worker, vad=VadModel(),
                          config=StreamConfig(), emit=events.append)
    with wave.open(path) as w:
        data = w.readframes(w.getnframes())
    for i in range(0, len(data), 640):
        session.push_audio(data[i : i + 640])
        if pace:
            await asyncio.sleep(0.005)
    await session.close()
    worker.stop()
    return events


async def test_doubtful_final_is_dropped_unless_partials_showed_text(manifest):
    path = manifest["cmn_aishell1_S0764W0121"]["path"]
    fast = await run_call(path, pace=False)  # no partial can come back before the end
    assert not [e for e in fast if isinstance(e, (Partial, Final))]
    paced = await run_call(path, pace=True)
    partials = [e for e in paced if isinstance(e, Partial)]
    finals = [e for e in paced if isinstance(e, Final)]
    assert partials and finals  # the caller saw text: the final is not withheld
    assert finals[0].no_speech_prob == 0.9 and finals[0].avg_logprob == -1.5
    assert paced.index(partials[0]) < paced.index(finals[0])


class ProvisionalJapanese:
    """Partials say Japanese (as a 0.3 s partial may); the whole utterance is Mandarin.

    Like the real recogniser, a request that names a language is decoded in it;
    every request is recorded so the test can see what the session asked for."""

    def __init__(self):
        self.requests = []

    def window_seconds(self, duration):
        return 10.0

    def transcribe_batch(self, reqs):
        out = []
        for r in reqs:
            self.requests.append(r)
            if r.language:
                lang, p, src = r.language, (1.0 if r.language_source in ("client", "config") else 0.3), r.language_source
            elif r.final:
                lang, p, src = "zh", 0.93, "detected"
            else:
                lang, p, src = "ja", 0.9, "detected"
            out.append(AsrResult("一二线城市", lang, p, -0.3, 0.01, language_candidates=((lang, p),),
                                 language_source=src))
        return out


async def run_scripted(path, recogniser, **kwargs):
    worker = InferenceWorker(recogniser)
    worker.start()
    events = []
    session = CallSession(CallInfo("c"), AudioSpec("pcm16", 16000, 1), worker=worker, vad=VadModel(),
                          config=StreamConfig(), emit=events.append, **kwargs)
    with wave.open(path) as w:
        data = w.readframes(w.getnframes())
    for i in range(0, len(data), 640):
        session.push_audio(data[i : i + 640], track=kwargs.get("tracks", ("caller",))[-1])
        await asyncio.sleep(0.005)
    await session.close()
    worker.stop()
    return events


async def test_partial_language_never_reaches_the_final(manifest):
    rec = ProvisionalJapanese()
    events = await run_scripted(manifest["cmn_aishell1_S0764W0122"]["path"], rec)
    partials = [e for e in events if isinstance(e, Partial)]
    finals = [e for e in events if isinstance(e, Final)]
    assert partials and all(p.language == "ja" for p in partials)
    # later partials of the utterance were decoded in the provisional language ...
    assert any(r.language == "ja" and r.language_source == "provisional" for r in rec.requests if not r.final)
    # ... but the final was detected on its own audio
    assert [r.language for r in rec.requests if r.final] == [None]
    assert [(f.language, f.language_probability, f.language_source) for f in finals] == [("zh", 0.93, "detected")]
    assert finals[0].language_candidates == (("zh", 0.93),)


async def test_track_languages_override_the_call_language(manifest):
    rec = ProvisionalJapanese()
    events = await run_scripted(
        manifest["cmn_aishell1_S0764W0122"]["path"], rec, language="en", tracks=("customer", "agent"),
        track_languages={"agent": None},
    )
    finals = [e for e in events if isinstance(e, Final)]
    assert [r.language for r in rec.requests if r.final] == [None]  # the agent track detects
    assert [(f.track, f.language, f.language_source) for f in finals] == [("agent", "zh", "detected")]
    rec2 = ProvisionalJapanese()
    events = await run_scripted(manifest["cmn_aishell1_S0764W0122"]["path"], rec2, language="en",
                                tracks=("customer", "agent"))
    finals = [e for e in events if isinstance(e, Final)]
    assert [(f.language, f.language_probability, f.language_source) for f in finals] == [("en", 1.0, "client")]


def test_track_languages_must_name_tracks():
    import pytest

    from voicetriage.core.errors import AudioFormatError

    with pytest.raises(AudioFormatError, match="unknown track"):
        CallSession(CallInfo("c"), AudioSpec("pcm16", 16000, 1), worker=None, vad=VadModel(),
                    config=StreamConfig(), emit=print, track_languages={"agnet": None})


class Echo:
    """Answers every request at once and records it."""

    def __init__(self):
        self.requests = []

    def window_seconds(self, duration):
        return 10.0

    def transcribe_batch(self, reqs):
        self.requests += [(r.final, len(r.audio)) for r in reqs]
        return [AsrResult("我要转人工", "zh", 0.9, -0.2, 0.01) for _ in reqs]


async def test_trailing_pause_asks_for_a_partial_before_the_final(manifest):
    """A request phrase at the end of an utterance is seen when the pause starts,
    not at the next partial interval or the final."""
    import dataclasses

    path = manifest["cmn_aishell1_S0764W0121"]["path"]
    counts = {}
    for pause_ms in (0, 200):
        rec = Echo()
        cfg = dataclasses.replace(StreamConfig(), partial_interval_s=60.0, pause_partial_ms=pause_ms)
        worker = InferenceWorker(rec)
        worker.start()
        session = CallSession(CallInfo("c"), AudioSpec("pcm16", 16000, 1), worker=worker, vad=VadModel(),
                              config=cfg, emit=lambda e: None)
        with wave.open(path) as w:
            data = w.readframes(w.getnframes())
        data += b"\0" * 32000  # one second of silence: the utterance ends on its pause
        for i in range(0, len(data), 640):
            session.push_audio(data[i : i + 640])
            await asyncio.sleep(0.003)
        await session.close()
        worker.stop()
        final_at = [k for k, (final, _) in enumerate(rec.requests) if final]
        assert len(final_at) == 1
        partials = [n for final, n in rec.requests[: final_at[0]] if not final]
        counts[pause_ms] = partials
    assert len(counts[0]) == 1  # only the first partial, 0.3 s into speech
    assert len(counts[200]) == 2
    # the pause partial holds the whole phrase (the final's audio less its tail)
    final_len = [n for final, n in rec.requests if final][0]
    assert counts[200][1] >= final_len - 0.1 * 16000
