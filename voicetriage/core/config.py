"""Configuration: one typed object, built from a TOML file and CLI flags.

Nothing reads configuration from globals or the environment; the CLI builds a
:class:`Config` and passes it (or its parts) to whatever it starts.

Every section of the file is registered in :data:`SECTIONS`, each a typed
dataclass (or, for ``[signals]``, its own parser). :func:`load_config` builds
them all at start: an unknown section or key, a value of the wrong type or out
of its range is refused with the file, the section, the key and what is
allowed. Ranges are declared on the fields with :func:`opt`.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from voicetriage.core.errors import ConfigError

_NO_DEFAULT: Any = dataclasses.MISSING


def opt(default: Any = _NO_DEFAULT, *, default_factory: Callable[[], Any] | None = None,
        min: float | None = None, max: float | None = None, gt: float | None = None,  # noqa: A002
        choices: tuple | None = None) -> Any:
    """A config field with its allowed range (``min <= v <= max``, ``v > gt``) or ``choices``."""
    meta = {k: v for k, v in (("min", min), ("max", max), ("gt", gt), ("choices", choices)) if v is not None}
    if default_factory is not None:
        return field(default_factory=default_factory, metadata=meta)
    return field(default=default, metadata=meta)


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
    device: str = opt("cpu", choices=("cpu", "cuda", "auto"))
    compute_type: str = opt("int8", choices=("int8", "int8_float32", "int8_float16", "int8_bfloat16", "int16",
                                             "float16", "bfloat16", "float32", "default", "auto"))
    # 1 (was 0 = one per core): on the 2-core target one intra-op thread decodes a short
    # utterance faster (0.15 vs 0.21 s) and the benchmark's p95 end-of-speech-to-final at
    # 4 calls fell from 2.04 to 1.01 s; 30 s batch windows are within 10% either way.
    cpu_threads: int = opt(1, min=0, max=256)  # 0: one per core
    # parallel inference threads sharing the one model (CTranslate2 num_workers);
    # 0: one per ``cpu_threads`` cores, so a 2-core machine runs two decodes at once
    inference_workers: int = opt(0, min=0, max=64)
    beam_size: int = opt(1, min=1, max=10)
    language: str | None = None  # force a language for every call
    # The languages callers may speak (e.g. ["zh", "en"]): detection is restricted to
    # them and the detector's probabilities renormalised over them. Empty: any.
    languages: tuple[str, ...] = ()
    # Call-level language prior: each earlier final of a track adds gain x its detector
    # probability to its language's factor (1 + ...), capped at language_prior_max; an
    # utterance switches language only if the detector is that many times surer of it.
    language_prior_gain: float = opt(2.0, min=0)
    language_prior_max: float = opt(9.0, min=1)
    # faster-whisper's decoding safeguards, on finals: a decode whose compression ratio
    # is above the threshold (or that repeats a run, see asr.is_loop) or whose average
    # log-probability is below log_prob_threshold (unless no_speech_prob says silence)
    # is sampled again at the next temperature, best of best_of samples.
    compression_ratio_threshold: float = opt(2.4, gt=0)
    log_prob_threshold: float = opt(-1.0, max=0)
    no_speech_threshold: float = opt(0.6, min=0, max=1)
    temperatures: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
    best_of: int = opt(3, min=1, max=10)
    # a final that fails only the log-probability check (not a loop) tries this many of the
    # fallback temperatures (loops: fallback_loop_temperatures): on the eval kit's dialect clips the other
    # four cost a third of a final's CPU and moved CER by under 0.02 (docs/capacity.md)
    fallback_logprob_temperatures: int = opt(1, min=0, max=10)
    # a final whose greedy decode loops tries this many of the fallback temperatures (5: all
    # of the default ladder, as faster-whisper does), then keeps the best decode that is not a
    # loop; a loop left is cut by the loop guard. Each costs best_of samples to the length
    # cap: on the kit's streamed finals 2 repaired every loop as 5 did, at 40% of the seconds,
    # CER unchanged over three seeds (docs/capacity.md)
    fallback_loop_temperatures: int = opt(2, min=0, max=10)
    no_repeat_ngram_size: int = opt(0, min=0)
    # prompt a final's decoder with the track's previous final (same language only)
    condition_on_previous_text: bool = False
    # words the decoder is primed with on zh decodes, partials and finals (faster-whisper's
    # `hotwords`: in the previous-text context, before any previous text), e.g.
    # "转人工 人工服务 真人". Empty: off; measured in README (Triage signals and evaluation).
    hotwords: str = ""
    # Cantonese-vs-Mandarin two-prompt probe on zh finals (multilingual models only),
    # for the first dialect_probe_finals zh finals of each track (2 extra greedy decodes each)
    dialect_probe: bool = True
    dialect_probe_finals: int = opt(3, min=0)
    # Mandarin/Cantonese/Wu classifier on the final's pooled encoder output
    # (voicetriage/asr/dialect.py): "auto" the one shipped for the model (none if
    # none ships), "" off, or a path to a .npz trained for this model (refused otherwise).
    # Off by default: on the tuning half's held-out speakers a real Mandarin call scored
    # above most Cantonese and Wu calls (docs/signals.md), so it would route Mandarin callers
    dialect_classifier: str = ""

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
    min_window_s: float = opt(10.0, gt=0, max=30)
    window_step_s: float = opt(5.0, gt=0, max=30)
    # utterances of different calls decoded in one batch (same padded window); 0: sized
    # for the device, 4 on the CPU, 16 on CUDA (voicetriage/asr/device.py)
    max_batch: int = opt(0, min=0, max=256)
    model_cache_dir: str | None = None  # where joined split weights go
    # encoder rows and greedy decodes of the last reuse_cache pause partials (whose audio
    # is what the final gets if the pause ends the utterance): that final then costs no
    # encoder pass and, in the same language, no decode (0: off; CPU only)
    reuse_cache: int = opt(32, min=0, max=4096)
    # the cached pause partial also runs what its final would still pay: the temperature
    # fallback when its decode fails the checks, and the dialect probe when the track still
    # probes; the final of the same audio takes them (asr_work: speculated, speculation_used)
    speculate: bool = False
    # with two or more inference workers, a final's (or speculating partial's) dialect-probe
    # decodes run on another worker beside its temperature fallback instead of after it, when
    # that worker is idle (nothing queued, a thread free), so it never takes another call's
    # turn (unconditional, it cost 4-call p95 3.84 -> 8.44 s; gated, it cost nothing: docs/capacity.md)
    split_final_work: bool = True


@dataclass(frozen=True)
class StreamConfig:
    """Utterance segmentation and partial results."""

    vad_threshold: float = opt(0.5, gt=0, max=1)
    vad_neg_threshold: float = opt(0.35, min=0, max=1)
    # zero the VAD's LSTM state after this much non-speech (below vad_neg_threshold;
    # 0: never): the state carried from a loud talker hid a quiet one completely
    # (max speech probability 0.55 instead of 0.96). 1000 ms changes 46 of 20709
    # windows of the kit's clips streamed alone; 500 ms changed 248.
    vad_reset_silence_ms: int = opt(1000, min=0)
    min_speech_ms: int = opt(200, min=0, max=10_000)
    end_silence_ms: int = opt(500, min=50, max=10_000)
    max_utterance_s: float = opt(15.0, min=1, max=30)  # Whisper hears 30 s at most
    pre_roll_ms: int = opt(200, min=0, max=2000)
    partial_interval_s: float = opt(1.0, min=0.1)
    min_partial_audio_s: float = opt(0.3, min=0)  # was 0.5: first partial 0.2 s sooner (benchmarks/results/)
    # a partial as soon as a pause of this long starts inside an utterance (0: off), so
    # the end of a phrase is seen before the final; once per pause
    pause_partial_ms: int = opt(200, min=0)
    # a protocol gap (lost packets, a discard) up to this long is filled with silence so
    # a word is not split; a longer one ends the utterance in progress and the call
    # clock jumps over it without decoding (or allocating) anything for it
    gap_fill_max_s: float = opt(1.0, min=0, max=60)
    # partials adapt to load: the interval is partial_interval_s x (1 + partial_backoff x
    # the requests waiting per inference thread), at most partial_interval_max_s, so a busy
    # recogniser gets fewer partials and finals wait less behind them (0: a fixed interval)
    partial_backoff: float = opt(1.0, min=0)
    partial_interval_max_s: float = opt(4.0, min=0.1)
    # threads running every call's VAD and prosody off the event loop (ONNX Runtime and
    # numpy release the GIL); 0: on the loop, as before (benchmarks/loop_cost.py)
    dsp_threads: int = opt(1, min=0, max=64)


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = opt(8765, min=0, max=65535)  # 0: any free port
    max_message_bytes: int = opt(1 << 20, min=1024, max=64 << 20)  # one websocket message
    # concurrent calls; 0 or "auto": what this machine measurably holds with the loaded
    # model (voicetriage/asr/capacity.py, measured at start, logged and in /health)
    max_calls: int | str = opt(0, min=0)
    target_utilisation: float = opt(0.8, gt=0, max=1)  # of the cores, for max_calls = 0
    idle_timeout_s: float = opt(30.0, gt=0)  # no message for this long ends a call
    max_call_s: float = opt(4 * 3600.0, gt=0)
    # open connections (websocket and AudioSocket) in all, and from one address
    max_connections: int = opt(1024, min=1)
    max_connections_per_peer: int = opt(128, min=1)
    # a call's audio may run ahead of real time by audio_burst_s, then at most
    # max_audio_speed times real time: the reader is paused, not the call dropped
    # (a client at 26x grew the finals queue and slowed every other call); 0: no limit
    max_audio_speed: float = opt(4.0, min=0)
    audio_burst_s: float = opt(30.0, min=0)
    # finals of one call waiting for the recogniser before its reader is held too
    # (so the total is at most max_calls times this; finals are never dropped)
    max_pending_finals: int = opt(4, min=1, max=1000)
    event_log: str | None = None  # append-only JSONL of finals (and hints)
    certfile: str | None = None  # TLS: serve wss:// and https:// (with keyfile)
    keyfile: str | None = None


    def __post_init__(self) -> None:
        if isinstance(self.max_calls, str):
            if self.max_calls.strip().lower() != "auto":
                raise ConfigError(f"server.max_calls = {self.max_calls!r}: expected a number or \"auto\"")
            object.__setattr__(self, "max_calls", 0)


@dataclass(frozen=True)
class AuthConfig:
    """Who may connect (docs/security.md).

    ``token``: one API token (``voicetriage serve`` takes it from
    ``VOICETRIAGE_API_TOKEN``); ``token_file``: several, one ``NAME TOKEN
    [SCOPES]`` per line, for rotation. Clients send ``Authorization: Bearer
    TOKEN``; browsers log in at ``/login`` and get a cookie. ``insecure_no_auth``
    turns every check off. ``twilio_auth_token`` (``TWILIO_AUTH_TOKEN``) or
    ``twilio_auth_token_file``: Twilio's requests must carry a valid
    ``X-Twilio-Signature``; ``twilio_public_url``: the base URL Twilio signs
    (``wss://voice.example.com``) when a proxy sits in front. ``audiosocket_allow``:
    peer addresses or networks that may open AudioSocket calls (it has no
    credential). ``audiohook_unauthenticated``: accept AudioHook without API
    keys. ``cookie_max_age_s``: how long a browser login lasts.
    """

    token: str | None = field(default=None, repr=False)
    token_file: str | None = None
    insecure_no_auth: bool = False
    twilio_auth_token: str | None = field(default=None, repr=False)
    twilio_auth_token_file: str | None = None
    twilio_public_url: str | None = None
    audiosocket_allow: tuple[str, ...] = ("127.0.0.1/32", "::1/128")
    audiohook_unauthenticated: bool = False
    cookie_max_age_s: int = opt(12 * 3600, min=60, max=30 * 86400)


@dataclass(frozen=True)
class Config:
    asr: AsrConfig = field(default_factory=AsrConfig)
    stream: StreamConfig = field(default_factory=StreamConfig)
    server: ServerConfig = field(default_factory=ServerConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    # the stages' own sections (telephony, triage, bus, signals) as written, already
    # validated by load_config; each stage builds its typed object from them
    extra: Mapping[str, Any] = field(default_factory=dict)
    source: str = "defaults"  # the file it came from, for messages


#: Every section of the config file, in one place: name -> its typed class, or
#: "module:attribute" of a stage's class or parser (imported when a file has it).
SECTIONS: dict[str, Any] = {
    "asr": AsrConfig,
    "stream": StreamConfig,
    "server": ServerConfig,
    "auth": AuthConfig,
    "telephony": "voicetriage.server.telephony:TelephonyConfig",
    "triage": "voicetriage.triage.observer:TriageConfig",
    "bus": "voicetriage.bus.config:BusConfig",
    "signals": "voicetriage.triage.signals.options:parse_signal_options",
    "dashboard": "voicetriage.dashboard.config:DashboardConfig",
}
#: stage sections whose typed object needs more checks than types and ranges
_CHECKS = {
    "telephony": "voicetriage.server.telephony:check_telephony",
    "bus": "voicetriage.bus.config:validate",
}


def _resolve(ref: Any) -> Any:
    if not isinstance(ref, str):
        return ref
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


_TYPES = {"str": str, "int": int, "float": float, "bool": bool, "list": list, "dict": dict, "tuple": tuple,
          "None": type(None)}


def _allowed_types(f: dataclasses.Field) -> tuple[type, ...]:
    ann = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    out = []
    for part in ann.split("|"):
        base = part.strip().split("[", 1)[0]
        if base in _TYPES:
            out.append(_TYPES[base])
    return tuple(out)


def _type_name(types: tuple[type, ...]) -> str:
    names = {str: "str", int: "int", float: "float", bool: "bool", list: "list", dict: "table", tuple: "list"}
    return " or ".join(dict.fromkeys(names[t] for t in types if t is not type(None))) or "a value"


def _coerce(f: dataclasses.Field, value: Any, where: str) -> Any:
    types = _allowed_types(f)
    if not types:
        return value
    if value is None and type(None) in types:
        return None
    if isinstance(value, bool):
        if bool in types:
            return value
    elif isinstance(value, int) and int in types:
        return value
    elif isinstance(value, (int, float)) and float in types:
        return float(value)
    elif isinstance(value, (list, tuple)) and (tuple in types or list in types):
        return tuple(value) if tuple in types else list(value)
    elif isinstance(value, str) and str in types:
        return value
    elif isinstance(value, dict) and dict in types:
        return value
    raise ConfigError(f"{where} = {value!r}: expected {_type_name(types)}")


def _check_range(f: dataclasses.Field, value: Any, where: str) -> None:
    m = f.metadata
    if not m or value is None:
        return
    if "choices" in m and value not in m["choices"]:
        raise ConfigError(f"{where} = {value!r}: must be one of {', '.join(map(str, m['choices']))}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{where} = {value!r}: must be a finite number")
        lo, hi, gt = m.get("min"), m.get("max"), m.get("gt")
        ok = (gt is None or value > gt) and (lo is None or value >= lo) and (hi is None or value <= hi)
        if not ok:
            if lo is not None and hi is not None:
                allowed = f"between {lo:g} and {hi:g}"
            else:
                allowed = " and ".join(x for x in (f"> {gt:g}" if gt is not None else "",
                                                   f">= {lo:g}" if lo is not None else "",
                                                   f"<= {hi:g}" if hi is not None else "") if x)
            raise ConfigError(f"{where} = {value!r}: must be {allowed}")


def _suggest(name: str, known: Any) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def build_section(cls: type, values: Mapping[str, Any], section: str, source: str | None = None) -> Any:
    """The typed ``[section]`` from ``values``: unknown keys, wrong types and
    out-of-range values raise ConfigError naming ``source``, section and key."""
    prefix = f"{source}: " if source else ""
    if not isinstance(values, Mapping):
        raise ConfigError(f"{prefix}[{section}] must be a table of options, got {values!r}")
    known = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kwargs = {}
    for name, value in values.items():
        if name not in known:
            raise ConfigError(f"{prefix}[{section}] unknown option {name!r}{_suggest(name, known)}; "
                              f"options: {', '.join(known)}")
        where = f"{prefix}[{section}] {name}"
        value = _coerce(known[name], value, where)
        _check_range(known[name], value, where)
        kwargs[name] = value
    try:
        return cls(**kwargs)
    except ConfigError as e:
        raise ConfigError(f"{prefix}{e}") from None


def section_config(config: Config, name: str, cls: type, overrides: Mapping[str, Any] | None = None) -> Any:
    """A stage's typed section from ``config.extra`` plus CLI ``overrides`` (None ignored)."""
    values = dict(config.extra.get(name, {}) or {})
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return build_section(cls, values, name, config.source if not overrides else None)


def load_config(path: str | Path | None = None, **overrides: Mapping[str, Any]) -> Config:
    """Build a :class:`Config` from an optional TOML file plus overrides.

    ``overrides`` are per section, e.g. ``asr={"model": "tiny.en"}``; ``None``
    values are ignored so CLI flags that were not given keep the file's value.
    Every section is checked now (see :data:`SECTIONS`); raises ConfigError.
    """
    data: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        p = Path(path)
        source = str(p)
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file {p} does not exist") from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"config file {p}: {e}") from None
    for name in data:
        if name not in SECTIONS:
            raise ConfigError(f"{source}: unknown section [{name}]{_suggest(name, SECTIONS)}; "
                              f"sections: {', '.join(SECTIONS)}")
    built: dict[str, Any] = {}
    for name in ("asr", "stream", "server", "auth"):
        file_values = data.get(name, {})
        if not isinstance(file_values, Mapping):
            raise ConfigError(f"{source}: [{name}] must be a table of options")
        build_section(SECTIONS[name], file_values, name, source)  # the file's own mistakes, named as such
        flags = {k: v for k, v in overrides.get(name, {}).items() if v is not None}
        build_section(SECTIONS[name], flags, name, "command line")
        built[name] = build_section(SECTIONS[name], {**file_values, **flags}, name, source)
    extra = {k: v for k, v in data.items() if k not in built}
    for name, values in extra.items():
        check_stage_section(name, values, source)
    return Config(**built, extra=extra, source=source)


def check_stage_section(name: str, values: Any, source: str) -> Any:
    """Build (and so check) a stage's section now, so a mistake fails at start."""
    target = _resolve(SECTIONS[name])
    if dataclasses.is_dataclass(target):
        typed = build_section(target, values, name, source)
        if name in _CHECKS:
            try:
                typed = _resolve(_CHECKS[name])(typed)
            except ConfigError as e:
                raise ConfigError(f"{source}: {e}") from None
        return typed
    try:
        return target(values)
    except ConfigError as e:
        raise ConfigError(f"{source}: {e}") from None


__all__ = ["AsrConfig", "StreamConfig", "ServerConfig", "AuthConfig", "Config", "SECTIONS", "load_config", "build_section",
           "section_config", "opt"]
