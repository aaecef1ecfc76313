"""Routing policy: declarative rules over caller signals -> :class:`Hint` events.

A policy is a TOML file (format in docs/policy.md); the default one ships inside
the package (``voicetriage/policies/default.toml``). :func:`load_policy` parses
and validates it into an immutable :class:`Policy`; each call gets its own
:class:`PolicyState` (``policy.start(call_id)``), fed with signals and the call
clock. Evaluation is synchronous and deterministic: the same signals at the same
call times always give the same hints, so it is trivial to test and replay.

Hysteresis, so that a hint does not flap:

* a rule that fires keeps holding until its confidence falls ``release_margin``
  below the threshold that made it fire (a Schmitt trigger);
* the queue already announced is not announced again unless its confidence rose
  by ``confidence_step`` and ``cooldown_s`` has passed;
* a higher-priority queue replaces it at once (escalation: a request for a human
  must not wait); a queue of the same priority only once the current one has been
  unsupported for ``hold_s``; a lower one never, unless ``allow_downgrade``.
"""

from __future__ import annotations

import importlib.resources
import math
import operator
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterable, Mapping

from voicetriage.core.errors import ConfigError
from voicetriage.triage.signals.base import Signal

DEFAULT_POLICY = "default.toml"


@dataclass(frozen=True)
class Hint:
    """A routing hint for one call: send it to ``queue`` and why.

    ``rules`` are the names of the rules that fired for this queue and
    ``signals`` the signal values behind them (one entry per condition that
    held: rule, signal, value, confidence, call time and evidence time).
    ``time`` is the call time the hint was decided (so also the time since the
    call began); ``evidence_time`` is when the deciding evidence appeared and
    ``since_evidence_s`` the delay between the two. ``reason`` says why it was
    (re-)emitted: "new", "escalation", "confidence" or "change"; ``previous`` is
    the queue it replaces. ``seq`` counts the call's hints from 1.
    """

    kind: ClassVar[str] = "hint"

    call_id: str
    queue: str
    action: str
    priority: int
    confidence: float
    rules: tuple[str, ...]
    signals: tuple[Mapping[str, Any], ...]
    time: float
    evidence_time: float
    since_start_s: float
    since_evidence_s: float
    reason: str
    seq: int
    previous: str | None = None
    wall_time: float | None = None


# ---------------------------------------------------------------------------
# Policy model


def _cmp_num(op: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    def check(subject: Any, value: Any) -> bool:
        if isinstance(subject, bool) or not isinstance(subject, (int, float)):
            return False
        if isinstance(subject, float) and math.isnan(subject):
            return False
        return op(subject, value)

    return check


def _eq(subject: Any, value: Any) -> bool:
    if isinstance(subject, str) and isinstance(value, str):
        return subject.casefold() == value.casefold()
    return subject == value


def _in(subject: Any, value: Any) -> bool:
    return any(_eq(subject, v) for v in value)


def _contains(subject: Any, value: Any) -> bool:
    if isinstance(subject, str):
        return isinstance(value, str) and value.casefold() in subject.casefold()
    if isinstance(subject, Mapping):
        return value in subject
    if isinstance(subject, (list, tuple, set, frozenset)):
        return any(_eq(s, value) for s in subject)
    return False


_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "==": _eq,
    "!=": lambda s, v: s is not None and not _eq(s, v),
    ">": _cmp_num(operator.gt),
    ">=": _cmp_num(operator.ge),
    "<": _cmp_num(operator.lt),
    "<=": _cmp_num(operator.le),
    "in": _in,
    "not_in": lambda s, v: s is not None and not _in(s, v),
    "contains": _contains,
    "truthy": lambda s, v: bool(s),
}


