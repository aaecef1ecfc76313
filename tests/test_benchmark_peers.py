"""The peers' clients in benchmarks/peers against scripted fakes of their servers.

No peer is installed for these: each fake speaks the peer's wire protocol with a
fixed script, and the tests check that the client keeps the transcript the way
the peer's own client would (WhisperLive's completed-segment rule and last line,
WhisperLiveKit's lines plus buffer, whisper-streaming's committed pieces), that the
whole-call check scores it, and that the report prints each peer's settings.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `benchmarks` is a folder of the repo, not an installed package
    sys.path.insert(0, str(ROOT))

websockets = pytest.importorskip("websockets")

from benchmarks.analysis import Obs  # noqa: E402
from benchmarks.callcheck import call_record, check  # noqa: E402
from benchmarks.corpus import Call, Utterance  # noqa: E402


def _call(*utts: tuple[str, str, float, float], seconds: float = 0.6) -> Call:
    return Call("fake-000", np.zeros(int(16000 * seconds), np.int16),
                tuple(Utterance(f"c{i}", lang, text, a, b) for i, (lang, text, a, b) in enumerate(utts)))


def _run_against_fake(handler, peer, call: Call):
    """One call of the peer's client against a scripted fake server on loopback: its trace."""
    async def main():
        server = await websockets.serve(handler, "127.0.0.1", 0, max_size=None)
        try:
            peer.port = server.sockets[0].getsockname()[1]
            return await peer.run_call(call, chunk_samples=320, drain_s=0.1, timeout=5)
        finally:
            server.close()
            await server.wait_closed()

    return asyncio.run(main())


async def _drain_audio(ws, end_marker) -> None:
    async for msg in ws:
        if msg == end_marker:
            return


def test_whisperlive_keeps_its_clients_transcript(tmp_path):
    from benchmarks.peers.whisperlive_peer import WhisperLive

    def seg(a, b, text, done):
        return {"start": f"{a:.3f}", "end": f"{b:.3f}", "text": text, "completed": done}

    script = [
        [seg(0.0, 1.0, "hello", False)],
        [seg(0.0, 1.2, "hello there", True), seg(1.5, 2.0, "how", False)],
        # resent, and an overlapping completed segment its client refuses (starts before 1.2)
        [seg(0.0, 1.2, "hello there", True), seg(1.0, 1.4, "there again", True), seg(1.5, 2.2, "how are", False)],
        [seg(0.0, 1.2, "hello there", True), seg(1.5, 2.4, "how are you", False)],
    ]
    options = {}

    async def handler(ws):
        options.update(json.loads(await ws.recv()))
        await ws.send(json.dumps({"uid": options["uid"], "message": "SERVER_READY", "backend": "faster_whisper"}))
        for segs in script:
            await ws.send(json.dumps({"uid": options["uid"], "segments": segs}))
        await _drain_audio(ws, b"END_OF_AUDIO")

    peer = WhisperLive("wl", tmp_path, tmp_path / "model", language="en")
    trace = _run_against_fake(handler, peer, _call(("en", "hello there how are you", 0.0, 2.4)))
    assert trace.error is None
    assert options["language"] == "en" and options["use_vad"] is True and options["audio_format"] == "int16"
    # completed 'hello there' once; the overlapping one refused; the live line appended at the end
    assert trace.transcript == "hello there how are you"
    finals = [o.text for o in trace.obs if o.committed]
    assert finals == ["hello there", "how are you"]
    rec = call_record(trace)
    assert rec["metric"] == "wer" and rec["value"] == 0.0
    st = peer.describe()["settings"]
    assert st["language"]["value"] == "en" and st["use_vad"]["value"] is True and st["omp_num_threads"]["why"]


def test_whisperlivekit_transcript_is_lines_plus_buffer(tmp_path):
    from benchmarks.peers.whisperlivekit_peer import WhisperLiveKit

    states = [
        {"lines": [], "buffer_transcription": "你好"},
        {"lines": [{"speaker": 1, "text": "你好", "start": "0:00:00.00", "end": "0:00:00.80"}],
         "buffer_transcription": "我要"},
        {"lines": [{"speaker": 1, "text": "你好", "start": "0:00:00.00", "end": "0:00:00.80"},
                   {"speaker": -2, "text": None, "start": "0:00:00.80", "end": "0:00:01.50"},
                   {"speaker": 1, "text": "我要转人工", "start": "0:00:01.50", "end": "0:00:02.50"}],
         "buffer_transcription": "谢谢"},
    ]

    async def handler(ws):
        await ws.send(json.dumps({"type": "config", "useAudioWorklet": True, "mode": "full"}))
        for st in states:
            await ws.send(json.dumps({"status": "active_transcription", **st}))
        await _drain_audio(ws, b"")
        await ws.send(json.dumps({"type": "ready_to_stop"}))

    peer = WhisperLiveKit("wlk", tmp_path, tmp_path / "model", tmp_path / "warm.wav", language="zh")
    trace = _run_against_fake(handler, peer, _call(("cmn", "你好", 0.0, 0.8), ("cmn", "我要转人工谢谢", 1.5, 3.0),
                                                   seconds=3.2))
    assert trace.error is None
    assert trace.transcript == "你好 我要转人工 谢谢"
    assert [o.text for o in trace.obs if o.committed] == ["你好", "我要转人工"]
    rec = call_record(trace)
    assert rec["metric"] == "mer" and rec["value"] == 0.0
    cmd = peer.command()
    assert cmd[cmd.index("--lan") + 1] == "zh" and "--asr-coalesce-min-s" in cmd
    assert cmd[cmd.index("--backend-policy") + 1] == "localagreement"


