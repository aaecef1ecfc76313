"""WhisperLive (``whisper-live``): server launcher and a client of its websocket protocol.

Protocol (whisper_live/client.py): the client sends a JSON options message
(uid, language, task, model, use_vad, ...), waits for ``SERVER_READY``, then
sends audio frames as binary messages (``audio_format: int16``: PCM16 16 kHz)
and ``END_OF_AUDIO`` at the end. The server answers ``{"uid", "segments":
[{start, end, text, completed}]}`` with the last ``send_last_n_segments``
segments each time.

After a file its own client keeps the connection open until no new text came
for ``disconnect_if_no_response_for`` (15 s) and only then sends
``END_OF_AUDIO`` (``TranscriptionTeeClient.play_file``, ``wait_before_disconnect``):
the server drops audio it has not transcribed when the audio ends. This client
does the same, the line carrying silence meanwhile, bounded by the benchmark's
peer timeout.

What its own client shows (``Client.process_segments``, ``write_srt_file``): a
``completed`` segment joins the transcript when it starts at or after the end of
the transcript's last segment; the trailing incomplete segment is the live line,
and at the end of the audio it is appended to the transcript unless its text is
already the last line. This client keeps the same transcript (its finals) and
reports it as the call's text.
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

# Client options: the defaults of whisper_live.client.Client/TranscriptionClient 0.10.0
# (use_vad=True, send_last_n_segments=10, no_speech_thresh=0.45, clip_audio=False,
# same_output_threshold=10), the language given explicitly.
QUIET_S = 15.0  # Client.disconnect_if_no_response_for
CLIENT_DEFAULTS = {"task": "transcribe", "use_vad": True, "send_last_n_segments": 10, "no_speech_thresh": 0.45,
                   "clip_audio": False, "same_output_threshold": 10}


def settings(model_dir: Path, language: str | None, omp_threads: int, max_clients: int) -> dict:
    """What WhisperLive runs with here, each with why (recorded in the results)."""
    return {
        "backend": ("faster_whisper", "run_server.py's default backend and the one its README and CPU Docker "
                    "image (docker/Dockerfile.cpu: `python run_server.py`) use; OpenVINO is its other CPU "
                    "backend but needs OpenVINO IR weights, which no PyPI package here ships"),
        "model": (str(model_dir), "the weights of voicetriage's registry (Whisper base CTranslate2 unless --peer-model says otherwise), passed as -fw (a local "
                  "folder: single-model mode, loaded once for all clients, as its README describes); the "
                  "client default 'small' would be a hub download"),
        "compute_type": ("int8", "what its faster_whisper backend picks itself without CUDA"),
        "omp_num_threads": (omp_threads, "run_server.py --omp_num_threads (README 'Controlling OpenMP Threads'; "
                            "default 1); set to the machine's cores, since one model serves every call"),
        "language": (language or "auto", "given explicitly: with language=None the server detects it once per "
                     "call and drops audio while the detection's probability is under 0.5 "
                     "(ServeClientFasterWhisper.set_language, base.speech_to_text), which lost the Chinese "
                     "utterances in run 20261125-202920"),
        "use_vad": (True, "client default; README: VAD sends only speech to Whisper and improves accuracy"),
        **{k: (v, "client default") for k, v in CLIENT_DEFAULTS.items() if k != "use_vad"},
        "max_clients": (max_clients, "raised from run_server.py's default 4 so that no benchmark level is refused"),
    }


class WhisperLive(System):
    name = "whisper-live"
    final_meaning = "a segment sent with completed=true (it re-transcribes the open buffer until then)"
    partial_meaning = "the trailing segment with completed=false"

    def __init__(self, label: str, log_dir: Path, model_dir: Path, *, language: str | None = None,
                 max_clients: int = 64, omp_threads: int = 2) -> None:
        super().__init__(label, log_dir)
        self.model_dir = model_dir
        self.language = language
        self.max_clients = max_clients
        self.omp_threads = omp_threads

    def settings(self) -> dict:
        return settings(self.model_dir, self.language, self.omp_threads, self.max_clients)

    def command(self) -> list[str]:
        return [str(venv_python("whisper-live")), str(HERE / "whisperlive_server.py"), str(self.port),
                str(self.model_dir), str(self.max_clients)]

    def env(self) -> dict[str, str]:
        return {"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": str(self.omp_threads)}

    async def run_call(self, call: Call, *, chunk_samples: int, drain_s: float, timeout: float) -> CallTrace:
        import websockets

        trace = CallTrace(call, chunk_samples)
        uid = str(uuid.uuid4())
        try:
            async with websockets.connect(f"ws://127.0.0.1:{self.port}", max_size=None, open_timeout=30) as ws:
                trace.connected_at = time.monotonic()
                await ws.send(json.dumps({"uid": uid, "language": self.language, "model": str(self.model_dir),
                                          **CLIENT_DEFAULTS, "audio_format": "int16"}))
                # the first client of a single-model server waits for the model to load
                while True:
                    msg = json.loads(await asyncio.wait_for(ws.recv(), 120))
                    if msg.get("message") == "SERVER_READY":
                        trace.server_info = msg
                        break
                    if msg.get("status") in ("ERROR", "WAIT"):
                        raise SystemError_(f"WhisperLive refused the call: {msg}")
                transcript: list[dict] = []  # the client's transcript: its finals
                last: list[dict | None] = [None]  # the trailing incomplete segment (the live line)
                changed = [time.monotonic()]  # when the last segment's text last changed

                async def receive() -> None:
                    async for raw in ws:
                        now = time.monotonic()
                        if isinstance(raw, bytes):
                            continue
                        msg = json.loads(raw)
                        if msg.get("message") == "DISCONNECT":
                            return
                        segs = msg.get("segments") or ()
                        if segs and (last[0] is None or segs[-1].get("text") != last[0].get("text")):
                            changed[0] = now
                        for i, seg in enumerate(segs):
                            start, end, text = float(seg["start"]), float(seg["end"]), seg.get("text", "")
                            if i == len(segs) - 1 and not seg.get("completed"):
                                if last[0] is None or last[0].get("text") != text:
                                    trace.obs.append(Obs(now, "partial", start, end, text, False))
                                last[0] = seg
                            elif seg.get("completed") and (not transcript or start >= float(transcript[-1]["end"])):
                                transcript.append(seg)
                                trace.obs.append(Obs(now, "final", start, end, text, True, key=seg["start"]))

                rx = asyncio.create_task(receive())
                await play(trace, ws.send, drain_s=drain_s, speed=self.speed)
                # wait_before_disconnect: silence on the line until nothing new for QUIET_S
                frame, silence = chunk_samples / 16000, bytes(2 * chunk_samples)
                give_up = trace.audio_done_at + timeout
                while time.monotonic() - changed[0] < QUIET_S and time.monotonic() < give_up and not rx.done():
                    await ws.send(silence)
                    await asyncio.sleep(frame / self.speed)
                await ws.send(b"END_OF_AUDIO")
                try:
                    await asyncio.wait_for(rx, 5.0)
                except asyncio.TimeoutError:
                    pass  # WhisperLive has no end-of-call message; it may just stop talking
                # write_srt_file: the live line joins the transcript at the end of the audio
                seg = last[0]
                if seg is not None and (not transcript or transcript[-1].get("text") != seg.get("text")):
                    transcript.append(seg)
                    trace.obs.append(Obs(time.monotonic(), "final", float(seg["start"]), float(seg["end"]),
                                         seg.get("text", ""), True, key=f"last:{seg['start']}"))
                trace.transcript = " ".join(x.get("text", "").strip() for x in transcript)
        except (OSError, asyncio.TimeoutError, websockets.exceptions.WebSocketException, SystemError_) as e:
            trace.error = f"{type(e).__name__}: {e}"
        trace.closed_at = time.monotonic()
        return trace
