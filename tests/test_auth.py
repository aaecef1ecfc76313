"""Authentication by default: tokens, rotation, scopes, browser logins, Twilio signatures,
AudioHook keys and the AudioSocket allow-list, against a real server on loopback."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import urllib.error
import urllib.request
import uuid

import numpy as np
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from voicetriage.core.config import AuthConfig
from voicetriage.core.errors import ConfigError
from voicetriage.core.events import Hint
from voicetriage.server.auth import Authenticator, read_token_file, twilio_signature

ADMIN = "admin-token-0123456789abcdef"
NEXT = "rotated-token-9876543210fedcba"  # the second token during a rotation
HINTS = "hints-only-token-0123456789ab"
BLIND = "no-transcripts-token-01234567"
TWILIO = "twilio-account-auth-token-xyz"


@pytest.fixture(scope="module")
def secure(tiny_engine, start_server, tmp_path_factory):
    from voicetriage.server.telephony import TelephonyConfig, install
    from voicetriage.sinks import events_ws

    tokens = tmp_path_factory.mktemp("auth") / "tokens"
    tokens.write_text(f"# name token [scopes]\nops {ADMIN}\nops-next {NEXT}\nwall {HINTS} hints\n"
                      f"analyst {BLIND} no_transcripts\n", encoding="utf-8")
    cfg = tiny_engine.config
    config = dataclasses.replace(
        cfg, server=dataclasses.replace(cfg.server, host="127.0.0.1", port=0),
        auth=AuthConfig(token_file=str(tokens), twilio_auth_token=TWILIO))

    def setup(app):
        install(app, TelephonyConfig(audiosocket_port=0))
        events_ws.install(app)

    return start_server(tiny_engine, config, setup)


def url(srv, path="/"):
    return f"ws://127.0.0.1:{srv.port}{path}"


def http(srv, path, headers=None):
    req = urllib.request.Request(f"http://127.0.0.1:{srv.port}{path}", headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, dict(r.headers), json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), json.loads(e.read() or b"{}")


async def refused(address, **kw):
    with pytest.raises(InvalidStatus) as e:
        async with connect(address, open_timeout=10, **kw):
            pass
    return e.value.response.status_code


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


async def one_call(address, token, call_id):
    async with connect(address, additional_headers=bearer(token)) as ws:
        await ws.send(json.dumps({"type": "start", "call_id": call_id}))
        started = json.loads(await ws.recv())
        await ws.send(json.dumps({"type": "stop"}))
        rest = [json.loads(m) async for m in ws]
    return started, rest


async def test_every_endpoint_needs_a_token_but_the_liveness_probe(secure):
    assert await refused(url(secure)) == 401
    assert await refused(url(secure, "/v1/stream"), additional_headers=bearer("wrong-token-0123456789")) == 401
    assert await refused(url(secure, "/events")) == 401
    assert await refused(url(secure, "/events?token=nope")) == 401
    status, headers, body = await asyncio.to_thread(http, secure, "/health")
    assert status == 401 and body["error"] == "unauthorized" and "Bearer" in headers["WWW-Authenticate"]
    status, _, body = await asyncio.to_thread(http, secure, "/healthz")
    assert status == 200 and body == {"status": "ok"}  # liveness says nothing about the calls
    status, _, body = await asyncio.to_thread(http, secure, "/health", bearer(ADMIN))
    assert status == 200 and body["calls"] == 0 and body["errors"]["unauthorized"] >= 4


async def test_both_tokens_of_a_rotation_work(secure):
    for token, call in ((ADMIN, "rot-1"), (NEXT, "rot-2")):
        started, rest = await one_call(url(secure), token, call)
        assert started["type"] == "started" and started["call_id"] == call
        assert rest[-1]["type"] == "summary"


async def test_browser_login_sets_an_httponly_cookie(secure):
    status, _, _ = await asyncio.to_thread(http, secure, "/login", bearer("not-a-token-0123456789"))
    assert status == 401
    status, headers, body = await asyncio.to_thread(http, secure, "/login", bearer(ADMIN))
    assert status == 200 and body["name"] == "ops"
    cookie = headers["Set-Cookie"]
    assert cookie.startswith("vt_session=") and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    value = cookie.split(";", 1)[0]
    status, _, _ = await asyncio.to_thread(http, secure, "/health", {"Cookie": value})
    assert status == 200
    forged = value[:-6] + ("AAAA==" if not value.endswith("AAAA==") else "BBBB==")
    status, _, _ = await asyncio.to_thread(http, secure, "/health", {"Cookie": forged})
    assert status == 401
    # a websocket from the logged-in browser carries the cookie
    async with connect(url(secure, "/events"), additional_headers={"Cookie": value}) as ws:
        assert json.loads(await ws.recv())["type"] == "subscribed"
    # ?token= logs a kiosk in and redirects to the clean URL
    req = urllib.request.Request(f"http://127.0.0.1:{secure.port}/login?token={ADMIN}&next=/healthz")
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 200 and r.url.endswith("/healthz")


def hint(call_id="scope-1"):
    return Hint(call_id, "human_now", "transfer", 90, 0.9, ("human_request",),
                ({"rule": "human_request", "signal": "human_request", "value": True,
                  "evidence": {"phrase": "转人工", "text": "我要转人工"}},),
                3.0, 2.5, 3.0, 0.5, "new", 1)


async def test_event_scopes_hints_only_and_no_transcripts(secure):
    from voicetriage.core.events import Final

    assert await refused(url(secure, f"/events?types=final&token={HINTS}")) == 403
    final = Final("scope-1", "caller", 1, 0.0, 1.0, "我要转人工", "zh", 0.9, -0.2, 0.01, "silence")
    async with connect(url(secure, f"/events?token={HINTS}")) as wall, \
            connect(url(secure, "/events"), additional_headers=bearer(BLIND)) as analyst:
        for ws in (wall, analyst):
            assert json.loads(await ws.recv())["type"] == "subscribed"
        secure.loop.call_soon_threadsafe(secure.app.hub.publish, final)
        secure.loop.call_soon_threadsafe(secure.app.hub.publish, hint())
        got = json.loads(await asyncio.wait_for(wall.recv(), 10))
        assert got["type"] == "hint" and got["queue"] == "human_now"  # the final never reached the wall
        seen = [json.loads(await asyncio.wait_for(analyst.recv(), 10)) for _ in range(2)]
    assert [m["type"] for m in seen] == ["final", "hint"]
    assert "text" not in seen[0] and seen[0]["language"] == "zh"
    assert "转人工" not in json.dumps(seen, ensure_ascii=False) and seen[1]["rules"] == ["human_request"]


async def test_twilio_needs_its_signature(secure):
    path = "/twilio?call=1"
    assert await refused(url(secure, path)) == 401
    bad = twilio_signature("not-the-account-token", f"wss://127.0.0.1:{secure.port}{path}")
    assert await refused(url(secure, path), additional_headers={"X-Twilio-Signature": bad}) == 401
    good = twilio_signature(TWILIO, f"wss://127.0.0.1:{secure.port}{path}")
    async with connect(url(secure, path), additional_headers={"X-Twilio-Signature": good}) as ws:
        await ws.send(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
        await ws.close()


async def test_audiohook_without_keys_is_refused_when_auth_is_on(secure):
    headers = {"Audiohook-Organization-Id": str(uuid.uuid4()), "Audiohook-Session-Id": str(uuid.uuid4()),
               "Audiohook-Correlation-Id": str(uuid.uuid4()), "X-API-KEY": "anything"}
    assert await refused(url(secure, "/audiohook"), additional_headers=headers) == 401


async def audiosocket_call(port, call):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    pcm = (np.sin(np.arange(1600) / 5) * 3000).astype("<i2").tobytes()
    writer.write(b"\x01\x00\x10" + call.bytes + b"\x10" + len(pcm).to_bytes(2, "big") + pcm + b"\x00\x00\x00")
    await writer.drain()
    try:
        data = await asyncio.wait_for(reader.read(), 10)
    except ConnectionResetError:  # closed with our frames unread: refused
        data = b""
    writer.close()
    return data


async def test_audiosocket_accepts_allow_listed_peers_only(secure, tiny_engine, start_server):
    from voicetriage.server.telephony import TelephonyConfig, install

    published = []
    secure.loop.call_soon_threadsafe(secure.app.hub.subscribe, published.append)
    ok = uuid.uuid4()
    await audiosocket_call(secure.app.tcp_ports[0], ok)  # loopback is allowed by default
    for _ in range(100):
        if any(e.kind == "summary" and e.call_id == str(ok) for e in published):
            break
        await asyncio.sleep(0.1)
    assert any(e.kind == "summary" and e.call_id == str(ok) for e in published)

    cfg = dataclasses.replace(secure.config, auth=AuthConfig(token=ADMIN, audiosocket_allow=("10.0.0.0/8",)))
    fenced = start_server(tiny_engine, cfg, lambda app: install(app, TelephonyConfig(audiosocket_port=0)))
    no = uuid.uuid4()
    assert await audiosocket_call(fenced.app.tcp_ports[0], no) == b""
    await asyncio.sleep(0.3)
    assert str(no) not in fenced.app.calls and fenced.app.errors.get("unauthorized") == 1


def test_token_file_mistakes_are_named(tmp_path):
    f = tmp_path / "tokens"
    for body, expected in (("", "holds no token"), ("a short\n", "shorter than 16"),
                           (f"a {ADMIN} everything\n", "unknown scope"), (f"a {ADMIN}\na {NEXT}\n", "appears twice"),
                           (f"a|b {ADMIN}\n", "use letters")):
        f.write_text(body, encoding="utf-8")
        with pytest.raises(ConfigError, match=expected):
            read_token_file(f)
    with pytest.raises(ConfigError, match="does-not-exist"):
        Authenticator(AuthConfig(token_file=str(tmp_path / "does-not-exist")))


def test_twilio_signature_matches_twilios_published_example():
    # twilio-python's RequestValidator test vector
    params = {"CallSid": "CA1234567890ABCDE", "Digits": "1234", "From": "+14158675309", "To": "+18005551212",
              "Caller": "+14158675309"}
    assert twilio_signature("12345", "https://mycompany.com/myapp.php?foo=1&bar=2", params) == \
        "RSOYDt4T1cUTdK1PDd93/VVr8B8="


def test_insecure_mode_and_allow_list_units():
    off = Authenticator(AuthConfig(insecure_no_auth=True))
    assert not off.enabled and off.peer_allowed("203.0.113.9")
    on = Authenticator(AuthConfig(token=ADMIN, audiosocket_allow=("192.0.2.0/24", "::1")))
    assert on.peer_allowed("192.0.2.7") and on.peer_allowed("::ffff:192.0.2.7") and on.peer_allowed("::1")
    assert not on.peer_allowed("127.0.0.1") and not on.peer_allowed(None)
    assert on.check_token(ADMIN).name == "default" and on.check_token(ADMIN[:-1]) is None


async def test_tls_serves_wss_with_the_token(tiny_engine, start_server, tmp_path, manifest):
    import shutil
    import subprocess

    from voicetriage.client import StreamOptions, stream_file

    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    cfg = tiny_engine.config
    config = dataclasses.replace(
        cfg, server=dataclasses.replace(cfg.server, host="127.0.0.1", port=0, certfile=str(cert), keyfile=str(key)),
        auth=AuthConfig(token=ADMIN))
    srv = start_server(tiny_engine, config)
    events = await stream_file(f"wss://127.0.0.1:{srv.port}/", manifest["en_speechrecognition_123"]["path"],
                               StreamOptions(speed=0, token=ADMIN, cafile=str(cert)))
    assert events[0]["type"] == "started" and events[-1]["type"] == "summary"
    with pytest.raises(InvalidStatus):
        await stream_file(f"wss://127.0.0.1:{srv.port}/", manifest["en_speechrecognition_123"]["path"],
                          StreamOptions(speed=0, cafile=str(cert)))
