"""What one call costs the event loop, per second of caller audio (issue 14).

    python -m benchmarks.loop_cost [--calls 2] [--out results.json]

On real stitched calls (the benchmark's, sent as 8 kHz µ-law in 20 ms frames
as a telephone platform would) this measures, in CPU milliseconds of the
measuring thread (``time.thread_time``) per second of audio:

* each per-call stage alone: µ-law decoding + resampling to 16 kHz, the
  Silero VAD stream, the pitch tracker, every triage extractor's ``on_audio``;
* a whole :class:`~voicetriage.pipeline.session.CallSession` (codec, VAD,
  segmenter, partial scheduling, triage, events) with a recogniser that
  answers at once, once with the VAD and prosody inline on the loop
  (``dsp_threads = 0``) and once on a DSP thread (the default): the loop
  thread's CPU and, for the second, the DSP thread's. The session is
  settled after every frame, so the DSP thread gets one frame at a time as
  in real time (the most round trips, the worst case for the loop).

The recogniser is not included (it runs on the inference threads either way).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

import numpy as np

FRAME_S = 0.02


class _Instant:
    """A recogniser that answers at once (its work is not the loop's)."""

    def window_seconds(self, duration):
        return 10.0

    def transcribe_batch(self, reqs):
        from voicetriage.core.events import AsrResult

        return [AsrResult("我想找人工服务 operator please", "zh", 0.9, -0.3, 0.01) for _ in reqs]


def _ulaw_frames(call) -> list[bytes]:
    from voicetriage.audio.codecs import ulaw_encode

    x = call.audio.astype(np.float32)
    # 16 -> 8 kHz by averaging pairs: a telephone-band copy of the call
    x8 = x[: len(x) // 2 * 2].reshape(-1, 2).mean(axis=1).astype(np.int16)
    data = ulaw_encode(x8)
    step = int(8000 * FRAME_S)
    return [data[i : i + step] for i in range(0, len(data), step)]


def _ms_per_s(cpu_s: float, audio_s: float) -> float:
    return round(1000 * cpu_s / audio_s, 3) if audio_s else 0.0


def stages(frames: list[bytes]) -> dict:
    from voicetriage.audio.codecs import AudioSpec, StreamDecoder
    from voicetriage.audio.vad import VadModel
    from voicetriage.core.config import StreamConfig
    from voicetriage.core.events import CallInfo
    from voicetriage.triage.observer import CallTriage
    from voicetriage.triage.policy import load_policy
    from voicetriage.triage.signals import default_extractors
    from voicetriage.triage.signals.prosody import ProsodyTracker

    audio_s = len(frames) * FRAME_S
    dec = StreamDecoder(AudioSpec("mulaw", 8000, 1))
    t0 = time.thread_time()
    pcm = [dec.decode(f)[0] for f in frames]
    codec = time.thread_time() - t0
    vad = VadModel().stream_for(StreamConfig())
    t0 = time.thread_time()
    for x in pcm:
        vad.feed(x)
    vad_s = time.thread_time() - t0
    tracker = ProsodyTracker()
    t0 = time.thread_time()
    at = 0.0
    for x in pcm:
        tracker.feed(x, at)
        at += len(x) / 16000
    prosody = time.thread_time() - t0
    triage = CallTriage(CallInfo("loop-cost", started_at=0.0), load_policy(), default_extractors("loop-cost"))
    t0 = time.thread_time()
    at = 0.0
    for x in pcm:
        triage.on_audio("caller", x, at)
        at += len(x) / 16000
    triage_s = time.thread_time() - t0
    return {"codec_resample": _ms_per_s(codec, audio_s), "vad": _ms_per_s(vad_s, audio_s),
            "prosody": _ms_per_s(prosody, audio_s), "triage_on_audio": _ms_per_s(triage_s, audio_s)}


async def _session(frames: list[bytes], dsp_threads: int) -> dict:
    from voicetriage.asr.worker import InferenceWorker
    from voicetriage.audio.codecs import AudioSpec
    from voicetriage.audio.vad import VadModel
    from voicetriage.core.config import StreamConfig
    from voicetriage.core.events import CallInfo
    from voicetriage.pipeline.dsp import DspPool
    from voicetriage.pipeline.session import CallSession
    from voicetriage.triage.observer import CallTriage
    from voicetriage.triage.policy import load_policy
    from voicetriage.triage.signals import default_extractors

    worker = InferenceWorker(_Instant())
    worker.start()
    pool = DspPool(dsp_threads)
    events: list = []
    triage = CallTriage(CallInfo("loop-cost", started_at=0.0), load_policy(), default_extractors("loop-cost"))
    session = CallSession(CallInfo("loop-cost"), AudioSpec("mulaw", 8000, 1), worker=worker, vad=VadModel(),
                          config=StreamConfig(), emit=events.append, observers=[triage], dsp=pool)
    t0 = time.thread_time()
    for f in frames:
        session.push_audio(f)
        await session.settled()
        await asyncio.sleep(0)  # let partials and finals come back, as between frames in real time
    await session.close()
    loop_s = time.thread_time() - t0
    worker.stop()
    pool.close()
    audio_s = len(frames) * FRAME_S
    return {"loop": _ms_per_s(loop_s, audio_s), "dsp_thread": _ms_per_s(pool.cpu_s, audio_s),
            "dsp_jobs": pool.jobs, "events": len(events)}


def run(calls: int = 2, log=print) -> dict:
    from .corpus import build_calls

    frames = [f for c in build_calls(calls, target_s=30.0) for f in _ulaw_frames(c)]
    audio_s = len(frames) * FRAME_S
    out = {"audio_s": round(audio_s, 2), "frame_ms": int(FRAME_S * 1000), "encoding": "mulaw 8 kHz",
           "unit": "CPU ms per second of caller audio"}
    # warm-up: lazy imports, regex and table builds of the first call are not per-call costs
    asyncio.run(_session(frames[:500], 0))
    asyncio.run(_session(frames[:500], 1))
    stages(frames[:500])
    out["stages"] = stages(frames)
    out["session_inline"] = asyncio.run(_session(frames, 0))
    out["session_dsp_thread"] = asyncio.run(_session(frames, 1))
    log(f"  loop cost per audio second: stages {out['stages']}; session inline {out['session_inline']['loop']} ms, "
        f"with the DSP thread {out['session_dsp_thread']['loop']} ms on the loop + "
        f"{out['session_dsp_thread']['dsp_thread']} ms on the DSP thread")
    return out


def markdown(res: dict) -> str:
    s, a, b = res["stages"], res["session_inline"], res["session_dsp_thread"]
    lines = [f"### Event-loop cost per call ({res['audio_s']:.0f} s of real calls as {res['encoding']}, "
             f"{res['frame_ms']} ms frames; `python -m benchmarks.loop_cost`)", "",
             "CPU ms per second of caller audio (time.thread_time of the thread doing the work; the recogniser "
             "is not included).", "",
             "| stage | ms per audio s |", "|---|---:|",
             f"| µ-law decode + resample to 16 kHz | {s['codec_resample']:.2f} |",
             f"| Silero VAD stream | {s['vad']:.2f} |",
             f"| pitch tracker (prosody) | {s['prosody']:.2f} |",
             f"| triage on_audio (all extractors, prosody included) | {s['triage_on_audio']:.2f} |",
             f"| **whole call on the loop, VAD + prosody inline** (`dsp_threads = 0`) | {a['loop']:.2f} |",
             f"| **whole call on the loop, VAD + prosody on the DSP thread** (default) | {b['loop']:.2f} |",
             f"| ... and on the DSP thread | {b['dsp_thread']:.2f} |", "",
             f"So one loop core holds about {1000 / max(b['loop'], 1e-9):.0f} calls' audio handling with the DSP "
             f"thread ({1000 / max(a['loop'], 1e-9):.0f} inline), before any inference.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.loop_cost", description=__doc__.split("\n\n")[0])
    p.add_argument("--calls", type=int, default=2, help="stitched 30 s calls to measure on (default 2)")
    p.add_argument("--out", help="write the JSON here")
    args = p.parse_args(argv)
    res = run(args.calls, log=lambda m: print(m, file=sys.stderr))
    text = json.dumps(res, indent=1)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    print(markdown(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
