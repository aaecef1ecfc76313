"""A websocket front for whisper-streaming (``whisper-streaming`` 0.1.0), which has none.

The package is a library: an ``ASRProcessor`` reads audio from an
``AudioReceiver`` (ALSA or a file) and hands committed words (LocalAgreement)
to ``OutputSender``s. This wrapper gives each websocket connection its own
processor with a receiver fed by the socket (PCM16 16 kHz binary messages) and a
sender that writes each committed piece back as ``{"start", "end", "text"}``. A
text message "END" ends the audio. Each processor loads its own model (the
library's design: the backend is built inside ``ASRProcessor``).

The receiver hands the processor everything received since its last pass, once
that is at least ``MIN_CHUNK_S`` and the previous pass has taken its audio: the
original whisper_online_server's --min-chunk-size ("it waits up to this time to do
processing; if the processing takes longer, it processes the whole segment that
was received by this time"), so a slow pass never leaves a queue of one-second
chunks behind it.

Runs inside the peer's venv: ``python whisper_streaming_server.py PORT MODEL_DIR LANGUAGE [SPEED]``
(``auto``: detect it; SPEED: the client's audio pace, 1 = real time) with the settings of whisper_streaming_peer.settings().
"""

import json
import os
import sys
import threading

# this script's folder (benchmarks/peers) must not shadow the peer's own packages
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if p and os.path.abspath(p) != _HERE]

import numpy as np
from websockets.sync.server import serve

from whisper_streaming import ASRProcessor, AudioReceiver, Backend, OutputSender, TimeTrimming
from whisper_streaming.backend import (
    FasterWhisperFeatureExtractorConfig,
    FasterWhisperModelConfig,
    FasterWhisperTranscribeConfig,
)

RATE = 16000
MIN_CHUNK_S = 1.0  # ufal's README example (--min-chunk-size 1)
PROMPT_CHARS = 200  # ufal OnlineASRProcessor.prompt(): a 200-character suffix of committed text
TRIM_S = 15  # ufal --buffer_trimming_sec default
PORT, MODEL_DIR = int(sys.argv[1]), sys.argv[2]
LANGUAGE = None if len(sys.argv) < 4 or sys.argv[3] == "auto" else sys.argv[3]
# the processor stops when no audio came for this long; slower than real time
# (--peer-speed), one MIN_CHUNK_S takes longer to arrive, so the wait grows with it
SPEED = float(sys.argv[4]) if len(sys.argv) > 4 else 1.0
RECEIVER_TIMEOUT_S = 3.0 / SPEED


class SocketReceiver(AudioReceiver):
    def __init__(self):
        super().__init__()
        self.cond = threading.Condition()
        self.buf = []
        self.n = 0
        self.ended = False

    def feed(self, pcm: bytes) -> None:
        with self.cond:
            self.buf.append(np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0)
            self.n += len(pcm) // 2
            self.cond.notify()

    def end(self) -> None:
        with self.cond:
            self.ended = True
            self.cond.notify()

    def _do_receive(self):
        with self.cond:
            # at least MIN_CHUNK_S, and only once the processor took the previous piece
            while not self.ended and (self.n < MIN_CHUNK_S * RATE or not self.queue.empty()):
                self.cond.wait(timeout=0.02)
            if not self.buf:
                return None
            out = np.concatenate(self.buf)
            self.buf, self.n = [], 0
            return out

    def _do_close(self) -> None:
        self.end()


class SocketSender(OutputSender):
    def __init__(self, ws):
        super().__init__()
        self.ws = ws

    def _do_output(self, data) -> None:
        self.ws.send(json.dumps({"start": data.start, "end": data.end, "text": data.word}))

    def _do_close(self) -> None:
        pass


def handler(ws):
    receiver = SocketReceiver()
    sender = SocketSender(ws)
    processor = ASRProcessor(
        processor_config=ASRProcessor.ProcessorConfig(
            sampling_rate=RATE, prompt_size=PROMPT_CHARS, audio_receiver_timeout=RECEIVER_TIMEOUT_S,
            # the package implements only time trimming (its SentenceTrimming raises)
            audio_trimming=TimeTrimming(seconds=TRIM_S), language=LANGUAGE,
        ),
        audio_receiver=receiver,
        output_senders=sender,
        backend=Backend.FASTER_WHISPER,
        model_config=FasterWhisperModelConfig(model_size_or_path=MODEL_DIR, device="cpu", compute_type="int8",
                                              local_files_only=True),
        # ufal --vad: faster-whisper's Silero VAD filter in every pass (the package has no VAC)
        transcribe_config=FasterWhisperTranscribeConfig(vad_filter=True),
        feature_extractor_config=FasterWhisperFeatureExtractorConfig(),
    )
    ws.send(json.dumps({"type": "ready"}))
    worker = threading.Thread(target=processor.run, daemon=True)
    worker.start()
    try:
        for msg in ws:
            if isinstance(msg, bytes):
                receiver.feed(msg)
            elif msg == "END":
                break
    finally:
        receiver.end()
        worker.join(timeout=60)
        sender.join(timeout=5)
        try:
            ws.send(json.dumps({"type": "done"}))
        except Exception:
            pass


with serve(handler, "127.0.0.1", PORT, max_size=None) as server:
    server.serve_forever()
