"""Distress: urgent words, raised voice against the caller's own baseline, frustration.

Three kinds of cue, each with its own strength, combined as independent
evidence (1 - prod(1 - c)) over the recent part of the call:

* lexical: emergency words (救命, 摔倒, can't breathe ...: strong), pain and
  illness (不舒服, hurt: medium), anger and complaints (投诉, complaint: medium);
* prosodic arousal: an utterance whose median pitch (semitones) and loudness
  sit ``arousal_z`` standard deviations above the caller's own earlier
  utterances (needs two earlier utterances as a baseline; never compared with
  other people's voices);
* frustration with the line: "听不懂" / "I don't understand" / "say that
  again", and the caller repeating what they already said (character-bigram
  similarity with one of their last three utterances).

Cues older than ``HALF_LIFE_S`` count for less: a call that calms down
drops back. Words count only from a transcript the recogniser believes
(:func:`~voicetriage.triage.signals.belief.belief`): on a partial, in its stable prefix
of a believed decode; on a final, a believed one. Prosody needs no transcript.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from voicetriage.core.events import Final, Partial, Signal
from voicetriage.triage.signals.base import CALLER
from voicetriage.triage.signals.belief import belief
from voicetriage.triage.signals.options import DistressOptions
from voicetriage.triage.signals.prosody import FeedsProsody, ProsodyTracker
from voicetriage.triage.signals.text import normalize, similarity

# (pattern on normalised text, strength, kind)
LEXICON: tuple[tuple[str, float, str], ...] = (
    # emergencies
    (r"救命|救救我|快来人|快点来|救护车|叫(个)?医生|报警|打120|打110", 0.85, "emergency"),
    (r"摔倒|跌倒|摔了一跤|跌亲|跌咗|晕倒|昏倒|晕过去|昏迷|不省人事", 0.8, "emergency"),
    (r"(喘|透|抖)不过(来)?气|透唔到气|呼吸困难|不能呼吸|没有呼吸|冇呼吸|唔识郁|动不了|不能动|郁唔到|心脏病|中风|胸口痛|心口痛", 0.85, "emergency"),
    (r"(?<![a-z])(emergency|ambulance|call (the )?police|(he|she|i) fell|fallen|collapsed|not breathing|cant breathe|cannot breathe|heart attack|stroke|chest pain|unconscious|bleeding)(?![a-z])", 0.8, "emergency"),
    # "help" alone is everyday IVR talk ("help me with my bill"): weak
    (r"(?<![a-z])(help|help me|please help)(?![a-z])|帮帮我|帮帮忙", 0.35, "help"),
    # pain, illness, fear
    (r"不舒服|唔舒服|难受|好痛|很痛|痛死|疼死|好疼|受伤|流血|出血|头晕|好惊|很害怕|害怕", 0.55, "unwell"),
    (r"(?<![a-z])(hurt|hurts|pain|injured|dizzy|scared|afraid|sick)(?![a-z])", 0.5, "unwell"),
    (r"着急|急死|很急|好急|紧急|急事|赶紧|马上|快点", 0.45, "urgency"),
    (r"(?<![a-z])(urgent|urgently|right now|hurry|quickly|immediately)(?![a-z])", 0.45, "urgency"),
    # anger, complaints, fraud
    (r"投诉|举报|气死|太过分|搞什么|搞乜|受不了|忍不了|烦死|被骗|骗子|诈骗|骗了", 0.5, "complaint"),
    (r"(?<![a-z])(complain|complaint|ridiculous|unacceptable|furious|fed up|scam|fraud|stolen|disgusting)(?![a-z])", 0.5, "complaint"),
)
FRUSTRATION: tuple[tuple[str, float], ...] = (
    (r"听不懂|听唔明|听唔懂|不明白|唔明|听不清|听唔清|听不到|听唔到|你说什么|你讲乜|什么意思|乜意思|再说一(遍|次)|讲多次|说慢(一)?点|讲慢(啲|d)", 0.4),
    (r"(?<![a-z])(i dont understand|i do not understand|didnt understand|what do you mean|say that again|repeat that|pardon|too fast|slow down|not listening|doesnt work|isnt working)(?![a-z])", 0.4),
)
_LEX = [(re.compile(p), s, k) for p, s, k in LEXICON]
_FRUS = [(re.compile(p), s) for p, s in FRUSTRATION]
# "不着急" / "no hurry" / "没有不舒服" are not distress
_NEGATED = re.compile(r"(不|没有|没|唔|冇|别|no|not|dont|isnt) ?$")

HALF_LIFE_S = 30.0
MIN_BASELINE = 2


@dataclass(frozen=True)
class Cue:
    kind: str
    strength: float
    time: float
    detail: str


def lexical_cues(text: str, time: float, extra: tuple[str, ...] = ()) -> list[Cue]:
    """Distress words in ``text`` (any of the supported languages)."""
    t = normalize(text)
    cues: dict[str, Cue] = {}
    for pat, strength, kind in _LEX:
        for m in pat.finditer(t):
            if _NEGATED.search(t[max(0, m.start() - 5) : m.start()]):
                continue
            if kind not in cues or cues[kind].strength < strength:
                cues[kind] = Cue(kind, strength, time, m.group())
            break
    for phrase in extra:
        p = normalize(phrase)
        if p and p in t and "custom" not in cues:
            cues["custom"] = Cue("custom", 0.6, time, phrase)
    for pat, strength in _FRUS:
        m = pat.search(t)
        if m:
            cues["not_understood"] = Cue("not_understood", strength, time, m.group())
            break
    return list(cues.values())


class DistressExtractor(FeedsProsody):
    """Signal "distress": value 0..1, with the cues behind it in evidence."""

    name = "distress"

    def __init__(self, call_id: str, prosody: ProsodyTracker, options: DistressOptions | None = None) -> None:
        self.call_id = call_id
        self.prosody = prosody
        self.options = options or DistressOptions()
        self._cues: list[Cue] = []
        self._history: list[str] = []
        self._baseline: list[tuple[float, float]] = []  # (median f0 in semitones re 100 Hz, level dB)
        self._repeats = 0
        self._last_value = 0.0
        self._partial_seen: dict[int, set[str]] = {}
        self._now = 0.0

    def on_event(self, event: object) -> list[Signal]:
        if isinstance(event, Partial) and event.track == CALLER and event.stable:
            # emergencies should not wait for the end of the utterance
            if not belief(event, event.stable)[0]:
                return []
            seen = self._partial_seen.setdefault(event.utterance, set())
            new = [c for c in lexical_cues(event.stable, event.start, self.options.phrases)
                   if c.kind == "emergency" and c.detail not in seen]
            if not new:
                return []
            seen.update(c.detail for c in new)
            self._cues.extend(new)
            self._now = max(self._now, event.end)
            return self._emit(force=True)
        if not isinstance(event, Final) or event.track != CALLER or not event.text.strip():
            return []
        self._now = max(self._now, event.end)
        seen = self._partial_seen.pop(event.utterance, set())
        believed = belief(event)[0]
        cues = [c for c in lexical_cues(event.text, event.start, self.options.phrases) if c.detail not in seen] \
            if believed else []
        rep = self._repeat(event.text) if believed else None
        if rep is not None:
            self._repeats += 1
            cues.append(Cue("repeat", min(0.6, 0.25 + 0.1 * self._repeats), event.start, rep))
        arousal = self._arousal(event)
        if arousal is not None:
            cues.append(arousal)
        self._cues.extend(cues)
        return self._emit(force=bool(cues))

    def _repeat(self, text: str) -> str | None:
        t = normalize(text)
        hit = None
        if len(t.replace(" ", "")) >= 4:
            for prev in self._history[-3:]:
                if similarity(prev, t) >= self.options.repeat_similarity:
                    hit = prev
                    break
        self._history.append(t)
        return hit

    def _arousal(self, final: Final) -> Cue | None:
        stats = self.prosody.stats(final.start, final.end)
        if stats is None or stats.voiced_s < 0.4:
            return None
        point = (12 * np.log2(stats.f0_median_hz / 100.0), stats.level_p90_db)
        cue = None
        if len(self._baseline) >= MIN_BASELINE:
            base = np.array(self._baseline[-8:])
            mu = base.mean(axis=0)
            sd = np.maximum(base.std(axis=0), (1.5, 2.0))  # floors: semitones, dB
            z_f0, z_level = (np.array(point) - mu) / sd
            z = float((z_f0 + z_level) / 2)
            if z_f0 > 0 and z_level > 0 and z >= self.options.arousal_z:
                strength = float(min(0.6, 0.3 + 0.1 * (z - self.options.arousal_z)))
                cue = Cue("arousal", strength, final.start, f"pitch z={z_f0:.1f}, level z={z_level:.1f}")
        if cue is None:  # aroused speech would raise the baseline it is compared with
            self._baseline.append(point)
        return cue

    def _emit(self, force: bool) -> list[Signal]:
        now = self._now
        live = [(c, c.strength * 0.5 ** (max(0.0, now - c.time) / HALF_LIFE_S)) for c in self._cues]
        live = [(c, s) for c, s in live if s >= 0.05]
        self._cues = [c for c, _ in live]
        # asking to repeat or to slow down, however often, counts once: a caller who cannot
        # follow the bot is not in distress ("你再说一遍，说慢一点" made two cues, 0.59, over
        # the distress rule's 0.55); with any other cue it still adds up
        frus = [s for c, s in live if c.kind == "not_understood"]
        strengths = [s for c, s in live if c.kind != "not_understood"] + ([max(frus)] if frus else [])
        value = 1 - float(np.prod([1 - s for s in strengths])) if strengths else 0.0
        if not force and abs(value - self._last_value) < 0.1:
            return []
        if not live and self._last_value == 0.0:
            return []
        self._last_value = value
        kinds = sorted({c.kind for c, _ in live})
        # lexical emergencies are the least ambiguous cue; prosody alone the most
        confidence = 0.0
        if live:
            best = max(s for _, s in live)
            confidence = min(0.95, 0.5 + 0.5 * best) if "emergency" in kinds else min(0.8, 0.4 + 0.4 * value)
        return [
            Signal(
                self.call_id,
                self.name,
                round(value, 3),
                round(confidence, 3),
                now,
                min((c.time for c, _ in live), default=now),
                {
                    "cues": [
                        {"kind": c.kind, "strength": round(s, 3), "time": round(c.time, 3), "detail": c.detail}
                        for c, s in live
                    ],
                    "kinds": kinds,
                    "repeats": self._repeats,
                },
            )
        ]

    def on_close(self) -> list[Signal]:
        return []


__all__ = ["DistressExtractor", "lexical_cues", "LEXICON"]
