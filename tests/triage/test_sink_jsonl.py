"""JSONL event log: one parseable line per hint/final, durable across a crash."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

from voicetriage.core.events import Dtmf, Final, Hint
from voicetriage.sinks.jsonl import JsonlEventLog


def final(i: int, text: str = "我要转人工") -> Final:
    return Final("call-1", "caller", i, float(i), i + 1.5, text, "zh", 0.99, -0.2, 0.01, "silence", 1.2)


def hint(seq: int) -> Hint:
    return Hint(
        call_id="call-1", queue="human_now", action="route", priority=90, confidence=0.95,
        rules=("human_request",),
        signals=({"rule": "human_request", "signal": "human_request", "value": True, "confidence": 0.95,
                  "time": 2.0, "evidence_time": 1.4, "evidence": {"phrase": "转人工"}},),
        time=2.1, evidence_time=1.4, since_start_s=2.1, since_evidence_s=0.7, reason="new", seq=seq,
    )


def read_lines(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_hints_and_finals_one_line_each(tmp_path):
    path = tmp_path / "logs" / "events.jsonl"
    log = JsonlEventLog(path)
    log(final(0))
    log(Dtmf("call-1", "caller", "9", 0.5))  # not a logged kind
    log(hint(1))
    log.close()
    lines = read_lines(path)
    assert [m["type"] for m in lines] == ["final", "hint"]
    assert lines[0]["text"] == "我要转人工" and lines[0]["call_id"] == "call-1"
    assert lines[1]["queue"] == "human_now" and lines[1]["signals"][0]["evidence"]["phrase"] == "转人工"
    assert all(isinstance(m["logged_at"], float) for m in lines)
    assert "转人工" in path.read_text(encoding="utf-8")  # readable UTF-8, not \\u escapes


def test_appends_and_repairs_a_line_cut_by_a_crash(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text('{"type":"final","text":"ok"}\n{"type":"hint","qu', encoding="utf-8")
    log = JsonlEventLog(path, kinds=["hint"])
    log(hint(7))
    log.close()
    raw = path.read_text(encoding="utf-8").splitlines()
    assert raw[0] == '{"type":"final","text":"ok"}'
    assert raw[1] == '{"type":"hint","qu'  # left as it was, but terminated
    assert json.loads(raw[2])["seq"] == 7


def test_every_line_is_fsynced(tmp_path, monkeypatch):
    synced = []
    done = threading.Event()
    real_fsync = os.fsync

    def counting_fsync(fd):
        synced.append(fd)
        done.set()
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", counting_fsync)
    log = JsonlEventLog(tmp_path / "e.jsonl")
    log(hint(1))
    assert done.wait(5), "the line was not fsynced"
    log.close()
    assert synced


def test_nothing_is_lost_when_the_process_is_killed(tmp_path):
    """A server killed with SIGKILL right after emitting keeps every line already emitted."""
    path = tmp_path / "events.jsonl"
    script = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
        from voicetriage.core.events import Final
        from voicetriage.sinks.jsonl import JsonlEventLog
        log = JsonlEventLog({str(path)!r})
        for i in range(200):
            log(Final("c", "caller", i, i, i + 1, f"utterance {{i}}", "en", 0.9, -0.3, 0.0, "silence"))
        os.kill(os.getpid(), signal.SIGKILL)  # no close(), no flush at exit
    """)
    r = subprocess.run([sys.executable, "-c", script], timeout=60)
    assert r.returncode == -9
    lines = read_lines(path)
    assert [m["utterance"] for m in lines] == list(range(200))


def test_unwritable_path_is_a_clear_config_error(tmp_path):
    import pytest

    from voicetriage.core.errors import ConfigError

    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match="event log"):
        JsonlEventLog(blocker / "events.jsonl")
