"""Whisper's decoding safeguards that read the text: the compression ratio and the
loop guard (faster-whisper's ``generate_with_fallback`` checks, plus short loops)."""

from __future__ import annotations

import re
import zlib


def compression_ratio(text: str) -> float:
    """Whisper's measure: UTF-8 bytes over their zlib-compressed size (0 for no text)."""
    b = text.encode("utf-8")
    return len(b) / max(1, len(zlib.compress(b))) if b else 0.0


# A unit of two or more characters repeated four or more times in a row, or one
# character eight or more times ("谢谢谢谢谢谢谢谢" is not speech either).
_REPEAT = re.compile(r"(.{2,}?)\1{3,}|(.)\2{7,}", re.S)


def is_loop(text: str, compression_ratio_threshold: float = 2.4) -> bool:
    """A decoding loop: gzip compression ratio above the threshold (Whisper's own
    test, meaningful on texts of a few dozen bytes and more) or a run of one
    unit repeated as :data:`_REPEAT` says (catches short loops zlib cannot)."""
    return compression_ratio(text) > compression_ratio_threshold or repeats(text)


def repeats(text: str) -> bool:
    """A run of one unit repeated as :data:`_REPEAT` says (the loop test zlib misses)."""
    return _REPEAT.search(text) is not None


def cut_loops(text: str) -> str:
    """Keep one copy of every repeated run (the loop guard's last resort)."""
    return _REPEAT.sub(lambda m: m.group(1) or m.group(2), text).strip()


__all__ = ["compression_ratio", "cut_loops", "is_loop", "repeats"]
