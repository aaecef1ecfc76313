"""Systems under test: a server started as a subprocess plus a client for its protocol.

:class:`System` is what the driver needs from each one: start the server and
wait until it serves, stream one call and return what the client saw, stop.
:class:`VoiceTriage` is ours (``voicetriage serve``, the native protocol of
docs/protocol.md); the peers live in :mod:`benchmarks.peers`.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from .analysis import CallTrace, Obs
from .corpus import Call
from .streaming import play

REPO = Path(__file__).resolve().parent.parent


class SystemError_(Exception):
    """A server that would not start or serve (recorded as the system's result)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class ServerProcess:
    """A server subprocess in its own process group, its output in a log file."""

    cmd: list[str]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "wb")
        env = {**os.environ, **self.env}
        self.proc = subprocess.Popen(
            self.cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.cwd,
            start_new_session=True, stdin=subprocess.DEVNULL,
        )
        log.close()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, n: int = 15) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-n:])

    async def wait_port(self, port: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise SystemError_(f"server exited with code {self.proc.returncode}: {self.log_tail()}")
            try:
                _, w = await asyncio.open_connection("127.0.0.1", port)
                w.close()
                return
            except OSError:
                await asyncio.sleep(0.2)
        raise SystemError_(f"server did not listen on port {port} within {timeout:.0f} s: {self.log_tail()}")

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)
        except ProcessLookupError:
            pass


class System:
    """Base class of a system under test."""

    name = "system"
    final_meaning = ""
    partial_meaning = ""

    def __init__(self, label: str, log_dir: Path) -> None:
        self.label = label
        self.log_dir = log_dir
        self.port = 0
        self.server: ServerProcess | None = None
        self.started_s = 0.0
        # audio pace: 1.0 is real time; below it, a diagnostic (does the system hear every word
        # when it has more CPU per audio second?) whose latencies are not comparable
        self.speed = 1.0

    @property
    def pid(self) -> int:
        assert self.server is not None
        return self.server.pid

    def command(self) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        return {}

    def cwd(self) -> Path | None:
        """The server's working directory (None: the harness's)."""
        return None

    async def start(self, timeout: float = 180.0) -> None:
        self.port = free_port()
        t0 = time.monotonic()
        self.server = ServerProcess(self.command(), self.log_dir / f"{self.label.replace(' ', '_')}.log", self.env(),
                                    self.cwd())
        self.server.start()
        await self.server.wait_port(self.port, timeout)
        await self.ready(timeout - (time.monotonic() - t0))
        self.started_s = time.monotonic() - t0

    async def ready(self, timeout: float) -> None:
        """Extra readiness check after the port opened (e.g. a health message)."""

    async def stop(self) -> None:
        if self.server:
            self.server.stop()

    async def stats(self) -> dict:
        """Server-side counters, if the system exposes any (ours: GET /health)."""
        return {}

    async def loop_lag(self) -> list[tuple[float, float]] | None:
        """The server's event-loop lag histogram so far, (upper bound s, cumulative count), if exposed."""
        return None

    async def run_call(self, call: Call, *, chunk_samples: int, drain_s: float, timeout: float) -> CallTrace:
        raise NotImplementedError

    def settings(self) -> dict:
        """{setting: (value, why)}: what the system runs with and why it is its best here."""
        return {}

    def describe(self) -> dict:
        out = {"system": self.name, "label": self.label, "final": self.final_meaning,
               "partial": self.partial_meaning, "command": " ".join(self.command()), "speed": self.speed}
        if self.settings():
            out["settings"] = {k: {"value": v, "why": why} for k, (v, why) in self.settings().items()}
        return out


