"""Helpers for the signal tests: event factories and synthetic voiced audio (no model needed).

A module of its own (not conftest.py): ``conftest`` names several files in the suite.
"""

from __future__ import annotations

import numpy as np

from voicetriage.core.events import Dtmf, Final, Partial

RATE = 16000


def make_final(text: str, start: float = 0.0, end: float | None = None, *, utterance: int = 0,
               language: str = "zh", prob: float = 0.99, logprob: float = -0.3, no_speech: float = 0.02,
               speech_s: float | None = None, track: str = "caller", call_id: str = "c1",
               candidates: tuple = (), probe: float | None = None, temperature: float = 0.0,
               compression: float = 0.0, dialect: dict | None = None) -> Final:
    end = start + 2.0 if end is None else end
    return Final(call_id, track, utterance, start, end, text, language, prob, logprob, no_speech,
                 "silence", (end - start) * 0.85 if speech_s is None else speech_s,
                 language_candidates=tuple(candidates), compression_ratio=compression,
                 temperature=temperature, dialect_probe=probe,
                 dialect_scores=tuple((dialect or {}).items()))


def make_partial(stable: str, unstable: str = "", start: float = 0.0, end: float = 1.0, *,
                 utterance: int = 0, track: str = "caller", call_id: str = "c1", language: str = "zh",
                 prob: float = 0.99, logprob: float | None = -0.3, compression: float = 0.0,
                 pause: float = 0.0) -> Partial:
    return Partial(call_id, track, utterance, start, end, stable, unstable, language, prob,
                   avg_logprob=logprob, compression_ratio=compression, pause_s=pause)


def make_dtmf(digit: str, time: float, track: str = "caller") -> Dtmf:
    return Dtmf("c1", track, digit, time)


def tone(f0: float, seconds: float, level: float = 0.1, harmonics: int = 8, jitter: float = 0.0,
         seed: int = 0) -> np.ndarray:
    """A voiced-like harmonic complex at ``f0`` (optionally with random pitch wobble)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    f = np.full(n, f0) * (1 + jitter * rng.standard_normal(n).cumsum() / np.sqrt(n))
    phase = 2 * np.pi * np.cumsum(f) / RATE
    x = sum(np.sin(k * phase) / k for k in range(1, harmonics + 1))
    return (level * x / np.max(np.abs(x))).astype(np.float32)
