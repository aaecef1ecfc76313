"""Per-call policy evaluation: signals and the call clock in, hints out."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from voicetriage.core.events import Hint, Signal
from voicetriage.core.serialize import jsonable
from voicetriage.triage.policy.model import Condition, Policy, Rule

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
        n_pos = n_all + len(rule.any)
        for ck, cond in enumerate(rule.none):  # no release margin: what explains it away, at its own bar
            if self._condition_holds(ri, n_pos + ck, cond, now, 0.0) is not None:
                return None
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
