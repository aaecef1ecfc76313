"""Genesys AudioHook against the real server on loopback.

The client side is written from the protocol: the connection request carries
the Audiohook-* headers, X-API-KEY and an RFC 9421 signature whose base string
is spelled out here line by line; every text message carries version "2",
the session id, seq/serverseq and the stream position; audio goes in binary
PCMU frames of 200 ms like Genesys Cloud and the reference client send.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import secrets
import time
import uuid
from decimal import Decimal

import numpy as np
import pytest
from tel_helpers import (
    API_KEY,
    CLIENT_SECRET,
    OPEN_KEY,
    mulaw,
    pcm8k,
    silence,
    start_telephony,
    text,
)
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from voicetriage.evaluation.textnorm import cer, wer

ORG = "d7934305-0972-4844-938e-9060eef73d05"
STEREO = {"type": "audio", "format": "PCMU", "channels": ["external", "internal"], "rate": 8000}
EXTERNAL = {"type": "audio", "format": "PCMU", "channels": ["external"], "rate": 8000}
INTERNAL = {"type": "audio", "format": "PCMU", "channels": ["internal"], "rate": 8000}
PATH = "/audiohook"


@pytest.fixture(scope="module")
def server(tiny_engine, start_server):
    return start_telephony(start_server, tiny_engine, "tiny.en")


def duration(samples: int) -> str:
    """An 8 kHz sample count as an AudioHook duration (PT<seconds>S)."""
    s = format(Decimal(samples) / 8000, "f")
    return "PT" + (s.rstrip("0").rstrip(".") if "." in s else s) + "S"


def headers(port: int, session_id: str, *, api_key: str = API_KEY, secret: str | None = CLIENT_SECRET,
            created: int | None = None, tamper: str | None = None) -> dict[str, str]:
    """The connection request headers, signed as the AudioHook spec describes."""
    correlation = str(uuid.uuid4())
    h = {"Audiohook-Organization-Id": ORG, "Audiohook-Session-Id": session_id,
         "Audiohook-Correlation-Id": correlation, "X-API-KEY": api_key}
    if secret is None:
        return h
    created = int(time.time()) if created is None else created
    nonce = base64.b64encode(secrets.token_bytes(18)).decode()
    params = ('("@request-target" "@authority" "audiohook-organization-id" "audiohook-session-id" '
              f'"audiohook-correlation-id" "x-api-key");keyid="{api_key}";nonce="{nonce}";'
              f'alg="hmac-sha256";created={created};expires={created + 30}')
    base = (f'"@request-target": {PATH}\n'
            f'"@authority": 127.0.0.1:{port}\n'
            f'"audiohook-organization-id": {ORG}\n'
            f'"audiohook-session-id": {session_id}\n'
            f'"audiohook-correlation-id": {tamper or correlation}\n'
            f'"x-api-key": {api_key}\n'
            f'"@signature-params": {params}')
    mac = hmac.new(base64.b64decode(secret), base.encode(), hashlib.sha256).digest()
    h["Signature-Input"] = f"sig1={params}"
    h["Signature"] = f"sig1=:{base64.b64encode(mac).decode()}:"
    return h


class AudioHookClient:
    """The client half of an AudioHook session, checking every server message's sequencing."""

    def __init__(self, ws, session_id: str) -> None:
        self.ws, self.id = ws, session_id
        self.seq = 0
        self.serverseq = 0
        self.samples = 0
        self.received: list[dict] = []

    async def send(self, type_: str, parameters: dict) -> int:
        self.seq += 1
        await self.ws.send(json.dumps({
            "version": "2", "id": self.id, "type": type_, "seq": self.seq, "serverseq": self.serverseq,
            "position": duration(self.samples), "parameters": parameters}))
        return self.seq

    async def recv(self, timeout: float = 60.0) -> dict:
        msg = json.loads(await asyncio.wait_for(self.ws.recv(), timeout))
        assert msg["version"] == "2" and msg["id"] == self.id
        assert msg["seq"] == self.serverseq + 1, (msg, self.serverseq)
        assert msg["clientseq"] <= self.seq
        self.serverseq = msg["seq"]
        self.received.append(msg)
        return msg

    async def expect(self, type_: str, timeout: float = 60.0) -> dict:
        while True:
            msg = await self.recv(timeout)
            if msg["type"] == type_:
                return msg
            assert msg["type"] == "event", msg  # only events may come in between

    async def open(self, media=(STEREO, EXTERNAL, INTERNAL), language="en-US", **extra) -> dict:
        seq = await self.send("open", {
            "organizationId": ORG, "conversationId": str(uuid.uuid4()),
            "participant": {"id": str(uuid.uuid4()), "ani": "+1-555-555-1234", "aniName": "", "dnis": "+1-555-555-4321"},
            "media": list(media), "language": language, **extra})
        opened = await self.expect("opened")
        assert opened["clientseq"] == seq
        self.channels = opened["parameters"]["media"][0]["channels"] if opened["parameters"]["media"] else []
        return opened

    async def audio(self, pcm: np.ndarray, channels: int = 1) -> None:
        """Interleaved int16 8 kHz audio as PCMU frames of 200 ms."""
        data = mulaw(pcm)
        step = 1600 * channels
        for i in range(0, len(data), step):
            frame = data[i:i + step]
            await self.ws.send(frame)
            self.samples += len(frame) // channels

    async def close(self) -> dict:
        seq = await self.send("close", {"reason": "end"})
        closed = await self.expect("closed")
        assert closed["clientseq"] == seq
        return closed

    def transcripts(self, channel: str | None = None) -> list[dict]:
        out = []
        for m in self.received:
            if m["type"] == "event":
                for e in m["parameters"]["entities"]:
                    # channelId: the index into the channels of the media the server chose
                    if e["type"] == "transcript" and (
                            channel is None or self.channels[e["data"]["channelId"]] == channel):
                        out.append(e["data"])
        return out


