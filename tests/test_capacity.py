"""max_calls from what the machine measurably holds (issue 11 item 3, issue 14 item 4).

The formula is checked with given measurements; the measurement itself with a fake
recogniser that burns a known amount of CPU and also sleeps (the sleep must not count);
an explicit max_calls wins and measures nothing; /health shows which it was.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import time
from types import SimpleNamespace

import pytest

from voicetriage.asr.capacity import (
    LOOP_S_PER_AUDIO_S,
    PER_CALL_CPU_S,
    STREAM_FACTOR,
    Capacity,
    max_calls_for,
    measure,
    resolve,
)
from voicetriage.core.config import load_config

from health_reader import read_health as health


@pytest.mark.parametrize("decode, cores, util, expected", [
    (0.04, 2, 0.8, 10),  # tiny.en int8 on 2 cores: 0.04 x 2.5 + 0.05 = 0.15 CPU-s per call second
    (0.09, 2, 0.8, 5),  # base int8: 0.275
    (0.09, 4, 0.8, 11),
    (0.04, 2, 0.5, 6),
    (2.0, 2, 0.8, 1),  # a model slower than real time still takes one call
    (0.001, 64, 0.8, 40),  # a big machine: the one event loop's share per call is the limit
])
def test_the_formula(decode, cores, util, expected):
    n, per_call = max_calls_for(decode, cores, util)
    assert n == expected
    assert per_call == pytest.approx(decode * STREAM_FACTOR + PER_CALL_CPU_S)
    if expected > 1 and n < math.floor(util / LOOP_S_PER_AUDIO_S):
        assert math.floor(cores * util / per_call) == n


def test_the_formula_on_cuda_counts_the_gpu_and_the_cores_apart():
    # 0.01 GPU-s to decode an audio second: the GPU takes 32 calls; 2 cores' per-call work 32
    n, per_call = max_calls_for(0.01, 2, 0.8, device="cuda")
    assert n == min(math.floor(0.8 / (0.01 * STREAM_FACTOR)), math.floor(2 * 0.8 / PER_CALL_CPU_S), 40) == 32
    assert per_call == PER_CALL_CPU_S
    assert max_calls_for(0.01, 1, 0.8, device="cuda")[0] == 16  # one core: the CPU side binds


class Burner:
    """A fake AsrEngine: each decode burns ``cpu_s`` of CPU per audio second, then sleeps."""

    def __init__(self, cpu_s: float, sleep_s: float = 0.0) -> None:
        self.cpu_s, self.sleep_s = cpu_s, sleep_s
        self.config = SimpleNamespace(device="cpu", compute_type="int8")
        self.resolved = SimpleNamespace(id="fake")
        self.calls = 0

    def transcribe_batch(self, reqs):
        self.calls += 1
        t = time.process_time()
        while time.process_time() - t < self.cpu_s * len(reqs[0].audio) / 16000:
            pass
        time.sleep(self.sleep_s)
        return [None]


def test_the_measurement_counts_cpu_time_not_waiting():
    fake = Burner(0.1, sleep_s=0.5)
    cap = measure(fake, 0.8, cores=2)
    assert fake.calls == 2  # a warm-up and the measured decode
    # 0.1 CPU-s per audio second; the 0.5 s sleep (4.1 s of audio: +0.12 per second) is not counted
    assert 0.1 <= cap.decode_s_per_audio_s < 0.1 + 0.5 / 4.1 / 2
    assert cap.source == "measured" and cap.cores == 2 and cap.utilisation == 0.8
    assert cap.max_calls == max_calls_for(cap.decode_s_per_audio_s, 2, 0.8)[0]
    assert measure(fake, 0.8, cores=2) == cap and fake.calls == 2  # once per loaded model
    line = cap.describe()
    assert line.startswith(f"max_calls {cap.max_calls} (measured: fake int8 ") and "on 2 cores, utilisation 0.8" in line


def test_an_explicit_max_calls_wins_and_measures_nothing():
    class Refuses:
        def transcribe_batch(self, reqs):
            raise AssertionError("measured although max_calls was set")

    assert resolve(7, Refuses()) == Capacity(7, "config")
    assert resolve(7, Refuses()).describe() == "max_calls 7 (set in the config)"
    assert load_config(server={"max_calls": "auto"}).server.max_calls == 0
    assert load_config().server.max_calls == 0  # the default: measure


def test_the_flag_takes_a_number_or_auto():
    from voicetriage.cli.serve import _max_calls

    assert _max_calls("auto") == 0 and _max_calls("12") == 12
    with pytest.raises(argparse.ArgumentTypeError):
        _max_calls("lots")


def test_the_real_model_measures_cheaply(tiny_engine):
    cap = measure(tiny_engine.asr)
    assert cap.source == "measured" and cap.max_calls >= 1 and cap.measure_s < 10  # ~1 s; a loaded host is slower
    assert 0 < cap.decode_s_per_audio_s < 1  # tiny.en decodes far faster than real time


async def test_health_shows_the_measured_or_configured_limit(tiny_engine, start_server, make_config):
    auto = start_server(tiny_engine, make_config("tiny.en", server={"max_calls": 0}))  # tests fix 64 otherwise
    _, body = await asyncio.to_thread(health, auto.port)
    cap = body["capacity"]
    assert cap["source"] == "measured" and body["max_calls"] == cap["max_calls"] == auto.app.config.server.max_calls
    assert cap["max_calls"] == max_calls_for(cap["decode_s_per_audio_s"], cap["cores"], cap["utilisation"])[0]
    fixed = start_server(tiny_engine, make_config("tiny.en", server={"max_calls": 3}))
    _, body = await asyncio.to_thread(health, fixed.port)
    assert body["max_calls"] == 3 and body["capacity"] == {"max_calls": 3, "source": "config"}


async def test_health_is_degraded_while_the_event_loop_lags(tiny_engine, start_server, make_config, monkeypatch):
    srv = start_server(tiny_engine, make_config("tiny.en", server={"max_calls": 3}))
    srv.call(asyncio.to_thread(lambda: None))  # the server's loop is up
    srv.loop.call_soon_threadsafe(srv.app.metrics.stop)  # hold the probe: the lag stays as set
    await asyncio.sleep(0.05)
    monkeypatch.setattr(srv.app.metrics, "recent_lag_s", 0.5)
    status, body = await asyncio.to_thread(health, srv.port)
    assert status == 503 and body["status"] == "degraded" and body["loop_lag_s"] == 0.5