@dataclass(frozen=True)
class Condition:
    """One test on the latest value of one signal.

    ``field`` is a dotted path into the signal's value (when it is a mapping),
    then into its ``evidence``; without it the subject is the value itself, or
    the top label when the value is a distribution (label -> probability).
    ``min_count``: that many consecutive updates of the signal must satisfy the
    test; ``sustain_s``: it must have held for that long (call time, from the
    evidence of the first of those updates); ``max_age_s``: a value older than
    this no longer counts.
    """

    signal: str
    op: str = "truthy"
    value: Any = None
    field: str | None = None
    min_confidence: float = 0.0
    min_count: int = 1
    sustain_s: float = 0.0
    max_age_s: float | None = None

    def subject(self, sig: Signal) -> Any:
        if self.field is None:
            v = sig.value
            if isinstance(v, Mapping) and v and all(_is_number(p) for p in v.values()):
                return max(v.items(), key=lambda kv: kv[1])[0]
            return v
        found, v = _lookup(sig.value, self.field)
        if not found:
            found, v = _lookup(sig.evidence, self.field)
        return v if found else None

    def test(self, sig: Signal) -> bool:
        """Whether the value test holds (confidence and time are checked apart)."""
        subject = self.subject(sig)
        if subject is None and self.op != "truthy":
            return False
        try:
            return bool(_OPS[self.op](subject, self.value))
        except TypeError:
            return False

    def describe(self) -> str:
        what = self.signal + (f".{self.field}" if self.field else "")
        if self.op == "truthy":
            return what
        return f"{what} {self.op} {self.value!r}"


@dataclass(frozen=True)
class Rule:
    """Conditions -> a queue. ``all`` must all hold; of ``any``, ``min_any``."""

    name: str
    queue: str
    priority: int
    all: tuple[Condition, ...] = ()
    any: tuple[Condition, ...] = ()
    min_any: int = 1
    min_confidence: float = 0.0
    action: str = "route"
    description: str = ""

    @property
    def conditions(self) -> tuple[Condition, ...]:
        return self.all + self.any


@dataclass(frozen=True)
class Hysteresis:
    cooldown_s: float = 10.0
    confidence_step: float = 0.15
    release_margin: float = 0.1
    hold_s: float = 15.0
    allow_downgrade: bool = False


@dataclass(frozen=True)
class Policy:
    """A parsed, validated routing policy (immutable, shared by all calls)."""

    name: str
    rules: tuple[Rule, ...]
    hysteresis: Hysteresis = field(default_factory=Hysteresis)
    source: str = "<memory>"

    @property
    def signals(self) -> frozenset[str]:
        """The signal names the rules read."""
        return frozenset(c.signal for r in self.rules for c in r.conditions)

    @property
    def queues(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(r.queue for r in self.rules))

    def start(self, call_id: str, *, started_at: float | None = None) -> "PolicyState":
        """Fresh per-call evaluation state."""
        return PolicyState(self, call_id, started_at=started_at)


# ---------------------------------------------------------------------------
# Loading and validation


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _lookup(obj: Any, path: str) -> tuple[bool, Any]:
    for part in path.split("."):
        if isinstance(obj, Mapping) and part in obj:
            obj = obj[part]
        else:
            return False, None
    return True, obj


def _take(table: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str, default: Any) -> Any:
    if key not in table:
        return default
    v = table[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if float in kinds and isinstance(v, int) and not isinstance(v, bool):
        v = float(v)
    if isinstance(v, bool) and bool not in kinds:
        raise ConfigError(f"{where}: {key} must be {_kind_name(kinds)}, got {v!r}")
    if not isinstance(v, kinds):
        raise ConfigError(f"{where}: {key} must be {_kind_name(kinds)}, got {v!r}")
    return v


def _kind_name(kinds: tuple[type, ...]) -> str:
    return " or ".join({int: "an integer", float: "a number", str: "a string", bool: "true/false",
                        list: "a list", dict: "a table"}.get(k, k.__name__) for k in kinds)


def _no_unknown(table: Mapping[str, Any], known: set[str], where: str) -> None:
    unknown = set(table) - known
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))} (known: {', '.join(sorted(known))})")


