"""The value every signal extractor produces."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping


@dataclass(frozen=True)
class Signal:
    """One estimate about a caller, as of ``time`` (seconds into the call).

    ``name`` is stable ("human_request", "language", "speaking_rate", "age_band",
    "distress", "profile", "low_comprehension", ...). ``value`` is the estimate
    (a label, a number, or a distribution as a mapping label -> probability).
    ``evidence_time`` is when the evidence behind it appeared (call time).
    """

    kind: ClassVar[str] = "signal"

    call_id: str
    name: str
    value: Any
    confidence: float
    time: float
    evidence_time: float
    evidence: Mapping[str, Any] = field(default_factory=dict)
