import asyncio
import threading

import numpy as np

from voicetriage.asr.engine import AsrRequest
from voicetriage.asr.worker import InferenceWorker
from voicetriage.core.events import AsrResult


class FakeEngine:
    """Records batches; blocks on a gate so tests can queue work first."""

    def __init__(self):
        self.batches = []
        self.gate = threading.Event()

    def window_seconds(self, duration):
        return 10.0 if duration <= 10 else 30.0

    def transcribe_batch(self, reqs):
        self.gate.wait(10)
        self.batches.append([r.prompt for r in reqs])
        return [AsrResult(r.prompt, "en", 1.0, -0.1, 0.0) for r in reqs]


def req(tag, seconds=1.0):
    return AsrRequest(np.zeros(int(seconds * 16000), np.float32), "en", tag)


async def test_finals_first_round_robin_and_partial_replacement():
    eng = FakeEngine()
    w = InferenceWorker(eng, max_batch=1)
    w.start()
    try:
        first = w.submit("A", "caller", req("A-f0"), final=True)  # occupies the worker
        await asyncio.sleep(0.05)
        futs = [
            w.submit("A", "caller", req("A-f1"), final=True),
            w.submit("A", "caller", req("A-f2"), final=True),
            w.submit("A", "caller", req("A-f3"), final=True),
            w.submit("B", "caller", req("B-p1"), final=False),
            w.submit("C", "caller", req("C-f1"), final=True),
        ]
        replaced = futs[3]
        futs.append(w.submit("B", "caller", req("B-p2"), final=False))
        eng.gate.set()
        results = await asyncio.gather(first, *futs)
        assert await replaced is None  # superseded partial
        order = [b[0] for b in eng.batches]
        # A's backlog does not starve C; finals before the partial; B's stale partial never runs
        assert order == ["A-f0", "C-f1", "A-f1", "A-f2", "A-f3", "B-p2"] or order == [
            "A-f0", "A-f1", "C-f1", "A-f2", "A-f3", "B-p2"]
        assert order.index("C-f1") <= 2
        assert results[-1].text == "B-p2"
    finally:
        w.stop()


async def test_batches_same_window_only():
    eng = FakeEngine()
    w = InferenceWorker(eng, max_batch=4)
    w.start()
    try:
        blocker = w.submit("Z", "caller", req("Z"), final=True)
        await asyncio.sleep(0.05)
        futs = [w.submit(c, "caller", req(c, 2.0), final=True) for c in "ABC"]
        futs.append(w.submit("D", "caller", req("D-long", 20.0), final=True))
        eng.gate.set()
        await asyncio.gather(blocker, *futs)
        assert ["A", "B", "C"] in eng.batches
        assert ["D-long"] in eng.batches
        assert w.stats().requests == 5
    finally:
        w.stop()


async def test_engine_error_reaches_caller_and_worker_survives():
    class Broken(FakeEngine):
        def transcribe_batch(self, reqs):
            if reqs[0].prompt == "boom":
                raise RuntimeError("boom")
            return super().transcribe_batch(reqs)

    eng = Broken()
    eng.gate.set()
    w = InferenceWorker(eng)
    w.start()
    try:
        bad = w.submit("A", "caller", req("boom"), final=True)
        try:
            await bad
            raise AssertionError("expected an error")
        except RuntimeError:
            pass
        ok = await w.submit("B", "caller", req("fine"), final=True)
        assert ok.text == "fine"
    finally:
        w.stop()


async def test_two_threads_decode_two_calls_at_once():
    class Overlap(FakeEngine):
        def __init__(self):
            super().__init__()
            self.barrier = threading.Barrier(2, timeout=5)
            self.gate.set()

        def transcribe_batch(self, reqs):
            self.barrier.wait()  # passes only if two batches run at the same time
            return super().transcribe_batch(reqs)

    eng = Overlap()
    w = InferenceWorker(eng, max_batch=1, threads=2)
    w.start()
    try:
        a = w.submit("A", "caller", req("A"), final=True)
        b = w.submit("B", "caller", req("B"), final=True)
        ra, rb = await asyncio.wait_for(asyncio.gather(a, b), 10)
        assert (ra.text, rb.text) == ("A", "B")
    finally:
        w.stop()


async def test_partials_are_shed_while_finals_wait_and_finals_never_are():
    eng = FakeEngine()
    w = InferenceWorker(eng, max_batch=1, shed_backlog=2)
    w.start()
    try:
        first = w.submit("A", "caller", req("A-f0"), final=True)  # occupies the worker
        await asyncio.sleep(0.05)
        kept = w.submit("B", "caller", req("B-p0"), final=False)  # no backlog yet: queued
        finals = [w.submit(c, "caller", req(f"{c}-f1"), final=True) for c in "ABC"]
        shed = w.submit("D", "caller", req("D-p1"), final=False)  # 3 finals waiting > 2
        assert shed.done() and shed.result() is None
        replaced_by_final = w.submit("B", "caller", req("B-p1"), final=False)
        assert replaced_by_final.done() and w.stats().shed_partials == 2  # D-p1, B-p1
        assert await kept is None  # superseded by B's final, as before
        eng.gate.set()
        results = await asyncio.gather(first, *finals)
        assert [r.text for r in results] == ["A-f0", "A-f1", "B-f1", "C-f1"]  # every final decoded
        assert [b[0] for b in eng.batches] == ["A-f0", "A-f1", "B-f1", "C-f1"]
        late = w.submit("D", "caller", req("D-p2"), final=False)  # backlog gone: partials run again
        assert (await late).text == "D-p2"
    finally:
        w.stop()


async def test_side_work_is_allowed_only_while_another_thread_is_idle():
    """asr.split_final_work asks the worker before it puts a probe beside a fallback."""

    class Asks(FakeEngine):
        side_allowed = None

        def __init__(self):
            super().__init__()
            self.answers = []

        def transcribe_batch(self, reqs):
            self.gate.wait(10)  # asked once every request below is queued
            self.answers.append((reqs[0].prompt, self.side_allowed()))
            return super().transcribe_batch(reqs)

    eng = Asks()
    w = InferenceWorker(eng, max_batch=1, threads=2)
    assert eng.side_allowed == w.idle_capacity and w.idle_capacity()
    w.start()
    try:
        eng.gate.set()
        assert (await asyncio.wait_for(w.submit("A", "caller", req("alone"), final=True), 10)).text == "alone"
        eng.gate.clear()  # now three requests of three calls: one waits while two run
        futs = [w.submit(c, "caller", req(c), final=True) for c in "BCD"]
        await asyncio.sleep(0.3)
        eng.gate.set()
        await asyncio.wait_for(asyncio.gather(*futs), 10)
    finally:
        w.stop()
    assert eng.answers[0] == ("alone", True)  # the other thread had nothing to do
    # the two that ran together while a third waited were refused the side worker (both
    # threads stay inside transcribe_batch until they have asked, so the third is still queued)
    assert sorted(ok for _, ok in eng.answers[1:3]) == [False, False]
