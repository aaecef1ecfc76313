"""Per-call triage: profile + signal extractors + routing policy -> signal and hint events.

:class:`CallTriage` is a :class:`~voicetriage.pipeline.session.CallObserver`. For each
call the server builds one with :func:`triage_observer_factory`: it looks the
caller number up in the profile store, creates the call's signal extractors
and a fresh :class:`~voicetriage.triage.policy.PolicyState`. Audio and events of the
caller track go to the extractors; their signals go to the policy; what comes
back (``signal`` updates and ``hint`` events) is emitted on the call right
after the event that caused it. A profile match is decided on the first audio
packet, before any speech is heard.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from voicetriage.core.config import Config, build_section, opt
from voicetriage.core.events import SAMPLE_RATE as RATE
from voicetriage.core.events import CallInfo, CallSummary, Dtmf, Hint, Signal
from voicetriage.core.serialize import jsonable
from voicetriage.triage.policy import Policy, PolicyState, load_policy
from voicetriage.triage.profiles import (
    Profile,
    ProfileStore,
    open_store,
    profile_signal,
)

log = logging.getLogger(__name__)

CALLER = "caller"  # triage looks at the caller's track only (docs/architecture.md)


@dataclass(frozen=True)
class TriageConfig:
    """The ``[triage]`` section of the config file.

    ``policy``: a policy file (None: the default shipped with voicetriage).
    ``profiles_db``: the SQLite profile store (None: no profile lookups);
    ``country_code``: how national caller numbers are read. ``emit_signals``:
    also send ``signal`` events (when a value changes materially) to the call.
    ``webhook_*``: POST events of ``webhook_events`` kinds as JSON to a URL.
    ``event_log_events``: kinds written to the JSONL event log. ``events_token``:
    if set, ``/events`` subscribers must present it.
    """

    enabled: bool = True
    policy: str | None = None
    profiles_db: str | None = None
    country_code: str = "86"
    emit_signals: bool = True
    event_log_events: list = field(default_factory=lambda: ["hint", "final"])
    webhook_url: str | None = None
    webhook_events: list = field(default_factory=lambda: ["hint"])
    webhook_timeout_s: float = opt(5.0, gt=0)
    webhook_retries: int = opt(4, min=0, max=100)
    webhook_backoff_s: float = opt(0.5, min=0)
    webhook_queue: int = opt(1000, min=1)
    webhook_token: str | None = None
    events_token: str | None = None


def triage_config(config: Config, **overrides: Any) -> TriageConfig:
    """The typed ``[triage]`` section (from ``config.extra``) plus CLI overrides."""
    values = dict(config.extra.get("triage", {}) or {})
    values.update({k: v for k, v in overrides.items() if v is not None})
    return build_section(TriageConfig, values, "triage", config.source)


class KeypadSignal:
    """DTMF on the caller track -> a ``keypad`` signal (first digit, digits so far).

    The hotline practice "press 9 or 6 first for the elders' line" is a rule on
    ``keypad.first``.
    """

    name = "keypad"

    def __init__(self, call_id: str) -> None:
        self.call_id = call_id
        self.digits = ""

    def on_audio(self, track: str, samples: np.ndarray, t0: float) -> list[Signal]:
        return []

    def on_event(self, event: object) -> list[Signal]:
        if not isinstance(event, Dtmf) or event.track != CALLER:
            return []
        self.digits += event.digit
        return [Signal(
            call_id=self.call_id, name="keypad",
            value={"first": self.digits[0], "last": event.digit, "digits": self.digits},
            confidence=1.0, time=event.time, evidence_time=event.time,
        )]

    def on_close(self) -> list[Signal]:
        return []


class CallTriage:
    """Triage of one call (a CallObserver). Synchronous; never raises into the call."""

    def __init__(
        self,
        info: CallInfo,
        policy: Policy,
        extractors: Sequence[Any],
        *,
        profile: Profile | None = None,
        emit_signals: bool = True,
        year: int | None = None,
        disabled: dict[str, int] | None = None,
    ) -> None:
        self.info = info
        self.disabled = disabled if disabled is not None else {}  # extractor name -> calls it failed in
        self.call_id = info.call_id
        self.profile = profile
        self.state: PolicyState = policy.start(info.call_id, started_at=info.started_at)
        self.extractors = [KeypadSignal(info.call_id), *extractors]
        self.emit_signals = emit_signals
        self.hints: list[Hint] = []
        self._year = year or _dt.datetime.fromtimestamp(info.started_at).year
        self._started = False
        self._now = 0.0
        self._shown: dict[str, tuple] = {}  # signal name -> last emitted signature
        self._broken: set[int] = set()

    # -- CallObserver ------------------------------------------------------------
    def on_audio(self, track: str, samples: np.ndarray, t0: float) -> list[object]:
        signals = self._start()
        if track == CALLER:
            self._now = max(self._now, t0 + len(samples) / RATE)
            signals += self._call("on_audio", track, samples, t0)
        return self._step(signals)

    def prepare_audio(self, track: str, samples: np.ndarray, t0: float) -> None:
        """On a DSP thread, before on_audio of the same samples: the extractors'
        numeric work (the pitch tracker); a failure is left to their on_audio."""
        if track != CALLER:
            return
        for i, ex in enumerate(self.extractors):
            prepare = getattr(ex, "prepare_audio", None)
            if prepare is not None and i not in self._broken:
                try:
                    prepare(track, samples, t0)
                except Exception:  # noqa: BLE001 - on_audio feeds the same audio and reports it
                    log.debug("call %s: prepare_audio of %r failed", self.call_id, getattr(ex, "name", ex))

    def on_event(self, event: object) -> list[object]:
        signals = self._start()
        if getattr(event, "track", CALLER) == CALLER:
            t = getattr(event, "end", None)
            if t is None:
                t = getattr(event, "time", 0.0)
            self._now = max(self._now, float(t))
            signals += self._call("on_event", event)
        return self._step(signals)

    def on_close(self, summary: CallSummary) -> list[object]:
        signals = self._start()
        return self._step(signals + self._call("on_close"))

    # -- internals -----------------------------------------------------------------
    def _start(self) -> list[Signal]:
        if self._started:
            return []
        self._started = True
        if self.profile is None:
            return []
        # only what the policy's rules read leaves the server (in the signal, hints, /events, logs)
        fields = self.state.policy.fields_of("profile")
        return [profile_signal(self.call_id, self.profile, year=self._year, time=0.0, fields=fields)]

    def _call(self, method: str, *args: Any) -> list[Signal]:
        out: list[Signal] = []
        for i, ex in enumerate(self.extractors):
            if i in self._broken:
                continue
            try:
                got = getattr(ex, method)(*args)
            except Exception:  # noqa: BLE001 - one broken extractor must not silence the rest
                name = str(getattr(ex, "name", type(ex).__name__))
                log.exception("call %s: signal extractor %r failed; disabled for this call", self.call_id, name)
                self._broken.add(i)
                self.disabled[name] = self.disabled.get(name, 0) + 1
                continue
            out.extend(s for s in got or () if isinstance(s, Signal))
        return out

    def _step(self, signals: list[Signal]) -> list[object]:
        events: list[object] = []
        if self.emit_signals:
            events.extend(self._visible(signals))
        try:
            hints = self.state.update(signals, self._now)
        except Exception:  # noqa: BLE001
            log.exception("call %s: routing policy failed", self.call_id)
            return events
        self.hints.extend(hints)
        events.extend(hints)
        return events

    def _visible(self, signals: Iterable[Signal]) -> list[Signal]:
        """Signal updates worth showing: new, or changed at one decimal."""
        out = []
        for s in signals:
            value, evidence = jsonable(s.value), jsonable(s.evidence)
            sig = (repr(_rounded(value)), round(float(s.confidence), 1))
            if self._shown.get(s.name) == sig:
                continue
            self._shown[s.name] = sig
            out.append(dataclasses.replace(
                s, value=value, evidence=evidence, confidence=round(float(s.confidence), 4),
                time=round(float(s.time), 3), evidence_time=round(float(s.evidence_time), 3),
            ))
        return out


def _rounded(v: Any) -> Any:
    if isinstance(v, float):
        return round(v, 1)
    if isinstance(v, dict):
        return {k: _rounded(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_rounded(x) for x in v]
    return v


ExtractorFactory = Callable[[str, "Mapping | None"], Sequence[Any]]


def _default_extractors(call_id: str, config: Mapping | None) -> Sequence[Any]:
    from voicetriage.triage.signals import (
        default_extractors,  # the signal package loads its own helpers
    )

    return default_extractors(call_id, config)


class TriageFactory:
    """Builds a :class:`CallTriage` per call; owns the policy and the profile store."""

    def __init__(
        self,
        policy: Policy,
        *,
        store: ProfileStore | None = None,
        extractors: ExtractorFactory | None = None,
        signals_config: Mapping | None = None,
        emit_signals: bool = True,
    ) -> None:
        self.policy = policy
        self.store = store
        self.extractors = extractors or _default_extractors
        self.signals_config = signals_config
        self.emit_signals = emit_signals
        self.disabled: dict[str, int] = {}  # extractor -> calls it was switched off in (/health)

    def __call__(self, info: CallInfo) -> CallTriage:
        profile = None
        if self.store is not None and info.caller_id:
            try:
                profile = self.store.lookup(info.caller_id)
            except Exception:  # noqa: BLE001 - a store problem must not stop the call
                log.exception("call %s: profile lookup failed", info.call_id)
        return CallTriage(
            info,
            self.policy,
            list(self.extractors(info.call_id, self.signals_config)),
            profile=profile,
            emit_signals=self.emit_signals,
            disabled=self.disabled,
        )

    def close(self) -> None:
        if self.store is not None:
            self.store.close()


def triage_observer_factory(
    config: Config,
    *,
    triage: TriageConfig | None = None,
    extractors: ExtractorFactory | None = None,
) -> TriageFactory:
    """The server's observer factory for triage, from the config's ``[triage]`` section.

    Loads the policy and opens the profile store now, so a bad file fails at
    start-up (ConfigError), not on the first call.
    """
    tc = triage or triage_config(config)
    policy = load_policy(tc.policy)
    make = extractors or _default_extractors
    signals_config = config.extra.get("signals")
    make("config-check", signals_config)  # bad [signals] options fail here, at start-up
    store = open_store(tc.profiles_db, country=tc.country_code)
    return TriageFactory(
        policy,
        store=store,
        extractors=make,
        signals_config=signals_config,
        emit_signals=tc.emit_signals,
    )


@dataclass
class TriageRuntime:
    """What :func:`install_triage` added to a server; ``close()`` after ``app.stop()``."""

    config: TriageConfig
    factory: TriageFactory | None

    def close(self) -> None:
        if self.factory is not None:
            self.factory.close()


def install_triage(app: Any, config: Config, triage: TriageConfig | None = None, *,
                   extractors: ExtractorFactory | None = None) -> TriageRuntime:
    """Add triage to an App: the per-call observer of signals and policy (unless
    disabled) and its ``/health`` section. The hint sinks are the server's
    (:func:`voicetriage.server.setup.install`)."""
    tc = triage or triage_config(config)
    factory = triage_observer_factory(config, triage=tc, extractors=extractors) if tc.enabled else None
    if factory is not None:
        app.observer_factories.append(factory)
        app.health_sections["triage"] = lambda: {
            "policy": factory.policy.name,
            "extractors_disabled": dict(sorted(factory.disabled.items())),
        }
    runtime = TriageRuntime(tc, factory)
    app.on_stop(runtime.close)  # after the calls' last finals and hints are published
    return runtime


def reload_policy(runtime: TriageRuntime) -> bool:
    """Load the policy file again (SIGHUP). New calls get the new policy; calls in
    progress keep the one they started with. A bad file keeps the current policy
    and the reason is logged. Returns whether the policy was replaced."""
    if runtime.factory is None:
        log.warning("policy reload: triage is off (--no-triage); nothing to reload")
        return False
    where = runtime.config.policy or "the default policy"
    try:
        policy = load_policy(runtime.config.policy)
    except Exception as e:  # noqa: BLE001 - a bad file must not stop the server
        log.error("policy reload of %s failed, keeping the current policy (%s): %s",
                  where, runtime.factory.policy.source, e)
        return False
    runtime.factory.policy = policy
    log.warning("policy reloaded from %s: %s, %d rule(s); calls in progress keep their policy",
                policy.source, policy.name, len(policy.rules))
    return True


__all__ = [
    "reload_policy",
    "CallTriage",
    "KeypadSignal",
    "TriageConfig",
    "TriageFactory",
    "TriageRuntime",
    "install_triage",
    "triage_config",
    "triage_observer_factory",
]
