"""Ours offline on the benchmark's own calls: the accuracy real time is measured against.

The same stitched calls go through the same pipeline (an in-process
:class:`~voicetriage.pipeline.engine.Engine` with the same model, compute type
and defaults as the server) as fast as the machine allows, one call at a time,
and the finals are scored with the same attribution and normalisation as the
real-time run (:mod:`benchmarks.analysis`). Any gap between this and a level
of the real-time run is accuracy lost to real time (load, shed partials, a
language decided under pressure), not to the model.
"""

from __future__ import annotations

import asyncio
import time

from .analysis import CallTrace, Obs, analyse, summarise
from .corpus import Call


async def run_offline(model: str, compute_type: str, calls: list[Call], log=print) -> dict:
    from voicetriage.audio.codecs import AudioSpec
    from voicetriage.core.config import load_config
    from voicetriage.core.events import CallInfo, Final
    from voicetriage.pipeline.engine import Engine

    engine = Engine.load(load_config(asr={"model": model, "compute_type": compute_type}))
    traces, t0, cpu0 = [], time.monotonic(), time.process_time()
    try:
        for call in calls:
            trace = CallTrace(call, 320)

            def emit(ev, trace=trace) -> None:
                if isinstance(ev, Final):
                    trace.obs.append(Obs(0.0, "final", ev.start, ev.end, ev.text, True,
                                         key=f"{ev.track}:{ev.utterance}"))

            session = engine.open_call(CallInfo(call_id=call.id, platform="bench-offline"),
                                       AudioSpec("pcm16", 16000, 1), emit)
            data = call.pcm16()
            for i, off in enumerate(range(0, len(data), 640)):
                session.push_audio(data[off : off + 640])
                if i % 50 == 0:
                    await asyncio.sleep(0)
            await session.close("end")
            traces.append(trace)
    finally:
        engine.close()
    results = [r for t in traces for r in analyse(t)]
    sm = summarise(results)
    audio_s = sum(c.duration_s for c in calls)
    out = {"model": model, "compute_type": compute_type, "calls": len(calls), "utterances": len(results),
           "errors": sm["errors"], "errors_by_language": sm["errors_by_language"], "loops": sm["loops"],
           "audio_s": round(audio_s, 1), "wall_s": round(time.monotonic() - t0, 1),
           "cpu_s_per_audio_s": round((time.process_time() - cpu0) / audio_s, 3) if audio_s else None,
           "missing": sum(1 for r in results if not r.hypothesis.strip())}
    log(f"  offline {model} {compute_type}: {len(calls)} calls, {len(results)} utterances, "
        f"errors {sm['errors_by_language']}")
    return out


__all__ = ["run_offline"]
