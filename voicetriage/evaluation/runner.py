"""Streams each clip as one call through the pipeline at a chosen speed and records every signal."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from voicetriage.asr.engine import PROBE_PROMPTS
from voicetriage.core.events import CallInfo, Final, Partial, Signal
from voicetriage.evaluation.manifest import Clip, ClipRun


class _Recorder:
    """Wraps an extractor so every signal it returns is recorded for scoring."""

    def __init__(self, inner: Any, sink: list[Signal]) -> None:
        self.inner = inner
        self.name = inner.name
        self.sink = sink

    def _keep(self, out: list[Signal]) -> list[Signal]:
        self.sink.extend(out)
        return out

    def on_audio(self, track: str, samples: np.ndarray, t0: float) -> list[Signal]:
        return self._keep(self.inner.on_audio(track, samples, t0))

    def on_event(self, event: object) -> list[Signal]:
        return self._keep(self.inner.on_event(event))

    def on_close(self) -> list[Signal]:
        return self._keep(self.inner.on_close())


class _ExtractorObserver:
    """A CallObserver running extractors alone (no routing policy)."""

    def __init__(self, extractors: Sequence[Any]) -> None:
        self.extractors = list(extractors)

    def on_audio(self, track: str, samples: np.ndarray, t0: float) -> list[object]:
        return [s for e in self.extractors for s in e.on_audio(track, samples, t0)]

    def on_event(self, event: object) -> list[object]:
        return [s for e in self.extractors for s in e.on_event(event)]

    def on_close(self, summary: object) -> list[object]:
        return [s for e in self.extractors for s in e.on_close()]


def _observer_for(call_id: str, sink: list[Signal], signals_config: Mapping | None, policy: bool) -> Any:
    from voicetriage.triage.signals import default_extractors

    def extractors(cid: str, cfg: Mapping | None) -> list[Any]:
        return [_Recorder(e, sink) for e in default_extractors(cid, cfg)]

    if policy:
        try:
            from voicetriage.triage.observer import TriageFactory
            from voicetriage.triage.policy import load_policy
        except ImportError:  # triage not installed in this build: extractors alone
            policy = False
        else:
            factory = TriageFactory(load_policy(None), extractors=extractors, signals_config=signals_config)
            return factory(CallInfo(call_id=call_id, platform="eval"))
    return _ExtractorObserver(extractors(call_id, signals_config))


async def run_clip(
    engine: Any,
    clip: Clip,
    *,
    speed: float = 1.0,
    frame_ms: int = 20,
    tail_silence_s: float = 1.0,
    signals_config: Mapping | None = None,
    policy: bool = True,
) -> ClipRun:
    """Stream one clip through a new call on ``engine`` and record what came out."""
    from voicetriage.client import StreamOptions, wire_audio

    run = ClipRun(clip)
    try:
        data, spec = wire_audio(clip.path, StreamOptions(tail_silence_s=tail_silence_s))
    except Exception as e:  # noqa: BLE001 - report the clip, go on with the others
        run.error = str(e)
        return run
    observer = _observer_for(clip.id, run.signals, signals_config, policy)
    t_open = time.monotonic()
    clock = [t_open]  # when the first chunk went out: hints are also timed by the wall clock

    def emit(ev: object) -> None:
        if isinstance(ev, Final):
            run.finals.append(
                {k: getattr(ev, k) for k in ("utterance", "start", "end", "text", "language",
                                              "language_probability", "avg_logprob", "no_speech_prob",
                                              "speech_s", "reason", "language_candidates", "language_source",
                                              "compression_ratio", "temperature", "dialect_probe",
                                              "dialect_scores")}
            )
        elif isinstance(ev, Partial) and run.first_partial is None:
            run.first_partial = ev.end
        elif getattr(ev, "kind", None) == "hint":
            run.hints.append({
                "queue": ev.queue, "priority": ev.priority, "confidence": ev.confidence,
                "rules": list(ev.rules), "time": ev.time, "evidence_time": ev.evidence_time,
                "since_evidence_s": ev.since_evidence_s,
                # call time by the wall clock (a hint's own time stops at the last audio
                # pushed, so one that comes after the audio ended would look early)
                "heard_at": round((time.monotonic() - clock[0]) * speed, 3) if speed > 0 else None,
            })

    session = engine.open_call(CallInfo(call_id=clip.id, platform="eval"), spec, emit, observers=[observer])
    chunk = spec.frame_bytes * spec.sample_rate * frame_ms // 1000
    # pace the audio: `speed` times real time (0: as fast as possible)
    per_chunk = frame_ms / 1000.0 / speed if speed > 0 else 0.0
    start = clock[0] = time.monotonic()
    for i, off in enumerate(range(0, len(data), chunk)):
        session.push_audio(data[off : off + chunk])
        due = start + (i + 1) * per_chunk
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        elif i % 10 == 0:
            await asyncio.sleep(0)  # let finals and partials come back
    summary = await session.close("end")
    run.audio_s = float(summary.audio_s.get("caller", spec.duration(len(data))))
    run.wall_s = time.monotonic() - t_open
    return run


def dialect_probe(engine: Any, clip: Clip) -> dict[str, Any]:
    """Experiment: decode the clip under a Cantonese-style and a Mandarin prompt.

    Returns the avg log-probability of each decoding and their difference
    (Cantonese minus Mandarin). Runs on the engine's model directly, so call
    it only when no call is in flight.
    """
    from faster_whisper import decode_audio

    from voicetriage.asr.engine import AsrRequest

    audio = decode_audio(str(clip.path), sampling_rate=16000)[: 30 * 16000]
    # one request per batch: prompts of different lengths cannot share a batch
    res = [engine.asr.transcribe_batch([AsrRequest(audio, "zh", prompt=p)])[0] for p in PROBE_PROMPTS.values()]
    out = {name: {"avg_logprob": round(r.avg_logprob, 3), "text": r.text} for name, r in zip(PROBE_PROMPTS, res)}
    out["delta"] = round(res[0].avg_logprob - res[1].avg_logprob, 3)
    return out


async def run_manifest(
    engine: Any,
    clips: Sequence[Clip],
    *,
    speed: float = 1.0,
    concurrency: int = 1,
    signals_config: Mapping | None = None,
    policy: bool = True,
    probe: bool = False,
    progress: Callable[[ClipRun], None] | None = None,
) -> list[ClipRun]:
    """Run every clip as a call, ``concurrency`` calls at a time, in manifest order.

    Each call is paced at ``speed`` times real time (1: as calls arrive). With
    more than one call at a time the calls share the engine's inference worker
    as concurrent phone calls do. The dialect-probe experiment decodes on the
    model directly, so it runs after all calls are done.
    """
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    runs: list[ClipRun | None] = [None] * len(clips)
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int, clip: Clip) -> None:
        async with gate:
            run = await run_clip(engine, clip, speed=speed, signals_config=signals_config, policy=policy)
        runs[i] = run
        if progress is not None:
            progress(run)

    await asyncio.gather(*(one(i, c) for i, c in enumerate(clips)))
    done = [r for r in runs if r is not None]
    if probe:
        for run in done:
            if run.error is None and run.clip.language in ("mandarin", "cantonese", "wu", "hakka", "minnan"):
                run.probe = await asyncio.to_thread(dialect_probe, engine, run.clip)
    return done