_COND_KEYS = {"signal", "op", "value", "field", "min_confidence", "min_count", "sustain_s", "max_age_s"}
_RULE_KEYS = {"name", "queue", "priority", "all", "any", "min_any", "min_confidence", "action", "description"}
_HYST_KEYS = {"cooldown_s", "confidence_step", "release_margin", "hold_s", "allow_downgrade"}


def _condition(t: Any, where: str) -> Condition:
    if not isinstance(t, Mapping):
        raise ConfigError(f"{where}: a condition must be a table like {{ signal = \"profile\", ... }}")
    _no_unknown(t, _COND_KEYS, where)
    signal = _take(t, "signal", str, where, None)
    if not signal:
        raise ConfigError(f"{where}: condition needs a signal name")
    op = _take(t, "op", str, where, None)
    has_value = "value" in t
    if op is None:
        op = "==" if has_value else "truthy"
    if op not in _OPS:
        raise ConfigError(f"{where}: unknown op {op!r} (known: {', '.join(_OPS)})")
    value = t.get("value")
    if op != "truthy" and not has_value:
        raise ConfigError(f"{where}: op {op!r} needs a value")
    if op in (">", ">=", "<", "<=") and not _is_number(value):
        raise ConfigError(f"{where}: op {op!r} needs a number, got {value!r}")
    if op in ("in", "not_in") and not isinstance(value, list):
        raise ConfigError(f"{where}: op {op!r} needs a list, got {value!r}")
    c = Condition(
        signal=signal,
        op=op,
        value=tuple(value) if isinstance(value, list) else value,
        field=_take(t, "field", str, where, None),
        min_confidence=_take(t, "min_confidence", float, where, 0.0),
        min_count=_take(t, "min_count", int, where, 1),
        sustain_s=_take(t, "sustain_s", float, where, 0.0),
        max_age_s=_take(t, "max_age_s", float, where, None),
    )
    if not 0.0 <= c.min_confidence <= 1.0:
        raise ConfigError(f"{where}: min_confidence must be within 0..1")
    if c.min_count < 1 or c.sustain_s < 0 or (c.max_age_s is not None and c.max_age_s <= 0):
        raise ConfigError(f"{where}: min_count >= 1, sustain_s >= 0 and max_age_s > 0 please")
    return c


def _rule(t: Any, index: int, src: str) -> Rule:
    where = f"{src}: rules[{index}]"
    if not isinstance(t, Mapping):
        raise ConfigError(f"{where}: must be a table ([[rules]])")
    name = t.get("name")
    if isinstance(name, str) and name:
        where = f"{src}: rule {name!r}"
    _no_unknown(t, _RULE_KEYS, where)
    name = _take(t, "name", str, where, "")
    queue = _take(t, "queue", str, where, "")
    if not name or not queue:
        raise ConfigError(f"{where}: every rule needs a name and a queue")
    priority = _take(t, "priority", int, where, None)
    if priority is None:
        raise ConfigError(f"{where}: priority (an integer, higher is more urgent) is required")
    all_ = _take(t, "all", list, where, [])
    any_ = _take(t, "any", list, where, [])
    if not all_ and not any_:
        raise ConfigError(f"{where}: needs conditions in `all` and/or `any`")
    rule = Rule(
        name=name,
        queue=queue,
        priority=priority,
        all=tuple(_condition(c, f"{where} all[{i}]") for i, c in enumerate(all_)),
        any=tuple(_condition(c, f"{where} any[{i}]") for i, c in enumerate(any_)),
        min_any=_take(t, "min_any", int, where, 1),
        min_confidence=_take(t, "min_confidence", float, where, 0.0),
        action=_take(t, "action", str, where, "route"),
        description=_take(t, "description", str, where, ""),
    )
    if rule.any and not 1 <= rule.min_any <= len(rule.any):
        raise ConfigError(f"{where}: min_any must be between 1 and the number of `any` conditions")
    if not 0.0 <= rule.min_confidence <= 1.0:
        raise ConfigError(f"{where}: min_confidence must be within 0..1")
    return rule


