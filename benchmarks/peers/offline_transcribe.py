"""A peer's own offline transcript of one file: faster-whisper on the whole file, in the peer's venv.

Runs inside a peer's venv (each has its own faster-whisper pin):
``python offline_transcribe.py MODEL_DIR WAV LANGUAGE`` (LANGUAGE ``auto`` detects it) and
prints one JSON line: text, segments, detected language, options, seconds. The same
weights and language as the peer's streaming run, faster-whisper's default decoding
(beam 5, temperature fallback) with its Silero VAD filter, as every peer here runs VAD too.
"""

import json
import os
import sys
import time

# this script's folder (benchmarks/peers) must not shadow the peer's own packages
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if p and os.path.abspath(p) != _HERE]

from faster_whisper import WhisperModel  # noqa: E402

model_dir, wav, language = sys.argv[1], sys.argv[2], sys.argv[3]
options = {"beam_size": 5, "vad_filter": True, "language": None if language == "auto" else language}
t0 = time.monotonic()
model = WhisperModel(model_dir, device="cpu", compute_type="int8", local_files_only=True)
segments, info = model.transcribe(wav, **options)
segs = [{"start": round(s.start, 3), "end": round(s.end, 3), "text": s.text} for s in segments]
print(json.dumps({
    "text": " ".join(s["text"].strip() for s in segs),
    "segments": segs,
    "language": info.language,
    "language_probability": round(info.language_probability, 3),
    "options": options,
    "seconds": round(time.monotonic() - t0, 2),
}, ensure_ascii=False))
