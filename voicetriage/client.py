"""A client of the native protocol: stream an audio file into a server.

Used by ``voicetriage stream`` and ``voicetriage demo``, by the tests and by
the benchmarks.
"""

from __future__ import annotations

import asyncio
import json
import time
import wave
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from voicetriage.audio.codecs import SAMPLE_RATES, AudioSpec, alaw_encode, ulaw_encode
from voicetriage.core.errors import AudioFileError


@dataclass(frozen=True)
class StreamOptions:
    """How to send a file: wire format, pacing and call metadata.

    ``speed`` 1.0 is real time, 2.0 twice as fast, 0 as fast as possible.
    ``sample_rate``/``encoding`` ``None``: keep a WAV file's own PCM16 rate.
    ``token``: the API token (sent as ``Authorization: Bearer``); ``cafile``:
    a CA bundle to trust for a ``wss://`` server with its own certificate.
    """

    encoding: str = "pcm16"
    sample_rate: int | None = None
    channels: int = 1
    frame_ms: int = 20
    speed: float = 1.0
    call_id: str | None = None
    caller_id: str | None = None
    language: str | None = None
    tail_silence_s: float = 0.0
    token: str | None = field(default=None, repr=False)
    cafile: str | None = None


def _read_wav_pcm16(path: Path) -> tuple[np.ndarray, int] | None:
    """A PCM16 WAV's samples (n, channels) and rate, or None if not plain PCM16."""
    try:
        with wave.open(str(path), "rb") as w:
            if w.getsampwidth() != 2 or w.getcomptype() != "NONE":
                return None
            data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
            return data.reshape(-1, w.getnchannels()), w.getframerate()
    except (wave.Error, EOFError):
        return None


def wire_audio(path: str | Path, opts: StreamOptions) -> tuple[bytes, AudioSpec]:
    """Read ``path`` and encode it for the wire as ``opts`` asks."""
    path = Path(path)
    if not path.is_file():
        raise AudioFileError(f"{path}: no such file")
    pcm_rate = _read_wav_pcm16(path)
    want_rate = opts.sample_rate or (8000 if opts.encoding in ("mulaw", "alaw") else None)
    if pcm_rate is not None and pcm_rate[1] in SAMPLE_RATES and (want_rate in (None, pcm_rate[1])):
        pcm, rate = pcm_rate
    else:
        from voicetriage.audio.files import read_audio

        rate = want_rate or 16000
        try:
            chans = read_audio(path, rate, split=opts.channels == 2)
        except AudioFileError as e:
            raise AudioFileError(f"{path}: {e}") from None
        pcm = np.stack([np.clip(c * 32768.0, -32768, 32767).astype(np.int16) for c in chans], axis=1)
    if pcm.shape[1] != opts.channels:
        pcm = pcm.mean(axis=1, keepdims=True).astype(np.int16) if opts.channels == 1 else np.repeat(pcm[:, :1], 2, axis=1)
    if opts.tail_silence_s > 0:
        pcm = np.concatenate([pcm, np.zeros((int(rate * opts.tail_silence_s), pcm.shape[1]), np.int16)])
    flat = pcm.reshape(-1)
    spec = AudioSpec.parse(opts.encoding, rate, opts.channels)
    if spec.encoding == "mulaw":
        data = ulaw_encode(flat)
    elif spec.encoding == "alaw":
        data = alaw_encode(flat)
    else:
        data = flat.astype("<i2").tobytes()
    return data, spec


def connect_options(url: str, opts: StreamOptions) -> dict[str, Any]:
    """The credential and TLS settings of a client connection."""
    out: dict[str, Any] = {}
    if opts.token:
        out["additional_headers"] = {"Authorization": f"Bearer {opts.token}"}
    if opts.cafile and url.startswith("wss://"):
        import ssl

        out["ssl"] = ssl.create_default_context(cafile=opts.cafile)
    return out


