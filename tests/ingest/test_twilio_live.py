"""Twilio Media Streams against the real server on loopback.

Messages are built from Twilio's documented format (connected, start with
mediaFormat audio/x-mulaw 8000 Hz mono, media with track/chunk/timestamp and
base64 payload, dtmf, stop); audio is real 8 kHz telephone speech. Twilio gets
nothing back, so results are read where every sink reads them: the server's hub.
"""

from __future__ import annotations

import asyncio
import base64
import json

import numpy as np
import pytest
from tel_helpers import mulaw, pcm8k, silence, start_telephony, text
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from voicetriage.evaluation.textnorm import wer

ACCOUNT = "AC00000000000000000000000000000001"


@pytest.fixture(scope="module")
def server(tiny_engine, start_server):
    return start_telephony(start_server, tiny_engine, "tiny.en")


class TwilioCall:
    """Speaks Media Streams as Twilio does: 20 ms µ-law chunks, counters as strings."""

    def __init__(self, ws, stream_sid: str, call_sid: str, tracks=("inbound",), params=None) -> None:
        self.ws, self.sid, self.call_sid = ws, stream_sid, call_sid
        self.tracks, self.params = list(tracks), params or {}
        self.seq = 0
        self.chunk = {"inbound": 0, "outbound": 0}
        self.ms = {"inbound": 0, "outbound": 0}

    async def send(self, msg: dict) -> None:
        await self.ws.send(json.dumps(msg))

    def next_seq(self) -> str:
        self.seq += 1
        return str(self.seq)

    async def start(self) -> None:
        await self.send({"event": "connected", "protocol": "Call", "version": "1.0.0"})
        await self.send({
            "event": "start", "sequenceNumber": self.next_seq(),
            "start": {"accountSid": ACCOUNT, "streamSid": self.sid, "callSid": self.call_sid,
                      "tracks": self.tracks, "customParameters": self.params,
                      "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}},
            "streamSid": self.sid,
        })

    async def audio(self, samples: np.ndarray, track: str = "inbound") -> None:
        payload = mulaw(samples)
        for i in range(0, len(payload), 160):
            piece = payload[i:i + 160]
            self.chunk[track] += 1
            await self.send({
                "event": "media", "sequenceNumber": self.next_seq(),
                "media": {"track": track, "chunk": str(self.chunk[track]), "timestamp": str(self.ms[track]),
                          "payload": base64.b64encode(piece).decode("ascii")},
                "streamSid": self.sid,
            })
            self.ms[track] += len(piece) // 8

    def lose(self, seconds: float, track: str = "inbound") -> None:
        """Packets lost on the way: chunk numbers and timestamps move on, nothing is sent."""
        self.chunk[track] += int(seconds * 50)
        self.ms[track] += int(seconds * 1000)

    async def dtmf(self, digit: str) -> None:
        await self.send({"event": "dtmf", "streamSid": self.sid, "sequenceNumber": self.next_seq(),
                         "dtmf": {"track": "inbound_track", "digit": digit}})

    async def stop(self) -> None:
        await self.send({"event": "stop", "sequenceNumber": self.next_seq(), "streamSid": self.sid,
                         "stop": {"accountSid": ACCOUNT, "callSid": self.call_sid}})


async def closed(ws, timeout: float = 60.0) -> tuple[int, str]:
    """Wait for the server to close the websocket; its code and reason."""
    try:
        while True:
            await asyncio.wait_for(ws.recv(), timeout)
    except ConnectionClosed:
        pass
    return ws.close_code, ws.close_reason


async def test_full_call_with_dtmf_and_custom_parameters(server, manifest):
    clip = manifest["en_asterisk8k_pbx_invalid"]
    sid, call = "MZ00000000000000000000000000000001", "CA00000000000000000000000000000001"
    async with connect(server.url + "twilio") as ws:
        t = TwilioCall(ws, sid, call, params={"caller": "+8613800138000", "language": "en-US"})
        await t.start()
        await t.audio(silence(0.5))
        await t.dtmf("9")
        await t.audio(pcm8k(clip["path"]))
        await t.audio(silence(0.6))
        await t.stop()
        assert await closed(ws) == (1000, "stream stopped")
    summary = await server.recorder.summary(sid)
    events = server.recorder.of(sid)
    assert wer(clip["transcript"], text(events)) <= 0.25, text(events)
    [digit] = [e for e in events if e.kind == "dtmf"]
    assert (digit.digit, digit.track, digit.time) == ("9", "caller", 0.5)
    assert summary.reason == "stop"
    assert summary.audio_s["caller"] == pytest.approx(0.5 + clip["duration_s"] + 0.6, abs=0.05)
    assert all(e.track == "caller" for e in events if e.kind == "final")


async def test_both_tracks_are_kept_apart(server, manifest):
    caller, agent = manifest["en_asterisk8k_vm_intro"], manifest["en_asterisk8k_pbx_invalid"]
    sid = "MZ00000000000000000000000000000002"
    async with connect(server.url + "twilio") as ws:
        t = TwilioCall(ws, sid, "CA00000000000000000000000000000002", tracks=("inbound", "outbound"))
        await t.start()
        a, b = pcm8k(caller["path"]), pcm8k(agent["path"])
        # interleave the two tracks chunk by chunk, as Twilio does on a live call
        n = max(len(a), len(b)) + 4800
        a = np.concatenate([a, silence((n - len(a)) / 8000)])
        b = np.concatenate([b, silence((n - len(b)) / 8000)])
        for i in range(0, n, 160):
            await t.audio(a[i:i + 160], "inbound")
            await t.audio(b[i:i + 160], "outbound")
        await t.stop()
        await closed(ws)
    summary = await server.recorder.summary(sid)
    events = server.recorder.of(sid)
    assert wer(caller["transcript"], text(events, "caller")) <= 0.25, text(events, "caller")
    assert wer(agent["transcript"], text(events, "agent")) <= 0.25, text(events, "agent")
    assert set(summary.audio_s) == {"caller", "agent"}


async def test_lost_packets_are_silence_not_a_shifted_clock(server, manifest):
    clip = manifest["en_asterisk8k_pbx_invalid"]
    speech = pcm8k(clip["path"])
    ends = {}
    for sid, lost in (("MZ00000000000000000000000000000003", 0.0), ("MZ00000000000000000000000000000004", 2.0)):
        async with connect(server.url + "twilio") as ws:
            t = TwilioCall(ws, sid, "CA" + sid[2:])
            await t.start()
            await t.audio(silence(1.0))
            t.lose(lost)
            await t.audio(speech)
            await t.audio(silence(0.6))
            await t.stop()
            await closed(ws)
        summary = await server.recorder.summary(sid)
        finals = [e for e in server.recorder.of(sid) if e.kind == "final"]
        assert finals and wer(clip["transcript"], text(finals)) <= 0.25
        ends[lost] = finals[-1].end
        assert summary.audio_s["caller"] == pytest.approx(1.0 + lost + clip["duration_s"] + 0.6, abs=0.05)
    # the speech after the 2 s hole ends 2 s later on the call clock (where speech
    # starts depends a little on the VAD's context; where it ends does not)
    assert ends[2.0] - ends[0.0] == pytest.approx(2.0, abs=0.1)


async def test_two_concurrent_calls(server, manifest):
    clips = [manifest["en_asterisk8k_pbx_invalid"], manifest["en_asterisk8k_vm_intro"]]
    sids = ["MZ00000000000000000000000000000005", "MZ00000000000000000000000000000006"]

    async def one(sid: str, clip: dict) -> None:
        async with connect(server.url + "twilio") as ws:
            t = TwilioCall(ws, sid, "CA" + sid[2:])
            await t.start()
            speech = np.concatenate([pcm8k(clip["path"]), silence(0.6)])
            for i in range(0, len(speech), 1600):  # 200 ms at a time, yielding to the other call
                await t.audio(speech[i:i + 1600])
                await asyncio.sleep(0)
            await t.stop()
            await closed(ws)

    await asyncio.gather(*(one(s, c) for s, c in zip(sids, clips)))
    for sid, clip in zip(sids, clips):
        await server.recorder.summary(sid)
        got = text(server.recorder.of(sid))
        assert wer(clip["transcript"], got) <= 0.3, (sid, got)


async def test_client_disconnecting_mid_stream_keeps_what_was_said(server, manifest):
    clip = manifest["en_asterisk8k_pbx_invalid"]
    sid = "MZ00000000000000000000000000000007"
    speech = pcm8k(clip["path"])
    async with connect(server.url + "twilio") as ws:
        t = TwilioCall(ws, sid, "CA" + sid[2:])
        await t.start()
        await t.audio(speech)
        ws.transport.abort()  # the TCP connection drops: no stop, no close frame
    summary = await server.recorder.summary(sid)
    assert summary.reason == "disconnect"
    assert wer(clip["transcript"], text(server.recorder.of(sid))) <= 0.25
    assert sid not in server.app.calls


@pytest.mark.parametrize(
    "bad, code, reason",
    [
        ("{this is not json", 1007, "not valid JSON"),
        ('{"event": "media", "sequenceNumber": "3", "streamSid": "MZ00000000000000000000000000000010", '
         '"media": {"track": "inbound", "chunk": "1", "timestamp": "0", "payload": "%%%"}}', 1007, "base64"),
        ('{"event": "media", "sequenceNumber": "3", "streamSid": "MZ00000000000000000000000000000010", '
         '"media": {"track": "outbound", "chunk": "1", "timestamp": "0", "payload": "/w=="}}', 1007, "track"),
        ('{"event": "start", "sequenceNumber": "3", "start": {}}', 1008, "second 'start'"),
        (b"\x00\x01\x02", 1007, "binary"),
    ],
)
async def test_malformed_message_mid_call_closes_with_reason_after_flushing(server, manifest, bad, code, reason):
    clip = manifest["en_asterisk8k_pbx_invalid"]
    sid = "MZ00000000000000000000000000000010"
    async with connect(server.url + "twilio") as ws:
        t = TwilioCall(ws, sid, "CA" + sid[2:])
        await t.start()
        await t.audio(pcm8k(clip["path"]))
        await ws.send(bad)
        got_code, got_reason = await closed(ws)
    assert got_code == code and reason in got_reason, got_reason
    summary = await server.recorder.summary(sid)
    # what was said before the bad message is not lost
    assert summary.reason == "error" and wer(clip["transcript"], text(server.recorder.of(sid))) <= 0.25
    server.recorder.events.clear()  # the same stream sid is reused by the next case


@pytest.mark.parametrize(
    "messages, code, reason",
    [
        (['{"event": "media", "media": {"payload": "/w=="}}'], 1008, "before 'start'"),
        (['{"event": "start", "sequenceNumber": "1", "streamSid": "MZx", "start": {"streamSid": "MZx", '
          '"callSid": "CAx", "tracks": ["inbound"], "mediaFormat": {"encoding": "audio/x-l16", '
          '"sampleRate": 16000, "channels": 1}}}'], 1008, "audio/x-l16"),
        (['{"event": "start", "sequenceNumber": "1", "start": {"callSid": "CAx"}}'], 1007, "streamSid"),
    ],
)
async def test_malformed_start(server, messages, code, reason):
    async with connect(server.url + "twilio") as ws:
        for m in messages:
            await ws.send(m)
        got_code, got_reason = await closed(ws)
    assert got_code == code and reason in got_reason, got_reason
