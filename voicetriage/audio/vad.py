"""Streaming voice activity detection with the Silero VAD that faster-whisper ships.

One :class:`VadModel` (an ONNX session) is shared by every call; each audio
track keeps its own :class:`VadStream` state (the LSTM state and the last
64 samples of context), so a call's result does not depend on how its audio
was cut into frames.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from voicetriage.core.config import StreamConfig

WINDOW = 512  # samples at 16 kHz = 32 ms
CONTEXT = 64
WINDOW_S = WINDOW / 16000


class VadModel:
    """The Silero VAD v6 ONNX model from faster-whisper's assets."""

    def __init__(self, path: str | None = None) -> None:
        import os

        import onnxruntime
        from faster_whisper.utils import get_assets_path

        opts = onnxruntime.SessionOptions()
        opts.inter_op_num_threads = 1
        opts.intra_op_num_threads = 1
        opts.log_severity_level = 4
        self.session = onnxruntime.InferenceSession(
            path or os.path.join(get_assets_path(), "silero_vad_v6.onnx"),
            providers=["CPUExecutionProvider"],
            sess_options=opts,
        )

    def stream(self, reset_after: int = 0, reset_below: float = 0.35) -> "VadStream":
        return VadStream(self, reset_after, reset_below)

    def stream_for(self, config: "StreamConfig") -> "VadStream":
        """A track's stream with the call's ``[stream]`` settings (the state reset after
        ``vad_reset_silence_ms`` below ``vad_neg_threshold``)."""
        return self.stream(reset_after=round(config.vad_reset_silence_ms / 1000 / WINDOW_S),
                           reset_below=config.vad_neg_threshold)

    def run(self, windows: np.ndarray, h: np.ndarray, c: np.ndarray):
        """Speech probabilities for consecutive (n, CONTEXT+WINDOW) rows."""
        probs, h, c = self.session.run(None, {"input": windows, "h": h, "c": c})
        return np.asarray(probs, dtype=np.float32).reshape(-1), h, c


class VadStream:
    """Per-track state: feed any number of samples, get one probability per window.

    ``reset_after`` > 0: after that many consecutive windows below ``reset_below``
    the LSTM state is zeroed, as at the start of a stream. The state carried
    across a call remembers a loud talker: a quiet one after it scored 0.55 at
    most where the same clip alone scores 0.96, and was lost. The decision is
    taken window by window, so the output still does not depend on how the
    audio was cut into frames.
    """

    def __init__(self, model: VadModel, reset_after: int = 0, reset_below: float = 0.35) -> None:
        self.model = model
        self.reset_after = reset_after
        self.reset_below = reset_below
        self.resets = 0
        self._h = np.zeros((1, 1, 128), dtype=np.float32)
        self._c = np.zeros((1, 1, 128), dtype=np.float32)
        self._context = np.zeros(CONTEXT, dtype=np.float32)
        self._pending = np.zeros(0, dtype=np.float32)
        self._quiet = 0  # consecutive windows below reset_below

    @property
    def pending(self) -> int:
        """Samples held for the next window."""
        return len(self._pending)

    def reset(self) -> None:
        """The state of a fresh stream (after a gap the clock jumped over)."""
        self._h = np.zeros_like(self._h)
        self._c = np.zeros_like(self._c)
        self._context = np.zeros(CONTEXT, dtype=np.float32)
        self._pending = np.zeros(0, dtype=np.float32)
        self._quiet = 0

    def feed(self, samples: np.ndarray) -> np.ndarray:
        """Probabilities for every complete 512-sample window now available."""
        buf = np.concatenate([self._pending, np.asarray(samples, dtype=np.float32)])
        n = len(buf) // WINDOW
        self._pending = buf[n * WINDOW :]
        if n == 0:
            return np.zeros(0, dtype=np.float32)
        wins = buf[: n * WINDOW].reshape(n, WINDOW)
        ctx = np.empty((n, CONTEXT), dtype=np.float32)
        ctx[0] = self._context
        if n > 1:
            ctx[1:] = wins[:-1, -CONTEXT:]
        self._context = wins[-1, -CONTEXT:].copy()
        rows = np.ascontiguousarray(np.concatenate([ctx, wins], axis=1))
        if self.reset_after <= 0:
            probs, self._h, self._c = self.model.run(rows, self._h, self._c)
            return probs
        out = np.empty(n, dtype=np.float32)
        i = 0
        while i < n:
            # run up to the window where a reset could fall due, then decide
            k = min(n, i + max(1, self.reset_after - self._quiet))
            probs, h, c = self.model.run(rows[i:k], self._h, self._c)
            j = 0
            for j, p in enumerate(probs):
                self._quiet = self._quiet + 1 if p < self.reset_below else 0
                if self._quiet >= self.reset_after:
                    break
            out[i : i + j + 1] = probs[: j + 1]
            if self._quiet >= self.reset_after:
                self._h = np.zeros_like(self._h)
                self._c = np.zeros_like(self._c)
                self._quiet = 0
                self.resets += 1
                i += j + 1
                if j + 1 < len(probs):
                    continue  # the rest of that run is decoded again from the fresh state
            else:
                self._h, self._c = h, c
                i = k
        return out
