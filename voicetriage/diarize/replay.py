"""Triage replayed on recordings: the hints the live server would have sent.

For each recording, the caller's side is found (a stereo file's caller
channel, or the speaker diarization names as caller in a mono file), the
other speakers' speech is silenced (so times stay call times), and that audio
is streamed through an in-process :class:`~voicetriage.pipeline.engine.Engine` call with
the same triage observer the server uses (signals/, policy.py, triage.py).
Several policies can be replayed on one stream: each gets its own
:class:`~voicetriage.triage.observer.CallTriage`, so ASR runs once per recording.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from voicetriage.core.errors import ConfigError
from voicetriage.core.events import SAMPLE_RATE as RATE
from voicetriage.core.events import CallInfo


@dataclass
class PolicyRun:
    name: str  # the policy file, or "default"
    hints: list[dict[str, Any]] = field(default_factory=list)
    queue: str | None = None  # the call's queue when it ended (None: no hint fired)


@dataclass
class Replay:
    file: str
    duration_s: float
    caller_source: str  # "channel 0", "diarization: SPEAKER_01", "whole recording"
    caller_speech_s: float | None  # None: a whole channel
    runs: list[PolicyRun]
    finals: list[dict[str, Any]] = field(default_factory=list)
    wall_s: float = 0.0
    error: str | None = None


class _Capture:
    """A CallObserver around one CallTriage that keeps its hints instead of emitting them."""

    def __init__(self, inner: Any, run: PolicyRun) -> None:
        self.inner = inner
        self.run = run

    def _keep(self, events: list[object]) -> list[object]:
        for ev in events:
            if getattr(ev, "kind", None) == "hint":
                self.run.hints.append({
                    "queue": ev.queue, "action": ev.action, "priority": ev.priority,
                    "confidence": round(float(ev.confidence), 4), "rules": list(ev.rules),
                    "time": round(float(ev.time), 3), "evidence_time": round(float(ev.evidence_time), 3),
                    "reason": ev.reason, "previous": ev.previous,
                })
        return []

    def on_audio(self, track: str, samples: np.ndarray, t0: float) -> list[object]:
        return self._keep(self.inner.on_audio(track, samples, t0))

    def on_event(self, event: object) -> list[object]:
        return self._keep(self.inner.on_event(event))

    def on_close(self, summary: object) -> list[object]:
        out = self._keep(self.inner.on_close(summary))
        self.run.queue = self.inner.state.current_queue
        return out


def caller_audio(samples: np.ndarray, caller_turns: Sequence[tuple[float, float]],
                 other_turns: Sequence[tuple[float, float]], fade_s: float = 0.02) -> np.ndarray:
    """Keep the caller's speech; silence what only other speakers say (times unchanged)."""
    n = len(samples)
    keep = np.zeros(n, bool)
    for a, b in caller_turns:
        keep[max(0, int(a * RATE)): min(n, int(b * RATE))] = True
    other = np.zeros(n, bool)
    for a, b in other_turns:
        other[max(0, int(a * RATE)): min(n, int(b * RATE))] = True
    gain = np.where(other & ~keep, 0.0, 1.0).astype(np.float32)
    k = max(1, int(fade_s * RATE))
    gain = np.convolve(gain, np.ones(k, np.float32) / k, mode="same")  # no clicks at the cuts
    return (samples * gain).astype(np.float32)


