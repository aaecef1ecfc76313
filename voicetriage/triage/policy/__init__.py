"""Routing policy: declarative rules over caller signals -> :class:`Hint` events.

A policy is a TOML file (format in docs/policy.md); the default one ships inside
the package (``voicetriage/triage/policies/default.toml``). :func:`load_policy` parses
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

from voicetriage.core.events import Hint
from voicetriage.core.serialize import jsonable
from voicetriage.triage.policy.loader import DEFAULT_POLICY, load_policy, parse_policy
from voicetriage.triage.policy.model import Condition, Hysteresis, Policy, Rule
from voicetriage.triage.policy.state import PolicyState

__all__ = ["Hint", "Condition", "Rule", "Hysteresis", "Policy", "PolicyState", "DEFAULT_POLICY",
           "load_policy", "parse_policy", "jsonable"]
