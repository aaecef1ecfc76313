"""``transcribe --diarize``: speaker labels for a transcript, from the diarization."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

from voicetriage.diarize.labelling import speaker_for, speech_per_speaker, turns_of
from voicetriage.diarize.roles import GREETINGS, Utterance, assign


@dataclass
class TranscriptDiarizer:
    """The batch runner's ``annotate`` hook: diarize the file, label every segment.

    Mono recordings are diarized; a split stereo recording already has one
    speaker per channel, whose labels are exact and kept as they are.
    """

    diarizer: Any  # pipeline.Diarizer (None for --channels split)
    roles: str = "greeting"
    greetings: tuple[str, ...] = GREETINGS

    def __call__(self, transcript, audio: list) -> Any:
        if transcript.channels == "split" or self.diarizer is None:
            return replace(transcript, diarization={
                "source": "channels",
                "speakers": _speech_from_segments(transcript.segments),
                "roles": None,
                "rule": "channel labels",
            })
        t0 = time.perf_counter()
        ann = self.diarizer(audio[0])
        took = time.perf_counter() - t0
        raw = turns_of(ann)
        utterances = [Utterance(speaker_for(s.start, s.end, raw) or "", s.start, s.text) for s in transcript.segments]
        names = assign(speech_per_speaker(ann), utterances, self.roles, self.greetings)
        turns = turns_of(ann, names)
        segments = tuple(
            replace(s, speaker=speaker_for(s.start, s.end, turns)) for s in transcript.segments
        )
        return replace(
            transcript,
            segments=segments,
            turns=tuple((round(t.start, 3), round(t.end, 3), t.speaker) for t in turns),
            diarization={
                "source": self.diarizer.source,
                "speakers": {names.get(k, k): round(v, 3) for k, v in speech_per_speaker(ann)},
                "roles": names if self.roles != "none" else None,
                "rule": self.roles,
                "speakers_requested": self.diarizer.options.speakers,
                "processing_s": round(took, 3),
            },
        )


def _speech_from_segments(segments) -> dict[str, float]:
    out: dict[str, float] = {}
    for s in segments:
        if s.speaker:
            out[s.speaker] = round(out.get(s.speaker, 0.0) + s.end - s.start, 3)
    return out
