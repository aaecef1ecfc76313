"""Issue 9 item 3 over Asterisk AudioSocket: a quiet talker after a loud one, at 8 kHz.

The loss was reproduced from a real Asterisk over AudioSocket as well as over the
native protocol (tests/test_vad_reset.py covers that one): here the same loud English
prompt, a 1.5 s pause and the Mandarin clip at -26 dB go to the server's AudioSocket
port as Asterisk sends them (signed-linear 8 kHz, 20 ms frames under kind 0x10), and
both utterances must come back as finals.
"""

from __future__ import annotations

import asyncio
import uuid
import wave

import numpy as np
import pytest
import soxr
from tel_helpers import silence, start_telephony

from voicetriage.evaluation.textnorm import cer, wer

QUIET = 0.05  # -26 dB, as in tests/test_vad_reset.py


def read8k(path: str) -> np.ndarray:
    with wave.open(path) as w:
        x = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float32) / 32768
        rate = w.getframerate()
    return x if rate == 8000 else soxr.resample(x, rate, 8000).astype(np.float32)


@pytest.fixture(scope="module")
def server(base_engine, start_server):
    return start_telephony(start_server, base_engine, "base")


def frame(kind: int, payload: bytes = b"") -> bytes:
    return bytes([kind]) + len(payload).to_bytes(2, "big") + payload


async def test_loud_then_quiet_over_audiosocket_gives_both_finals(server, manifest):
    loud = read8k(manifest["en_asterisk8k_vm_intro"]["path"])
    quiet = read8k(manifest["cmn_aishell1_S0764W0122"]["path"]) * QUIET
    gap = np.zeros(int(1.5 * 8000), np.float32)
    pcm = np.clip(np.concatenate([loud, gap, quiet]) * 32768, -32768, 32767).astype("<i2")
    pcm = np.concatenate([pcm, silence(1.0)])
    switch_at = (len(loud) + len(gap)) / 8000
    call = uuid.uuid4()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.app.tcp_ports[0])
    writer.write(frame(0x01, call.bytes))
    data = pcm.tobytes()
    for i in range(0, len(data), 320):
        writer.write(frame(0x10, data[i:i + 320]))
        if i % 3200 == 0:
            await writer.drain()
            await asyncio.sleep(0.01)  # about 10x real time: the loss is in the VAD state, not in timing
    writer.write(frame(0x00))
    await writer.drain()
    assert await asyncio.wait_for(reader.read(), 60) == b""
    sid = str(call)
    await server.recorder.summary(sid)
    finals = server.recorder.of(sid, "final")
    en = [f for f in finals if f.end <= switch_at]
    zh = [f for f in finals if f.start >= switch_at - 0.5]
    assert en and wer(manifest["en_asterisk8k_vm_intro"]["transcript"], " ".join(f.text for f in en)) <= 0.3
    assert zh, [(f.start, f.end, f.text) for f in finals]
    assert [f.language for f in zh] == ["zh"] * len(zh)
    assert cer(manifest["cmn_aishell1_S0764W0122"]["transcript"], "".join(f.text for f in zh)) <= 0.6
