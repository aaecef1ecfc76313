"""Start WhisperLive's server from its Python API (its wheel ships no run_server.py).

Runs inside WhisperLive's own venv: ``python whisperlive_server.py PORT MODEL_DIR MAX_CLIENTS``.
faster_whisper backend, one shared model (``single_model``), CTranslate2 int8 on CPU
(WhisperLive picks int8 itself when CUDA is absent).
"""

import os
import sys

# this script's folder (benchmarks/peers) must not shadow the peer's own packages
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if p and os.path.abspath(p) != _HERE]

from whisper_live.server import TranscriptionServer

port, model_dir, max_clients = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
TranscriptionServer().run(
    "127.0.0.1",
    port=port,
    backend="faster_whisper",
    faster_whisper_custom_model_path=model_dir,
    single_model=True,
    max_clients=max_clients,
    max_connection_time=3600,
)
