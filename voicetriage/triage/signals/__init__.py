"""Caller signals (triage): each extractor turns a call's audio and events into Signals.

``default_extractors(call_id, config)`` builds a fresh set for one call; the
triage observer feeds them the caller's audio and the call's Partial / Final /
Dtmf events and hands the Signals to the routing policy.

    human_request      explicit request for a person (phrases, zeros, DTMF)
    language           distribution over mandarin/cantonese/wu/hakka/minnan/english/other
    low_comprehension  share of recent speech the recogniser could not follow
    speaking_rate      syllables per voiced second, pauses, ``slow``
    age_band           distribution over "<40", "40-64", "65+" (weak; see docs/signals.md)
    distress           urgent words, raised voice vs own baseline, frustration
"""

from __future__ import annotations

from typing import Any, Mapping

from voicetriage.core.events import Signal
from voicetriage.triage.signals.age import AgeBandExtractor
from voicetriage.triage.signals.base import CALLER, SignalExtractor
from voicetriage.triage.signals.comprehension import ComprehensionExtractor
from voicetriage.triage.signals.distress import DistressExtractor
from voicetriage.triage.signals.human_request import HumanRequestExtractor
from voicetriage.triage.signals.language import LanguageExtractor
from voicetriage.triage.signals.options import (
    LANGUAGES,
    SignalOptions,
    parse_signal_options,
)
from voicetriage.triage.signals.prosody import ProsodyTracker
from voicetriage.triage.signals.rate import SpeakingRateExtractor


def default_extractors(
    call_id: str, config: Mapping[str, Any] | SignalOptions | None = None
) -> list[SignalExtractor]:
    """A fresh set of extractors for one call.

    ``config`` is the ``[signals]`` table of the config file (see
    :mod:`voicetriage.triage.signals.options`), already parsed options, or None.
    Raises :class:`~voicetriage.core.errors.ConfigError` for bad options.
    """
    opts = parse_signal_options(config)
    on = set(opts.enabled)
    prosody = ProsodyTracker()  # shared by age and distress: one pitch analysis per call
    language = LanguageExtractor(call_id, opts.language)

    def current_language() -> str:
        dist = language.distribution()
        return max(dist, key=dist.get)

    out: list[SignalExtractor] = []
    if "human_request" in on:
        out.append(HumanRequestExtractor(call_id, opts.human_request))
    if "language" in on:
        out.append(language)
    if "low_comprehension" in on:
        out.append(ComprehensionExtractor(call_id))
    if "speaking_rate" in on:
        # thresholds follow the language signal; without it, Whisper's language code
        chooser = current_language if "language" in on else None
        out.append(SpeakingRateExtractor(call_id, opts.speaking_rate, chooser, prosody))
    if "age_band" in on:
        out.append(AgeBandExtractor(call_id, prosody, opts.age_band))
    if "distress" in on:
        out.append(DistressExtractor(call_id, prosody, opts.distress))
    return out


__all__ = [
    "CALLER",
    "LANGUAGES",
    "Signal",
    "SignalExtractor",
    "SignalOptions",
    "default_extractors",
    "parse_signal_options",
]