def said(transcripts: list[dict]) -> str:
    return " ".join(t["alternatives"][0]["interpretations"][0]["transcript"] for t in transcripts)


def stereo(a: np.ndarray, b: np.ndarray, tail: float = 0.6) -> np.ndarray:
    n = max(len(a), len(b)) + int(tail * 8000)
    out = np.zeros((n, 2), dtype=np.int16)
    out[:len(a), 0], out[:len(b), 1] = a, b
    return out.reshape(-1)


async def test_full_stereo_session(server, manifest):
    caller, agent = manifest["en_asterisk8k_vm_intro"], manifest["en_asterisk8k_pbx_invalid"]
    sid = str(uuid.uuid4())
    async with connect(server.url.rstrip("/") + PATH, additional_headers=headers(server.port, sid)) as ws:
        c = AudioHookClient(ws, sid)
        opened = await c.open(supportedLanguages=True)
        assert opened["parameters"]["media"] == [STEREO] and opened["parameters"]["startPaused"] is False
        assert "en-US" in opened["parameters"]["supportedLanguages"]
        seq = await c.send("ping", {})
        pong = await c.expect("pong")
        assert pong["clientseq"] == seq and pong["parameters"] == {}
        await c.audio(stereo(pcm8k(caller["path"]), pcm8k(agent["path"])), channels=2)
        await c.send("update", {"language": "en-GB"})
        await c.expect("updated")
        await c.send("ping", {"rtt": "PT0.003S"})
        await c.expect("pong")
        await c.close()
        # the finals were flushed as events before 'closed'
        assert c.received[-1]["type"] == "closed"
        assert [m["seq"] for m in c.received] == list(range(1, len(c.received) + 1))
    ext, internal = c.transcripts("external"), c.transcripts("internal")
    assert wer(caller["transcript"], said(ext)) <= 0.25, said(ext)
    assert wer(agent["transcript"], said(internal)) <= 0.25, said(internal)
    for t in ext + internal:
        assert t["isFinal"] is True and str(uuid.UUID(t["id"])) == t["id"]
        offset = float(t["offset"][2:-1])
        assert 0 <= offset < caller["duration_s"] and t["duration"].startswith("PT")
        alt = t["alternatives"][0]
        assert 0 < alt["confidence"] <= 1 and alt["languages"] in (["en-US"], ["en-GB"])
    # the same finals reached the hub, under the AudioHook session id
    summary = await server.recorder.summary(sid)
    assert summary.reason == "stop" and set(summary.audio_s) == {"caller", "agent"}
    assert {e.text for e in server.recorder.of(sid, "final")} == {
        t["alternatives"][0]["interpretations"][0]["transcript"] for t in ext + internal}
    assert server.app.calls.get(sid) is None


