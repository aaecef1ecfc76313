"""Telephony calls reach triage like native ones: the "press 9 for the elders' line"
menu choice becomes a routing hint, on the hub for Twilio and AudioSocket and,
for AudioHook, also as an ``event`` back to the client."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid

import pytest
from tel_helpers import HubRecorder, make_config, mulaw, silence
from websockets.asyncio.client import connect


@pytest.fixture(scope="module")
def server(tiny_engine, start_server):
    from voicetriage.server.telephony import TelephonyConfig, install
    from voicetriage.triage.observer import install_triage

    config = make_config("tiny.en")

    def setup(app):
        install_triage(app, config)
        install(app, TelephonyConfig(audiosocket_port=0))

    srv = start_server(tiny_engine, config, setup=setup)
    srv.recorder = HubRecorder(srv)
    return srv


def hints(srv, call_id):
    return [e for e in srv.recorder.of(call_id) if e.kind == "hint"]


async def test_twilio_dtmf_9_gives_the_elders_line_hint(server):
    sid = "MZ99999999999999999999999999999999"
    async with connect(server.url + "twilio") as ws:
        await ws.send(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
        await ws.send(json.dumps({"event": "start", "sequenceNumber": "1", "streamSid": sid, "start": {
            "accountSid": "AC1", "streamSid": sid, "callSid": "CA1", "tracks": ["inbound"],
            "customParameters": {"caller": "+8613800138000"},
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}}))
        payload = base64.b64encode(mulaw(silence(0.2))).decode()
        await ws.send(json.dumps({"event": "media", "sequenceNumber": "2", "streamSid": sid, "media": {
            "track": "inbound", "chunk": "1", "timestamp": "0", "payload": payload}}))
        await ws.send(json.dumps({"event": "dtmf", "sequenceNumber": "3", "streamSid": sid,
                                  "dtmf": {"track": "inbound_track", "digit": "9"}}))
        await ws.send(json.dumps({"event": "stop", "sequenceNumber": "4", "streamSid": sid,
                                  "stop": {"accountSid": "AC1", "callSid": "CA1"}}))
    await server.recorder.summary(sid)
    [hint] = hints(server, sid)
    assert hint.queue == "senior_human" and "keypad" in json.dumps(hint.signals, default=str)


async def test_audiohook_dtmf_9_hint_is_sent_to_the_client_as_an_event(server):
    sid = str(uuid.uuid4())
    org = "d7934305-0972-4844-938e-9060eef73d05"
    h = {"Audiohook-Organization-Id": org, "Audiohook-Session-Id": sid,
         "Audiohook-Correlation-Id": str(uuid.uuid4()), "X-API-KEY": "any"}
    async with connect(server.url + "audiohook", additional_headers=h) as ws:
        seq = 0

        async def send(type_, params, position="PT0S"):
            nonlocal seq
            seq += 1
            await ws.send(json.dumps({"version": "2", "id": sid, "type": type_, "seq": seq, "serverseq": seq - 1,
                                      "position": position, "parameters": params}))

        await send("open", {"organizationId": org, "conversationId": str(uuid.uuid4()),
                            "participant": {"id": str(uuid.uuid4()), "ani": "+8613800138000", "aniName": "",
                                            "dnis": "95598"},
                            "media": [{"type": "audio", "format": "PCMU", "channels": ["external"], "rate": 8000}]})
        opened = json.loads(await ws.recv())
        assert opened["type"] == "opened"
        await ws.send(mulaw(silence(0.2)))
        await send("dtmf", {"digit": "9"}, "PT0.2S")
        event = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert event["type"] == "event" and event["seq"] == 2 and event["clientseq"] == 2
        [entity] = event["parameters"]["entities"]
        assert entity["type"] == "voicetriage.hint"
        assert entity["data"]["queue"] == "senior_human" and entity["data"]["call_id"] == sid
        await send("close", {"reason": "end"}, "PT0.2S")
        while (msg := json.loads(await asyncio.wait_for(ws.recv(), 30)))["type"] != "closed":
            assert msg["type"] == "event"
    await server.recorder.summary(sid)
    assert [h.queue for h in hints(server, sid)] == ["senior_human"]
