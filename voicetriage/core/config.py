"""Configuration: one typed object, built from a TOML file and CLI flags.

Nothing reads configuration from globals or the environment; the CLI builds a
:class:`Config` and passes it (or its parts) to whatever it starts.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from voicetriage.core.errors import ConfigError


@dataclass(frozen=True)
class AsrConfig:
    """The recogniser.

    ``model`` is a registry id (see ``voicetriage models``) or a path to a
    CTranslate2 Whisper directory. ``min_window_s``/``window_step_s``: audio is
    padded up to a window of at least ``min_window_s`` seconds, rounded up to a
    multiple of ``window_step_s`` (never beyond Whisper's 30 s), instead of
    always padding to 30 s: the encoder cost grows with the window.
    """

    model: str = "base"
    device: str = "cpu"
    compute_type: str = "int8"
    # 1 (was 0 = one per core): on the 2-core target one intra-op thread decodes a short
    # utterance faster (0.15 vs 0.21 s) and the benchmark's p95 end-of-speech-to-final at
    # 4 calls fell from 2.04 to 1.01 s; 30 s batch windows are within 10% either way.
    cpu_threads: int = 1  # 0: one per core
    # parallel inference threads sharing the one model (CTranslate2 num_workers);
    # 0: one per ``cpu_threads`` cores, so a 2-core machine runs two decodes at once
    inference_workers: int = 0
    beam_size: int = 1
    language: str | None = None  # force a language for every call
    # The languages callers may speak (e.g. ["zh", "en"]): detection is restricted to
    # them and the detector's probabilities renormalised over them. Empty: any.
    languages: tuple[str, ...] = ()
    # Call-level language prior: each earlier final of a track adds gain x its detector
    # probability to its language's factor (1 + ...), capped at language_prior_max; an
    # utterance switches language only if the detector is that many times surer of it.
    language_prior_gain: float = 2.0
    language_prior_max: float = 9.0
    # faster-whisper's decoding safeguards, on finals: a decode whose compression ratio
    # is above the threshold (or that repeats a run, see asr.is_loop) or whose average
    # log-probability is below log_prob_threshold (unless no_speech_prob says silence)
    # is sampled again at the next temperature, best of best_of samples.
    compression_ratio_threshold: float = 2.4
    log_prob_threshold: float = -1.0
    no_speech_threshold: float = 0.6
    temperatures: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
    best_of: int = 3
    no_repeat_ngram_size: int = 0
    # prompt a final's decoder with the track's previous final (same language only)
    condition_on_previous_text: bool = False
    # Cantonese-vs-Mandarin two-prompt probe on zh finals (multilingual models only),
    # for the first dialect_probe_finals zh finals of each track (2 extra greedy decodes each)
    dialect_probe: bool = True
    dialect_probe_finals: int = 3

    def __post_init__(self) -> None:
        where = "asr"
        if not all(isinstance(x, str) and x for x in self.languages):
            raise ConfigError(f"{where}.languages: expected language codes, got {list(self.languages)!r}")
        if not self.temperatures or not all(
            isinstance(t, (int, float)) and not isinstance(t, bool) and 0 <= t <= 1 for t in self.temperatures
        ) or list(self.temperatures) != sorted(self.temperatures):
            raise ConfigError(f"{where}.temperatures: expected ascending numbers in [0, 1], got {list(self.temperatures)!r}")
        if self.best_of < 1:
            raise ConfigError(f"{where}.best_of: must be at least 1, got {self.best_of}")
        if self.language_prior_max < 1 or self.language_prior_gain < 0:
            raise ConfigError(f"{where}.language_prior_max must be >= 1 and language_prior_gain >= 0")
        if self.dialect_probe_finals < 0 or self.no_repeat_ngram_size < 0:
            raise ConfigError(f"{where}.dialect_probe_finals and no_repeat_ngram_size must be >= 0")
    min_window_s: float = 10.0
    window_step_s: float = 5.0
    max_batch: int = 4
    model_cache_dir: str | None = None  # where joined split weights go


@dataclass(frozen=True)
class StreamConfig:
    """Utterance segmentation and partial results."""

    vad_threshold: float = 0.5
    vad_neg_threshold: float = 0.35
    # zero the VAD's LSTM state after this much non-speech (below vad_neg_threshold;
    # 0: never): the state carried from a loud talker hid a quiet one completely
    # (max speech probability 0.55 instead of 0.96). 1000 ms changes 46 of 20709
    # windows of the kit's clips streamed alone; 500 ms changed 248.
    vad_reset_silence_ms: int = 1000
    min_speech_ms: int = 200
    end_silence_ms: int = 500
    max_utterance_s: float = 15.0
    pre_roll_ms: int = 200
    partial_interval_s: float = 1.0
    min_partial_audio_s: float = 0.3  # was 0.5: first partial 0.2 s sooner (benchmarks/results/)
    # a partial as soon as a pause of this long starts inside an utterance (0: off), so
    # the end of a phrase is seen before the final; once per pause
    pause_partial_ms: int = 200


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8765
    max_message_bytes: int = 1 << 20  # one websocket message
    max_calls: int = 64
    idle_timeout_s: float = 30.0  # no message for this long ends a call
    max_call_s: float = 4 * 3600.0
    event_log: str | None = None  # append-only JSONL of finals (and hints)


@dataclass(frozen=True)
class Config:
    asr: AsrConfig = field(default_factory=AsrConfig)
    stream: StreamConfig = field(default_factory=StreamConfig)
    server: ServerConfig = field(default_factory=ServerConfig)
    extra: Mapping[str, Any] = field(default_factory=dict)  # other sections, for later stages


def _section(cls: type, values: Mapping[str, Any], where: str) -> Any:
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(values) - set(known)
    if unknown:
        raise ConfigError(f"{where}: unknown option(s) {', '.join(sorted(unknown))}")
    kwargs = {}
    for name, value in values.items():
        default = getattr(cls(), name)
        if isinstance(default, tuple):
            if not isinstance(value, (list, tuple)):
                raise ConfigError(f"{where}.{name}: expected a list, got {value!r}")
            value = tuple(value)
        elif default is not None and not isinstance(value, type(default)):
            # ints are fine where floats are expected
            if not (isinstance(default, float) and isinstance(value, int)):
                raise ConfigError(
                    f"{where}.{name}: expected {type(default).__name__}, got {value!r}"
                )
            value = float(value)
        kwargs[name] = value
    return cls(**kwargs)


def load_config(path: str | Path | None = None, **overrides: Mapping[str, Any]) -> Config:
    """Build a :class:`Config` from an optional TOML file plus overrides.

    ``overrides`` are per section, e.g. ``asr={"model": "tiny.en"}``; ``None``
    values are ignored so CLI flags that were not given keep the file's value.
    """
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file {p} does not exist") from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"config file {p}: {e}") from None
    sections = {"asr": AsrConfig, "stream": StreamConfig, "server": ServerConfig}
    built: dict[str, Any] = {}
    for name, cls in sections.items():
        values = dict(data.get(name, {}))
        values.update({k: v for k, v in overrides.get(name, {}).items() if v is not None})
        built[name] = _section(cls, values, name)
    extra = {k: v for k, v in data.items() if k not in sections}
    return Config(**built, extra=extra)


__all__ = ["AsrConfig", "StreamConfig", "ServerConfig", "Config", "load_config"]
