"""CallSession with a scripted recogniser: what reaches the caller, in order."""

import asyncio
import wave

from voicetriage.audio import AudioSpec
from voicetriage.config import StreamConfig
from voicetriage.events import AsrResult, CallInfo, Final, Partial
from voicetriage.session import CallSession
from voicetriage.vad import VadModel
from voicetriage.worker import InferenceWorker


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