def parse_policy(data: Mapping[str, Any], source: str = "<memory>") -> Policy:
    """Validate a policy already read from TOML."""
    _no_unknown(data, {"version", "name", "description", "hysteresis", "rules"}, source)
    version = data.get("version", 1)
    if version != 1:
        raise ConfigError(f"{source}: unsupported policy version {version!r} (this voicetriage reads version 1)")
    hyst_t = data.get("hysteresis", {})
    if not isinstance(hyst_t, Mapping):
        raise ConfigError(f"{source}: [hysteresis] must be a table")
    _no_unknown(hyst_t, _HYST_KEYS, f"{source}: [hysteresis]")
    defaults = Hysteresis()
    hyst = Hysteresis(**{
        k: _take(hyst_t, k, bool if k == "allow_downgrade" else float, f"{source}: [hysteresis]", getattr(defaults, k))
        for k in _HYST_KEYS
    })
    if min(hyst.cooldown_s, hyst.confidence_step, hyst.release_margin, hyst.hold_s) < 0:
        raise ConfigError(f"{source}: [hysteresis] values must not be negative")
    raw_rules = data.get("rules", [])
    if not isinstance(raw_rules, list) or not raw_rules:
        raise ConfigError(f"{source}: a policy needs at least one [[rules]] table")
    rules = tuple(_rule(t, i, source) for i, t in enumerate(raw_rules))
    seen: set[str] = set()
    for r in rules:
        if r.name in seen:
            raise ConfigError(f"{source}: rule name {r.name!r} is used twice")
        seen.add(r.name)
    name = data.get("name", Path(source).stem if source != "<memory>" else "policy")
    return Policy(name=str(name), rules=rules, hysteresis=hyst, source=source)


def load_policy(path: str | Path | None = None) -> Policy:
    """Read a policy file; ``None`` gives the default policy shipped with voicetriage."""
    if path is None:
        res = importlib.resources.files("voicetriage.triage.policies").joinpath(DEFAULT_POLICY)
        text, source = res.read_text(encoding="utf-8"), f"voicetriage/policies/{DEFAULT_POLICY}"
    else:
        p = Path(path)
        source = str(p)
        try:
            text = p.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(f"policy file {p} does not exist") from None
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"policy file {p}: cannot read it ({e})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"policy file {source}: {e}") from None
    return parse_policy(data, source)


# ---------------------------------------------------------------------------
# Per-call evaluation


@dataclass
class _Streak:
    """How long a condition has held over the signal's updates."""

    count: int = 0
    since: float = 0.0  # evidence time of the first update of the streak


@dataclass(frozen=True)
class _Fired:
    rule: Rule
    confidence: float
    evidence_time: float
    signals: tuple[Mapping[str, Any], ...]


@dataclass
class _Announced:
    queue: str
    priority: int
    confidence: float
    time: float
    supported_at: float


