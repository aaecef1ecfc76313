"""Transcript documents and their writers: JSON Lines, SubRip, WebVTT, plain text, RTTM.

The batch CLI builds a :class:`Transcript` per audio file and renders it with
:func:`render`. Writers are pure functions of the transcript (no I/O), so
their exact output is easy to test.

JSON Lines schema (``format_version`` 1), one JSON object per line, UTF-8:

* first line, ``{"type": "header", ...}``: ``format_version``, ``file`` (the
  input as named on the command line or found in a directory), ``model`` and
  ``model_source`` (registry id and where its weights came from), ``duration``
  (seconds of audio), ``channels`` ("mono" or "split") and ``tracks``: one
  ``{"speaker", "channel", "language", "language_probability"}`` per
  transcribed channel (``speaker``/``channel`` are null for mono) and, with
  ``--diarize``, ``diarization``: ``{"speakers": {label: seconds}, "roles":
  {diarization label: name}, "rule", "source", "processing_s"}``;
* then one ``{"type": "segment", ...}`` per segment, in time order:
  ``file``, ``start``, ``end`` (seconds from the start of the file), ``text``,
  ``speaker`` (the channel label, or with ``--diarize`` the speaker's role or
  label; null for mono without diarization), ``language``,
  ``language_probability``, ``avg_logprob``, ``no_speech_prob`` and, with
  word timestamps, ``words``: ``[{"start", "end", "word", "probability"}]``
  (``avg_logprob`` and ``no_speech_prob`` are those of the decoding window the
  segment came from, as faster-whisper reports them);
* last line, ``{"type": "summary", ...}``: ``file``, ``segments`` (count),
  ``duration``, ``processing_s`` (wall time spent on the file) and
  ``real_time_factor`` (processing time / audio time). A file whose last line
  is not a summary is incomplete.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Callable

FORMAT_VERSION = 1


@dataclass(frozen=True)
class Word:
    start: float
    end: float
    word: str
    probability: float


@dataclass(frozen=True)
class Segment:
    """One recognised stretch of speech; times in seconds from the start of the file."""

    start: float
    end: float
    text: str
    speaker: str | None
    language: str
    language_probability: float
    avg_logprob: float
    no_speech_prob: float
    words: tuple[Word, ...] | None = None  # None: word timestamps were not asked for


@dataclass(frozen=True)
class Track:
    """One transcribed channel (the whole mix for mono)."""

    speaker: str | None
    channel: int | None
    language: str
    language_probability: float


@dataclass(frozen=True)
class Transcript:
    """Everything a writer needs about one transcribed file."""

    file: str
    model: str
    model_source: str
    duration: float
    channels: str  # "mono" | "split"
    tracks: tuple[Track, ...]
    segments: tuple[Segment, ...]
    processing_s: float = 0.0
    # speaker diarization (--diarize): who spoke when, as (start, end, speaker)
    # turns, and a description for the JSONL header (speakers, roles, model)
    turns: tuple[tuple[float, float, str], ...] = ()
    diarization: dict | None = None


def _ms(seconds: float) -> int:
    return max(0, round(seconds * 1000))


def format_timestamp(seconds: float, decimal_marker: str = ".") -> str:
    """``HH:MM:SS.mmm`` (WebVTT) or, with ``","``, ``HH:MM:SS,mmm`` (SubRip).

    Rounded to the millisecond; hours keep counting past 99.
    """
    ms = _ms(seconds)
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{decimal_marker}{ms:03d}"


def _one_line(text: str) -> str:
    # A blank line ends an SRT/VTT cue, so cue text must not contain one.
    return " ".join(text.split())


def _vtt_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _labelled(seg: Segment) -> str:
    text = _one_line(seg.text)
    return f"[{seg.speaker}] {text}" if seg.speaker else text


def render_srt(t: Transcript) -> str:
    blocks = []
    for i, seg in enumerate(t.segments, 1):
        start = format_timestamp(seg.start, ",")
        end = format_timestamp(seg.end, ",")
        blocks.append(f"{i}\n{start} --> {end}\n{_labelled(seg)}\n")
    return "\n".join(blocks)


def render_vtt(t: Transcript) -> str:
    out = ["WEBVTT\n"]
    for seg in t.segments:
        text = _vtt_escape(_one_line(seg.text))
        if seg.speaker:
            text = f"<v {seg.speaker}>{text}"
        out.append(f"\n{format_timestamp(seg.start)} --> {format_timestamp(seg.end)}\n{text}\n")
    return "".join(out)


def render_txt(t: Transcript) -> str:
    return "".join(f"{_labelled(seg)}\n" for seg in t.segments)


def _r(x: float, digits: int) -> float:
    return round(float(x), digits)


def render_jsonl(t: Transcript) -> str:
    def line(obj: dict) -> str:
        return json.dumps(obj, ensure_ascii=False) + "\n"

    out = [
        line(
            {
                "type": "header",
                "format_version": FORMAT_VERSION,
                "file": t.file,
                "model": t.model,
                "model_source": t.model_source,
                "duration": _r(t.duration, 3),
                "channels": t.channels,
                "tracks": [
                    {
                        "speaker": tr.speaker,
                        "channel": tr.channel,
                        "language": tr.language,
                        "language_probability": _r(tr.language_probability, 4),
                    }
                    for tr in t.tracks
                ],
                **({"diarization": t.diarization} if t.diarization is not None else {}),
            }
        )
    ]
    for seg in t.segments:
        obj = {
            "type": "segment",
            "file": t.file,
            "start": _r(seg.start, 3),
            "end": _r(seg.end, 3),
            "text": seg.text.strip(),
            "speaker": seg.speaker,
            "language": seg.language,
            "language_probability": _r(seg.language_probability, 4),
            "avg_logprob": _r(seg.avg_logprob, 4),
            "no_speech_prob": _r(seg.no_speech_prob, 4),
        }
        if seg.words is not None:
            obj["words"] = [
                {"start": _r(w.start, 3), "end": _r(w.end, 3), "word": w.word, "probability": _r(w.probability, 4)}
                for w in seg.words
            ]
        out.append(line(obj))
    rtf = t.processing_s / t.duration if t.duration > 0 else 0.0
    out.append(
        line(
            {
                "type": "summary",
                "file": t.file,
                "segments": len(t.segments),
                "duration": _r(t.duration, 3),
                "processing_s": _r(t.processing_s, 3),
                "real_time_factor": _r(rtf, 4),
            }
        )
    )
    return "".join(out)


def rttm_text(uri: str, rows) -> str:
    """NIST RTTM lines ``SPEAKER <uri> 1 <start> <duration> <NA> <NA> <speaker> <NA> <NA>``
    from (start, end, speaker) rows; blanks in names become underscores."""
    uri = "_".join(uri.split()) or "recording"
    lines = []
    for start, end, speaker in sorted(rows, key=lambda r: (r[0], str(r[2]))):
        if end > start:
            label = "_".join(str(speaker).split())
            lines.append(f"SPEAKER {uri} 1 {start:.3f} {end - start:.3f} <NA> <NA> {label} <NA> <NA>\n")
    return "".join(lines)


def render_rttm(t: Transcript) -> str:
    """Speaker turns as RTTM: the diarization's turns, else the labelled segments
    (``--channels split``). The file id is the input's name without its suffix."""
    name = t.file.replace("\\", "/").rsplit("/", 1)[-1]
    uri = name.rsplit(".", 1)[0] if "." in name[1:] else name
    rows = list(t.turns) if t.turns else [(s.start, s.end, s.speaker) for s in t.segments if s.speaker]
    return rttm_text(uri, rows)


