"""The policy model: conditions over signals, rules, hysteresis, an immutable Policy."""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping

from voicetriage.core.events import Signal

if TYPE_CHECKING:  # the per-call state imports the model
    from voicetriage.triage.policy.state import PolicyState

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
    """Conditions -> a queue. ``all`` must all hold; of ``any``, ``min_any``; of
    ``none``, not one (evidence that explains the others away)."""

    name: str
    queue: str
    priority: int
    all: tuple[Condition, ...] = ()
    any: tuple[Condition, ...] = ()
    min_any: int = 1
    min_confidence: float = 0.0
    action: str = "route"
    description: str = ""
    none: tuple[Condition, ...] = ()

    @property
    def conditions(self) -> tuple[Condition, ...]:
        return self.all + self.any + self.none


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

    def fields_of(self, signal: str) -> frozenset[str]:
        """The fields of ``signal``'s value the rules read (a condition on the whole value: "")."""
        return frozenset(c.field or "" for r in self.rules for c in r.conditions if c.signal == signal)

    @property
    def queues(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(r.queue for r in self.rules))

    def start(self, call_id: str, *, started_at: float | None = None) -> "PolicyState":
        """Fresh per-call evaluation state."""
        from voicetriage.triage.policy.state import PolicyState

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
