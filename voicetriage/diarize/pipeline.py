"""pyannote.audio's speaker-diarization pipeline on the registry's weights.

:class:`Diarizer` wraps ``pyannote.audio.pipelines.SpeakerDiarization`` built
from two registry models (segmentation-3.0 and the CAM++ embedding, both from
installed packages, verified by sha256) with agglomerative clustering, or a
user's own pyannote pipeline folder (``config.yaml`` plus checkpoints) loaded
offline with ``Pipeline.from_pretrained``. Audio always goes in as an
in-memory waveform, so no audio decoder (torchcodec) is needed.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from voicetriage.core.errors import ConfigError, ModelError
from voicetriage.core.events import SAMPLE_RATE
from voicetriage.diarize import environment

log = logging.getLogger(__name__)

SEGMENTATION_MODEL = "segmentation-3.0"
EMBEDDING_MODEL = "campplus-zh-en"
# Agglomerative clustering on cosine distances of CAM++ embeddings. The
# threshold only matters when the number of speakers is not given (--speakers
# auto); chosen on the kit's tuning conversations (see voicetriage.diarize.conversations).
DEFAULT_THRESHOLD = 0.75
DEFAULT_MIN_CLUSTER_SIZE = 12


@dataclass(frozen=True)
class DiarizationOptions:
    """``speakers``: how many speakers a recording has (None: count them, between
    ``min_speakers`` and ``max_speakers``). ``pipeline_dir``: a pyannote pipeline
    folder to use instead of the registry models."""

    speakers: int | None = 2
    min_speakers: int = 1
    max_speakers: int = 8
    threshold: float = DEFAULT_THRESHOLD
    min_cluster_size: int = DEFAULT_MIN_CLUSTER_SIZE
    min_duration_off: float = 0.0
    segmentation_step: float = 0.1
    pipeline_dir: Path | None = None
    cache_dir: Path | None = None
    # torch intra-op threads; one is fastest on a shared 2-core machine (more
    # threads spin against the ASR worker and other calls)
    threads: int = 1
    # re-cluster pyannote's speech turns by whole-turn CAM++ embeddings (see Diarizer.refine)
    refine: bool = True

    def __post_init__(self) -> None:
        if self.speakers is not None and not 1 <= self.speakers <= 20:
            raise ConfigError(f"speakers: expected 1..20 or auto, got {self.speakers}")
        if not 1 <= self.min_speakers <= self.max_speakers:
            raise ConfigError(f"speakers: need 1 <= min ({self.min_speakers}) <= max ({self.max_speakers})")
        if not 0.0 < self.threshold < 2.0:
            raise ConfigError(f"clustering threshold must be in (0, 2), got {self.threshold}")
        if self.threads < 1:
            raise ConfigError(f"diarization threads must be at least 1, got {self.threads}")
        if not 0.05 <= self.segmentation_step <= 1.0:
            raise ConfigError(f"segmentation step must be in [0.05, 1] (of a window), got {self.segmentation_step}")


def parse_speakers(value: str) -> int | None:
    """``--speakers``: a positive count, or ``auto``."""
    if value.strip().lower() == "auto":
        return None
    try:
        n = int(value)
    except ValueError:
        n = 0
    if not 1 <= n <= 20:
        raise ConfigError(f"--speakers: expected a number of speakers (1-20) or 'auto', got {value!r}")
    return n


def resolve_weights(cache_dir: Path | None = None) -> dict[str, Path]:
    """The verified weight files of the registry's diarization models."""
    from voicetriage.asr.registry import resolve_model

    seg = resolve_model(SEGMENTATION_MODEL, cache_dir=cache_dir, kind="segmentation")
    emb = resolve_model(EMBEDDING_MODEL, cache_dir=cache_dir, kind="speaker-embedding")
    return {
        SEGMENTATION_MODEL: seg.path / "pytorch_model.bin",
        EMBEDDING_MODEL: emb.path / "campplus_cn_en_common.pt",
    }


