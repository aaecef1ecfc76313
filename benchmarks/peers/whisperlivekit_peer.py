"""WhisperLiveKit (``whisperlivekit``): server launcher and a client of its websocket protocol.

Server: ``whisperlivekit-server --backend faster-whisper --backend-policy
localagreement --model_dir DIR --pcm-input --warmup-file WAV`` (offline: a local
CTranslate2 directory and a local warm-up file, nothing fetched).

Protocol (basic_server.py, ``/asr``): the server sends ``{"type": "config"}``;
the client sends raw PCM s16le 16 kHz mono as binary messages and an empty
message to end; the server sends its whole state on every update: ``lines``
(committed text, ``start``/``end`` as ``H:MM:SS.cc``) and
``buffer_transcription`` (text not yet committed), and ``{"type":
"ready_to_stop"}`` when all audio is processed. Text moved into ``lines`` is
its final (LocalAgreement committed); the buffer is its partial.
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


class WhisperLiveKit(System):
    name = "whisperlivekit"
    final_meaning = "text moved from buffer_transcription into 'lines' (LocalAgreement-committed tokens)"
    partial_meaning = "buffer_transcription (uncommitted hypothesis)"

    def __init__(self, label: str, log_dir: Path, model_dir: Path, warmup_file: Path) -> None:
        super().__init__(label, log_dir)
        self.model_dir = model_dir
        self.warmup_file = warmup_file

    def command(self) -> list[str]:
        return [str(venv_dir("whisperlivekit") / "bin" / "whisperlivekit-server"),
                "--host", "127.0.0.1", "--port", str(self.port),
                "--backend", "faster-whisper", "--backend-policy", "localagreement",
                "--model_dir", str(self.model_dir), "--pcm-input", "--warmup-file", str(self.warmup_file),
                "--lan", "auto", "--log-level", "WARNING"]

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

                async def receive() -> None:
                    async for raw in ws:
                        now = time.monotonic()
                        msg = json.loads(raw)
                        if msg.get("type") == "ready_to_stop":
                            return
                        if msg.get("error"):
                            trace.error = str(msg["error"])
                        for line in msg.get("lines", ()):
                            text = (line.get("text") or "").strip()
                            if not text or line.get("speaker") == -2:
                                continue
                            key = str(line.get("start"))
                            start, end = parse_time(line.get("start")), parse_time(line.get("end"))
                            prev_text, prev_end = lines_seen.get(key, ("", None))
                            if prev_text == text:
                                continue
                            lines_seen[key] = (text, end)
                            if prev_text and text.startswith(prev_text) and prev_end is not None:
                                # a line grows as tokens commit (one line can span several
                                # utterances): the new words cover the audio after its old end
                                trace.obs.append(Obs(now, "final", prev_end, end, text[len(prev_text):], True,
                                                     key=f"{key}+{len(prev_text)}"))
                            else:
                                trace.obs.append(Obs(now, "final", start, end, text, True, key=key))
                        buf = (msg.get("buffer_transcription") or "").strip()
                        if buf and buf != last_buffer[0]:
                            trace.obs.append(Obs(now, "partial", None, None, buf, False))
                        last_buffer[0] = buf

                rx = asyncio.create_task(receive())
                await play(trace, ws.send, drain_s=drain_s)
                await ws.send(b"")
                try:
                    await asyncio.wait_for(rx, timeout)
                except asyncio.TimeoutError:
                    trace.error = trace.error or f"no ready_to_stop within {timeout:.0f} s of the end of audio"
        except (OSError, asyncio.TimeoutError, websockets.exceptions.WebSocketException, SystemError_) as e:
            trace.error = f"{type(e).__name__}: {e}"
        trace.closed_at = time.monotonic()
        return trace
