"""Issue 9 item 2: the previous-text prompt, where it helps (``[asr] condition_on_previous_text``).

A final is prompted with the track's previous final, with that final's language, so the
engine uses it only when the new utterance is decided in the same language; partials never
carry it; the option is off by default.
"""

from __future__ import annotations

import asyncio
import dataclasses
import wave

import numpy as np

from voicetriage.asr.worker import InferenceWorker
from voicetriage.audio import AudioSpec
from voicetriage.audio.vad import VadModel
from voicetriage.core.config import AsrConfig, StreamConfig
from voicetriage.core.events import AsrResult, CallInfo, Final
from voicetriage.pipeline.session import CallSession


class Numbered:
    """Answers each final with its own number ("第1句", "第2句", ...); records the requests."""

    def __init__(self):
        self.requests = []

    def window_seconds(self, duration):
        return 10.0

    def transcribe_batch(self, reqs):
        self.requests += reqs
        finals = sum(r.final for r in self.requests)
        return [AsrResult(f"第{finals}句" if r.final else "部分", "zh", 0.95, -0.2, 0.01) for r in reqs]


async def _two_utterances(path: str, condition: bool):
    rec = Numbered()
    worker = InferenceWorker(rec)
    worker.start()
    events: list = []
    session = CallSession(CallInfo("c"), AudioSpec("pcm16", 16000, 1), worker=worker, vad=VadModel(),
                          config=StreamConfig(), emit=events.append,
                          asr_config=dataclasses.replace(AsrConfig(), condition_on_previous_text=condition))
    with wave.open(path) as w:
        clip = w.readframes(w.getnframes())
    data = clip + np.zeros(24000, "<i2").tobytes() + clip + np.zeros(16000, "<i2").tobytes()
    for i in range(0, len(data), 640):
        session.push_audio(data[i: i + 640])
        await asyncio.sleep(0.002)
    await session.close()
    worker.stop()
    return rec, [e for e in events if isinstance(e, Final)]


async def test_a_final_is_prompted_with_the_previous_final_in_its_language(manifest):
    rec, finals = await _two_utterances(manifest["cmn_aishell1_S0764W0121"]["path"], condition=True)
    assert len(finals) >= 2
    prompts = [(r.prompt, r.prompt_language) for r in rec.requests if r.final]
    assert prompts[0] == (None, None)  # nothing before the first final
    assert prompts[1] == (finals[0].text, "zh")
    assert all(r.prompt is None for r in rec.requests if not r.final)  # partials stay unprompted


async def test_the_prompt_is_off_by_default(manifest):
    assert AsrConfig().condition_on_previous_text is False
    rec, finals = await _two_utterances(manifest["cmn_aishell1_S0764W0121"]["path"], condition=False)
    assert len(finals) >= 2 and all(r.prompt is None for r in rec.requests)