def _embedding_model(weights: Path):
    """A pyannote ``Model`` around CAM++ that the pipeline accepts as its embedding."""
    import torch
    import torch.nn.functional as F
    from pyannote.audio import Model

    from voicetriage.diarize.campplus import EMBEDDING_DIM, CamPlusPlus, fbank

    class CamPlusPlusEmbedding(Model):
        def __init__(self) -> None:
            super().__init__(sample_rate=SAMPLE_RATE, num_channels=1)
            self.net = CamPlusPlus()

        @property
        def dimension(self) -> int:
            return EMBEDDING_DIM

        def forward(self, waveforms: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
            # The pipeline sends each window once per local speaker (same waveform,
            # other mask): compute the frames once per distinct waveform.
            index: list[int] = []
            unique: list[torch.Tensor] = []
            for w in waveforms:
                if unique and w.shape == unique[-1].shape and torch.equal(w, unique[-1]):
                    index.append(len(unique) - 1)
                else:
                    unique.append(w)
                    index.append(len(unique) - 1)
            frames = self.net.frames(fbank(torch.stack(unique), SAMPLE_RATE))[torch.tensor(index)]
            if weights is not None:
                weights = F.interpolate(weights.unsqueeze(1).float(), size=frames.shape[-1], mode="nearest")[:, 0]
            return self.net.pool(frames, weights)

    model = CamPlusPlusEmbedding()
    try:
        state = torch.load(str(weights), map_location="cpu", weights_only=True)
        model.net.load_state_dict(state, strict=True)
    except Exception as e:  # a truncated or foreign file
        raise ModelError(f"cannot load the CAM++ embedding weights {weights}: {e}") from None
    return model.eval()


def _unused_plda():
    """pyannote 4.0 always loads a PLDA; agglomerative clustering never uses it."""
    from pyannote.audio.core.plda import PLDA

    class UnusedPLDA(PLDA):
        def __init__(self) -> None:  # no transform files: only VBx clustering would need them
            pass

    return UnusedPLDA()


class Diarizer:
    """Loaded once; call it with 16 kHz float32 mono samples -> ``pyannote.core.Annotation``."""

    def __init__(self, pipeline: Any, options: DiarizationOptions, source: str, embedding: Any = None) -> None:
        self.pipeline = pipeline
        self.options = options
        self.source = source  # "registry" or the pipeline folder
        self.embedding = embedding  # the CAM++ Model, for refine (None: no refinement)
        self.last_seconds = 0.0

    @classmethod
    def load(cls, options: DiarizationOptions | None = None) -> "Diarizer":
        options = options or DiarizationOptions()
        environment.require()
        import torch

        torch.set_num_threads(options.threads)
        if options.pipeline_dir is not None:
            return cls(_load_folder(Path(options.pipeline_dir)), options, str(options.pipeline_dir))
        from pyannote.audio import Model
        from pyannote.audio.pipelines import SpeakerDiarization

        weights = resolve_weights(options.cache_dir)
        try:
            segmentation = Model.from_pretrained(str(weights[SEGMENTATION_MODEL]))
        except Exception as e:
            raise ModelError(f"cannot load segmentation weights {weights[SEGMENTATION_MODEL]}: {e}") from None
        if segmentation is None:
            raise ModelError(f"cannot load segmentation weights {weights[SEGMENTATION_MODEL]}")
        embedding = _embedding_model(weights[EMBEDDING_MODEL])
        pipeline = SpeakerDiarization(
            segmentation=segmentation,
            segmentation_step=options.segmentation_step,
            embedding=embedding,
            embedding_exclude_overlap=True,
            plda=_unused_plda(),
            clustering="AgglomerativeClustering",
            embedding_batch_size=3,  # one window, its (up to) 3 local speakers: framed once
            segmentation_batch_size=16,
        )
        pipeline.instantiate({
            "segmentation": {"min_duration_off": options.min_duration_off},
            "clustering": {
                "method": "centroid",
                "min_cluster_size": options.min_cluster_size,
                "threshold": options.threshold,
            },
        })
        return cls(pipeline, options, "registry", embedding if options.refine else None)

    def __call__(self, samples: np.ndarray, speakers: int | None | str = "default"):
        """Diarize one recording; ``speakers`` overrides the options' count."""
        import torch

        n = self.options.speakers if speakers == "default" else speakers
        audio = np.asarray(samples, dtype=np.float32).reshape(-1)
        if audio.size < SAMPLE_RATE // 2:
            from pyannote.core import Annotation

            return Annotation()
        kwargs: dict[str, Any] = {}
        if n is not None:
            kwargs["num_speakers"] = n
        else:
            kwargs.update(min_speakers=self.options.min_speakers, max_speakers=self.options.max_speakers)
        t0 = time.perf_counter()
        with torch.inference_mode():
            out = self.pipeline({"waveform": torch.from_numpy(audio)[None], "sample_rate": SAMPLE_RATE}, **kwargs)
        ann = getattr(out, "speaker_diarization", out)
        if self.embedding is not None:
            ann = self.refine(audio, ann, n)
        self.last_seconds = time.perf_counter() - t0
        return ann

    def refine(self, audio: np.ndarray, ann, speakers: int | None, piece_s: float = 3.0, min_s: float = 0.5):
        """Re-cluster pyannote's turns by embeddings of the turns themselves.

        pyannote's segmentation model sometimes gives two speakers of one 10 s
        window the same local label (seen on an IVR voice against a caller, and
        on two Cantonese speakers); the window's embedding then mixes both and
        clustering cannot undo it, though the turn boundaries are right. Here
        every turn (cut to at most ``piece_s``) is embedded on its own and the
        turns are clustered again (average linkage, cosine); turns shorter
        than ``min_s`` keep the speaker their pyannote label mostly maps to.
        """
        import torch
        from pyannote.core import Annotation, Segment
        from scipy.cluster.hierarchy import fcluster, linkage

        pieces = []  # (segment, original label)
        for seg, _, label in ann.itertracks(yield_label=True):
            n_parts = max(1, int(np.ceil(seg.duration / piece_s)))
            step = seg.duration / n_parts
            for k in range(n_parts):
                pieces.append((Segment(seg.start + k * step, seg.start + (k + 1) * step), label))
        long_ = [i for i, (seg, _) in enumerate(pieces) if seg.duration >= min_s]
        if len(long_) < 2:
            return ann
        with torch.inference_mode():
            embs = []
            for i in long_:
                seg = pieces[i][0]
                x = audio[int(seg.start * SAMPLE_RATE): int(seg.end * SAMPLE_RATE)]
                embs.append(self.embedding(torch.from_numpy(np.ascontiguousarray(x))[None, None]).numpy()[0])
        e = np.array(embs, dtype=np.float64)
        e /= np.linalg.norm(e, axis=1, keepdims=True) + 1e-9
        z = linkage(e, method="average", metric="cosine")
        if speakers is not None:
            clusters = fcluster(z, min(speakers, len(long_)), criterion="maxclust")
        else:
            clusters = fcluster(z, self.options.threshold, criterion="distance")
        label_of = {i: f"SPEAKER_{c - 1:02d}" for i, c in zip(long_, clusters)}
        votes: dict[str, dict[str, float]] = {}
        for i, lab in label_of.items():
            seg, orig = pieces[i]
            votes.setdefault(orig, {}).setdefault(lab, 0.0)
            votes[orig][lab] += seg.duration
        out = Annotation(uri=ann.uri)
        for i, (seg, orig) in enumerate(pieces):
            lab = label_of.get(i) or max(votes.get(orig, {orig: 1.0}).items(), key=lambda kv: kv[1])[0]
            out[seg, i] = lab
        # adjacent pieces of one speaker become one turn again
        return out.support(collar=0.0)


def _load_folder(path: Path):
    """A user's pyannote pipeline folder (config.yaml + checkpoints), offline."""
    if not path.is_dir():
        raise ConfigError(f"--diarization-pipeline {path}: not a directory")
    if not (path / "config.yaml").is_file():
        raise ConfigError(f"--diarization-pipeline {path}: no config.yaml (a pyannote pipeline folder has one)")
    from pyannote.audio import Pipeline

    try:
        pipeline = Pipeline.from_pretrained(path)
    except Exception as e:
        raise ModelError(f"--diarization-pipeline {path}: pyannote could not load it: {e}") from None
    if pipeline is None:
        raise ModelError(f"--diarization-pipeline {path}: pyannote could not load it")
    return pipeline
