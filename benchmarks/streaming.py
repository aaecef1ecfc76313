"""What every client shares: real-time pacing of a call's audio, and the drain.

Audio goes out in fixed frames (20 ms by default, as telephony media streams
send it) on an absolute schedule: frame ``i`` leaves at ``start + (i+1) *
frame``, so a slow loop never makes the call drift faster or slower than real
time. The send time of each frame is recorded: latencies are measured from the
moment the server *could* have had the audio.

After the call's audio the line stays open with silence (as a real call does
until hang-up) until the server has committed text for the last utterance, or
``drain_s`` passes: every system gets the same chance to finish.
"""

from __future__ import annotations

import asyncio
import time
from typing import Awaitable, Callable

from .analysis import END_TOLERANCE_S, CallTrace
from .corpus import SAMPLE_RATE

Send = Callable[[bytes], Awaitable[None]]


def last_utterance_done(trace: CallTrace) -> bool:
    last = trace.call.utterances[-1]
    end_wall = trace.end_wall(last)
    for o in trace.obs:
        if o.committed and o.t >= end_wall and (o.end is None or o.end >= last.end - END_TOLERANCE_S):
            return True
    return False


async def sleep_until(t: float) -> None:
    delay = t - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)


async def play(
    trace: CallTrace,
    send: Send,
    *,
    drain_s: float = 6.0,
    encode: Callable[[bytes], bytes] | None = None,
    speed: float = 1.0,
) -> None:
    """Send the call's PCM16 audio in real time, then silence until done or ``drain_s``."""
    pcm = trace.call.pcm16()
    step = trace.chunk_samples * 2
    frame_s = trace.chunk_samples / SAMPLE_RATE / speed
    silence = bytes(step)
    start = time.monotonic()
    i = 0
    for off in range(0, len(pcm), step):
        chunk = pcm[off : off + step]
        await sleep_until(start + (i + 1) * frame_s)
        await send(encode(chunk) if encode else chunk)
        trace.send_times.append(time.monotonic())
        i += 1
    trace.audio_done_at = time.monotonic()
    deadline = trace.audio_done_at + drain_s
    while time.monotonic() < deadline and not last_utterance_done(trace):
        await sleep_until(start + (i + 1) * frame_s)
        await send(encode(silence) if encode else silence)
        i += 1


__all__ = ["play", "sleep_until", "last_utterance_done"]