class PolicyState:
    """One call's view of the policy: latest signals, streaks, last hint."""

    def __init__(self, policy: Policy, call_id: str, *, started_at: float | None = None) -> None:
        self.policy = policy
        self.call_id = call_id
        self.started_at = started_at
        self.latest: dict[str, Signal] = {}
        self._streaks: dict[tuple[int, int], _Streak] = {}
        self._active: set[str] = set()  # rules firing at the last evaluation
        self._current: _Announced | None = None
        self._seq = 0
        self._wanted = policy.signals
        self._next_check = float("inf")
        self._cur_supported = False  # the announced queue had support at the last evaluation

    @property
    def current_queue(self) -> str | None:
        return self._current.queue if self._current else None

    def update(self, signals: Iterable[Signal], now: float) -> list[Hint]:
        """Take new signals (in order) and evaluate the rules at call time ``now``.

        Without new signals the rules are only evaluated again once the clock
        reaches a time at which the outcome can change (a sustained condition
        completes, a value ages out, a cool-down or hold ends): the observer
        calls this for every audio packet of every call.
        """
        fresh = False
        for sig in signals:
            if sig.name not in self._wanted:
                continue
            self.latest[sig.name] = sig
            self._track(sig)
            fresh = True
        if not fresh and now < self._next_check:
            return []
        return self.evaluate(now)

    def _deadline(self, now: float) -> float:
        """The earliest call time after ``now`` at which time alone can change the outcome."""
        times = []
        for (ri, ci), streak in self._streaks.items():
            cond = self.policy.rules[ri].conditions[ci]
            if cond.sustain_s and streak.count:
                times.append(streak.since + cond.sustain_s)
            sig = self.latest.get(cond.signal)
            if cond.max_age_s is not None and sig is not None:
                times.append(math.nextafter(sig.time + cond.max_age_s, math.inf))  # too old just after
        if self._current is not None:
            h = self.policy.hysteresis
            times += [self._current.time + h.cooldown_s, self._current.supported_at + h.hold_s]
        later = [t for t in times if t > now]
        return min(later) if later else float("inf")

    def _track(self, sig: Signal) -> None:
        for ri, rule in enumerate(self.policy.rules):
            for ci, cond in enumerate(rule.conditions):
                if cond.signal != sig.name:
                    continue
                streak = self._streaks.setdefault((ri, ci), _Streak())
                if cond.test(sig):
                    if streak.count == 0:
                        streak.since = sig.evidence_time
                    streak.count += 1
                else:
                    streak.count = 0

    def _condition_holds(self, ri: int, ci: int, cond: Condition, now: float, margin: float) -> Signal | None:
        sig = self.latest.get(cond.signal)
        if sig is None:
            return None
        streak = self._streaks.get((ri, ci))
        if streak is None or streak.count < cond.min_count:
            return None
        # the same sums as in _deadline, so skipped evaluations change nothing
        if cond.sustain_s and now < streak.since + cond.sustain_s:
            return None
        if cond.max_age_s is not None and now > sig.time + cond.max_age_s:
            return None
        if sig.confidence < cond.min_confidence - margin:
            return None
        return sig

    def _fire(self, ri: int, rule: Rule, now: float) -> _Fired | None:
        h = self.policy.hysteresis
        margin = h.release_margin if rule.name in self._active else 0.0
        used: list[tuple[Condition, Signal, float]] = []
        n_all = len(rule.all)
        for ci, cond in enumerate(rule.all):
            sig = self._condition_holds(ri, ci, cond, now, margin)
            if sig is None:
                return None
            used.append((cond, sig, self._streaks[(ri, ci)].since))
        confs = [s.confidence for _, s, _ in used]
        if rule.any:
            held = []
            for cj, cond in enumerate(rule.any):
                sig = self._condition_holds(ri, n_all + cj, cond, now, margin)
                if sig is not None:
                    held.append((cond, sig, self._streaks[(ri, n_all + cj)].since))
            if len(held) < rule.min_any:
                return None
            held.sort(key=lambda u: -u[1].confidence)
            # the weakest of the best min_any conditions bounds the rule
            confs.append(held[rule.min_any - 1][1].confidence)
            used.extend(held)
        confidence = min(confs) if confs else 1.0
        if confidence < rule.min_confidence - margin:
            return None
        # when the evidence was complete: a sustained condition once it has lasted
        evidence_time = max(since + c.sustain_s if c.sustain_s else s.evidence_time for c, s, since in used)
        return _Fired(
            rule=rule,
            confidence=confidence,
            evidence_time=min(evidence_time, now),
            signals=tuple(_signal_record(rule.name, c, s) for c, s, _ in used),
        )

    def evaluate(self, now: float) -> list[Hint]:
        """Evaluate every rule at call time ``now``; at most one hint comes out."""
        hints = self._decide(now)
        self._next_check = self._deadline(now)
        return hints

    def _decide(self, now: float) -> list[Hint]:
        fired = [f for ri, r in enumerate(self.policy.rules) if (f := self._fire(ri, r, now)) is not None]
        self._active = {f.rule.name for f in fired}
        if not fired:
            if self._current is not None and self._cur_supported:
                self._current.supported_at = now
            self._cur_supported = False
            return []
        order = {r.name: i for i, r in enumerate(self.policy.rules)}
        queues: dict[str, list[_Fired]] = {}
        for f in fired:
            queues.setdefault(f.rule.queue, []).append(f)

        def score(q: str) -> tuple[int, float, int]:
            fs = queues[q]
            return (max(f.rule.priority for f in fs), _noisy_or(f.confidence for f in fs),
                    -min(order[f.rule.name] for f in fs))

        best = max(queues, key=score)
        priority, confidence, _ = score(best)
        h = self.policy.hysteresis
        cur = self._current
        if cur is not None and (cur.queue in queues or self._cur_supported):
            # nothing changed since the last evaluation, so the support lasted until now
            cur.supported_at = now
        self._cur_supported = cur is not None and cur.queue in queues
        if cur is None:
            reason = "new"
        elif best == cur.queue:
            if confidence < cur.confidence + h.confidence_step or now < cur.time + h.cooldown_s:
                return []
            reason = "confidence"
        elif priority > cur.priority:
            reason = "escalation"
        else:
            if cur.queue in queues or now < cur.supported_at + h.hold_s or now < cur.time + h.cooldown_s:
                return []
            if priority < cur.priority and not h.allow_downgrade:
                return []
            reason = "change"
        fs = sorted(queues[best], key=lambda f: (-f.rule.priority, order[f.rule.name]))
        evidence_time = min(f.evidence_time for f in fs)
        self._seq += 1
        hint = Hint(
            call_id=self.call_id,
            queue=best,
            action=fs[0].rule.action,
            priority=priority,
            confidence=round(confidence, 4),
            rules=tuple(f.rule.name for f in fs),
            signals=tuple(rec for f in fs for rec in f.signals),
            time=round(now, 3),
            evidence_time=round(evidence_time, 3),
            since_start_s=round(max(now, 0.0), 3),
            since_evidence_s=round(max(now - evidence_time, 0.0), 3),
            reason=reason,
            seq=self._seq,
            previous=cur.queue if cur is not None else None,
            wall_time=round(self.started_at + now, 3) if self.started_at is not None else None,
        )
        self._current = _Announced(best, priority, confidence, now, now)
        return [hint]