WRITERS: dict[str, Callable[[Transcript], str]] = {
    "jsonl": render_jsonl,
    "srt": render_srt,
    "vtt": render_vtt,
    "txt": render_txt,
    "rttm": render_rttm,
}
FORMATS = tuple(WRITERS)


def render(fmt: str, transcript: Transcript) -> str:
    """The file content of ``transcript`` in format ``fmt`` (one of :data:`FORMATS`)."""
    try:
        writer = WRITERS[fmt]
    except KeyError:
        raise ValueError(f"unknown transcript format {fmt!r}; choose one of {', '.join(FORMATS)}") from None
    return writer(transcript)


def is_complete(content: str, fmt: str) -> bool:
    """Whether ``content`` (a whole file, or its last few KB) ends a complete ``fmt`` file.

    Files are renamed into place only when written completely, so any
    existing output counts as complete; JSON Lines is also checked for its
    trailing summary line, in case it was copied or edited by hand.
    """
    if fmt != "jsonl":
        return True
    lines = content.rstrip("\n").rsplit("\n", 1)
    try:
        last = json.loads(lines[-1])
    except ValueError:
        return False
    return isinstance(last, dict) and last.get("type") == "summary"


__all__ = [
    "FORMAT_VERSION",
    "FORMATS",
    "Word",
    "Segment",
    "Track",
    "Transcript",
    "format_timestamp",
    "render",
    "render_jsonl",
    "render_srt",
    "render_vtt",
    "render_txt",
    "render_rttm",
    "rttm_text",
    "is_complete",
]
