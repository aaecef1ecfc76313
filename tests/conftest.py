"""Shared fixtures: real audio from ../shared/eval, loaded models, live servers.

Model-heavy fixtures are session-scoped so the whole suite loads each model
once. Servers run in a background thread with their own event loop, on a
free loopback port, so tests talk to them over real sockets.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import threading
from pathlib import Path
from typing import Callable

import pytest

REPO = Path(__file__).resolve().parent.parent
EVAL_DIR = REPO.parent / "shared" / "eval"


def _eval_dir() -> Path:
    if not (EVAL_DIR / "manifest.jsonl").is_file():
        pytest.skip(f"real audio kit not found at {EVAL_DIR} (../shared/eval beside the repo)")
    return EVAL_DIR


@pytest.fixture(scope="session")
def eval_dir() -> Path:
    """../shared/eval; tests using it skip (with this reason) where it is absent."""
    return _eval_dir()


@pytest.fixture(scope="session")
def manifest(eval_dir: Path) -> dict[str, dict]:
    """Clip id -> manifest record (with ``path`` added)."""
    out = {}
    for line in (eval_dir / "manifest.jsonl").read_text(encoding="utf-8").splitlines():
        if line.strip():
            rec = json.loads(line)
            rec["path"] = str(eval_dir / rec["file"])
            out[rec["id"]] = rec
    return out


def make_config(model: str, **sections):
    from voicetriage.core.config import load_config

    # test servers run without credentials; tests/test_auth.py covers authentication
    # a fixed call limit: tests must not depend on what this machine measures (tests/test_capacity.py)
    cfg = load_config(asr={"model": model, "cpu_threads": 2}, server={"host": "127.0.0.1", "port": 0, "max_calls": 64},
                      auth={"insecure_no_auth": True})
    for name, values in sections.items():
        cfg = dataclasses.replace(cfg, **{name: dataclasses.replace(getattr(cfg, name), **values)})
    return cfg


@pytest.fixture(name="make_config", scope="session")
def make_config_fixture():
    """``make_config(model, server={...}, stream={...})``: a test Config on port 0."""
    return make_config


@pytest.fixture(scope="session")
def base_engine():
    """The default multilingual model (Whisper base, int8), loaded once."""
    from voicetriage.pipeline.engine import Engine

    engine = Engine.load(make_config("base"))
    yield engine
    engine.close()


@pytest.fixture(scope="session")
def tiny_engine():
    """English tiny.en, the smallest model, loaded once."""
    from voicetriage.pipeline.engine import Engine

    engine = Engine.load(make_config("tiny.en"))
    yield engine
    engine.close()


class ServerThread:
    """A real voicetriage App serving on loopback from a background thread."""

    def __init__(self, engine, config=None, setup: Callable | None = None) -> None:
        from voicetriage.server.app import App

        self.loop = asyncio.new_event_loop()
        self.config = config or dataclasses.replace(
            engine.config, server=dataclasses.replace(engine.config.server, host="127.0.0.1", port=0)
        )
        self.app = App(self.config, engine)
        if setup is not None:
            setup(self.app)
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self.call(self.app.start())

    def call(self, coro, timeout: float = 60):
        """Run a coroutine on the server's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    @property
    def port(self) -> int:
        return self.app.port

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.app.port}/"

    def stop(self) -> None:
        self.call(self.app.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)


@pytest.fixture(scope="session")
def start_server():
    """Factory: ``start_server(engine, config=None, setup=None)``; stopped at the end."""
    servers: list[ServerThread] = []

    def start(engine, config=None, setup=None) -> ServerThread:
        s = ServerThread(engine, config, setup)
        servers.append(s)
        return s

    yield start
    for s in servers:
        s.stop()


@pytest.fixture(scope="session")
def base_server(base_engine, start_server) -> ServerThread:
    return start_server(base_engine)


@pytest.fixture(scope="session")
def tiny_server(tiny_engine, start_server) -> ServerThread:
    return start_server(tiny_engine)


@pytest.fixture(scope="session")
def tiny_whisper(tiny_engine):
    """``(WhisperModel, ResolvedModel)`` of tiny.en, shared with tiny_engine (offline batch tests)."""
    return tiny_engine.asr.model, tiny_engine.asr.resolved
