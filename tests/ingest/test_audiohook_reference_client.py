"""The Genesys AudioHook reference client (a real, independent implementation) against our server.

The client is github.com/purecloudlabs/audiohook-reference-implementation, ``client/``
(Node, run with ts-node under a pty; see ../shared/eval/CLIENTS.md for building it). Its
code is not in this repository: point ``VOICETRIAGE_AUDIOHOOK_CLIENT`` at a built
``client/`` directory (default /tmp/ahclient/client). Without it, or without node and
``script``, this test is skipped with the reason.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest
from tel_helpers import API_KEY, CLIENT_SECRET, pcm8k, silence, start_telephony

CLIENT_DIR = Path(os.environ.get("VOICETRIAGE_AUDIOHOOK_CLIENT", "/tmp/ahclient/client"))


def _why_not() -> str | None:
    if shutil.which("node") is None or shutil.which("script") is None:
        return "node and script (util-linux) are needed to run the AudioHook reference client"
    if not (CLIENT_DIR / "src" / "index.ts").is_file():
        return (f"AudioHook reference client not found at {CLIENT_DIR} "
                "(set VOICETRIAGE_AUDIOHOOK_CLIENT; build steps in ../shared/eval/CLIENTS.md)")
    if not (CLIENT_DIR / "node_modules" / ".bin" / "ts-node").exists():
        return f"{CLIENT_DIR} has no node_modules (run npm install --no-package-lock there)"
    return None


_SKIP = _why_not()
pytestmark = pytest.mark.skipif(_SKIP is not None, reason=_SKIP or "")


def test_reference_client_streams_a_call_and_gets_transcripts(tiny_engine, start_server, manifest, tmp_path):
    client = CLIENT_DIR
    srv = start_telephony(start_server, tiny_engine, "tiny.en")
    clip = manifest["en_asterisk8k_pbx_invalid"]
    wav = tmp_path / "call8k.wav"  # the client wants 8000 Hz PCM16
    with wave.open(str(wav), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(np.concatenate([pcm8k(clip["path"]), silence(1.0)]).astype("<i2").tobytes())
    cmd = (f"npx ts-node src/index.ts --uri ws://127.0.0.1:{srv.port}/audiohook "
           f"--api-key {API_KEY} --client-secret {CLIENT_SECRET} --wavfile {wav} --language en-US")
    # the client calls setRawMode on stdin, so it needs a pty
    proc = subprocess.run(["script", "-qec", cmd, "/dev/null"], cwd=client, capture_output=True,
                          text=True, timeout=180)
    out = re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout + proc.stderr)
    assert proc.returncode == 0, out[-4000:]
    assert "Session open" in out, out[-4000:]
    assert "Event message" in out and '"transcript"' in out, out[-4000:]
    assert "valid extension" in out.lower(), out[-4000:]
    assert "Protocol error" not in out and "Unexpected" not in out, out[-4000:]
    summaries = [e for e in srv.recorder.events if e.kind == "summary"]
    assert len(summaries) == 1 and summaries[0].reason == "stop"