async def stream_file(
    url: str,
    path: str | Path,
    opts: StreamOptions = StreamOptions(),
    on_event: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Play ``path`` into the server at ``url``; return every event received.

    Each event dict gets ``_t``: seconds since the first audio frame was sent.
    """
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    data, spec = wire_audio(path, opts)
    start = {
        "type": "start",
        "call_id": opts.call_id or Path(path).stem,
        "encoding": spec.encoding,
        "sample_rate": spec.sample_rate,
        "channels": spec.channels,
    }
    if opts.caller_id:
        start["caller_id"] = opts.caller_id
    if opts.language:
        start["language"] = opts.language
    frame = spec.frame_bytes * spec.sample_rate * opts.frame_ms // 1000
    events: list[dict[str, Any]] = []
    t0 = time.monotonic()

    # sending faster than the server reads (it holds a call to a few times real time)
    # puts our pings behind seconds of queued audio: no ping timeout then
    fast = opts.speed == 0 or opts.speed > 2
    async with connect(url, max_size=None, open_timeout=30, close_timeout=30,
                       ping_timeout=None if fast else 20, **connect_options(url, opts)) as ws:
        await ws.send(json.dumps(start))
        first = json.loads(await ws.recv())
        first["_t"] = 0.0
        events.append(first)
        if on_event:
            on_event(first)
        if first.get("type") != "started":
            return events

        async def receive() -> None:
            async for msg in ws:
                ev = json.loads(msg)
                ev["_t"] = round(time.monotonic() - t0, 3)
                events.append(ev)
                if on_event:
                    on_event(ev)

        receiver = asyncio.ensure_future(receive())
        t0 = time.monotonic()
        try:
            for i, off in enumerate(range(0, len(data), frame)):
                await ws.send(data[off : off + frame])
                if opts.speed > 0:
                    due = t0 + (i + 1) * opts.frame_ms / 1000 / opts.speed
                    delay = due - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                elif i % 50 == 0:
                    await asyncio.sleep(0)
            await ws.send(json.dumps({"type": "stop"}))
        except ConnectionClosed:
            # the server ended the call first (shutting down, a limit): what it sent
            # before closing, its summary included, is the call's result
            await asyncio.gather(receiver, return_exceptions=True)
            if not any(e.get("type") == "summary" for e in events):
                raise
            return events
        try:
            await asyncio.wait_for(receiver, timeout=120)
        except asyncio.TimeoutError:
            receiver.cancel()
    return events


def format_event(ev: dict[str, Any]) -> str | None:
    """A readable one-line rendering of a server event (None: nothing to show)."""
    kind = ev.get("type")
    ts = lambda t: f"{int(t // 60):02d}:{t % 60:05.2f}"  # noqa: E731
    if kind == "started":
        return f"● call {ev['call_id']} started (model {ev['model']}, {ev['encoding']} {ev['sample_rate']} Hz)"
    if kind == "partial":
        return f"  … {ts(ev['start'])} {ev['track']}: {ev['stable']}\u2009{ev['unstable']}".rstrip()
    if kind == "final":
        return (f"[{ts(ev['start'])} → {ts(ev['end'])}] {ev['track']} "
                f"({ev['language']} {ev['language_probability']:.2f}): {ev['text']}")
    if kind == "hint":
        why = ", ".join(ev.get("rules", []) or ev.get("rules_fired", []) or [])
        return f"⚑ HINT → {ev.get('queue') or ev.get('action')} (priority {ev.get('priority')}, confidence {ev.get('confidence')}) {why}"
    if kind == "dtmf":
        return f"  # DTMF {ev['digit']} at {ts(ev['time'])}"
    if kind == "error":
        return f"✖ error {ev['code']}: {ev['message']}"
    if kind == "summary":
        return f"■ call {ev['call_id']} ended ({ev['reason']}): {ev['utterances']} utterance(s), languages {ev['languages']}"
    return None
