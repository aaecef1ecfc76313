"""The console command as a user runs it: real processes, real sockets."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import urllib.request

from voicetriage.evaluation.textnorm import wer

CLI = [sys.executable, "-m", "voicetriage.cli"]


def run_cli(*args, timeout=180):
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout)


def test_help_lists_commands():
    out = run_cli("--help").stdout
    for cmd in ("serve", "stream", "demo", "transcribe", "models"):
        assert cmd in out


def test_demo_streams_the_sample_call():
    r = run_cli("demo", "--speed", "0", "--json", "--model", "tiny.en")
    assert r.returncode == 0, r.stderr
    events = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    assert events[0]["type"] == "started" and events[-1]["type"] == "summary"
    fs = [e["text"] for e in events if e["type"] == "final"]
    assert len(fs) == 4  # four sentences with pauses between them
    assert wer("Hello. I am calling about my electricity bill.", fs[0]) <= 0.25
    assert wer("The power has been off since this morning, and I do not know what to do.", fs[1]) <= 0.2
    assert wer("Can I speak to a person, please?", fs[3]) <= 0.25


def test_serve_stream_and_clean_shutdown(manifest):
    proc = subprocess.Popen(
        [*CLI, "serve", "--port", "0", "--model", "tiny.en"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        line = proc.stdout.readline()
        m = re.search(r"ws://127\.0\.0\.1:(\d+)/", line)
        assert m, line + proc.stderr.read()
        port = int(m.group(1))
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10) as resp:
            assert json.loads(resp.read())["status"] == "ok"
        clip = manifest["en_whisper_jfk"]
        r = run_cli("stream", clip["path"], "--url", f"ws://127.0.0.1:{port}/", "--json", "--speed", "0",
                    "--encoding", "mulaw")
        assert r.returncode == 0, r.stderr
        events = [json.loads(x) for x in r.stdout.splitlines()]
        assert all("type" in e for e in events)
        text = " ".join(e["text"] for e in events if e["type"] == "final")
        assert wer(clip["transcript"], text) <= 0.3
        # readable output by default
        r = run_cli("stream", manifest["en_speechrecognition_123"]["path"], "--url",
                    f"ws://127.0.0.1:{port}/", "--speed", "0")
        assert r.returncode == 0 and "caller (en" in r.stdout and "ended (stop)" in r.stdout
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "shutting down" in out


def test_stream_errors_are_clear(tmp_path):
    r = run_cli("stream", str(tmp_path / "missing.wav"), "--url", "ws://127.0.0.1:9/")
    assert r.returncode != 0 and "missing.wav" in r.stderr
    wav = tmp_path / "x.wav"
    wav.write_bytes(b"RIFF....WAVEjunk")
    r = run_cli("stream", str(wav), "--url", "ws://127.0.0.1:9/")
    assert r.returncode != 0 and "x.wav" in r.stderr


def test_unknown_model_is_a_clear_error():
    r = run_cli("demo", "--model", "whisper-huge", "--speed", "0")
    assert r.returncode == 2
    assert "unknown model 'whisper-huge'" in r.stderr and "Traceback" not in r.stderr
