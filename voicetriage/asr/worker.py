"""The inference worker: one thread, one model, every call.

Calls submit requests from the event loop and await the result; the worker
thread picks work fairly and runs it in batches:

* finals before partials (a final is what a caller is waiting for);
* round-robin over calls, so a call with a long utterance or many requests
  cannot starve the others;
* at most one partial per call and track is queued: a newer one replaces an
  older one that has not started (the older result would be stale anyway);
* partials are shed when finals are waiting: while more than ``shed_backlog``
  finals are queued (the server uses twice the thread count), a new partial
  resolves to ``None`` at once (counted in ``shed_partials``) instead of
  queueing behind them;
* requests whose padded windows match are batched together (up to
  ``max_batch``), since the encoder pads a batch to its longest window.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import time
from typing import Callable
from collections import deque
from dataclasses import dataclass, field

from voicetriage.asr.engine import SAMPLE_RATE, AsrEngine, AsrRequest
from voicetriage.core.events import AsrResult

log = logging.getLogger(__name__)


@dataclass
class _Job:
    key: tuple[str, str]  # (call id, track)
    request: AsrRequest
    final: bool
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop
    seq: int
    submitted: float = field(default_factory=time.monotonic)

    @property
    def seconds(self) -> float:
        return len(self.request.audio) / SAMPLE_RATE


@dataclass(frozen=True)
class WorkerStats:
    queued_finals: int
    queued_partials: int
    batches: int
    requests: int
    busy_s: float
    audio_s: float
    max_queue_wait_s: float
    shed_partials: int = 0
    work: dict = field(default_factory=dict)  # AsrEngine.counters: decodes by kind, and seconds


class InferenceWorker:
    """Runs :class:`AsrEngine` on dedicated threads for every call.

    ``threads`` > 1 runs that many batches at once on the shared model (the
    model must have been loaded with as many CTranslate2 workers); each
    thread takes the next batch from the same fair schedule.
    """

    def __init__(self, engine: AsrEngine, max_batch: int = 4, threads: int = 1,
                 shed_backlog: int | None = None) -> None:
        self.engine = engine
        self.shed_backlog = shed_backlog
        self.max_batch = max(1, max_batch)
        self.n_threads = max(1, threads)
        self._cond = threading.Condition()
        self._finals: dict[str, deque[_Job]] = {}
        self._partials: dict[tuple[str, str], _Job] = {}
        self._order: deque[str] = deque()  # call ids, round-robin
        self._seq = itertools.count()
        self._stop = False
        self._threads: list[threading.Thread] = []
        self._batches = 0
        self._requests = 0
        self._busy = 0.0
        self._audio = 0.0
        self._max_wait = 0.0
        self._shed = 0
        self._caching: set[tuple[str, str]] = set()  # tracks whose cached partial is running
        # called on a worker thread after each batch: ([(final, queue wait s)], busy s)
        self.on_batch: Callable[[list[tuple[bool, float]], float], None] | None = None
        self._running = 0  # batches being decoded now
        if hasattr(engine, "side_allowed"):  # asr.split_final_work: only onto an idle worker
            engine.side_allowed = self.idle_capacity

    def start(self) -> None:
        while len(self._threads) < self.n_threads:
            t = threading.Thread(
                target=self._run, name=f"voicetriage-inference-{len(self._threads)}", daemon=True
            )
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        for t in self._threads:
            t.join(timeout=30)
        self._threads = []

    def stats(self) -> WorkerStats:
        with self._cond:
            return WorkerStats(
                self._queued_finals(),
                len(self._partials),
                self._batches,
                self._requests,
                round(self._busy, 3),
                round(self._audio, 3),
                round(self._max_wait, 3),
                self._shed,
                self._work(),
            )

    def _work(self) -> dict:
        counters = getattr(self.engine, "counters", None)
        return counters.snapshot() if counters is not None else {}

    def load(self) -> float:
        """Requests waiting (finals and partials) per inference thread: 0 when idle.
        Sessions stretch their partial interval with it (``[stream] partial_backoff``)."""
        with self._cond:
            return (self._queued_finals() + len(self._partials)) / self.n_threads

    def idle_capacity(self) -> bool:
        """True while an inference thread has nothing to do: no batch waits and fewer batches
        run than there are threads (work put on the model now takes nobody's turn)."""
        with self._cond:
            return self._running < self.n_threads and not self._queued_finals() and not self._partials

    def _queued_finals(self) -> int:
        return sum(len(q) for q in self._finals.values())  # under self._cond

    def submit(self, call_id: str, track: str, request: AsrRequest, final: bool) -> asyncio.Future:
        """Queue a request; the returned future resolves on the caller's loop.

        A partial that is replaced before it runs resolves to ``None``.
        """
        loop = asyncio.get_running_loop()
        job = _Job((call_id, track), request, final, loop.create_future(), loop, next(self._seq))
        with self._cond:
            if self._stop:
                raise RuntimeError("inference worker is stopped")
            if call_id not in self._finals:
                self._finals[call_id] = deque()
                self._order.append(call_id)
            if final:
                self._finals[call_id].append(job)
                old = self._partials.pop(job.key, None)
            elif self.shed_backlog is not None and self._queued_finals() > self.shed_backlog:
                self._shed += 1
                old = self._partials.pop(job.key, None)
                job.future.set_result(None)
                if old is not None:
                    self._shed += 1
            else:
                old = self._partials.get(job.key)
                self._partials[job.key] = job
            self._cond.notify()
        if old is not None:
            self._resolve(old, None)
        return job.future

    def forget(self, call_id: str) -> None:
        """Drop a finished call's queued partials and its place in the rotation."""
        with self._cond:
            stale = [k for k in self._partials if k[0] == call_id]
            jobs = [self._partials.pop(k) for k in stale]
            if not self._finals.get(call_id):
                self._finals.pop(call_id, None)
                try:
                    self._order.remove(call_id)
                except ValueError:
                    pass
        for j in jobs:
            self._resolve(j, None)

    # -- worker thread ------------------------------------------------------------
    def _pick(self) -> list[_Job]:
        """Next batch: finals first, then partials (pause partials first), round-robin over calls."""
        candidates: list[_Job] = []
        for call_id in list(self._order):
            q = self._finals.get(call_id)
            # a final waits while its pause partial (the same audio, kept for it) runs
            if q and q[0].key not in self._caching:
                candidates.append(q[0])
        if not candidates:
            for call_id in list(self._order):
                jobs = [job for (cid, _track), job in self._partials.items() if cid == call_id]
                if jobs:
                    candidates.append(next((j for j in jobs if getattr(j.request, "urgent", False)), jobs[0]))
            # pause partials first (a request at the end of an utterance), round-robin otherwise
            candidates.sort(key=lambda j: not getattr(j.request, "urgent", False))
        if not candidates:
            return []
        first = candidates[0]
        window = self.engine.window_seconds(first.seconds)
        batch = [first] + [
            j for j in candidates[1:] if self.engine.window_seconds(j.seconds) == window
        ][: self.max_batch - 1]
        for job in batch:
            if job.final:
                self._finals[job.key[0]].popleft()
            else:
                del self._partials[job.key]
                if job.request.cache:
                    self._caching.add(job.key)
            # served calls go to the back of the rotation
            try:
                self._order.remove(job.key[0])
            except ValueError:
                pass
            self._order.append(job.key[0])
        return batch

    def _run(self) -> None:
        while True:
            with self._cond:
                batch = self._pick()
                while not batch and not self._stop:
                    self._cond.wait()
                    batch = self._pick()
                if self._stop and not batch:
                    return
                self._running += 1
            try:
                self._run_batch(batch)
            finally:
                with self._cond:
                    self._running -= 1

    def _run_batch(self, batch: list[_Job]) -> None:
        started = time.monotonic()
        dropped = [j for j in batch if j.future.cancelled()]
        batch = [j for j in batch if not j.future.cancelled()]
        if dropped:
            with self._cond:
                self._caching.difference_update(j.key for j in dropped if not j.final)
                self._cond.notify_all()
        if not batch:
            return
        try:
            results: list[AsrResult | BaseException] = list(
                self.engine.transcribe_batch([j.request for j in batch])
            )
        except Exception as e:  # noqa: BLE001 - reported to each waiting call
            log.exception("inference failed for a batch of %d", len(batch))
            results = [e] * len(batch)
        took = time.monotonic() - started
        with self._cond:
            for j in batch:
                if not j.final and j.request.cache:
                    self._caching.discard(j.key)
                    self._cond.notify_all()  # its final may go now
            self._batches += 1
            self._requests += len(batch)
            self._busy += took
            self._audio += sum(j.seconds for j in batch)
            self._max_wait = max(self._max_wait, max(started - j.submitted for j in batch))
        if self.on_batch is not None:
            try:
                self.on_batch([(j.final, started - j.submitted) for j in batch], took)
            except Exception:  # noqa: BLE001 - metrics must not stop inference
                log.exception("inference metrics hook failed")
        for job, res in zip(batch, results):
            self._resolve(job, res)

    @staticmethod
    def _resolve(job: _Job, value) -> None:
        def settle() -> None:
            if job.future.done():
                return
            if isinstance(value, BaseException):
                job.future.set_exception(value)
            else:
                job.future.set_result(value)

        try:
            job.loop.call_soon_threadsafe(settle)
        except RuntimeError:  # loop closed: nobody is waiting any more
            pass
