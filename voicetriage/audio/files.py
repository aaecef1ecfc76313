"""Reading audio files: one decoder for the offline CLI, the streaming client and evaluation."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from voicetriage.core.errors import AudioFileError


def _check_source(path: str | Path, split: bool, channels: int | None) -> Path:
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
    return path


def read_audio(path: str | Path, rate: int = 16000, split: bool = False, channels: int | None = None) -> list[np.ndarray]:
    """Decode any audio file (PyAV) to float32 at ``rate``: ``[mono]`` or, with ``split``, ``[ch0, ch1]``.

    ``channels`` is the file's channel count when known (split needs two). Errors are
    :class:`AudioFileError` with the reason only; callers name the file.
    """
    return next(iter_audio_blocks(path, rate, split, channels, block_s=None))[1]


BLOCK_S = 60.0  # a long recording is decoded and transcribed a minute at a time
CUT_SEARCH_S = 10.0  # ... cut at the quietest 50 ms of the block's last ten seconds
_GROUP = 1 << 16  # samples resampled at once


def iter_audio_blocks(path: str | Path, rate: int = 16000, split: bool = False, channels: int | None = None,
                      block_s: float | None = BLOCK_S, search_s: float = CUT_SEARCH_S):
    """Decode a file a block at a time: ``(first sample, [mono] or [ch0, ch1])`` per block.

    Memory stays at a few blocks whatever the recording's length (a one-hour file
    decoded whole is 230 MB of float32 per channel before the recogniser's features).
    Blocks end at the quietest 50 ms near ``block_s`` so a cut rarely splits a word;
    ``block_s`` None: the whole file as one block (:func:`read_audio`).
    Errors are :class:`AudioFileError`, as for :func:`read_audio`.
    """
    import av

    path = _check_source(path, split, channels)
    width = 2 if split else 1
    block = None if block_s is None else int(block_s * rate)
    search = int(search_s * rate)
    win = max(1, rate // 20)

    def chunks():
        try:
            resampler = av.audio.resampler.AudioResampler(format="s16", layout="stereo" if split else "mono",
                                                          rate=rate)
            with av.open(str(path), mode="r", metadata_errors="ignore") as container:
                fifo = av.audio.fifo.AudioFifo()
                frames = container.decode(audio=0)
                while True:
                    try:
                        frame = next(frames)
                    except StopIteration:
                        break
                    except av.error.InvalidDataError:
                        continue
                    frame.pts = None
                    fifo.write(frame)
                    if fifo.samples >= _GROUP:
                        for out in resampler.resample(fifo.read()):
                            yield out.to_ndarray().reshape(-1, width)
                if fifo.samples:
                    for out in resampler.resample(fifo.read()):
                        yield out.to_ndarray().reshape(-1, width)
                for out in resampler.resample(None):
                    yield out.to_ndarray().reshape(-1, width)
        except MemoryError:
            raise
        except AudioFileError:
            raise
        except Exception as e:  # PyAV raises many types, all meaning "cannot read this"
            reason = getattr(e, "strerror", None) or str(e) or type(e).__name__
            raise AudioFileError(f"cannot decode audio: {reason}") from None

    def emit(start: int, pcm: np.ndarray):
        f = pcm.astype(np.float32) / 32768.0
        return start, [f[:, c].copy() for c in range(width)]

    pending: list[np.ndarray] = []
    held = 0
    start = 0
    for piece in chunks():
        pending.append(piece)
        held += len(piece)
        if block is None or held < block + search:
            continue
        buf = np.concatenate(pending)
        tail = buf[block - search:block].astype(np.float32).mean(axis=1)
        energy = np.convolve(tail * tail, np.ones(win, np.float32), mode="valid")
        cut = block - search + int(np.argmin(energy)) + win // 2
        yield emit(start, buf[:cut])
        start += cut
        pending, held = [buf[cut:]], len(buf) - cut
    if held or start == 0:
        buf = np.concatenate(pending) if pending else np.zeros((0, width), np.int16)
        if start == 0 and len(buf) == 0:
            raise AudioFileError("contains no audio samples")
        yield emit(start, buf)