class VoiceTriage(System):
    """Our server, ``voicetriage serve``, spoken to in the native protocol."""

    name = "voicetriage"
    final_meaning = "a 'final' event: the utterance ended (trailing silence, max length or stop); its text never changes"
    partial_meaning = "'partial' events while the utterance is in progress (stable prefix + unstable tail)"

    def __init__(self, label: str, log_dir: Path, *, model: str = "base", compute_type: str = "int8",
                 asr: dict | None = None, stream: dict | None = None, triage: bool = True,
                 server: dict | None = None) -> None:
        super().__init__(label, log_dir)
        self.model = model
        self.compute_type = compute_type
        self.asr = dict(asr or {})
        self.stream = dict(stream or {})
        self.triage = triage
        self.server_keys = dict(server or {})  # [server] keys beside the benchmark's own
        self.config_path = log_dir / f"{label.replace(' ', '_')}.toml"

    def write_config(self) -> Path:
        lines = ["[asr]", f'model = "{self.model}"', f'compute_type = "{self.compute_type}"']
        lines += [f"{k} = {json.dumps(v)}" for k, v in self.asr.items()]
        lines += ["", "[server]", "max_calls = 256", "idle_timeout_s = 120.0"]
        lines += [f"{k} = {json.dumps(v)}" for k, v in self.server_keys.items()]
        if self.stream:
            lines += ["", "[stream]"] + [f"{k} = {json.dumps(v)}" for k, v in self.stream.items()]
        if not self.triage:
            lines += ["", "[triage]", "enabled = false"]
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text("\n".join(lines) + "\n")
        return self.config_path

    def env(self) -> dict[str, str]:
        # BENCH_SERVER_PYTHONPATH: serve another checkout's voicetriage (an older commit
        # in a `git worktree`) with this harness, to compare versions with one command
        other = os.environ.get("BENCH_SERVER_PYTHONPATH")
        return {"PYTHONPATH": other} if other else {}

    def cwd(self) -> Path | None:
        # `python -m` puts the working directory first on sys.path: run from this checkout,
        # the server imported this checkout's voicetriage whatever PYTHONPATH said
        other = os.environ.get("BENCH_SERVER_PYTHONPATH")
        return Path(other.split(os.pathsep)[0]) if other else None

    def command(self) -> list[str]:
        return [sys.executable, "-m", "voicetriage.cli", "serve", "--config", str(self.config_path),
                "--host", "127.0.0.1", "--port", str(self.port), "--insecure-no-auth"]  # loopback only

    async def start(self, timeout: float = 180.0) -> None:
        self.write_config()
        await super().start(timeout)

    async def ready(self, timeout: float) -> None:
        import websockets

        deadline = time.monotonic() + max(timeout, 5.0)
        while True:
            try:
                async with websockets.connect(f"ws://127.0.0.1:{self.port}/v1/stream", open_timeout=10) as ws:
                    await ws.send(json.dumps({"type": "health"}))
                    msg = json.loads(await asyncio.wait_for(ws.recv(), 10))
                    if msg.get("type") == "health":
                        self.health = msg
                        return
            except (OSError, asyncio.TimeoutError, websockets.exceptions.WebSocketException):
                pass
            if time.monotonic() > deadline:
                raise SystemError_(f"voicetriage did not answer a health message: {self.server.log_tail()}")
            await asyncio.sleep(0.3)

    async def get(self, path: str) -> bytes | None:
        """The body of GET ``path`` on the server (None if it did not answer)."""
        try:
            r, w = await asyncio.open_connection("127.0.0.1", self.port)
            w.write(f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
            await w.drain()
            raw = await asyncio.wait_for(r.read(), 10)
            w.close()
            return raw.split(b"\r\n\r\n", 1)[1]
        except (OSError, IndexError, asyncio.TimeoutError):
            return None

    async def loop_lag(self) -> list[tuple[float, float]] | None:
        body = await self.get("/metrics")
        if body is None:
            return None
        out = []
        for line in body.decode("utf-8", "replace").splitlines():
            if line.startswith("voicetriage_event_loop_lag_seconds_bucket{"):
                le = line.split('le="', 1)[1].split('"', 1)[0]
                out.append((float("inf") if le == "+Inf" else float(le), float(line.rsplit(" ", 1)[1])))
        return sorted(out) or None

    async def stats(self) -> dict:
        body = await self.get("/health")
        try:
            return json.loads(body) if body is not None else {}
        except ValueError:
            return {}

    async def run_call(self, call: Call, *, chunk_samples: int, drain_s: float, timeout: float) -> CallTrace:
        import websockets

        trace = CallTrace(call, chunk_samples)
        call_id = f"{call.id}-{uuid.uuid4().hex[:6]}"
        try:
            async with websockets.connect(f"ws://127.0.0.1:{self.port}/v1/stream", max_size=None,
                                          open_timeout=30) as ws:
                trace.connected_at = time.monotonic()
                await ws.send(json.dumps({"type": "start", "call_id": call_id, "encoding": "pcm16",
                                          "sample_rate": 16000, "channels": 1}))
                started = json.loads(await asyncio.wait_for(ws.recv(), 30))
                if started.get("type") != "started":
                    raise SystemError_(f"expected 'started', got {started}")
                trace.server_info = started

                async def receive() -> None:
                    async for raw in ws:
                        now = time.monotonic()
                        msg = json.loads(raw)
                        kind = msg.get("type")
                        if kind == "partial":
                            trace.obs.append(Obs(now, "partial", msg.get("start"), msg.get("end"),
                                                 msg.get("text", ""), False))
                        elif kind == "final":
                            trace.obs.append(Obs(now, "final", msg.get("start"), msg.get("end"), msg.get("text", ""),
                                                 True, key=f"{msg.get('track')}:{msg.get('utterance')}"))
                        elif kind == "hint":
                            trace.obs.append(Obs(now, "hint", msg.get("time"), msg.get("time"), "", False, data=msg))
                        elif kind == "error":
                            trace.error = f"{msg.get('code')}: {msg.get('message')}"
                        elif kind == "summary":
                            return

                rx = asyncio.create_task(receive())
                await play(trace, ws.send, drain_s=drain_s, speed=self.speed)
                await ws.send(json.dumps({"type": "stop"}))
                await asyncio.wait_for(rx, timeout)
        except (OSError, asyncio.TimeoutError, websockets.exceptions.WebSocketException, SystemError_) as e:
            trace.error = trace.error or f"{type(e).__name__}: {e}"
        trace.closed_at = time.monotonic()
        return trace


__all__ = ["System", "VoiceTriage", "ServerProcess", "SystemError_", "free_port"]
