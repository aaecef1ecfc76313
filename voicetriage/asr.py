"""The recogniser: one Whisper model (CTranslate2 via faster-whisper).

:func:`load_whisper` loads the model once. :class:`AsrEngine` transcribes
batches of short utterances (the streaming path) without padding every one to
Whisper's 30 s window: the audio is padded only up to a window of
``min_window_s`` rounded up to ``window_step_s``, which makes the encoder
several times cheaper on short utterances while keeping the text the same.
"""

from __future__ import annotations

import logging
import math
import os
import zlib
from dataclasses import dataclass

import numpy as np

from .config import AsrConfig
from .errors import ModelError
from .events import AsrResult
from .registry import ResolvedModel, resolve_model

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
MAX_WINDOW_S = 30.0


def load_whisper(config: AsrConfig):
    """Resolve ``config.model`` through the registry and load it.

    Returns ``(WhisperModel, ResolvedModel)``. faster-whisper is imported
    here, not at module import, so ``import voicetriage`` stays light.
    """
    from faster_whisper import WhisperModel

    resolved = resolve_model(config.model, cache_dir=config.model_cache_dir)
    threads = config.cpu_threads or (os.cpu_count() or 1)
    try:
        model = WhisperModel(
            str(resolved.path),
            device=config.device,
            compute_type=config.compute_type,
            cpu_threads=threads,
            num_workers=inference_workers(config),
            local_files_only=True,
        )
    except (RuntimeError, ValueError, OSError) as e:
        raise ModelError(f"cannot load model {resolved.id!r} from {resolved.path}: {e}") from None
    log.info("loaded model %s from %s (%s, %s)", resolved.id, resolved.path, config.device, config.compute_type)
    return model, resolved


# Chinese varieties a caller may announce; Whisper (before large-v3) writes
# them all under "zh".
_LANGUAGE_ALIASES = {"cmn": "zh", "yue": "zh", "wuu": "zh", "hak": "zh", "nan": "zh", "zho": "zh", "eng": "en"}


def normalise_language(hint: str | None, multilingual: bool = True) -> str | None:
    """A client's language hint ("zh-CN", "yue-HK", "en") to a Whisper code.

    Returns ``None`` for no hint. Raises :class:`ValueError` for a language
    Whisper does not know.
    """
    from faster_whisper.tokenizer import _LANGUAGE_CODES

    if hint is None or hint == "" or hint == "auto":
        return None
    if not isinstance(hint, str):
        raise ValueError(f"language must be a string, got {hint!r}")
    primary = hint.strip().lower().replace("_", "-").split("-")[0]
    primary = _LANGUAGE_ALIASES.get(primary, primary)
    if primary not in _LANGUAGE_CODES:
        raise ValueError(f"unsupported language {hint!r}")
    if not multilingual and primary != "en":
        raise ValueError(f"language {hint!r} needs a multilingual model; this one is English-only")
    return primary


