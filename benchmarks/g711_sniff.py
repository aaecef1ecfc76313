"""How well AudioSocket's kind-0x10 sniffer tells slin from µ-law on real recordings.

``python -m benchmarks.g711_sniff [EVAL_DIR]`` (default ../shared/eval beside the
repo) takes every clip of the kit at 8 kHz, sends it through
:class:`~voicetriage.protocols.audiosocket.AudioSocketCall` as Asterisk would (20 ms
frames under kind 0x10: 320 bytes of slin, or 160 bytes of µ-law as ``c(ulaw)``
sends), and prints, per reading, the codec each call ended with, how much audio
came before the decision, and the per-window verdicts of
:func:`voicetriage.audio.sniff.classify` with the margins behind them. Seeded
low-level noise and digital silence are added as slin calls that must never be
taken for µ-law. Deterministic; needs no model.
"""

from __future__ import annotations

import json
import logging
import sys
import uuid
import wave
from collections import Counter
from pathlib import Path

import numpy as np
import soxr

from voicetriage.audio import sniff
from voicetriage.audio.codecs import ulaw_encode
from voicetriage.protocols.audiosocket import AudioSocketCall, encode_frame

EVAL_DIR = Path(__file__).resolve().parent.parent.parent / "shared" / "eval"


def load8k(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        rate, width = w.getframerate(), w.getsampwidth()
        raw = w.readframes(w.getnframes())
    if width != 2:
        raise SystemExit(f"{path}: {8 * width}-bit WAV, expected 16-bit")
    x = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
    if rate != 8000:
        x = soxr.resample(x, rate, 8000)
    return np.clip(np.round(x * 32768.0), -32768, 32767).astype(np.int16)


def call(data: bytes, size: int) -> AudioSocketCall:
    c = AudioSocketCall()
    c.receive(encode_frame(0x01, uuid.uuid4().bytes))
    c.decided_at = None  # type: ignore[attr-defined]
    for i in range(0, len(data), size):
        c.receive(encode_frame(0x10, data[i:i + size]))
        if c.codec is not None and c.decided_at is None:  # type: ignore[attr-defined]
            c.decided_at = (i + size) / (2 if c.codec == "pcm16" else 1) / 8000  # type: ignore[attr-defined]
    c.receive(encode_frame(0x00))
    return c


def windows(data: bytes) -> Counter:
    w = sniff.WINDOW_BYTES
    return Counter(str(sniff.classify(data[i:i + w])) for i in range(0, len(data) - w + 1, w))


def main(argv: list[str]) -> int:
    logging.getLogger("voicetriage.protocols.audiosocket").setLevel(logging.ERROR)  # one µ-law warning a call
    root = Path(argv[0]) if argv else EVAL_DIR
    clips = [json.loads(line) for line in (root / "manifest.jsonl").read_text(encoding="utf-8").splitlines()
             if line.strip()]
    signals = {c["id"]: load8k(root / c["file"]) for c in clips}
    rng = np.random.default_rng(0)
    extra = {f"noise sigma={s}": np.clip(rng.normal(0, s, 24000), -32768, 32767).astype(np.int16)
             for s in (1, 3, 10, 30, 100, 300, 1000, 3000)}
    extra["digital silence"] = np.zeros(24000, np.int16)
    print(f"{len(clips)} clips from {root}, {sum(len(s) for s in signals.values()) / 8000:.0f} s at 8 kHz; "
          f"window {sniff.WINDOW_BYTES} bytes")
    for name, encode, size, want in (("slin", lambda s: s.astype("<i2").tobytes(), 320, "pcm16"),
                                     ("mulaw", ulaw_encode, 160, "mulaw")):
        ended, verdicts, delays, wrong = Counter(), Counter(), [], []
        for cid, s in signals.items():
            data = encode(s)
            c = call(data, size)
            ended[c.codec] += 1
            verdicts += windows(data)
            if c.codec != want:
                wrong.append(cid)
            elif c.decided_at is not None:
                delays.append(c.decided_at)
        print(f"\n{name} under 0x10 ({size}-byte frames): calls ended as {dict(ended)}; "
              f"{sniff.WINDOW_BYTES}-byte windows {dict(verdicts)}")
        if delays:
            d = np.array(delays)
            print(f"  call audio received when the codec was decided: median {np.median(d):.2f} s, "
                  f"max {d.max():.2f} s ({len(d)} calls decided before their end)")
        print(f"  misread calls: {wrong or 'none'}")
    print("\nslin noise and silence (3 s each):")
    for label, s in extra.items():
        c = call(s.astype("<i2").tobytes(), 320)
        print(f"  {label:>17}: ended as {c.codec}, windows {dict(windows(s.astype('<i2').tobytes()))}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
