"""The recogniser request for a track's partial or final."""

from __future__ import annotations

import numpy as np

from voicetriage.asr.engine import AsrRequest
from voicetriage.core.config import AsrConfig
from voicetriage.pipeline.track import Track


def language_prior(t: Track, c: AsrConfig) -> tuple[tuple[str, float], ...]:
    """The call-level prior: each language's factor from the track's earlier finals."""
    return tuple(
        (lang, min(c.language_prior_max, 1.0 + c.language_prior_gain * e)) for lang, e in t.evidence.items()
    )


def build_request(t: Track, audio: np.ndarray, final: bool, c: AsrConfig,
                  forced: str | None, source: str) -> AsrRequest:
    """A final never inherits the provisional language of the partials: it is
    detected on the whole utterance with the call-level prior (unless forced)."""
    if final:
        prompt = t.previous if c.condition_on_previous_text else None
        return AsrRequest(
            audio, forced, language_source=source if forced else None,
            languages=c.languages, prior=language_prior(t, c),
            prompt=prompt[0] if prompt else None, prompt_language=prompt[1] if prompt else None,
            final=True, dialect_probe=c.dialect_probe and t.probes < c.dialect_probe_finals,
        )
    if forced:
        return AsrRequest(audio, forced, language_source=source, languages=c.languages)
    return AsrRequest(
        audio, t.language, language_source="provisional" if t.language else None,
        languages=c.languages, prior=language_prior(t, c),
    )


__all__ = ["build_request", "language_prior"]
