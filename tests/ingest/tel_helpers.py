"""Shared pieces of the live telephony tests: a server with the adapters, the
hub's events, and real 8 kHz audio from ../shared/eval in each wire format."""

from __future__ import annotations

import asyncio
import threading
import time
import warnings
import wave

import numpy as np
import soxr

API_KEY = "SGVsbG8sIEkgYW0gdGhlIEFQSSBrZXkh"  # the AudioHook spec's example key and secret
CLIENT_SECRET = "TXlTdXBlclNlY3JldEtleVRlbGxOby0xITJAMyM0JDU="
OPEN_KEY = "dW5zaWduZWQta2V5LWZvci10ZXN0cw=="  # a key configured without a secret


def make_config(model: str, **server):
    """A loopback server config for ``model`` (built here: ``from conftest import`` is
    ambiguous once several test folders have a conftest.py)."""
    from voicetriage.core.config import load_config

    return load_config(asr={"model": model, "cpu_threads": 2},
                       server={"host": "127.0.0.1", "port": 0, "max_calls": 64, **server},
                       auth={"insecure_no_auth": True})  # the protocols under test; tests/test_auth.py checks auth


def start_telephony(start_server, engine, model: str, **server):
    """A real App on loopback with /twilio, /audiohook and an AudioSocket port."""
    from voicetriage.server.telephony import TelephonyConfig, install

    tcfg = TelephonyConfig(audiohook_keys={API_KEY: CLIENT_SECRET, OPEN_KEY: ""}, audiosocket_port=0)
    server.setdefault("idle_timeout_s", 10.0)
    config = make_config(model, **server)
    srv = start_server(engine, config, setup=lambda app: install(app, tcfg))
    srv.recorder = HubRecorder(srv)
    return srv


class HubRecorder:
    """Every event the server publishes on its hub (what sinks see), thread-safe."""

    def __init__(self, srv) -> None:
        self.events: list[object] = []
        self.at: list[float] = []  # the wall-clock time each event was published
        self._cond = threading.Condition()

        async def subscribe() -> None:
            srv.app.hub.subscribe(self._on_event)

        srv.call(subscribe())

    def _on_event(self, event: object) -> None:
        with self._cond:
            self.events.append(event)
            self.at.append(time.time())
            self._cond.notify_all()

    def of(self, call_id: str, kind: str | None = None) -> list:
        with self._cond:
            return [e for e in self.events if getattr(e, "call_id", None) == call_id
                    and (kind is None or e.kind == kind)]

    def stamped(self, call_id: str) -> list[tuple[float, object]]:
        """The call's events with the wall-clock time each was published."""
        with self._cond:
            return [(t, e) for t, e in zip(self.at, self.events) if getattr(e, "call_id", None) == call_id]

    async def summary(self, call_id: str, timeout: float = 60.0):
        """Wait (without blocking the test's loop) for the call's summary."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.of(call_id, "summary")
            if found:
                return found[0]
            await asyncio.sleep(0.05)
        raise AssertionError(f"no summary for call {call_id} within {timeout} s; got {self.of(call_id)}")


def text(events, track: str | None = None) -> str:
    return " ".join(e.text for e in events if e.kind == "final" and (track is None or e.track == track))


def pcm8k(path: str) -> np.ndarray:
    """A clip as 8 kHz int16 (the kit's *_asterisk8k clips were stored upsampled to 16 kHz)."""
    with wave.open(path) as w:
        rate, data = w.getframerate(), np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    if rate != 8000:
        data = soxr.resample(data.astype(np.float32) / 32768.0, rate, 8000)
        data = np.clip(np.round(data * 32768.0), -32768, 32767).astype(np.int16)
    return data


def mulaw(samples: np.ndarray) -> bytes:
    """G.711 µ-law with the standard library's encoder (independent of voicetriage's)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import audioop
    except ImportError:  # Python 3.13+
        from voicetriage.audio.codecs import ulaw_encode

        return ulaw_encode(samples)
    return audioop.lin2ulaw(samples.astype("<i2").tobytes(), 2)


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * 8000), dtype=np.int16)
