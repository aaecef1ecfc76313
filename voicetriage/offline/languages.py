"""Where a recording changes language: VAD chunks, each detected, merged into runs."""

from __future__ import annotations

import logging
from typing import Any

from voicetriage.core.events import SAMPLE_RATE

log = logging.getLogger(__name__)


def language_runs(samples: Any, asr: Any, options: Any, multilingual: bool,
                  offset_s: float = 0.0) -> list[tuple[int, int, str | None, float]]:
    """Split a channel into runs of one language: ``(start, end, language, p)``
    in samples, covering the whole channel. One run with language None
    (Whisper detects) when the language is forced elsewhere or no speech is found.

    ``asr`` is an :class:`~voicetriage.asr.engine.AsrEngine` on the batch's model
    (its language detector); ``options`` the batch options (``language``,
    ``languages``, ``per_chunk_language``, ``chunk_silence_ms``).
    """
    import numpy as np
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    from voicetriage.asr.engine import decide_language
    from voicetriage.core.config import AsrConfig

    o = options
    whole = [(0, len(samples), o.language, 1.0)]
    if o.language is not None or not o.per_chunk_language or not multilingual or asr is None:
        return whole
    chunks = get_speech_timestamps(
        samples, VadOptions(min_silence_duration_ms=o.chunk_silence_ms, max_speech_duration_s=30.0, speech_pad_ms=200)
    )
    if not chunks:
        return whole
    detections = asr.detect_languages([samples[c["start"] : c["end"]] for c in chunks])
    cfg = AsrConfig()
    evidence: dict[str, float] = {}
    labelled = []
    for c, det in zip(chunks, detections):
        prior = tuple((k, min(cfg.language_prior_max, 1 + cfg.language_prior_gain * v)) for k, v in evidence.items())
        lang, dist = decide_language(det, o.languages, prior)
        p = dict(dist)[lang]
        evidence[lang] = evidence.get(lang, 0.0) + p
        labelled.append((c["start"], c["end"], lang, p))
    runs: list[list] = []
    for start, end, lang, p in labelled:
        if runs and runs[-1][2] == lang:
            runs[-1][1] = end
            runs[-1][3].append((end - start, p))
        else:
            runs.append([start, end, lang, [(end - start, p)]])
    out = []
    for k, (start, end, lang, ps) in enumerate(runs):
        a = 0 if k == 0 else (runs[k - 1][1] + start) // 2
        b = len(samples) if k == len(runs) - 1 else (end + runs[k + 1][0]) // 2
        weight = sum(w for w, _ in ps)
        out.append((a, b, lang, float(np.dot([w for w, _ in ps], [p for _, p in ps]) / max(1, weight))))
    if len(out) > 1:
        log.info("language changes within the recording: %s",
                 ", ".join(f"{offset_s + a / SAMPLE_RATE:.1f}s {lang}" for a, _, lang, _ in out))
    return out
