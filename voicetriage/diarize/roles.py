"""Which diarized speaker is the agent and which the caller.

Rules (``--roles``):

* ``greeting`` (default): the speaker whose first words are a greeting
  ("您好", "你好", "喂", "欢迎致电", "hello", "thank you for calling", ...) is the
  agent; when no speaker or more than one opens with a greeting, fall back to
  ``first-agent`` (an inbound call is answered by the agent).
* ``first-agent``: whoever speaks first is the agent.
* ``first-caller``: whoever speaks first is the caller (outbound calls).
* ``none``: keep the diarization's labels (SPEAKER_00, ...).

The other speaker with the most speech is the caller; any further speakers
keep their diarization label.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Sequence

from voicetriage.core.errors import ConfigError

RULES = ("greeting", "first-agent", "first-caller", "none")
AGENT, CALLER = "agent", "caller"

# Openings of agents on Chinese and English hotlines (simplified and traditional).
GREETINGS = (
    "您好", "你好", "妳好", "喂", "欢迎致电", "歡迎致電", "欢迎来电", "歡迎來電", "很高兴为您服务",
    "很高興為您服務", "请问有什么可以帮", "請問有什麼可以幫", "有什么可以帮您", "早上好", "下午好", "晚上好",
    "hello", "hi", "good morning", "good afternoon", "good evening", "thank you for calling",
    "thanks for calling", "welcome to", "how may i help", "how can i help",
)
_WORD = re.compile(r"[a-z']+")


def is_greeting(text: str, phrases: Sequence[str] = GREETINGS, window: int = 12) -> bool:
    """Whether ``text`` opens with a greeting (Chinese: within its first ``window`` characters;
    English: its first or second word starts the phrase)."""
    t = text.strip().lower()
    head = t[:window]
    words = _WORD.findall(t)[:6]
    # an English greeting opens the text, or follows one word ("oh hello", "yes, good morning")
    starts = [" ".join(words), " ".join(words[1:])]
    for p in phrases:
        if p.isascii():
            if any(st == p or st.startswith(p + " ") for st in starts):
                return True
        elif p in head:
            return True
    return False


@dataclass(frozen=True)
class Utterance:
    speaker: str
    start: float
    text: str = ""


def assign(speakers_by_speech: Sequence[tuple[str, float]], utterances: Iterable[Utterance],
           rule: str = "greeting", phrases: Sequence[str] = GREETINGS) -> dict[str, str]:
    """Map diarization labels to role names.

    ``speakers_by_speech``: (label, seconds of speech) for every speaker;
    ``utterances``: what each speaker said, with start times (text may be empty).
    """
    if rule not in RULES:
        raise ConfigError(f"unknown roles rule {rule!r}; choose one of {', '.join(RULES)}")
    labels = [s for s, _ in speakers_by_speech]
    if rule == "none" or not labels:
        return {s: s for s in labels}
    first: dict[str, Utterance] = {}
    for u in sorted(utterances, key=lambda u: u.start):
        if u.speaker in labels and u.speaker not in first and (u.text.strip() or rule != "greeting"):
            first[u.speaker] = u
    order = sorted(first.values(), key=lambda u: u.start)
    agent = None
    if rule == "greeting":
        greeters = [u.speaker for u in order if is_greeting(u.text, phrases)]
        if len(greeters) == 1:
            agent = greeters[0]
        rule = "first-agent" if agent is None else rule
    if agent is None and order:
        if rule == "first-agent":
            agent = order[0].speaker
        else:  # first-caller: the first speaker is the caller, the agent is the next one
            rest = [u.speaker for u in order[1:]]
            agent = rest[0] if rest else None
            if agent is None:
                return {order[0].speaker: CALLER, **{s: s for s in labels if s != order[0].speaker}}
    if agent is None:
        agent = max(speakers_by_speech, key=lambda x: x[1])[0]
    out = {agent: AGENT}
    others = sorted((x for x in speakers_by_speech if x[0] != agent), key=lambda x: -x[1])
    if others:
        out[others[0][0]] = CALLER
    for s, _ in others[1:]:
        out[s] = s
    return out
