"""The dashboard's routes on a real server with authentication on: the login page for
anonymous visitors, ?token= kiosk logins, the cookie, static assets, JSON state,
the websocket (cookie, origin, deltas) and token scopes; and with auth off."""

from __future__ import annotations

import asyncio
import dataclasses
import http.client
import json

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from voicetriage.client import StreamOptions, stream_file
from voicetriage.core.config import AuthConfig
from voicetriage.server.setup import install
from voicetriage.triage.observer import triage_config

ADMIN = "dash-admin-token-0123456789"
HINTS = "dash-hints-token-0123456789"
BLIND = "dash-blind-token-0123456789"
HEALTH = "dash-health-token-012345678"
CLIP = "en_espeak_urgent"  # "Please help, my husband collapsed ...": distress, priority_human


@pytest.fixture(scope="module")
def secure(tiny_engine, start_server, tmp_path_factory):
    tokens = tmp_path_factory.mktemp("dash-auth") / "tokens"
    tokens.write_text(f"ops {ADMIN}\nwall {HINTS} hints\nanalyst {BLIND} no_transcripts\nlb {HEALTH} health\n",
                      encoding="utf-8")
    cfg = tiny_engine.config
    config = dataclasses.replace(cfg, server=dataclasses.replace(cfg.server, host="127.0.0.1", port=0),
                                 auth=AuthConfig(token_file=str(tokens)))
    return start_server(tiny_engine, config, lambda app: install(app, config, triage_config(config)))


def get(srv, path, headers=None):
    """(status, headers, body) of one GET, redirects not followed."""
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
    try:
        conn.request("GET", path, headers=headers or {})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


async def aget(srv, path, headers=None):
    return await asyncio.to_thread(get, srv, path, headers)


async def login_cookie(srv, token=ADMIN):
    status, headers, _ = await aget(srv, f"/dashboard?token={token}")
    assert status == 303
    return headers["set-cookie"].split(";", 1)[0]


async def test_anonymous_visitors_get_the_login_form_and_no_data(secure):
    status, headers, body = await aget(secure, "/dashboard")
    page = body.decode()
    assert status == 401 and headers["content-type"].startswith("text/html")
    assert 'id="login"' in page and 'type="password"' in page and "/dashboard/static/login.js" in page
    assert 'id="active"' not in page and "Bearer" in headers["www-authenticate"]
    for path in ("/dashboard/state", "/dashboard/call/x"):
        status, _, body = await aget(secure, path)
        assert status == 401 and json.loads(body)["error"] == "unauthorized"
    status, _, _ = await aget(secure, "/dashboard/state", {"Authorization": "Bearer wrong-token-0123456789"})
    assert status == 401
    with pytest.raises(InvalidStatus) as e:
        async with connect(f"ws://127.0.0.1:{secure.port}/dashboard/ws", open_timeout=10):
            pass
    assert e.value.response.status_code == 401


async def test_a_bad_token_is_refused_and_a_good_one_logs_in_with_a_redirect(secure):
    status, headers, body = await aget(secure, "/dashboard?token=not-the-token-0123456789")
    assert status == 401 and "not accepted" in body.decode() and "set-cookie" not in headers
    status, headers, body = await aget(secure, f"/dashboard?token={HEALTH}")  # a token without scope events
    assert status == 401 and "set-cookie" not in headers
    status, headers, body = await aget(secure, f"/dashboard?token={ADMIN}")
    assert status == 303 and headers["location"] == "/dashboard" and body == b""
    cookie = headers["set-cookie"]
    assert cookie.startswith("vt_session=") and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert ADMIN not in cookie and headers["referrer-policy"] == "no-referrer"
    status, headers, _ = await aget(secure, f"/dashboard/call?id=c%201&token={ADMIN}")
    assert status == 303 and headers["location"] == "/dashboard/call?id=c+1"
    # the cookie then opens the page, the state and the socket
    value = cookie.split(";", 1)[0]
    status, headers, body = await aget(secure, "/dashboard", {"Cookie": value})
    assert status == 200 and 'id="active"' in body.decode() and "signed in as ops" in body.decode()
    assert "script-src 'self'" in headers["content-security-policy"]
    status, headers, body = await aget(secure, "/dashboard/state", {"Cookie": value})
    assert status == 200 and headers["content-type"] == "application/json"
    assert set(json.loads(body)) >= {"calls", "ended", "queues", "ended_queues", "seq", "view"}
    status, _, _ = await aget(secure, "/dashboard/state", {"Cookie": value[:-4] + "AAA="})
    assert status == 401
    async with connect(f"ws://127.0.0.1:{secure.port}/dashboard/ws", additional_headers={"Cookie": value}) as ws:
        hello = json.loads(await ws.recv())
        assert hello["type"] == "hello" and hello["view"] == {"transcripts": True, "signals": True}
    # a page of another site may not open the socket with the visitor's cookie
    with pytest.raises(InvalidStatus) as e:
        async with connect(f"ws://127.0.0.1:{secure.port}/dashboard/ws",
                           additional_headers={"Cookie": value}, origin="http://evil.example"):
            pass
    assert e.value.response.status_code == 403


