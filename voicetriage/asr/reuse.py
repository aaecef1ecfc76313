"""Work counters of the recogniser, and the encoder/decode reuse cache.

:class:`WorkCounters` counts what the inference threads run (encoder rows,
language detections, greedy decodes of finals and partials, fallback samples,
dialect-probe decodes) and the seconds each took, so a benchmark can say how
many decodes a final costs rather than only how busy the thread was.

:class:`ReuseCache` keeps, for the last few stretches of audio the encoder
saw, the encoder output row, the detector's distribution and the greedy
decodes made on it. A final whose audio is exactly that of a partial decoded
just before (the pause partial the session asks for when a pause starts;
see ``CallSession._maybe_partial``) then costs no encoder pass, no detection
and, when its language and prompt match, no decode: the greedy decode is
deterministic, so the text is the one a fresh decode would give.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

# what the counters count (rows: one utterance in a batch)
KINDS = (
    "encode",  # encoder rows computed
    "encode_reused",  # encoder rows taken from the cache
    "detect",  # language-detection rows
    "greedy_final",  # greedy decode rows of finals
    "greedy_partial",  # greedy decode rows of partials
    "greedy_reused",  # greedy decodes taken from the cache (finals after their pause partial)
    "fallback",  # temperature-fallback rows (each samples best_of hypotheses)
    "fallback_loop",  # the fallback rows of decodes that looped (their share of the seconds)
    "loop_finals",  # finals whose greedy decode looped (asr.fallback_loop_temperatures)
    "loop_guard",  # finals still looping after the fallback, cut by the loop guard
    "probe",  # dialect-probe decode rows (two per probed final)
    "probe_beside",  # batches whose probe ran beside their fallback on an idle worker (split_final_work)
    "dialect",  # dialect-classifier rows
    "speculated",  # pause partials that ran their final's fallback or probe ahead (asr.speculate)
    "speculation_used",  # finals that took such a fallback decode or probe (the rest was wasted)
    "finals",  # final requests
    "partials",  # partial requests
)


class WorkCounters:
    """Thread-safe counts and seconds per kind of work (:data:`KINDS`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._n = {k: 0 for k in KINDS}
        self._s = {k: 0.0 for k in KINDS}

    def add(self, kind: str, n: int = 1, seconds: float = 0.0) -> None:
        with self._lock:
            self._n[kind] = self._n.get(kind, 0) + n
            self._s[kind] = self._s.get(kind, 0.0) + seconds

    def snapshot(self) -> dict[str, dict[str, float]]:
        """``{"counts": {kind: n}, "seconds": {kind: s}}``."""
        with self._lock:
            return {"counts": dict(self._n), "seconds": {k: round(v, 4) for k, v in self._s.items()}}


def audio_key(audio: np.ndarray) -> bytes:
    """Identity of a stretch of audio: its length and a digest of its samples."""
    a = np.ascontiguousarray(audio, dtype=np.float32)
    return len(a).to_bytes(8, "little") + hashlib.blake2b(a.tobytes(), digest_size=16).digest()


@dataclass
class Entry:
    window: float  # the padded window (s) the row was computed in
    row: np.ndarray  # the encoder output of this audio (frames x dims)
    detection: list[tuple[str, float]] | None
    decodes: dict[tuple, tuple] = field(default_factory=dict)  # prompt ids -> (max_len, _Decode)
    # a speculating pause partial's decode after the final's checks and fallback
    settled: dict[tuple, tuple] = field(default_factory=dict)  # prompt ids -> (max_len, _Decode)
    probe: tuple | None = None  # (max_len, probe value, longer decode's length with prompt)


class ReuseCache:
    """The last ``size`` audio stretches' encoder rows and greedy decodes (LRU)."""

    def __init__(self, size: int = 64) -> None:
        self.size = size
        self._lock = threading.Lock()
        self._d: OrderedDict[bytes, Entry] = OrderedDict()

    def get(self, key: bytes, window: float) -> Entry | None:
        with self._lock:
            e = self._d.get(key)
            if e is None or e.window != window:
                return None
            self._d.move_to_end(key)
            return e

    def put(self, key: bytes, entry: Entry) -> None:
        if self.size <= 0:
            return
        with self._lock:
            self._d[key] = entry
            self._d.move_to_end(key)
            while len(self._d) > self.size:
                self._d.popitem(last=False)

    def __len__(self) -> int:
        return len(self._d)


def _fits(cap: int, used: int, cap_now: int) -> bool:
    """A greedy decode made under length cap ``cap`` is the one ``cap_now`` gives: the
    same cap, or it ended (``used`` tokens with the prompt) before either cap."""
    return cap == cap_now or used + 1 < min(cap, cap_now)


def take_speculated(requests, entries, prompts, max_len, best) -> tuple[set[int], dict[int, float]]:
    """For finals whose cached pause partial speculated (``AsrRequest.speculate``): the
    items whose checked-and-fallen-back decode it kept (set into ``best``), and the
    probe values it kept. A sampled fallback decode is one draw of what the final's own
    would be; the probe is greedy, so it is exactly the final's own."""
    settled: set[int] = set()
    probes: dict[int, float] = {}
    for i, (r, e) in enumerate(zip(requests, entries)):
        if not r.final or e is None:
            continue
        got = e.settled.get(tuple(prompts[i]))
        if got is not None and _fits(got[0], len(got[1].ids) + len(prompts[i]), max_len):
            best[i] = got[1]
            settled.add(i)
        if r.dialect_probe and e.probe is not None and _fits(e.probe[0], e.probe[2], max_len):
            probes[i] = e.probe[1]
    return settled, probes


def keep_speculated(cache: ReuseCache, requests, keys, window, prompts, max_len, best, probes) -> int:
    """Keep each speculating partial's checked decode and fresh probe (``probes``:
    {item: (value, length)}) with its cache entry; returns how many ran extra work."""
    n = 0
    for i, r in enumerate(requests):
        e = cache.get(keys[i], window) if r.cache and r.speculate else None
        if e is None:
            continue
        e.settled[tuple(prompts[i])] = (max_len, best[i])
        if i in probes:
            e.probe = (max_len, probes[i][0], probes[i][1])
        n += best[i].temperature > 0 or i in probes
    return n


__all__ = ["KINDS", "WorkCounters", "ReuseCache", "Entry", "audio_key", "take_speculated", "keep_speculated"]