def inference_workers(config: AsrConfig) -> int:
    """How many decodes may run at once (``config.inference_workers``, 0: auto)."""
    if config.inference_workers > 0:
        return config.inference_workers
    cores = os.cpu_count() or 1
    return max(1, cores // max(1, config.cpu_threads or cores))


@dataclass(frozen=True)
class AsrRequest:
    """One stretch of 16 kHz float32 audio to transcribe."""

    audio: np.ndarray
    language: str | None = None  # None: detect
    prompt: str | None = None  # previous text, to condition the decoder


def _compression_ratio(text: str) -> float:
    b = text.encode("utf-8")
    return len(b) / max(1, len(zlib.compress(b))) if b else 0.0


class AsrEngine:
    """Batched transcription of short utterances with one loaded model."""

    def __init__(self, model, resolved: ResolvedModel, config: AsrConfig) -> None:
        from faster_whisper.tokenizer import Tokenizer

        self.model = model
        self.resolved = resolved
        self.config = config
        self._tokenizer_cls = Tokenizer
        self._tokenizers: dict[str | None, object] = {}
        self.multilingual = bool(model.model.is_multilingual)

    @classmethod
    def load(cls, config: AsrConfig) -> "AsrEngine":
        model, resolved = load_whisper(config)
        return cls(model, resolved, config)

    def window_seconds(self, duration: float) -> float:
        """The padded window for ``duration`` seconds of audio."""
        c = self.config
        step = max(c.window_step_s, 0.5)
        w = max(c.min_window_s, math.ceil(duration / step) * step)
        return min(w, MAX_WINDOW_S)

    def _tokenizer(self, language: str | None):
        tok = self._tokenizers.get(language)
        if tok is None:
            tok = self._tokenizer_cls(
                self.model.hf_tokenizer, self.multilingual, task="transcribe",
                language=language if self.multilingual else None,
            )
            self._tokenizers[language] = tok
        return tok

    def transcribe_batch(self, requests: list[AsrRequest]) -> list[AsrResult]:
        """Transcribe several utterances in one encoder/decoder batch.

        All items are padded to the largest window in the batch. Blocking:
        call it from the inference thread, never from the event loop.
        """
        import ctranslate2

        if not requests:
            return []
        fe = self.model.feature_extractor
        longest = max(len(r.audio) for r in requests) / SAMPLE_RATE
        window = self.window_seconds(min(longest, MAX_WINDOW_S))
        n = int(window * SAMPLE_RATE)
        feats = []
        for r in requests:
            audio = np.asarray(r.audio, dtype=np.float32)[:n]
            audio = np.pad(audio, (0, n - len(audio)))
            f = fe(audio, padding=0)
            feats.append(f[:, : int(window * 100)])
        frames = min(f.shape[1] for f in feats)
        batch = np.ascontiguousarray(np.stack([f[:, :frames] for f in feats]).astype(np.float32))
        encoded = self.model.model.encode(ctranslate2.StorageView.from_array(batch), to_cpu=False)

        languages: list[tuple[str, float]] = []
        need_detect = [i for i, r in enumerate(requests) if not (r.language or not self.multilingual)]
        detected = {}
        if need_detect and self.multilingual:
            results = self.model.model.detect_language(encoded)
            for i in need_detect:
                tok, p = results[i][0]
                detected[i] = (tok[2:-2], float(p))
        for i, r in enumerate(requests):
            if not self.multilingual:
                languages.append(("en", 1.0))
            elif r.language:
                languages.append((r.language, 1.0))
            else:
                languages.append(detected[i])

        prompts = []
        for r, (lang, _) in zip(requests, languages):
            tok = self._tokenizer(lang if self.multilingual else None)
            prompt = []
            if r.prompt:
                prompt = [tok.sot_prev] + tok.encode(" " + r.prompt.strip())[-(self.model.max_length // 2 - 1):]
            prompt += tok.sot_sequence + [tok.no_timestamps]
            prompts.append(prompt)
        # Whisper emits roughly 3-4 tokens per second of speech; capping the output
        # length stops the rare decoding loop on padded short windows.
        max_len = int(24 + 12 * longest)
        out = self.model.model.generate(
            encoded,
            prompts,
            beam_size=self.config.beam_size,
            max_length=min(max_len, self.model.max_length // 2),
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
            suppress_tokens=[-1],
            no_repeat_ngram_size=0,
        )
        results = []
        for r, res, (lang, lp) in zip(requests, out, languages):
            tok = self._tokenizer(lang if self.multilingual else None)
            ids = [t for t in res.sequences_ids[0] if t < tok.eot]
            text = tok.decode(ids).strip()
            avg_logprob = float(res.scores[0]) if res.scores else 0.0
            results.append(
                AsrResult(
                    text=text,
                    language=lang,
                    language_probability=lp,
                    avg_logprob=avg_logprob,
                    no_speech_prob=float(res.no_speech_prob),
                    tokens=len(ids),
                    compression_ratio=_compression_ratio(text),
                )
            )
        return results


__all__ = ["AsrEngine", "AsrRequest", "load_whisper", "inference_workers", "normalise_language", "SAMPLE_RATE"]
