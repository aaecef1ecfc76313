"""WhisperLive (``whisper-live``): server launcher and a client of its websocket protocol.

Protocol (whisper_live/client.py): the client sends a JSON options message
(uid, language, task, model, use_vad, ...), waits for ``SERVER_READY``, then
sends audio frames as binary messages (``audio_format: int16``: PCM16 16 kHz)
and ``END_OF_AUDIO`` at the end. The server answers ``{"uid", "segments":
[{start, end, text, completed}]}`` with the last ``send_last_n_segments``
segments each time: ``completed: true`` segments are its finals, the trailing
incomplete one its partial.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path

from ..analysis import CallTrace, Obs
from ..corpus import Call
from ..streaming import play
from ..systems import System, SystemError_
from .setup import venv_python

HERE = Path(__file__).resolve().parent


class WhisperLive(System):
    name = "whisper-live"
    final_meaning = "a segment sent with completed=true (it re-transcribes the open buffer until then)"
    partial_meaning = "the trailing segment with completed=false"

    def __init__(self, label: str, log_dir: Path, model_dir: Path, max_clients: int = 64) -> None:
        super().__init__(label, log_dir)
        self.model_dir = model_dir
        self.max_clients = max_clients

    def command(self) -> list[str]:
        return [str(venv_python("whisper-live")), str(HERE / "whisperlive_server.py"), str(self.port),
                str(self.model_dir), str(self.max_clients)]

    def env(self) -> dict[str, str]:
        return {"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "2"}

    async def run_call(self, call: Call, *, chunk_samples: int, drain_s: float, timeout: float) -> CallTrace:
        import websockets

        trace = CallTrace(call, chunk_samples)
        uid = str(uuid.uuid4())
        try:
            async with websockets.connect(f"ws://127.0.0.1:{self.port}", max_size=None, open_timeout=30) as ws:
                trace.connected_at = time.monotonic()
                await ws.send(json.dumps({
                    "uid": uid, "language": None, "task": "transcribe", "model": str(self.model_dir),
                    "use_vad": True, "send_last_n_segments": 10, "no_speech_thresh": 0.45,
                    "clip_audio": False, "same_output_threshold": 10, "audio_format": "int16",
                }))
                # the first client of a single-model server waits for the model to load
                while True:
                    msg = json.loads(await asyncio.wait_for(ws.recv(), 120))
                    if msg.get("message") == "SERVER_READY":
                        trace.server_info = msg
                        break
                    if msg.get("status") in ("ERROR", "WAIT"):
                        raise SystemError_(f"WhisperLive refused the call: {msg}")
                seen: set[tuple[str, str]] = set()
                last_partial: list[str] = [""]

                async def receive() -> None:
                    async for raw in ws:
                        now = time.monotonic()
                        if isinstance(raw, bytes):
                            continue
                        msg = json.loads(raw)
                        if msg.get("message") == "DISCONNECT":
                            return
                        for seg in msg.get("segments", ()):
                            start, end, text = float(seg["start"]), float(seg["end"]), seg.get("text", "")
                            if seg.get("completed"):
                                if (seg["start"], text) not in seen:
                                    seen.add((seg["start"], text))
                                    trace.obs.append(Obs(now, "final", start, end, text, True, key=seg["start"]))
                            elif text != last_partial[0]:
                                last_partial[0] = text
                                trace.obs.append(Obs(now, "partial", start, end, text, False))

                rx = asyncio.create_task(receive())
                await play(trace, ws.send, drain_s=drain_s)
                await ws.send(b"END_OF_AUDIO")
                try:
                    await asyncio.wait_for(rx, timeout)
                except asyncio.TimeoutError:
                    pass  # WhisperLive has no end-of-call message; it may just stop talking
        except (OSError, asyncio.TimeoutError, websockets.exceptions.WebSocketException, SystemError_) as e:
            trace.error = f"{type(e).__name__}: {e}"
        trace.closed_at = time.monotonic()
        return trace
