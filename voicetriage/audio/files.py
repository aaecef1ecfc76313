"""Reading audio files: one decoder for the offline CLI, the streaming client and evaluation."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from voicetriage.core.errors import AudioFileError


def read_audio(path: str | Path, rate: int = 16000, split: bool = False, channels: int | None = None) -> list[np.ndarray]:
    """Decode any audio file (PyAV) to float32 at ``rate``: ``[mono]`` or, with ``split``, ``[ch0, ch1]``.

    ``channels`` is the file's channel count when known (split needs two). Errors are
    :class:`AudioFileError` with the reason only; callers name the file.
    """
    from faster_whisper import decode_audio

    path = Path(path)
    if not path.exists():
        raise AudioFileError("no such file or directory")
    if not path.is_file():
        raise AudioFileError("not a regular file")
    if split and channels is not None and channels != 2:
        raise AudioFileError(
            f"has {channels} channel{'s' if channels != 1 else ''}; split channels need a "
            "2-channel (stereo) recording"
        )
    try:
        decoded = decode_audio(str(path), sampling_rate=rate, split_stereo=split)
    except MemoryError:
        raise
    except Exception as e:  # PyAV raises many types, all meaning "cannot read this"
        reason = getattr(e, "strerror", None) or str(e) or type(e).__name__
        raise AudioFileError(f"cannot decode audio: {reason}") from None
    arrays = list(decoded) if split else [decoded]
    if arrays[0].size == 0:
        raise AudioFileError("contains no audio samples")
    return arrays
