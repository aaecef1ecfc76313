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
    "probe",  # dialect-probe decode rows (two per probed final)
    "dialect",  # dialect-classifier rows
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


__all__ = ["KINDS", "WorkCounters", "ReuseCache", "Entry", "audio_key"]