@pytest.mark.parametrize("name, kind", [("app.js", "text/javascript"), ("live.js", "text/javascript"),
                                        ("timeline.js", "text/javascript"), ("login.js", "text/javascript"),
                                        ("dashboard.css", "text/css")])
async def test_static_assets_are_served_with_their_types(secure, name, kind):
    status, headers, body = await aget(secure, f"/dashboard/static/{name}")
    assert status == 200 and headers["content-type"].startswith(kind) and len(body) > 200
    assert headers["x-content-type-options"] == "nosniff"


async def test_nothing_else_is_served_from_the_package(secure):
    for path in ("/dashboard/static/../routes.py", "/dashboard/static/routes.py", "/dashboard/static/nope.js",
                 "/dashboard/static/%2e%2e/state.py", "/dashboard/other"):
        status, _, _ = await aget(secure, path)
        assert status == 404, path
    status, _, _ = await aget(secure, "/dashboard/ws")
    assert status == 426


async def test_a_real_call_shows_up_and_scopes_cut_it(secure, manifest):
    cookie = await login_cookie(secure)
    url = f"ws://127.0.0.1:{secure.port}/dashboard/ws"
    async with connect(url, additional_headers={"Cookie": cookie}) as ws:
        assert json.loads(await ws.recv())["type"] == "hello"
        await ws.send(json.dumps({"type": "watch", "call_id": "dash-http-1"}))
        opts = StreamOptions(speed=0, call_id="dash-http-1", caller_id="+44 20 7946 0321", token=ADMIN,
                             tail_silence_s=1.0)
        events = await stream_file(f"ws://127.0.0.1:{secure.port}/", manifest[CLIP]["path"], opts)
        assert events[-1]["type"] == "summary"
        got = []
        while not any(m["type"] == "ended" for m in got):
            got.append(json.loads(await asyncio.wait_for(ws.recv(), 20)))
    kinds = [m["type"] for m in got]
    assert kinds[0] == "watching" and {"call", "line", "point", "hint", "ended"} <= set(kinds), kinds
    assert [m["seq"] for m in got[1:]] == sorted(m["seq"] for m in got[1:])
    ended = next(m for m in got if m["type"] == "ended")["call"]
    assert ended["caller"] == "•••0321" and ended["platform"] == "native"
    assert ended["ended"]["outcome"] == "priority_human" and "distress" in ended["rules_fired"]
    words = " ".join(m["line"]["text"] for m in got if m["type"] == "line" and m["line"]["final"])
    assert "husband" in words.lower()

    status, _, body = await aget(secure, "/dashboard/state", {"Cookie": cookie})
    snap = json.loads(body)
    assert any(r["call_id"] == "dash-http-1" for r in snap["ended"]) and "0321" in body.decode()
    assert "7946" not in body.decode()
    status, _, body = await aget(secure, "/dashboard/call/dash-http-1", {"Cookie": cookie})
    detail = json.loads(body)
    assert status == 200 and detail["lines"] and detail["hints_list"][0]["queue"] == "priority_human"
    assert "distress" in detail["timeline"]
    # the scoped tokens see less
    blind = json.loads((await aget(secure, "/dashboard/call/dash-http-1", {"Cookie": await login_cookie(secure, BLIND)}))[2])
    assert blind["lines"] == [] and blind["timeline"] and "husband" not in json.dumps(blind).lower()
    wall = json.loads((await aget(secure, "/dashboard/call/dash-http-1", {"Authorization": f"Bearer {HINTS}"}))[2])
    assert wall["lines"] == [] and wall["timeline"] == {} and wall["call"]["distress"] is None
    assert wall["hints_list"][0]["queue"] == "priority_human" and wall["view"] == {"transcripts": False, "signals": False}
    status, _, body = await aget(secure, "/dashboard/call/no-such-call", {"Cookie": cookie})
    assert status == 404 and json.loads(body)["error"] == "unknown_call"
    status, _, body = await aget(secure, "/health", {"Authorization": f"Bearer {ADMIN}"})
    assert json.loads(body)["dashboard"]["ended"] >= 1


async def test_without_authentication_the_page_opens_directly(tiny_engine, start_server):
    cfg = tiny_engine.config  # the suite's configs run with --insecure-no-auth
    config = dataclasses.replace(cfg, server=dataclasses.replace(cfg.server, host="127.0.0.1", port=0))
    srv = start_server(tiny_engine, config, lambda app: install(app, config, triage_config(config)))
    status, _, body = await aget(srv, "/dashboard")
    assert status == 200 and 'id="active"' in body.decode() and "signed in" not in body.decode()
    status, headers, _ = await aget(srv, "/dashboard?token=anything")
    assert status == 303 and headers["location"] == "/dashboard" and "set-cookie" not in headers
    status, _, body = await aget(srv, "/dashboard/state")
    assert status == 200 and json.loads(body)["view"]["transcripts"] is True


async def test_the_dashboard_can_be_turned_off(tiny_engine, start_server):
    cfg = tiny_engine.config
    config = dataclasses.replace(cfg, server=dataclasses.replace(cfg.server, host="127.0.0.1", port=0),
                                 extra={"dashboard": {"enabled": False}})
    srv = start_server(tiny_engine, config, lambda app: install(app, config, triage_config(config)))
    status, _, _ = await aget(srv, "/dashboard")
    assert status == 404
