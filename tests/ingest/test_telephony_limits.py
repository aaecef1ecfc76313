"""Server limits on telephony calls (busy server, idle streams) and the [telephony] config."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from tel_helpers import HubRecorder, make_config
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from voicetriage.core.config import load_config
from voicetriage.core.errors import ConfigError
from voicetriage.server.telephony import TelephonyConfig, install, telephony_config


@pytest.fixture(scope="module")
def server(tiny_engine, start_server):
    cfg = make_config("tiny.en", idle_timeout_s=0.5, max_calls=1)
    srv = start_server(tiny_engine, cfg, setup=lambda app: install(app, TelephonyConfig(audiosocket_port=0)))
    srv.recorder = HubRecorder(srv)
    return srv


def twilio_start(sid: str) -> list[str]:
    return [json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}),
            json.dumps({"event": "start", "sequenceNumber": "1", "streamSid": sid, "start": {
                "accountSid": "AC1", "streamSid": sid, "callSid": "CA" + sid[2:], "tracks": ["inbound"],
                "customParameters": {}, "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}})]


async def close_of(ws) -> tuple[int, str]:
    try:
        while True:
            await asyncio.wait_for(ws.recv(), 30)
    except ConnectionClosed:
        return ws.close_code, ws.close_reason


async def test_idle_twilio_stream_is_closed_with_a_reason(server):
    async with connect(server.url + "twilio") as ws:
        for m in twilio_start("MZidle"):
            await ws.send(m)
        code, reason = await close_of(ws)
    assert code == 1008 and "no message for 0.5 s" in reason
    assert (await server.recorder.summary("MZidle")).reason == "error"


async def test_idle_audiosocket_connection_is_closed(server):
    reader, writer = await asyncio.open_connection("127.0.0.1", server.app.tcp_ports[0])
    call = uuid.uuid4()
    writer.write(b"\x01\x00\x10" + call.bytes)
    await writer.drain()
    assert await asyncio.wait_for(reader.read(), 10) == b""
    assert (await server.recorder.summary(str(call))).reason == "error"


async def test_busy_server_refuses_the_next_call_in_each_protocol(server):
    async with connect(server.url + "twilio") as first:
        for m in twilio_start("MZfirst"):
            await first.send(m)
        await asyncio.sleep(0.1)
        assert "MZfirst" in server.app.calls
        # Twilio: closed with "try again later"
        async with connect(server.url + "twilio") as second:
            for m in twilio_start("MZsecond"):
                await second.send(m)
            code, reason = await close_of(second)
        assert code == 1013 and "limit of 1 calls" in reason
        # AudioHook: no 'opened'; a disconnect with the reason instead
        sid = str(uuid.uuid4())
        org = "d7934305-0972-4844-938e-9060eef73d05"
        h = {"Audiohook-Organization-Id": org, "Audiohook-Session-Id": sid, "Audiohook-Correlation-Id": str(uuid.uuid4())}
        async with connect(server.url + "audiohook", additional_headers=h) as ah:
            await ah.send(json.dumps({
                "version": "2", "id": sid, "type": "open", "seq": 1, "serverseq": 0, "position": "PT0S",
                "parameters": {"organizationId": org, "conversationId": str(uuid.uuid4()),
                               "participant": {"id": str(uuid.uuid4()), "ani": "", "aniName": "", "dnis": ""},
                               "media": [{"type": "audio", "format": "PCMU", "channels": ["external"], "rate": 8000}]}}))
            msg = json.loads(await asyncio.wait_for(ah.recv(), 10))
            assert msg["type"] == "disconnect" and msg["seq"] == 1 and msg["clientseq"] == 1
            assert msg["parameters"]["reason"] == "error" and "limit of 1 calls" in msg["parameters"]["info"]
            await ah.send(json.dumps({"version": "2", "id": sid, "type": "close", "seq": 2, "serverseq": 1,
                                      "position": "PT0S", "parameters": {"reason": "disconnect"}}))
            assert json.loads(await asyncio.wait_for(ah.recv(), 10))["type"] == "closed"
        # AudioSocket: the connection is closed
        reader, writer = await asyncio.open_connection("127.0.0.1", server.app.tcp_ports[0])
        writer.write(b"\x01\x00\x10" + uuid.uuid4().bytes)
        await writer.drain()
        assert await asyncio.wait_for(reader.read(), 10) == b""


def test_telephony_config_from_file_and_flags(tmp_path):
    p = tmp_path / "vt.toml"
    p.write_text('[telephony]\naudiosocket_port = 9092\ntwilio_path = ""\n'
                 '[telephony.audiohook_keys]\n"key-a" = "c2VjcmV0"\n', encoding="utf-8")
    cfg = load_config(p)
    tc = telephony_config(cfg, audiohook_api_key="key-b", audiohook_client_secret=None, audiosocket_port=None)
    assert tc.audiosocket_port == 9092 and tc.twilio_path == "" and tc.audiohook_path == "/audiohook"
    assert tc.audiohook_keys == {"key-a": "c2VjcmV0", "key-b": ""}
    assert telephony_config(cfg, audiosocket_port=7000).audiosocket_port == 7000
    with pytest.raises(ConfigError, match="needs --audiohook-api-key"):
        telephony_config(cfg, audiohook_client_secret="c2VjcmV0")
    bad = tmp_path / "bad.toml"
    bad.write_text('[telephony]\naudiosocket_prot = 1\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="audiosocket_prot"):
        telephony_config(load_config(bad))
    bad.write_text('[telephony]\ntwilio_path = "twilio"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="must start with"):
        telephony_config(load_config(bad))
