"""Typed options of the signal extractors (the ``[signals]`` table of the config file).

```toml
[signals.human_request]
dtmf_digits = ["9"]          # digits that by themselves ask for a person
zero_repeats = 2             # "0" pressed (or said) this many times in a row
phrases = ["找经理"]          # extra phrases, any language

[signals.speaking_rate]
slow_syllables_per_s = { mandarin = 3.0 }   # override a per-language threshold
```

:func:`parse_signal_options` turns that mapping into :class:`SignalOptions`
and rejects unknown keys or wrong types with a :class:`ConfigError`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

from voicetriage.core.errors import ConfigError
from voicetriage.core.events import DTMF_DIGITS

LANGUAGES = ("mandarin", "cantonese", "wu", "hakka", "minnan", "english", "other")


@dataclass(frozen=True)
class HumanRequestOptions:
    dtmf_digits: tuple[str, ...] = ()
    zero_repeats: int = 2
    zero_window_s: float = 5.0
    phrases: tuple[str, ...] = ()
    partials: bool = True  # fire on partial hypotheses, not only on finals


@dataclass(frozen=True)
class LanguageOptions:
    # bias of the prior towards the languages a line expects (added to log-odds)
    prior: Mapping[str, float] = field(default_factory=dict)
    min_han_chars: int = 4  # text evidence needs at least this many characters


@dataclass(frozen=True)
class SpeakingRateOptions:
    # articulation rate (syllables per voiced second) below which speech is "slow"
    slow_syllables_per_s: Mapping[str, float] = field(default_factory=dict)
    min_speech_s: float = 1.5  # voiced speech needed before a first estimate
    long_pause_s: float = 1.0


@dataclass(frozen=True)
class AgeOptions:
    min_voiced_s: float = 2.0


@dataclass(frozen=True)
class DistressOptions:
    phrases: tuple[str, ...] = ()
    arousal_z: float = 2.0  # pitch/energy z-score against the caller's own baseline
    repeat_similarity: float = 0.6


@dataclass(frozen=True)
class SignalOptions:
    human_request: HumanRequestOptions = field(default_factory=HumanRequestOptions)
    language: LanguageOptions = field(default_factory=LanguageOptions)
    speaking_rate: SpeakingRateOptions = field(default_factory=SpeakingRateOptions)
    age_band: AgeOptions = field(default_factory=AgeOptions)
    distress: DistressOptions = field(default_factory=DistressOptions)
    enabled: tuple[str, ...] = (
        "human_request",
        "language",
        "low_comprehension",
        "speaking_rate",
        "age_band",
        "distress",
    )


def _coerce(value: Any, default: Any, where: str) -> Any:
    if isinstance(default, tuple):
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where}: expected a list of strings, got {value!r}")
        return tuple(value)
    if isinstance(default, Mapping):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a table, got {value!r}")
        out = {}
        for k, v in value.items():
            if k not in LANGUAGES:
                raise ConfigError(f"{where}.{k}: unknown language; use one of {', '.join(LANGUAGES)}")
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise ConfigError(f"{where}.{k}: expected a number, got {v!r}")
            out[k] = float(v)
        return out
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if isinstance(default, (int, float)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        if value < 0:
            raise ConfigError(f"{where}: must not be negative, got {value!r}")
        return type(default)(value)
    return value


def _build(cls: type, values: Any, where: str) -> Any:
    if not isinstance(values, Mapping):
        raise ConfigError(f"{where}: expected a table, got {values!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(values) - set(fields)
    if unknown:
        raise ConfigError(f"{where}: unknown option(s) {', '.join(sorted(unknown))}")
    defaults = cls()
    kwargs = {}
    for name, value in values.items():
        default = getattr(defaults, name)
        if dataclasses.is_dataclass(default):
            kwargs[name] = _build(type(default), value, f"{where}.{name}")
        else:
            kwargs[name] = _coerce(value, default, f"{where}.{name}")
    return cls(**kwargs)


def parse_signal_options(config: Mapping[str, Any] | SignalOptions | None) -> SignalOptions:
    """The ``[signals]`` table (or None for defaults) as :class:`SignalOptions`."""
    if config is None:
        return SignalOptions()
    if isinstance(config, SignalOptions):
        return config
    opts = _build(SignalOptions, config, "signals")
    bad = set(opts.enabled) - set(SignalOptions().enabled)
    if bad:
        raise ConfigError(f"signals.enabled: unknown signal(s) {', '.join(sorted(bad))}")
    if opts.human_request.zero_repeats < 1:
        raise ConfigError("signals.human_request.zero_repeats: must be at least 1")
    for d in opts.human_request.dtmf_digits:
        if len(d) != 1 or d not in DTMF_DIGITS:
            raise ConfigError(f"signals.human_request.dtmf_digits: {d!r} is not a DTMF digit")
    return opts


__all__ = [
    "LANGUAGES",
    "HumanRequestOptions",
    "LanguageOptions",
    "SpeakingRateOptions",
    "AgeOptions",
    "DistressOptions",
    "SignalOptions",
    "parse_signal_options",
]