async def test_discarded_and_paused_audio_moves_the_clock_and_dtmf(server, manifest):
    clip = manifest["en_asterisk8k_pbx_invalid"]
    sid = str(uuid.uuid4())
    async with connect(server.url.rstrip("/") + PATH, additional_headers=headers(server.port, sid)) as ws:
        c = AudioHookClient(ws, sid)
        await c.open(media=(EXTERNAL,))
        await c.audio(silence(1.0))
        # a message's position is the stream position after what it reports
        start = c.samples
        c.samples += 12000
        await c.send("discarded", {"start": duration(start), "discarded": "PT1.5S"})
        await c.send("paused", {})
        start = c.samples
        c.samples += 4000  # half a second on hold
        await c.send("resumed", {"start": duration(start), "discarded": "PT0.5S"})
        await c.send("dtmf", {"digit": "6"})
        await c.audio(np.concatenate([pcm8k(clip["path"]), silence(0.6)]))
        await c.close()
    [t] = c.transcripts()
    assert wer(clip["transcript"], said([t])) <= 0.25
    # 1 s sent + 1.5 s discarded + 0.5 s paused: the speech is placed after 3 s of stream
    # (the utterance may open a little before the first sample, by the VAD's pre-roll)
    assert float(t["offset"][2:-1]) >= 2.75
    summary = await server.recorder.summary(sid)
    assert summary.audio_s["caller"] == pytest.approx(3.0 + clip["duration_s"] + 0.6, abs=0.05)
    [digit] = server.recorder.of(sid, "dtmf")
    assert (digit.digit, digit.track, digit.time) == ("6", "caller", 3.0)


async def test_a_discard_of_1800_s_is_jumped_end_to_end(server, manifest):
    """Issue 11's reproducer through the real server: one ``discarded`` of PT1800S (it once
    stalled the loop 27.6 s and took 6.5 GB) is one gap the call's clock jumps over. The
    speech after it is transcribed and placed at its stream position, the summary's audio
    clock counts the gap, and /health counts it as skipped."""
    clip = manifest["en_asterisk8k_pbx_invalid"]
    before = dict(server.app.gaps)
    sid = str(uuid.uuid4())
    async with connect(server.url.rstrip("/") + PATH, additional_headers=headers(server.port, sid)) as ws:
        c = AudioHookClient(ws, sid)
        await c.open(media=(EXTERNAL,))
        await c.audio(silence(1.0))
        start = c.samples
        c.samples += 1800 * 8000
        await c.send("discarded", {"start": duration(start), "discarded": "PT1800S"})
        await c.audio(np.concatenate([pcm8k(clip["path"]), silence(0.6)]))
        await c.close()
    [t] = c.transcripts()
    assert wer(clip["transcript"], said([t])) <= 0.25
    assert float(t["offset"][2:-1]) >= 1801 - 0.25  # after the gap (less the VAD's pre-roll)
    summary = await server.recorder.summary(sid)
    assert summary.gaps == 1 and summary.gap_s == 1800.0
    assert summary.audio_s["caller"] == pytest.approx(1801.0 + clip["duration_s"] + 0.6, abs=0.05)
    gaps = server.call(_health(server))["gaps"]
    assert gaps["skipped"] == before["skipped"] + 1 and gaps["skipped_s"] == pytest.approx(before["skipped_s"] + 1800)


async def _health(server) -> dict:
    return server.app.health()


async def test_mandarin_telephone_audio(base_engine, start_server, manifest):
    srv = start_telephony(start_server, base_engine, "base")
    clip = manifest["cmn_aishell1_S0764W0121_tel8k"]
    sid = str(uuid.uuid4())
    async with connect(srv.url.rstrip("/") + PATH, additional_headers=headers(srv.port, sid)) as ws:
        c = AudioHookClient(ws, sid)
        await c.open(media=(EXTERNAL,), language="zh-CN")
        await c.audio(np.concatenate([pcm8k(clip["path"]), silence(0.6)]))
        await c.close()
    got = said(c.transcripts("external"))
    assert cer(clip["transcript"], got) <= 0.3, got
    assert c.transcripts()[0]["alternatives"][0]["languages"] == ["zh-CN"]


async def test_two_concurrent_sessions(server, manifest):
    clips = [manifest["en_asterisk8k_pbx_invalid"], manifest["en_asterisk8k_vm_intro"]]

    async def one(clip: dict) -> str:
        sid = str(uuid.uuid4())
        async with connect(server.url.rstrip("/") + PATH, additional_headers=headers(server.port, sid)) as ws:
            c = AudioHookClient(ws, sid)
            await c.open(media=(EXTERNAL,))
            speech = np.concatenate([pcm8k(clip["path"]), silence(0.6)])
            for i in range(0, len(speech), 1600):
                await c.audio(speech[i:i + 1600])
                await asyncio.sleep(0)
            await c.close()
        return said(c.transcripts())

    got = await asyncio.gather(*(one(c) for c in clips))
    for clip, text_ in zip(clips, got):
        assert wer(clip["transcript"], text_) <= 0.3, text_


