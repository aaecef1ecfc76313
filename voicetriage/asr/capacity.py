"""How many calls this machine holds with the loaded model: ``[server] max_calls = 0``.

At start the server decodes one short bundled utterance (4.1 s of
``voicetriage/data/sample_call.wav``, after a 1 s warm-up decode) and times it in
process CPU time (``time.process_time``: every thread of the process, so
CTranslate2's own threads count and other processes' load does not). That is the
model's cost per second of audio to *decode*. A streamed call costs more: its
partials decode the growing utterance again, and its VAD, resampling, prosody,
triage and event-loop work run beside the recogniser. So, per call::

    cpu_s_per_audio_s = decode_s_per_audio_s x STREAM_FACTOR + PER_CALL_CPU_S
    max_calls = max(1, floor(usable_cores x utilisation / cpu_s_per_audio_s))

and at most ``floor(utilisation / LOOP_S_PER_AUDIO_S)``: one event loop serves
every call. On CUDA the decode runs on the GPU: its cost is the decode's wall
time per audio second, one GPU instead of the cores, and the cores still bound
the per-call CPU work. The constants (issue 14's measurements, 2-core host):

* ``STREAM_FACTOR`` 2.5: a final and its partials (one a second, each re-decoding the
  utterance so far; adaptive partials thin them under load);
* ``PER_CALL_CPU_S`` 0.05: VAD 5.8 ms + codecs 0.7 ms + prosody 11.6 ms per audio
  second, triage and the loop's own work, with margin;
* ``LOOP_S_PER_AUDIO_S`` 0.02: the event loop's share per call ("about 20 ms with
  triage"), so one loop holds 40 calls at utilisation 0.8;
* ``utilisation`` 0.8 (``[server] target_utilisation``): head-room so p95 finals stay
  under 1.5 s at the limit (tiny.en held 10 calls at 1.76 of 2 cores, p95 1.43 s).

With these, tiny.en int8 on 2 cores (0.04 CPU-s to decode an audio second) gives 10
calls, as many as it held in benchmark run 20261203-102348; base int8 (0.09) gives 5,
between the 6 of the committed run and the 1 of issue 14's quiet re-run.
"""

from __future__ import annotations

import math
import os
import time
import wave
import weakref
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np

STREAM_FACTOR = 2.5
PER_CALL_CPU_S = 0.05
LOOP_S_PER_AUDIO_S = 0.02
UTILISATION = 0.8
SAMPLE = Path(__file__).resolve().parent.parent / "data" / "sample_call.wav"
SPAN_S = (0.3, 4.4)  # "Hello. I am calling about my electricity bill." (data/README.md)
WARMUP_S = 1.0


@dataclass(frozen=True)
class Capacity:
    """``max_calls`` and where it came from ("config": set explicitly; "measured")."""

    max_calls: int
    source: str
    model: str = ""
    device: str | None = None  # what the decode ran on (measured only)
    decode_s_per_audio_s: float | None = None  # CPU-s (CUDA: wall s) to decode one audio second
    cpu_s_per_audio_s: float | None = None  # per call, streamed (the formula's divisor)
    cores: float | None = None
    utilisation: float | None = None
    measure_s: float | None = None  # wall time the measurement took

    def describe(self) -> str:
        if self.source != "measured":
            return f"max_calls {self.max_calls} (set in the config)"
        unit = "GPU-s" if self.device == "cuda" else "CPU-s"
        return (f"max_calls {self.max_calls} (measured: {self.model} {self.decode_s_per_audio_s:.3f} {unit} to decode "
                f"an audio second, {self.cpu_s_per_audio_s:.3f} CPU-s per streamed call audio second, on "
                f"{self.cores:g} cores, utilisation {self.utilisation:g})")

    def as_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None and v != ""}


def usable_cores() -> float:
    """The cores this process may run on: its CPU affinity, capped by a cgroup v2 quota."""
    try:
        n: float = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            n = min(n, int(quota) / int(period))
    except (OSError, ValueError):
        pass
    return max(n, 0.1)


def max_calls_for(decode_s_per_audio_s: float, cores: float, utilisation: float = UTILISATION,
                  device: str = "cpu") -> tuple[int, float]:
    """The formula (module docstring): ``(max_calls, cpu_s_per_audio_s per call)``."""
    decode = max(decode_s_per_audio_s, 1e-6)
    if device == "cuda":  # the GPU decodes, the cores do the rest
        per_call = PER_CALL_CPU_S
        n = min(math.floor(utilisation / (decode * STREAM_FACTOR)), math.floor(cores * utilisation / per_call))
    else:
        per_call = decode * STREAM_FACTOR + PER_CALL_CPU_S
        n = math.floor(cores * utilisation / per_call)
    n = min(n, math.floor(utilisation / LOOP_S_PER_AUDIO_S))
    return max(1, n), per_call


def sample_audio(span: tuple[float, float] = SPAN_S) -> np.ndarray:
    """16 kHz float32 audio of ``span`` seconds of the bundled sample call."""
    with wave.open(str(SAMPLE)) as w:
        rate = w.getframerate()
        w.setpos(int(span[0] * rate))
        x = np.frombuffer(w.readframes(int((span[1] - span[0]) * rate)), "<i2").astype(np.float32) / 32768
    return x


def measure_decode(transcribe: Callable[[np.ndarray], object], device: str = "cpu") -> tuple[float, float]:
    """``(cost per audio second, wall seconds taken)`` of decoding the sample utterance
    with ``transcribe`` (blocking; after a short warm-up decode). CPU: process CPU
    time; CUDA: wall time (the GPU's)."""
    t_wall = time.monotonic()
    audio = sample_audio()
    transcribe(audio[: int(WARMUP_S * 16000)])
    cpu, wall = time.process_time(), time.monotonic()
    transcribe(audio)
    spent = (time.monotonic() - wall) if device == "cuda" else (time.process_time() - cpu)
    return spent / (len(audio) / 16000), time.monotonic() - t_wall


_MEASURED: "weakref.WeakKeyDictionary[object, tuple[float, float]]" = weakref.WeakKeyDictionary()


def measure(asr, utilisation: float = UTILISATION, cores: float | None = None) -> Capacity:
    """Measure the loaded :class:`~voicetriage.asr.engine.AsrEngine` (blocking, about a
    second on 2 cores for base; once per loaded model) and apply the formula."""
    from voicetriage.asr.engine import AsrRequest

    device = getattr(asr.config, "device", "cpu")
    if asr not in _MEASURED:
        _MEASURED[asr] = measure_decode(lambda a: asr.transcribe_batch([AsrRequest(a, final=True)]), device)
    cost, took = _MEASURED[asr]
    cores = usable_cores() if cores is None else cores
    n, per_call = max_calls_for(cost, cores, utilisation, device)
    model = f"{asr.resolved.id} {asr.config.compute_type}"
    return Capacity(n, "measured", model, device, round(cost, 4), round(per_call, 4), round(cores, 2),
                    utilisation, round(took, 3))


def resolve(max_calls: int, asr, utilisation: float = UTILISATION) -> Capacity:
    """An explicit ``max_calls`` wins (nothing is measured); 0: measure."""
    if max_calls > 0:
        return Capacity(max_calls, "config")
    return measure(asr, utilisation)


__all__ = ["Capacity", "LOOP_S_PER_AUDIO_S", "PER_CALL_CPU_S", "STREAM_FACTOR", "UTILISATION", "max_calls_for",
           "measure", "measure_decode", "resolve", "usable_cores"]