def test_whisper_streaming_transcript_is_its_committed_pieces(tmp_path):
    from benchmarks.peers.whisper_streaming_peer import WhisperStreaming

    async def handler(ws):
        await ws.send(json.dumps({"type": "ready"}))
        for a, b, text in ((0.0, 0.5, " One,"), (0.5, 1.0, " two, three.")):
            await ws.send(json.dumps({"start": a, "end": b, "text": text}))
        await _drain_audio(ws, "END")
        await ws.send(json.dumps({"type": "done"}))

    peer = WhisperStreaming("ws", tmp_path, tmp_path / "model", language="en")
    trace = _run_against_fake(handler, peer, _call(("en", "one two three", 0.0, 1.0)))
    assert trace.error is None and trace.transcript == "One, two, three."
    assert call_record(trace)["value"] == 0.0
    assert peer.command()[-2:] == ["en", "1.0"]


def test_check_flags_a_streamed_transcript_far_from_its_offline_one():
    call = _call(("en", "I want to talk to a real person", 0.0, 2.0))
    good = {"transcript": "I want to talk to a real person", "value": 0.0, "edits": 0, "units": 8}
    res = check(good, "I want to talk to a real person.", call)
    assert res["passed"] and res["gap"] == 0.0 and res["streamed_vs_offline"]["value"] == 0.0
    bad = {"transcript": "", "value": 1.0, "edits": 8, "units": 8}
    res = check(bad, "I want to talk to a real person.", call)
    assert not res["passed"] and res["gap"] == 1.0
    # an offline transcript that is itself wrong checks nothing, however close streamed is to it
    res = check({"transcript": "x", "value": 1.0, "edits": 8, "units": 8}, "noise noise noise", call)
    assert not res["passed"] and res["offline_usable"] is False
    # fell behind: the words it delivered are right, the rest never came
    short = {"transcript": "I want to talk", "value": 0.5, "edits": 4, "units": 8}
    res = check(short, "I want to talk to a real person.", call)
    assert not res["passed"] and res["streamed_vs_offline_prefix"] == {"value": 0.0, "edits": 0, "units": 4,
                                                                        "undelivered_units": 4}


def test_mixed_calls_count_chinese_characters_and_english_words():
    call = _call(("yue", "我要转人工", 0.0, 1.0), ("en", "operator please", 1.5, 2.5))
    from benchmarks.analysis import CallTrace

    trace = CallTrace(call, 320)
    trace.obs = [Obs(0.0, "final", 0.0, 1.0, "我要轉人工", True), Obs(0.0, "final", 1.5, 2.5, "operator", True)]
    rec = call_record(trace)
    # Traditional folded to Simplified; 5 characters + 2 words, one word missing
    assert rec["metric"] == "mer" and rec["units"] == 7 and rec["edits"] == 1


def test_report_prints_each_peers_settings_and_check():
    from benchmarks.report import peer_settings_md

    results = {"systems": [{
        "system": "whisper-live", "label": "WhisperLive 0.10.0 base en int8", "levels": [],
        "settings": {"language": {"value": "en", "why": "given explicitly"}},
        "accuracy_check": {"call": "bench-000", "metric": "wer", "streamed": {"value": 0.1},
                           "offline": {"value": 0.05}, "streamed_vs_offline": {"value": 0.08},
                           "streamed_vs_offline_prefix": {"value": 0.02, "undelivered_units": 3},
                           "passed": True, "max_gap": 0.1},
    }]}
    md = "\n".join(peer_settings_md(results))
    assert "## Peers: settings and accuracy check" in md
    assert "`language` = `en`: given explicitly" in md
    assert ("| WhisperLive 0.10.0 base en int8 | bench-000 | WER 0.100 | WER 0.050 | WER 0.080 | WER 0.020 (3) "
            "| checked |") in md