@pytest.mark.parametrize(
    "kwargs, why",
    [
        ({"api_key": "V3JvbmdLZXlXcm9uZ0tleQ=="}, "unknown API key"),
        ({"tamper": "00000000-0000-4000-8000-000000000000"}, "signature does not match"),
        ({"secret": "V3JvbmdTZWNyZXRXcm9uZ1NlY3JldA=="}, "signed with another secret"),
        ({"secret": None}, "not signed although a secret is configured"),
        ({"created": int(time.time()) - 3600}, "signature too old"),
    ],
)
async def test_bad_credentials_are_refused_before_the_websocket_opens(server, kwargs, why):
    sid = str(uuid.uuid4())
    with pytest.raises(InvalidStatus) as err:
        async with connect(server.url.rstrip("/") + PATH, additional_headers=headers(server.port, sid, **kwargs)):
            pass
    assert err.value.response.status_code == 401, why
    assert b"unauthorized" in err.value.response.body


async def test_missing_session_header_is_a_bad_request(server):
    h = headers(server.port, str(uuid.uuid4()))
    del h["Audiohook-Session-Id"]
    with pytest.raises(InvalidStatus) as err:
        async with connect(server.url.rstrip("/") + PATH, additional_headers=h):
            pass
    assert err.value.response.status_code == 400


async def test_key_without_secret_needs_no_signature(server):
    sid = str(uuid.uuid4())
    async with connect(server.url.rstrip("/") + PATH,
                       additional_headers=headers(server.port, sid, api_key=OPEN_KEY, secret=None)) as ws:
        c = AudioHookClient(ws, sid)
        await c.open(media=(EXTERNAL,))
        await c.close()


@pytest.mark.parametrize(
    "bad, info",
    [
        ("{not json", "not valid JSON"),
        (json.dumps({"version": "2", "type": "ping", "seq": 7, "serverseq": 1, "position": "PT0S",
                     "parameters": {}}), "well-formed"),  # no id
        ("seq", "Invalid seq"),
        (b"\x00\x01\x02", "not a valid audio frame"),  # 3 bytes of stereo PCMU
        ("type", "not a supported client message"),
    ],
)
async def test_protocol_violation_gets_disconnect_and_the_call_is_flushed(server, manifest, bad, info):
    clip = manifest["en_asterisk8k_pbx_invalid"]
    sid = str(uuid.uuid4())
    async with connect(server.url.rstrip("/") + PATH, additional_headers=headers(server.port, sid)) as ws:
        c = AudioHookClient(ws, sid)
        await c.open()
        await c.audio(stereo(pcm8k(clip["path"]), silence(0.1)), channels=2)
        if bad == "seq":
            c.seq += 5
            await c.send("ping", {})
            c.seq -= 6  # the server did not take it
        elif bad == "type":
            await c.send("frobnicate", {})  # well-formed, so its seq counts
        else:
            await ws.send(bad)
        disconnect = await c.expect("disconnect")
        assert disconnect["parameters"]["reason"] == "error" and info in disconnect["parameters"]["info"]
        # the client's answer to disconnect is a close transaction, which completes
        await c.send("close", {"reason": "disconnect"})
        await c.expect("closed")
    summary = await server.recorder.summary(sid)
    assert wer(clip["transcript"], text(server.recorder.of(sid))) <= 0.25  # nothing received was lost
    assert summary.reason == "error"


async def test_audio_before_open_is_refused(server):
    sid = str(uuid.uuid4())
    async with connect(server.url.rstrip("/") + PATH, additional_headers=headers(server.port, sid)) as ws:
        c = AudioHookClient(ws, sid)
        await ws.send(b"\xff" * 1600)
        disconnect = await c.expect("disconnect")
        assert "state preparing" in disconnect["parameters"]["info"]
        await c.send("close", {"reason": "error"})
        await c.expect("closed")


async def test_client_disconnecting_mid_stream_keeps_what_was_said(server, manifest):
    clip = manifest["en_asterisk8k_pbx_invalid"]
    sid = str(uuid.uuid4())
    async with connect(server.url.rstrip("/") + PATH, additional_headers=headers(server.port, sid)) as ws:
        c = AudioHookClient(ws, sid)
        await c.open(media=(EXTERNAL,))
        await c.audio(pcm8k(clip["path"]))
        ws.transport.abort()
    summary = await server.recorder.summary(sid)
    assert summary.reason == "disconnect"
    assert wer(clip["transcript"], text(server.recorder.of(sid))) <= 0.25
    assert sid not in server.app.calls
