"""Explicit request for a human: phrases (Mandarin, Cantonese, English), zeros, DTMF.

Fires as soon as the evidence is there: on a partial hypothesis (lower
confidence on its unstable tail, higher on the stable prefix) and again with
more confidence on the final, only when the confidence goes up. Matching runs
on :func:`~voicetriage.triage.signals.text.normalize`d text, so Traditional and
Simplified spellings and full-width characters all match, and on
character classes for the near-homophones Whisper writes for these words
(转人工 -> 专人工 / 转人公 ...). A request preceded by a negation ("不要转人工",
"I don't need an agent") does not fire.

Only text the recogniser believes counts (:func:`belief`): a language
probability of at least 0.5, an average log-probability of at least -1.0 and
no repetition loop (compression ratio at most 2.4, Whisper's own thresholds).
On a partial, a phrase inside the stable prefix (two hypotheses agreed on it)
counts on that; one that reaches into the unstable tail counts only when the
decode is confident (log-probability -0.5 or better, language probability 0.8
or more) or settled (:func:`~voicetriage.triage.signals.belief.settled`: asked
for on the 200 ms pause after the speech, log-probability -0.8 or better), so a
garbled tail cannot send the call to a person, and a request at the end of an
utterance ("我要转人工。") fires from the pause partial, about half a second
before the final (docs/signals.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from voicetriage.core.events import Dtmf, Final, Partial, Signal
from voicetriage.triage.signals.base import CALLER
from voicetriage.triage.signals.belief import belief, settled
from voicetriage.triage.signals.options import HumanRequestOptions
from voicetriage.triage.signals.text import normalize


@dataclass(frozen=True)
class Phrase:
    pattern: re.Pattern[str]
    weight: float  # confidence when found in a final
    label: str


def _zh(pattern: str, weight: float, label: str) -> Phrase:
    return Phrase(re.compile(pattern), weight, label)


def _en(pattern: str, weight: float, label: str) -> Phrase:
    return Phrase(re.compile(rf"(?<![a-z]){pattern}(?![a-z])"), weight, label)


# Near-homophones Whisper produces for the key syllables (zhuan ren gong, zhen ren ...).
_ZHUAN = "[转专砖赚传撰]"
_PUNCT = "，。？！、,.?!\\s"
_REN = "[人仁任]"
_GONG = "[工公功攻宫弓恭]"

PHRASES: tuple[Phrase, ...] = (
    # Mandarin (and Cantonese written as standard Chinese)
    _zh("转人工", 0.97, "转人工"),
    _zh(f"{_ZHUAN}{_REN}{_GONG}", 0.85, "转人工 (ASR variant)"),
    # wider near-homophones (转 -> 帅/再/采, 人 -> 员: "帮我再員工克服" at 8 kHz, "我要帅员工"
    # in issue 9), only right after asking (要/帮我/给我/请/我想/麻烦) and at the end of the
    # text or before 客服/克服/服务 ("我要再员工培训" is no request)
    _zh("(?:" + "|".join(f"(?<={w})" for w in ("要", "帮我", "给我", "请", "我想", "麻烦")) + ")"
        f"[转专砖赚传撰帅甩再采][人仁任员]{_GONG}(?=客服|克服|服务|$)", 0.8,
        "转人工 (ASR variant, asked)"),
    _zh("人工(服务|客服|坐席|座席|台|接听|热线)", 0.95, "人工服务"),
    _zh(f"(要|找|接|转接|转到|叫|给我|需要|我想要){_REN}{_GONG}", 0.92, "要人工"),
    _zh("(找|要|叫|转|接|同|跟|和)(个)?(真人|真的人|活人)", 0.93, "找真人"),
    _zh("真人(服务|客服|接听)", 0.93, "真人服务"),
    _zh("(我要|我想|帮我)(找|揾|搵)(个)?人(讲|说|听)?", 0.85, "我要找人"),
    _zh("(找|要|转|接)(一下|一个|个)?(你们的|你哋嘅|你哋|你们)?(客服|工作人员|职员|接线员|接线生|话务员|服务员)", 0.9, "找客服"),
    # "请给我接一下你们的工作人员", with the verb as Whisper base wrote it on the kit
    # (接一下 -> 揭壹下 at 16 kHz, 建议下 at 8 kHz): "给我/帮我 + (two characters + 下)
    # + 你们的 + staff"
    _zh(f"(给我|帮我|请)([^{_PUNCT}]{{0,2}}下)?(你们的|你们|你哋嘅|你哋)(工作人员|职员|接线员|接线生|话务员|客服人员|人工)", 0.88, "接工作人员"),
    _zh("(跟|和|同)(人|真人|工作人员|职员|客服)(讲|说|讲话|说话|倾|对话)", 0.9, "跟人说话"),
    # 真 heard as 着 ("我要跟着人说话", 8 kHz kit clip): only after 要/想, as a request
    _zh("(要|想)(跟|和|同)(着|著|珍|针)人(讲|说)(话)?", 0.85, "跟真人说话 (ASR variant)"),
    # ... and as 这 ("我要跟這人說話", base on the 8 kHz kit clip): weaker, "this person" is a
    # sentence of its own
    _zh("(?:(?<=要)|(?<=想))(跟|和|同)这人(讲|说)话", 0.75, "跟真人说话 (ASR variant 这)"),
    # 真人 heard as 真言 ("我要跟真言说话", base on the kit's req_person in the stitched
    # cmn_en_request call): no one "speaks with a mantra" on a hotline
    _zh("(要|想)(跟|和|同)真言(讲|说)(话)?", 0.85, "跟真人说话 (ASR variant 真言)"),
    _zh("(有没有|有冇|有无|有没)(真人|人工)(?!智能)", 0.85, "有没有人工"),
    _zh("(不要|唔要|别用|不想跟|不想和)(机器人|机器|电脑|录音)", 0.85, "不要机器"),
    # Cantonese in its own words (when the ASR keeps them)
    _zh("(揾|搵|找)(真人|职员|人)(听|讲|倾)", 0.92, "搵真人"),
    _zh("唔该(转|接)(人工|真人|职员)", 0.95, "唔该转人工"),
    # English
    _en("(speak|talk|speaking|talking)( to| with) (a |an |the |some )?(real |live |actual )?(person|human|someone|somebody|agent|representative|operator|people)", 0.95, "speak to a person"),
    _en("(real|live|actual) (person|human|agent)", 0.93, "real person"),
    _en("(transfer|put|connect) me (through )?(to )?(a |an |the )?(person|human|someone|somebody)", 0.9, "transfer me"),
    _en("(customer service )?representative", 0.88, "representative"),
    _en("(an |the |a )?(agent|operator)( please)?", 0.85, "agent"),
    _en("human( being)?( please)?", 0.8, "human"),
    _en("customer (service|support|care)", 0.7, "customer service"),
)

# "人工智能" (AI) and similar contain 人工 but are not requests
_EXCLUDE = re.compile("人工智能|人工湖|人工成本|人工费")
_NEGATION_ZH = re.compile("(不要|不用|不需要|别|唔使|唔要|唔需要|无需|毋需|不想)$")
_NEGATION_EN = re.compile(r"(don't|do not|dont|no|not|never|no need for|without)( \w+)?( \w+)? $")

# "零零零", "0 0", "zero zero", "按零" / "press zero"; not the zeros of "100" or "2003"
_ZERO_WORD = "(零|〇|0|zero)"
_NUMBER_BEFORE = "(?<![0-9一二三四五六七八九十百千万两])"
_PRESS_ZERO = re.compile(rf"(按|撳|揿|press|pressing|dial) ?{_ZERO_WORD}(?![0-9])")


def _zeros(repeats: int) -> re.Pattern[str]:
    return re.compile(rf"{_NUMBER_BEFORE}({_ZERO_WORD} ?){{{repeats},}}(?![0-9])")


@dataclass(frozen=True)
class Match:
    label: str
    weight: float
    position: float  # 0..1: where in the text the phrase starts
    end: int = 0  # index just after the phrase in the normalised text


def _negated(text: str, start: int) -> bool:
    before = text[max(0, start - 24) : start]
    return bool(_NEGATION_ZH.search(before) or _NEGATION_EN.search(before.rstrip() + " "))


def find_request(text: str, extra: tuple[str, ...] = (), zero_repeats: int = 2) -> Match | None:
    """The strongest request for a human in ``text`` (any language), or None."""
    t = normalize(text)
    if not t:
        return None
    best: Match | None = None
    n = max(1, len(t))
    words = len(t.split(" ")) if t.isascii() else len(t)

    def consider(label: str, weight: float, start: int, end: int) -> None:
        nonlocal best
        if _negated(t, start):
            return
        if best is None or weight > best.weight:
            best = Match(label, weight, start / n, end)

    masked = _EXCLUDE.sub(lambda m: "#" * len(m.group()), t)
    for p in PHRASES:
        for m in p.pattern.finditer(masked):
            w = p.weight
            # a bare "agent"/"human" inside a long English sentence is weaker evidence
            if p.label in ("agent", "human", "customer service") and words > 8:
                w -= 0.2
            consider(p.label, w, m.start(), m.end())
    # a short utterance that is just "人工" ("人工!" "人工，人工")
    if re.fullmatch(f"({_REN}{_GONG})+(啊|呀|吧|呢|啦|嘛)?", masked):
        consider("人工", 0.9, 0, len(masked))
    for phrase in extra:
        p = normalize(phrase)
        i = masked.find(p) if p else -1
        if i >= 0:
            consider(phrase, 0.9, i, i + len(p))
    m = _zeros(max(2, zero_repeats)).search(t)
    if m:
        consider("repeated zeros", 0.85, m.start(), m.end())
    m = _PRESS_ZERO.search(t)
    if m:
        consider("press zero", 0.8, m.start(), m.end())
    return best


DOUBTFUL_CONFIDENCE = 0.3


class HumanRequestExtractor:
    """Signal "human_request": value True, with the phrase or keys that asked."""

    name = "human_request"

    def __init__(self, call_id: str, options: HumanRequestOptions | None = None) -> None:
        self.call_id = call_id
        self.options = options or HumanRequestOptions()
        self._now = 0.0
        self._emitted: dict[int, float] = {}  # utterance -> best confidence sent
        self._requests = 0  # distinct utterances (or key sequences) that asked
        self._zeros: list[float] = []

    def on_audio(self, track: str, samples: np.ndarray, t0: float) -> list[Signal]:
        if track == CALLER:
            self._now = max(self._now, t0 + len(samples) / 16000.0)
        return []

    def on_event(self, event: object) -> list[Signal]:
        if isinstance(event, Dtmf):
            return self._on_dtmf(event) if event.track == CALLER else []
        if isinstance(event, Partial) and event.track == CALLER and self.options.partials:
            believed, confident, doubts = belief(event)
            if not believed:
                return []
            out = self._on_text(event, event.stable, "partial_stable", 0.05, doubts)
            if settled(event):
                out += self._on_text(event, event.text, "partial_pause", 0.1, doubts)
            elif confident:
                out += self._on_text(event, event.text, "partial", 0.2, doubts)
            return out
        if isinstance(event, Final) and event.track == CALLER:
            believed, _, doubts = belief(event)
            return self._on_text(event, event.text, "final" if believed else "final_doubtful", 0.0, doubts)
        return []

    def on_close(self) -> list[Signal]:
        return []

    def _on_text(self, ev: Partial | Final, text: str, source: str, discount: float,
                 doubts: list[str]) -> list[Signal]:
        m = find_request(text, self.options.phrases, self.options.zero_repeats)
        if m is None:
            return []
        conf = round(max(0.0, m.weight - discount), 3)
        if source == "final_doubtful":
            # the recogniser does not believe this text: kept as a trace, under any
            # sensible threshold, and not counted as the caller asking
            conf = round(min(conf, DOUBTFUL_CONFIDENCE), 3)
        prev = self._emitted.get(ev.utterance)
        if prev is not None and conf < prev + 0.05:
            return []
        if prev is None and source != "final_doubtful":
            self._requests += 1
        # asking again in a later utterance makes the request unmistakable
        if source != "final_doubtful":
            conf = round(min(0.99, conf + 0.03 * (self._requests - 1)), 3)
        self._emitted[ev.utterance] = conf
        self._now = max(self._now, ev.end)
        evidence_time = ev.start + m.position * max(0.0, ev.end - ev.start)
        evidence = {
            "phrase": m.label,
            "text": text,
            "source": source,
            "utterance": ev.utterance,
            "requests": self._requests,
        }
        if doubts:
            evidence["doubts"] = doubts
        return [Signal(self.call_id, self.name, True, conf, self._now, round(evidence_time, 3), evidence)]

    def _on_dtmf(self, ev: Dtmf) -> list[Signal]:
        self._now = max(self._now, ev.time)
        digit = ev.digit
        if digit in self.options.dtmf_digits:
            return [self._key_signal(ev, f"DTMF {digit}", 0.95, [ev.time])]
        if digit != "0":
            self._zeros.clear()
            return []
        self._zeros = [t for t in self._zeros if ev.time - t <= self.options.zero_window_s] + [ev.time]
        if len(self._zeros) >= self.options.zero_repeats:
            times = self._zeros
            self._zeros = []
            return [self._key_signal(ev, f"DTMF {'0' * len(times)}", 0.95, times)]
        return []

    def _key_signal(self, ev: Dtmf, label: str, conf: float, times: list[float]) -> Signal:
        self._requests += 1
        return Signal(
            self.call_id,
            self.name,
            True,
            conf,
            self._now,
            times[0],
            {"phrase": label, "source": "dtmf", "digits": ev.digit * len(times), "requests": self._requests},
        )


__all__ = ["HumanRequestExtractor", "find_request", "belief", "PHRASES"]
