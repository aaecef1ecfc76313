"""AudioHook wire values: ISO 8601 durations, transcript word tokens and confidences."""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation
from typing import Any, Mapping

from voicetriage.core.errors import ProtocolError
from voicetriage.core.logsafe import brief

RATE = 8000
CHANNEL_TRACKS = {"external": "caller", "internal": "agent"}
_DURATION_RE = re.compile(r"^PT(\d+(?:\.\d*)?|\.\d+)S$")
# CJK ideographs, kana and hangul are one word token each; other scripts split at spaces
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
_TOKEN_RE = re.compile(f"[{_CJK}]|[^\\s{_CJK}]+")
_PUNCT_RE = re.compile(r"^[\W_]+$")
# the longest duration we take: positions and discards are call times, and a peer's
# "PT<60,000 nines>S" must not become a 480,000-digit sample count
MAX_DURATION_S = Decimal(10**9)  # 31 years
MAX_PARTICIPANT_CHARS = 256  # ani, aniName, dnis: a number or a name (the caller id in logs and events)


def parse_duration(value: object) -> Decimal:
    """``PT1.25S`` -> Decimal seconds (exact); raises ProtocolError."""
    if not isinstance(value, str) or not _DURATION_RE.match(value):
        raise ProtocolError(f"{brief(value)} is not a duration of the form PT<seconds>S", code="malformed_message")
    try:
        seconds = Decimal(value[2:-1])
    except InvalidOperation:  # pragma: no cover - the regex admits only decimals
        raise ProtocolError(f"bad duration {brief(value)}", code="malformed_message") from None
    if seconds > MAX_DURATION_S:
        raise ProtocolError(f"duration {brief(value, 40)} is over {MAX_DURATION_S} s", code="malformed_message")
    return seconds


def format_duration(seconds: float | Decimal) -> str:
    """Seconds -> ``PT<seconds>S`` with at most nanosecond digits, no trailing zeros."""
    ns = int((Decimal(str(seconds)) * 1_000_000_000).to_integral_value())
    ns = max(ns, 0)
    whole, frac = divmod(ns, 1_000_000_000)
    text = f"{whole}.{frac:09d}".rstrip("0").rstrip(".")
    return f"PT{text}S"


def samples_duration(samples: int) -> str:
    """A sample count at 8 kHz as an exact duration."""
    return format_duration(Decimal(samples) / RATE)


def word_tokens(text: str, offset: Decimal, duration: Decimal, confidence: float,
                language: str | None = None) -> list[dict[str, Any]]:
    """Word tokens of a transcript, spread over its time span.

    The recogniser gives no word timestamps, so each word gets a share of the
    utterance's duration in proportion to its length in characters (a CJK
    character is one word) and the utterance's confidence: an approximation,
    in order and without overlap. Punctuation joins the word before it.
    Offsets are whole milliseconds and strictly increasing.
    """
    words: list[str] = []
    for piece in _TOKEN_RE.findall(text):
        if words and _PUNCT_RE.match(piece):
            words[-1] += piece
        else:
            words.append(piece)
    if not words:
        return []
    total_ms = max(int(duration * 1000), len(words))
    weights = [max(1, len(re.sub(r"[\W_]", "", w))) for w in words]
    scale = Decimal(total_ms) / sum(weights)
    bounds = [0]
    acc = 0
    for w in weights:
        acc += w
        bounds.append(max(bounds[-1] + 1, int((acc * scale).to_integral_value())))
    base_ms = int((offset * 1000).to_integral_value())
    tokens = []
    for word, a, b in zip(words, bounds, bounds[1:]):
        tok: dict[str, Any] = {
            "type": "word",
            "value": word,
            "confidence": confidence,
            "offset": format_duration(Decimal(base_ms + a) / 1000),
            "duration": format_duration(Decimal(b - a) / 1000),
        }
        if language:
            tok["language"] = language
        tokens.append(tok)
    return tokens


def _confidence(avg_logprob: float) -> float:
    """Whisper's mean token log-probability as a 0..1 confidence."""
    if not math.isfinite(avg_logprob):
        return 0.0
    return round(min(1.0, max(0.0, math.exp(avg_logprob))), 3)

_UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_LANG_RE = re.compile(r"^[a-z]{2,3}-[A-Za-z]{2,3}$")


def _is_uuid(value: object) -> bool:
    return isinstance(value, str) and bool(_UUID_RE.match(value))


def _is_seq(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def validate_open(p: Mapping[str, Any]) -> str | None:
    """What is wrong with an ``open`` message's parameters, or None."""
    for key in ("organizationId", "conversationId"):
        if not _is_uuid(p.get(key)):
            return f"{key} must be a UUID"
    part = p.get("participant")
    if not isinstance(part, dict) or not _is_uuid(part.get("id")):
        return "participant must be an object with a UUID id"
    for key in ("ani", "aniName", "dnis"):
        value = part.get(key)
        if not isinstance(value, str) or len(value) > MAX_PARTICIPANT_CHARS or not value.isprintable():
            return f"participant.{key} must be a printable string of at most {MAX_PARTICIPANT_CHARS} characters"
    media = p.get("media")
    if not isinstance(media, list):
        return "media must be a list"
    for m in media:
        if (not isinstance(m, dict) or m.get("type") != "audio" or m.get("format") not in ("PCMU", "L16")
                or m.get("rate") != RATE or not isinstance(m.get("channels"), list)
                or not 1 <= len(m["channels"]) <= 2
                or any(not isinstance(c, str) or c not in CHANNEL_TRACKS for c in m["channels"])
                or len(set(m["channels"])) != len(m["channels"])):
            return f"bad media entry {brief(m)}"
    lang = p.get("language")
    if lang is not None and not (isinstance(lang, str) and _LANG_RE.match(lang)):
        return f"language {brief(lang)} is not a language code like en-US"
    if "supportedLanguages" in p and not isinstance(p["supportedLanguages"], bool):
        return "supportedLanguages must be a boolean"
    if "customConfig" in p and not isinstance(p["customConfig"], dict):
        return "customConfig must be an object"
    return None

def select_media(offers: list[dict[str, Any]]) -> dict[str, Any] | None:
    """PCMU only (L16's byte order is not pinned down for AudioHook); prefer both
    channels, then the customer (external) alone, then the agent alone."""
    def rank(m: dict[str, Any]) -> tuple[int, int]:
        ch = m["channels"]
        return (0 if len(ch) == 2 else 1, 0 if ch[0] == "external" else 1)

    pcmu = [m for m in offers if m["format"] == "PCMU"]
    return min(pcmu, key=rank) if pcmu else None
