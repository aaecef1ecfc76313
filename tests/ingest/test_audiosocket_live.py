"""Asterisk AudioSocket against the real server's TCP port on loopback.

Frames are written byte by byte as Asterisk's AudioSocket sends them:
kind (1 byte), payload length (2 bytes, big-endian), payload — UUID first
(16 raw bytes), then 20 ms of audio per frame: signed-linear 8 kHz under 0x10
(320 bytes), 16 kHz under 0x12 (640 bytes, ``c(slin16)``), or µ-law bytes under
0x10 (160 bytes), which is what Asterisk's channel driver sends for ``c(ulaw)``.
"""

from __future__ import annotations

import asyncio
import uuid
import wave

import numpy as np
import pytest
from tel_helpers import mulaw, pcm8k, silence, start_telephony, text

from voicetriage.evaluation.textnorm import wer


@pytest.fixture(scope="module")
def server(tiny_engine, start_server):
    return start_telephony(start_server, tiny_engine, "tiny.en")


def frame(kind: int, payload: bytes = b"") -> bytes:
    return bytes([kind]) + len(payload).to_bytes(2, "big") + payload


class Asterisk:
    """The Asterisk end of one AudioSocket connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, call: uuid.UUID) -> None:
        self.reader, self.writer, self.call = reader, writer, call

    @classmethod
    async def dial(cls, server, call: uuid.UUID | None = None) -> "Asterisk":
        reader, writer = await asyncio.open_connection("127.0.0.1", server.app.tcp_ports[0])
        return cls(reader, writer, call or uuid.uuid4())

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def uuid(self) -> None:
        await self.send(frame(0x01, self.call.bytes))

    async def audio(self, pcm: np.ndarray, kind: int = 0x10, size: int = 320) -> None:
        data = pcm.astype("<i2").tobytes()
        for i in range(0, len(data), size):
            await self.send(frame(kind, data[i:i + size]))

    async def raw(self, data: bytes, kind: int, size: int) -> None:
        for i in range(0, len(data), size):
            await self.send(frame(kind, data[i:i + size]))

    async def closed_by_server(self, timeout: float = 30.0) -> bool:
        """True when the server closes the connection (EOF) without sending anything."""
        data = await asyncio.wait_for(self.reader.read(), timeout)
        return data == b""


async def test_full_call_with_dtmf_and_hangup(server, manifest):
    clip = manifest["en_asterisk8k_pbx_invalid"]
    a = await Asterisk.dial(server)
    await a.uuid()
    await a.audio(silence(0.4))
    await a.send(frame(0x03, b"9"))
    await a.audio(pcm8k(clip["path"]))
    await a.audio(silence(0.6))
    await a.send(frame(0x00))
    assert await a.closed_by_server()
    sid = str(a.call)
    summary = await server.recorder.summary(sid)
    assert summary.reason == "hangup"
    assert wer(clip["transcript"], text(server.recorder.of(sid))) <= 0.25
    [digit] = server.recorder.of(sid, "dtmf")
    assert (digit.digit, digit.track, digit.time) == ("9", "caller", 0.4)
    assert summary.audio_s["caller"] == pytest.approx(0.4 + clip["duration_s"] + 0.6, abs=0.05)


def pcm16k(path: str) -> np.ndarray:
    with wave.open(path) as w:
        assert w.getframerate() == 16000 and w.getsampwidth() == 2 and w.getnchannels() == 1
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")


async def test_dial_c_slin16_sends_kind_0x12(server, manifest):
    """Dial(AudioSocket/host:port/uuid/c(slin16)): 16 kHz signed linear, 640-byte frames."""
    clip = manifest["en_asterisk8k_pbx_invalid"]
    a = await Asterisk.dial(server)
    await a.uuid()
    await a.send(frame(0x03, b"9"))  # a digit before the first audio: held, delivered at 0
    speech = np.concatenate([np.zeros(6400, np.int16), pcm16k(clip["path"]), np.zeros(9600, np.int16)])
    await a.audio(speech, kind=0x12, size=640)
    await a.send(frame(0x00))
    assert await a.closed_by_server()
    sid = str(a.call)
    summary = await server.recorder.summary(sid)
    assert summary.reason == "hangup"
    assert summary.audio_s["caller"] == pytest.approx(len(speech) / 16000, abs=0.05)  # at 16 kHz, not 8
    assert wer(clip["transcript"], text(server.recorder.of(sid))) <= 0.25
    [digit] = server.recorder.of(sid, "dtmf")
    assert (digit.digit, digit.time) == ("9", 0.0)


async def test_dial_c_ulaw_mulaw_under_0x10_is_transcoded(server, manifest, caplog):
    """Dial(AudioSocket/...c(ulaw)): Asterisk sends µ-law bytes (160 a frame) under 0x10;
    one odd-length frame among them must not close the call."""
    clip = manifest["en_asterisk8k_pbx_invalid"]
    law = mulaw(np.concatenate([silence(0.4), pcm8k(clip["path"]), silence(0.6)]))
    a = await Asterisk.dial(server)
    await a.uuid()
    await a.send(frame(0x10, law[:161]))
    await a.raw(law[161:], kind=0x10, size=160)
    await a.send(frame(0x00))
    assert await a.closed_by_server()
    sid = str(a.call)
    summary = await server.recorder.summary(sid)
    assert summary.reason == "hangup"
    assert summary.audio_s["caller"] == pytest.approx(len(law) / 8000, abs=0.05)
    said = text(server.recorder.of(sid))
    assert wer(clip["transcript"], said) <= 0.25, said
    assert [r for r in caplog.records if "mu-law" in r.getMessage() and sid in r.getMessage()]


async def test_two_concurrent_calls(server, manifest):
    clips = [manifest["en_asterisk8k_pbx_invalid"], manifest["en_asterisk8k_vm_intro"]]

    async def one(clip: dict) -> str:
        a = await Asterisk.dial(server)
        await a.uuid()
        speech = np.concatenate([pcm8k(clip["path"]), silence(0.6)])
        for i in range(0, len(speech), 1600):
            await a.audio(speech[i:i + 1600])
            await asyncio.sleep(0)
        await a.send(frame(0x00))
        await a.closed_by_server()
        await server.recorder.summary(str(a.call))
        return text(server.recorder.of(str(a.call)))

    got = await asyncio.gather(*(one(c) for c in clips))
    for clip, said in zip(clips, got):
        assert wer(clip["transcript"], said) <= 0.3, said


async def test_asterisk_closing_the_socket_mid_stream_keeps_what_was_said(server, manifest):
    clip = manifest["en_asterisk8k_pbx_invalid"]
    a = await Asterisk.dial(server)
    await a.uuid()
    await a.audio(pcm8k(clip["path"]))
    a.writer.close()  # no hangup frame: socket closure is also a hangup
    summary = await server.recorder.summary(str(a.call))
    assert summary.reason == "hangup"
    assert wer(clip["transcript"], text(server.recorder.of(str(a.call)))) <= 0.25


@pytest.mark.parametrize(
    "bad",
    [
        frame(0x42, b"??"),  # unknown kind
        b"\x10\xff\xff" + b"\x00" * 100,  # announces a 65535-byte audio payload
        frame(0x10, b"\x00\x00\x00"),  # odd byte count for 16-bit audio
        frame(0x03, b"x"),  # not a DTMF digit
        frame(0x01, uuid.uuid4().bytes),  # a second UUID
    ],
)
async def test_malformed_frame_closes_that_call_only_after_flushing(server, manifest, bad):
    clip = manifest["en_asterisk8k_pbx_invalid"]
    bystander = await Asterisk.dial(server)
    await bystander.uuid()
    a = await Asterisk.dial(server)
    await a.uuid()
    await a.audio(pcm8k(clip["path"]))
    await bystander.audio(silence(0.2))
    await a.send(bad)
    assert await a.closed_by_server()
    summary = await server.recorder.summary(str(a.call))
    assert summary.reason == "error"
    assert wer(clip["transcript"], text(server.recorder.of(str(a.call)))) <= 0.25
    # the other call is untouched and still streaming
    await bystander.audio(silence(0.2))
    assert str(bystander.call) in server.app.calls
    await bystander.send(frame(0x00))
    assert await bystander.closed_by_server()


async def test_audio_before_uuid_is_refused(server):
    a = await Asterisk.dial(server)
    await a.send(frame(0x10, b"\x00\x00" * 160))
    assert await a.closed_by_server()
