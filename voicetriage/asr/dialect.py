"""Chinese variety from the Whisper encoder: a small linear classifier on pooled encoder output.

The final's encoder output (computed anyway to decode it) is pooled over the
frames that hold the utterance (mean and standard deviation per channel) and
scored by a multinomial logistic regression over Mandarin, Cantonese and Wu.
The weights are a small ``.npz`` under ``models/`` (shipped in the wheel as
``voicetriage/_models/``), trained by ``python -m benchmarks.train_dialect`` on
the tuning half of ../shared/eval only (see docs/signals.md); each file names
the model it was trained on, and loading it for another model is refused.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from voicetriage.core.errors import ModelError

log = logging.getLogger(__name__)

FRAME_SAMPLES = 320  # one Whisper encoder frame: 20 ms at 16 kHz
MIN_FRAMES = 10  # under 0.2 s the pooled statistics say nothing


def model_fingerprint(model_dir: str | Path) -> str:
    """What identifies a CTranslate2 Whisper model's weights cheaply: model.bin's size."""
    p = Path(model_dir) / "model.bin"
    try:
        return f"model.bin:{p.stat().st_size}"
    except OSError:
        return "model.bin:?"


def pool(encoded: np.ndarray, samples: int) -> np.ndarray | None:
    """Mean and standard deviation over the frames that hold ``samples`` of audio.

    ``encoded`` is one row of the encoder output, (frames, width). None when the
    audio is too short to say anything."""
    n = min(encoded.shape[0], int(np.ceil(samples / FRAME_SAMPLES)))
    if n < MIN_FRAMES:
        return None
    x = np.asarray(encoded[:n], dtype=np.float64)
    return np.concatenate([x.mean(axis=0), x.std(axis=0)]).astype(np.float32)


def encoder_rows(encoded) -> np.ndarray | None:
    """The encoder output as a numpy array (batch, frames, width), or None if it
    cannot be read back (a device the StorageView does not convert from)."""
    try:
        return np.asarray(encoded)
    except (TypeError, ValueError, RuntimeError):
        pass
    try:
        import ctranslate2

        return np.asarray(encoded.to_device(ctranslate2.Device.cpu))
    except Exception:  # noqa: BLE001 - any failure means: no classifier on this batch
        return None


@dataclass(frozen=True)
class DialectClassifier:
    """Standardise, then ``W x + b``; log-probabilities per label."""

    labels: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray  # (labels, features)
    bias: np.ndarray  # (labels,)
    model: str  # the model id it was trained for
    fingerprint: str  # model_fingerprint() of those weights
    info: dict

    @classmethod
    def load(cls, path: str | Path) -> "DialectClassifier":
        p = Path(path)
        try:
            with np.load(p, allow_pickle=False) as z:
                meta = json.loads(str(z["meta"]))
                c = cls(
                    labels=tuple(meta["labels"]), mean=z["mean"].astype(np.float32),
                    scale=z["scale"].astype(np.float32), weights=z["weights"].astype(np.float32),
                    bias=z["bias"].astype(np.float32), model=str(meta["model"]),
                    fingerprint=str(meta["fingerprint"]), info=dict(meta.get("info", {})),
                )
        except FileNotFoundError:
            raise ModelError(f"dialect classifier {p} does not exist") from None
        except (OSError, KeyError, ValueError, TypeError) as e:
            raise ModelError(f"dialect classifier {p}: not a classifier file ({e})") from None
        dim = c.mean.shape[0]
        if c.scale.shape != (dim,) or c.weights.shape != (len(c.labels), dim) or c.bias.shape != (len(c.labels),):
            raise ModelError(f"dialect classifier {p}: inconsistent shapes")
        return c

    def check_model(self, model_id: str, fingerprint: str, where: str = "") -> None:
        """Refuse a classifier trained on another model's encoder (its features mean nothing there)."""
        if fingerprint != self.fingerprint:
            raise ModelError(
                f"dialect classifier{' ' + where if where else ''} was trained for model {self.model!r} "
                f"({self.fingerprint}), not for {model_id!r} ({fingerprint}): train one for this model "
                f"(python -m benchmarks.train_dialect --model {model_id}) or set [asr] dialect_classifier = \"\""
            )

    @property
    def threshold(self) -> float:
        """The call-level bound chosen by cross-validation (benchmarks/train_dialect.py): the
        highest held-out Mandarin call's log-odds for a dialect, plus a margin."""
        return float(self.info.get("threshold", 0.0))

    def margins(self, features: np.ndarray) -> dict[str, float]:
        """Per dialect: log-odds over Mandarin minus :attr:`threshold` (> 0: beyond every
        Mandarin call the classifier was cross-validated on). Mandarin itself is left out."""
        lp = self.log_probs(features)
        base = lp.get("mandarin", 0.0)
        return {k: round(v - base - self.threshold, 3) for k, v in lp.items() if k != "mandarin"}

    def log_probs(self, features: np.ndarray) -> dict[str, float]:
        if features.shape != self.mean.shape:
            raise ValueError(f"expected {self.mean.shape[0]} features, got {features.shape}")
        z = (features - self.mean) / self.scale
        s = self.weights @ z + self.bias
        s = s - s.max()
        lp = s - np.log(np.exp(s).sum())
        return {k: round(float(v), 3) for k, v in zip(self.labels, lp)}


def default_path(model_id: str) -> Path | None:
    """The shipped classifier for a registry model id, if there is one."""
    here = Path(__file__).resolve().parent.parent
    name = f"dialect-{model_id}.npz"
    for candidate in (here / "_models" / name, here.parent / "models" / name):
        if candidate.is_file():
            return candidate
    return None


def load_for(setting: str, model_id: str, model_dir: str | Path) -> DialectClassifier | None:
    """The classifier ``[asr] dialect_classifier`` asks for: "auto" (the shipped one for
    this model, none if there is none), "" (none) or a path (must match the model)."""
    if not setting:
        return None
    fp = model_fingerprint(model_dir)
    if setting == "auto":
        path = default_path(model_id)
        if path is None:
            log.info("no dialect classifier ships for model %s", model_id)
            return None
        clf = DialectClassifier.load(path)
        if clf.fingerprint != fp:
            log.warning("dialect classifier %s is for another model (%s); not used with %s", path, clf.model, model_id)
            return None
        return clf
    clf = DialectClassifier.load(setting)
    clf.check_model(model_id, fp, where=str(setting))
    return clf


__all__ = ["DialectClassifier", "pool", "encoder_rows", "load_for", "model_fingerprint", "default_path"]
