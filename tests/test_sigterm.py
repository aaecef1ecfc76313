"""SIGTERM with calls in flight (issue 11): a real ``voicetriage serve`` process, native and
AudioSocket calls streaming in real time, then SIGTERM. Every call gets its last finals and
summary, the event log holds exactly what the clients were sent, and the process exits 0."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
import wave

import numpy as np
import pytest

from voicetriage.audio.files import read_audio
from voicetriage.client import StreamOptions, stream_file

pytestmark = pytest.mark.model

CLI = [sys.executable, "-m", "voicetriage.cli"]
CLIPS = ("en_whisper_jfk", "en_speechrecognition_123", "en_espeak_urgent")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def audiosocket_call(port: int, path: str, call: uuid.UUID) -> None:
    """An Asterisk-like peer: UUID, then 20 ms slin frames in real time, until the server closes."""
    pcm = (read_audio(path, 8000)[0] * 32767).astype("<i2").tobytes()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"\x01\x00\x10" + call.bytes)
    t0 = time.monotonic()
    try:
        for i, off in enumerate(range(0, len(pcm), 320)):
            chunk = pcm[off:off + 320]
            writer.write(bytes([0x10]) + len(chunk).to_bytes(2, "big") + chunk)
            await writer.drain()
            await asyncio.sleep(max(0.0, t0 + (i + 1) * 0.02 - time.monotonic()))
            if reader.at_eof():
                break
        await asyncio.wait_for(reader.read(), 30)  # the server closes the socket when it is done
    except (ConnectionError, asyncio.TimeoutError):
        pass
    finally:
        writer.close()


async def test_sigterm_flushes_calls_in_flight(manifest, tmp_path):
    event_log = tmp_path / "events.jsonl"
    as_port = free_port()
    log = open(tmp_path / "serve.log", "w+")
    proc = subprocess.Popen(
        [*CLI, "serve", "--port", "0", "--model", "tiny.en", "--insecure-no-auth", "--event-log", str(event_log),
         "--audiosocket-port", str(as_port)],
        stdout=subprocess.PIPE, stderr=log, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        line, seen = "", []
        while not (m := re.search(r"serving model .* on ws://127\.0\.0\.1:(\d+)/", line)):
            line = await asyncio.to_thread(proc.stdout.readline)
            assert line, (tmp_path / "serve.log").read_text()
            seen.append(line)
        url = f"ws://127.0.0.1:{m.group(1)}/"
        # long enough that every call is mid-speech when the signal comes
        longer = tmp_path / "long.wav"
        audio = np.concatenate([read_audio(manifest[c]["path"], 16000)[0] for c in CLIPS])
        with wave.open(str(longer), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(16000)
            w.writeframes((audio * 32767).astype("<i2").tobytes())
        calls = [asyncio.ensure_future(stream_file(url, str(longer), StreamOptions(speed=1.0, call_id=f"term-{i}")))
                 for i in range(3)]
        as_uuid = uuid.uuid4()
        as_call = asyncio.ensure_future(audiosocket_call(as_port, str(longer), as_uuid))
        # and the project's own client, as a user runs it (issue 11 item 6: a server that
        # shuts down mid-stream is one line, not a traceback or silence)
        cli = await asyncio.create_subprocess_exec(
            *CLI, "stream", str(longer), "--url", url, "--call-id", "term-cli",
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "VOICETRIAGE_API_TOKEN": "unused"})
        await asyncio.sleep(8.0)
        proc.send_signal(signal.SIGTERM)
        results = await asyncio.wait_for(asyncio.gather(*calls), 120)
        await asyncio.wait_for(as_call, 60)
        _, cli_err = await asyncio.wait_for(cli.communicate(), 60)
        # read the rest through the same buffered file: communicate(timeout=...) reads the
        # pipe's descriptor and loses what readline already buffered (the start lines)
        out = "".join(seen) + await asyncio.wait_for(asyncio.to_thread(proc.stdout.read), 60)
        await asyncio.to_thread(proc.wait, 60)
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    err = (tmp_path / "serve.log").read_text()
    assert proc.returncode == 0, err[-3000:]
    assert "shutting down" in out
    assert "WARNING: authentication is OFF (--insecure-no-auth)" in out  # said on every start
    logged = [json.loads(x) for x in event_log.read_text().splitlines() if x.strip()]
    for i, events in enumerate(results):
        cid = f"term-{i}"
        summary = events[-1]
        assert summary["type"] == "summary" and summary["reason"] == "server_shutdown", events[-3:]
        assert summary["audio_s"]["caller"] < audio.size / 16000, "the call was cut short by the signal"
        sent = [e["text"] for e in events if e["type"] == "final"]
        assert sent, f"{cid}: no final before the shutdown"
        in_log = [e["text"] for e in logged if e.get("type") == "final" and e.get("call_id") == cid]
        assert in_log == sent, f"{cid}: the event log and the client disagree"
    cli_err = cli_err.decode()
    assert cli.returncode == 1 and "Traceback" not in cli_err, cli_err
    assert cli_err.strip().count("\n") == 0 and "the server ended the call early (server_shutdown)" in cli_err
    as_finals = [e for e in logged if e.get("type") == "final" and e.get("call_id") == str(as_uuid)]
    assert as_finals, "the AudioSocket call's speech before the signal was not transcribed"
