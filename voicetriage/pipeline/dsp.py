"""Per-call signal processing off the event loop.

Every second of caller audio costs the event loop about 6 ms of Silero VAD and
12 ms of prosody (pitch) analysis when they run inline (issue 14;
``python -m benchmarks.loop_cost``), so one loop holds few calls on a large
machine before any inference. :class:`DspPool` runs that work on a small pool
of threads instead: ONNX Runtime and numpy's FFT release the GIL, so the loop
goes on serving other calls meanwhile.

Results do not change: a call's audio still goes through its own VAD stream
and prosody tracker once, in order (one job in flight per call), and the
segmenter, partial scheduling and every event of the call still run on the
loop in the order the audio arrived; only later, by the time the thread took.
:class:`~voicetriage.pipeline.session.CallSession` owns the per-call queue.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from typing import Any, Callable


class DspPool:
    """``threads`` worker threads shared by every call (0: none; work runs inline)."""

    def __init__(self, threads: int = 1) -> None:
        self.threads = threads
        self._pool = (
            concurrent.futures.ThreadPoolExecutor(threads, thread_name_prefix="voicetriage-dsp") if threads > 0 else None
        )
        self._lock = threading.Lock()
        self.jobs = 0  # jobs run (each: one call's queued audio)
        self.cpu_s = 0.0  # CPU time of the DSP threads spent in them

    @property
    def enabled(self) -> bool:
        return self._pool is not None

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` on a DSP thread (inline when the pool has no threads)."""
        if self._pool is None:
            return fn(*args)
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._timed, fn, args)

    def _timed(self, fn: Callable[..., Any], args: tuple) -> Any:
        t0 = time.thread_time()
        try:
            return fn(*args)
        finally:
            with self._lock:
                self.jobs += 1
                self.cpu_s += time.thread_time() - t0

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=False)
            self._pool = None


__all__ = ["DspPool"]
