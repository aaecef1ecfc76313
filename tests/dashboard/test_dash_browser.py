"""The supervisor view end to end in a real browser (Debian's chromium driven by
Playwright, no browser download): a real server with authentication on, real clips of
../shared/eval streamed over the native protocol in real time, the page opened with a
kiosk ?token= login. The call, its transcript words and its hint's queue appear within
seconds; a second call appears without a reload (after the socket was dropped and the
page reconnected); a fresh browser gets the login form and no call data. Screenshots
go to docs/img/ (shown in the README)."""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import threading
from pathlib import Path

import pytest

from voicetriage.client import StreamOptions, stream_file
from voicetriage.core.config import AuthConfig
from voicetriage.server.setup import install
from voicetriage.triage.observer import triage_config

CHROMIUM = "/usr/bin/chromium"
ADMIN = "browser-admin-token-0123456789"
IMG = Path(__file__).resolve().parents[2] / "docs" / "img"
# "Please help, my husband collapsed and he is not breathing!": lexical and prosodic
# distress, so the default policy's "distress" rule sends it to priority_human
URGENT = "en_espeak_urgent"
SECOND = "en_whisper_jfk"  # "And so my fellow Americans, ask not ..."

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
if shutil.which(CHROMIUM) is None:
    pytest.skip(f"{CHROMIUM} is absent (apt-get install chromium)", allow_module_level=True)
expect = sync_api.expect


@pytest.fixture(scope="module")
def server(tiny_engine, start_server, tmp_path_factory):
    tokens = tmp_path_factory.mktemp("browser") / "tokens"
    tokens.write_text(f"supervisor {ADMIN}\n", encoding="utf-8")
    cfg = tiny_engine.config
    config = dataclasses.replace(cfg, server=dataclasses.replace(cfg.server, host="127.0.0.1", port=0),
                                 auth=AuthConfig(token_file=str(tokens)))
    return start_server(tiny_engine, config, lambda app: install(app, config, triage_config(config)))


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


class Call(threading.Thread):
    """One call streamed in real time from a background thread."""

    def __init__(self, port: int, clip: str, call_id: str, caller: str, tail_s: float) -> None:
        super().__init__(daemon=True)
        self.url = f"ws://127.0.0.1:{port}/"
        self.clip, self.opts = clip, StreamOptions(speed=1.0, call_id=call_id, caller_id=caller, token=ADMIN,
                                                   tail_silence_s=tail_s)
        self.events: list[dict] = []
        self.start()

    def run(self) -> None:
        self.events = asyncio.run(stream_file(self.url, self.clip, self.opts))


def test_live_view_in_a_browser(server, browser, manifest):
    base = f"http://127.0.0.1:{server.port}"
    ctx = browser.new_context(viewport={"width": 1280, "height": 860})
    page = ctx.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    first = page.goto(f"{base}/dashboard?token={ADMIN}")
    assert page.url == f"{base}/dashboard" and first.status == 200  # the kiosk login left the URL
    expect(page.locator("#conn")).to_have_text("● live", timeout=5000)

    call1 = Call(server.port, manifest[URGENT]["path"], "e2e-urgent", "+86 138 0013 8000", tail_s=7.0)
    row = page.locator('#active tbody tr[data-call="e2e-urgent"]')
    expect(row).to_be_visible(timeout=5000)
    expect(row).to_contain_text("•••8000")
    expect(row).to_contain_text("native")
    expect(row.locator('[data-queue="priority_human"]')).to_contain_text("priority human", timeout=10000)
    expect(row.locator(".distress")).to_contain_text("high")
    expect(page.locator("#queue-counts")).to_contain_text("priority human")

    row.locator("a.call-link").click()
    expect(page.locator("#call")).to_be_visible()
    expect(page.locator("#transcript li.final").first).to_contain_text("husband", timeout=10000)
    expect(page.locator("#transcript")).to_contain_text("caller")
    expect(page.locator("#hints")).to_contain_text("priority human", timeout=5000)
    expect(page.locator("#hints")).to_contain_text("distress")
    expect(page.locator('#timeline svg [data-signal="distress"] .mark').first).to_be_attached(timeout=5000)
    expect(page.locator("#timeline svg .hint-mark")).to_contain_text("priority_human")
    page.screenshot(path=str(IMG / "dashboard-call.png"), full_page=True)

    # back to the list without a reload; the socket drops and the page reconnects
    page.evaluate("window.__sameDocument = true; location.hash = ''")
    expect(page.locator("#overview")).to_be_visible()
    page.evaluate("window.voicetriageLive.ws.close()")
    expect(page.locator("#conn")).to_have_text("● live", timeout=10000)
    call2 = Call(server.port, manifest[SECOND]["path"], "e2e-second", "+1 202 555 0143", tail_s=1.0)
    row2 = page.locator('#active tbody tr[data-call="e2e-second"]')
    expect(row2).to_be_visible(timeout=5000)
    assert page.evaluate("window.__sameDocument === true")  # it came in live: no reload
    ended = page.locator('#ended tbody tr[data-call="e2e-urgent"]')
    expect(ended).to_contain_text("priority human", timeout=20000)
    expect(row2.locator("meter")).to_be_attached(timeout=15000)
    page.screenshot(path=str(IMG / "dashboard-calls.png"), full_page=True)

    # the queue filter keeps only that queue's calls
    page.select_option("#queue-filter", "priority_human")
    expect(page.locator('#active tbody tr[data-call="e2e-second"]')).to_have_count(0)
    expect(ended).to_be_visible()
    page.select_option("#queue-filter", "")
    expect(row2).to_be_visible()

    call1.join(60)
    call2.join(60)
    assert call1.events[-1]["type"] == "summary" and call2.events[-1]["type"] == "summary"
    assert not problems, problems
    ctx.close()


def test_a_fresh_browser_gets_the_login_form_and_no_call_data(server, browser):
    base = f"http://127.0.0.1:{server.port}"
    ctx = browser.new_context()
    page = ctx.new_page()
    response = page.goto(f"{base}/dashboard")
    assert response.status == 401
    expect(page.locator("form#login")).to_be_visible()
    html = page.content()
    assert "e2e-" not in html and 'id="active"' not in html
    assert page.evaluate("fetch('/dashboard/state').then(r => r.status)") == 401
    # a wrong token is refused in the form; the right one signs in (cookie) and shows the calls
    page.fill("#token", "wrong-token-0123456789abc")
    page.click("button[type=submit]")
    expect(page.locator("#login-status")).to_contain_text("not accepted")
    page.fill("#token", ADMIN)
    page.click("button[type=submit]")
    expect(page.locator("#active")).to_be_visible(timeout=5000)
    assert any(c["name"] == "vt_session" and c["httpOnly"] for c in ctx.cookies())
    ctx.close()
