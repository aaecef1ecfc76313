"""The console command as a user runs it: real processes, real sockets."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from voicetriage.evaluation.textnorm import wer

CLI = [sys.executable, "-m", "voicetriage.cli"]


def run_cli(*args, timeout=180, env=None):
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


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


def test_serve_stream_and_clean_shutdown(manifest, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "VOICETRIAGE_API_TOKEN"}
    log = open(tmp_path / "serve.log", "w+")  # -vv is a lot of lines: a file, not a pipe that fills up
    proc = subprocess.Popen(
        [*CLI, "-vv", "serve", "--port", "0", "--model", "tiny.en"],
        stdout=subprocess.PIPE, stderr=log, text=True, env=env,
    )
    try:
        banner = []
        while not (m := re.search(r"serving model .* on ws://127\.0\.0\.1:(\d+)/", banner[-1] if banner else "")):
            banner.append(proc.stdout.readline())
            assert banner[-1], "".join(banner) + (tmp_path / "serve.log").read_text()
        port = int(m.group(1))
        # no token configured: serve generated one and printed it once
        token = next(x.strip() for i, x in enumerate(banner) if i and "shown once" in banner[i - 1])
        assert len(token) >= 32 and sum(token in x for x in banner) == 1
        health = urllib.request.Request(f"http://127.0.0.1:{port}/health")
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(health, timeout=10)
        assert e.value.code == 401
        # the supervisor view is served, behind the same credential
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/dashboard", timeout=10)
        assert e.value.code == 401 and b"<form" in e.value.read()
        health.add_header("Authorization", f"Bearer {token}")
        with urllib.request.urlopen(health, timeout=10) as resp:
            assert json.loads(resp.read())["status"] == "ok"
        clip = manifest["en_whisper_jfk"]
        r = run_cli("stream", clip["path"], "--url", f"ws://127.0.0.1:{port}/", "--json", "--speed", "0",
                    "--encoding", "mulaw")
        assert r.returncode == 1 and "refused the connection (401)" in r.stderr  # no token, no call
        assert "VOICETRIAGE_API_TOKEN" in r.stderr and "Traceback" not in r.stderr
        with_token = {"VOICETRIAGE_API_TOKEN": token}
        r = run_cli("stream", clip["path"], "--url", f"ws://127.0.0.1:{port}/", "--json", "--speed", "0",
                    "--encoding", "mulaw", "--caller-id", "+8613800138000", env=with_token)
        assert r.returncode == 0, r.stderr
        events = [json.loads(x) for x in r.stdout.splitlines()]
        assert all("type" in e for e in events)
        text = " ".join(e["text"] for e in events if e["type"] == "final")
        assert wer(clip["transcript"], text) <= 0.3
        # readable output by default
        r = run_cli("stream", manifest["en_speechrecognition_123"]["path"], "--url",
                    f"ws://127.0.0.1:{port}/", "--speed", "0", env=with_token)
        assert r.returncode == 0 and "caller (en" in r.stdout and "ended (stop)" in r.stdout
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
        log.close()
    err = (tmp_path / "serve.log").read_text()
    assert proc.returncode == 0, err[-3000:]
    assert "shutting down" in out
    # debug logging (-vv) logged the handshakes, but never the token
    assert "Authorization" in err and token not in err
    # nor the caller's number whole: the start frame websockets logs shows its last four digits
    assert "8613800138000" not in err and "\u2022\u2022\u20228000" in err
    # each record of a call names it
    assert "[en_whisper_jfk]: call en_whisper_jfk started" in err


def test_json_log_lines_carry_the_call_id():
    import io
    import logging

    from voicetriage.core.logsafe import CALL_ID, CallContext, JsonFormatter

    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(CallContext())
    handler.setFormatter(JsonFormatter())
    log = logging.getLogger("voicetriage.test-json")
    log.addHandler(handler)
    log.propagate = False
    token = CALL_ID.set("call-7")
    try:
        log.warning("hello %s", "there")
    finally:
        CALL_ID.reset(token)
    log.warning("no call")
    first, second = (json.loads(x) for x in out.getvalue().splitlines())
    assert first["call_id"] == "call-7" and first["message"] == "hello there" and first["level"] == "WARNING"
    assert second["call_id"] == "-"


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


def test_command_line_mistakes_are_one_line_errors(tmp_path, manifest):
    import socket

    clip = manifest["en_speechrecognition_123"]["path"]
    r = run_cli("stream", clip, "--url", "http://127.0.0.1:9/")
    assert r.returncode == 2 and "did you mean ws://127.0.0.1:9/?" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("stream", clip, "--url", "ws://127.0.0.1:9/twilio")
    assert r.returncode == 2 and "native protocol" in r.stderr
    r = run_cli("stream", clip, "--url", "ws://127.0.0.1:9/")  # nothing listens there
    assert r.returncode == 1 and "cannot connect" in r.stderr and "Traceback" not in r.stderr
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    try:
        r = run_cli("serve", "--port", str(port), "--model", "tiny.en", "--insecure-no-auth")
    finally:
        busy.close()
    assert r.returncode == 2, r.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in r.stderr and "Traceback" not in r.stderr


def test_no_secret_is_taken_from_the_command_line():
    """Issue 11 item 1: --audiohook-client-secret showed in ps. Secrets come from the
    environment or files: no option of any command takes a token, secret or password."""
    import argparse

    from voicetriage.cli import build_parser

    parser = build_parser()
    [sub] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    flags = {f for p in sub.choices.values() for a in p._actions for f in a.option_strings}
    assert "--audiohook-client-secret-file" in flags and "--token-file" in flags
    secret = [f for f in flags if re.search(r"secret|token|password|auth-token", f) and not f.endswith("-file")]
    assert secret == [], secret


def test_the_relay_reads_its_webhook_token_from_a_file_or_the_environment(tmp_path, monkeypatch):
    import argparse

    from voicetriage.cli.relay import TOKEN_ENV, webhook_token
    from voicetriage.core.errors import ConfigError

    monkeypatch.delenv(TOKEN_ENV, raising=False)
    f = tmp_path / "hook.token"
    f.write_text("t-from-file\n")
    assert webhook_token(argparse.Namespace(webhook_token_file=str(f)), "t-config") == "t-from-file"
    assert webhook_token(argparse.Namespace(webhook_token_file=None), "t-config") == "t-config"
    monkeypatch.setenv(TOKEN_ENV, "t-env")
    assert webhook_token(argparse.Namespace(webhook_token_file=None), "t-config") == "t-env"
    with pytest.raises(ConfigError, match="missing"):
        webhook_token(argparse.Namespace(webhook_token_file=str(tmp_path / "missing")), None)