async def stream_call(engine: Any, call_id: str, audio: np.ndarray, observers: list[Any],
                      speed: float = 0.0, frame_ms: int = 20) -> list[dict[str, Any]]:
    """Stream 16 kHz float audio as one PCM16 call; returns its finals."""
    from voicetriage.audio.codecs import AudioSpec
    from voicetriage.core.events import Final

    finals: list[dict[str, Any]] = []

    def emit(ev: object) -> None:
        if isinstance(ev, Final):
            finals.append({"start": round(ev.start, 3), "end": round(ev.end, 3), "text": ev.text,
                           "language": ev.language})

    spec = AudioSpec("pcm16", RATE, 1)
    data = (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()
    tail = b"\0\0" * RATE  # one second of silence ends the last utterance, as a hang-up would
    data += tail
    session = engine.open_call(CallInfo(call_id=call_id, platform="replay"), spec, emit, observers=observers)
    chunk = spec.frame_bytes * RATE * frame_ms // 1000
    per_chunk = frame_ms / 1000.0 / speed if speed > 0 else 0.0
    start = time.monotonic()
    for i, off in enumerate(range(0, len(data), chunk)):
        session.push_audio(data[off: off + chunk])
        delay = start + (i + 1) * per_chunk - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        elif i % 10 == 0:
            await asyncio.sleep(0)
    await session.close("end")
    return finals


def greeting_texts(model: Any, samples: np.ndarray, turns, language: str | None = None,
                   seconds: float = 6.0) -> dict[str, str]:
    """Each speaker's first words (Whisper on their first turn), for the greeting rule."""
    out: dict[str, str] = {}
    for t in turns:
        if t.speaker in out or t.end - t.start < 0.3:
            continue
        a, b = int(t.start * RATE), int(min(t.end, t.start + seconds) * RATE)
        segs, _ = model.transcribe(samples[a:b], language=language, beam_size=1, vad_filter=False,
                                   condition_on_previous_text=False)
        out[t.speaker] = " ".join(s.text.strip() for s in segs)
    return out


@dataclass
class ReplayOptions:
    channels: str = "mono"  # "mono": diarize; "split": stereo, one speaker per channel
    caller_channel: int = 0
    roles: str = "greeting"
    speed: float = 0.0  # 0: as fast as possible
    language: str | None = None


async def replay_file(path: Path, engine: Any, factories: Sequence[tuple[str, Any]], options: ReplayOptions,
                      diarizer: Any = None) -> Replay:
    """Replay one recording under each (name, TriageFactory)."""
    from voicetriage.audio.files import read_audio
    from voicetriage.diarize.labelling import speech_per_speaker, turns_of
    from voicetriage.diarize.roles import CALLER, Utterance, assign

    t0 = time.monotonic()
    split = options.channels == "split"
    audio = read_audio(path, 16000, split)
    duration = len(audio[0]) / RATE
    if split:
        caller = audio[options.caller_channel]
        source = f"channel {options.caller_channel}"
        speech = None
    else:
        if diarizer is None:
            raise ConfigError("a mono recording needs the diarizer to find the caller")
        ann = await asyncio.to_thread(diarizer, audio[0])
        raw = turns_of(ann)
        texts = {}
        if options.roles == "greeting":
            texts = await asyncio.to_thread(greeting_texts, engine.asr.model, audio[0], raw, options.language)
        utterances = [Utterance(t.speaker, t.start, texts.get(t.speaker, "") if i == _first(raw, t) else "")
                      for i, t in enumerate(raw)]
        names = assign(speech_per_speaker(ann), utterances, options.roles)
        who = next((k for k, v in names.items() if v == CALLER), None)
        if who is None:
            # one speaker only (or --roles none): the whole recording is the caller's
            caller, source, speech = audio[0], "whole recording", duration
        else:
            mine = [(t.start, t.end) for t in raw if t.speaker == who]
            others = [(t.start, t.end) for t in raw if t.speaker != who]
            caller = caller_audio(audio[0], mine, others)
            source = f"diarization: {who}"
            speech = float(sum(b - a for a, b in mine))
    runs = [PolicyRun(name) for name, _ in factories]
    info = CallInfo(call_id=path.stem, platform="replay")
    observers = [_Capture(f(info), r) for (_, f), r in zip(factories, runs)]
    finals = await stream_call(engine, path.stem, caller, observers, options.speed)
    return Replay(str(path), round(duration, 3), source, None if speech is None else round(speech, 3),
                  runs, finals, time.monotonic() - t0)


def _first(turns, turn) -> int:
    for i, t in enumerate(turns):
        if t.speaker == turn.speaker:
            return i
    return -1


def changes(replays: Sequence[Replay]) -> list[dict[str, Any]]:
    """Calls whose final queue differs between the first policy (B) and the second (A)."""
    out = []
    for r in replays:
        if r.error or len(r.runs) < 2:
            continue
        b, a = r.runs[0], r.runs[1]
        if a.queue != b.queue:
            out.append({"file": r.file, "queue_before": a.queue, "queue_after": b.queue,
                        "policy_before": a.name, "policy_after": b.name})
    return out


def as_records(r: Replay) -> list[Mapping[str, Any]]:
    """JSON lines for one recording: a header, each hint, a summary per policy."""
    lines: list[Mapping[str, Any]] = [{
        "type": "call", "file": r.file, "duration": r.duration_s, "caller": r.caller_source,
        "caller_speech_s": r.caller_speech_s,
        "wall_s": round(r.wall_s, 3), **({"error": r.error} if r.error else {}),
    }]
    for run in r.runs:
        for h in run.hints:
            lines.append({"type": "hint", "file": r.file, "policy": run.name, **h})
    for run in r.runs:
        lines.append({"type": "summary", "file": r.file, "policy": run.name, "queue": run.queue,
                      "hints": len(run.hints)})
    return lines