def _noisy_or(confs: Iterable[float]) -> float:
    """Independent pieces of evidence for one queue add up, never beyond 1."""
    miss = 1.0
    for c in confs:
        miss *= 1.0 - min(max(c, 0.0), 1.0)
    return 1.0 - miss


def _signal_record(rule: str, cond: Condition, sig: Signal) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "rule": rule,
        "signal": sig.name,
        "test": cond.describe(),
        "value": jsonable(sig.value),
        "confidence": round(float(sig.confidence), 4),
        "time": round(float(sig.time), 3),
        "evidence_time": round(float(sig.evidence_time), 3),
    }
    if sig.evidence:
        rec["evidence"] = jsonable(sig.evidence)
    return rec


def jsonable(value: Any) -> Any:
    """Plain JSON types for values that may hold numpy scalars, tuples or sets."""
    if value is None or isinstance(value, (bool, str, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted(jsonable(v) for v in value)
    item = getattr(value, "item", None)  # numpy scalar
    if callable(item):
        try:
            return jsonable(item())
        except (TypeError, ValueError):
            pass
    tolist = getattr(value, "tolist", None)  # numpy array
    if callable(tolist):
        return jsonable(tolist())
    return str(value)


__all__ = [
    "Hint",
    "Condition",
    "Rule",
    "Hysteresis",
    "Policy",
    "PolicyState",
    "load_policy",
    "parse_policy",
    "jsonable",
]
