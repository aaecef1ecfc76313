"""``/metrics``: the server's Prometheus metrics (prometheus-client, one registry per App).

Counters and histograms are fed by a hub subscriber (finals, hints, errors), a
per-call observer (audio seconds, end-of-speech-to-final latency), the
inference worker's batch hook (queue wait) and an event-loop lag probe;
gauges (calls, queues, sink drops) are read at scrape time.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from typing import TYPE_CHECKING, Callable

import numpy as np
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily as CounterFamily, GaugeMetricFamily
from websockets.datastructures import Headers
from websockets.http11 import Response

from voicetriage.core.events import SAMPLE_RATE, CallError, CallInfo, CallSummary, Final, Hint

if TYPE_CHECKING:
    from voicetriage.server.app import App

log = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)
# fine at the low end: a healthy loop is late by a millisecond or two (the benchmark
# reads p50/p99 from these buckets, benchmarks/driver.py)
LAG_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
LAG_PROBE_S = 0.2


class _Gauges:
    """Values read when Prometheus scrapes: calls, inference queue, sink drops."""

    def __init__(self, app: "App", sources: dict[str, Callable[[], float]]) -> None:
        self.app = app
        self.sources = sources

    def describe(self):
        return []

    def collect(self):
        app = self.app
        calls = GaugeMetricFamily("voicetriage_active_calls", "calls in progress", labels=["platform"])
        by_platform = collections.Counter(s.info.platform for s in list(app.calls.values()))
        for platform in ("native", "twilio", "audiohook", "audiosocket"):
            calls.add_metric([platform], by_platform.get(platform, 0))
        yield calls
        yield GaugeMetricFamily("voicetriage_max_calls", "the call limit", value=app.config.server.max_calls)
        stats = app.engine.worker.stats()
        queue = GaugeMetricFamily("voicetriage_asr_queue", "utterances waiting for the recogniser", labels=["kind"])
        queue.add_metric(["final"], stats.queued_finals)
        queue.add_metric(["partial"], stats.queued_partials)
        yield queue
        yield CounterFamily("voicetriage_asr_shed_partials", "partials not decoded because finals were waiting",
                            value=stats.shed_partials)
        drops = GaugeMetricFamily("voicetriage_sink_dropped", "events a sink could not deliver (since start)",
                                  labels=["sink"])
        for name, read in list(self.sources.items()):
            try:
                drops.add_metric([name], float(read()))
            except Exception:  # noqa: BLE001 - a scrape must answer
                log.exception("metrics source %s failed", name)
        yield drops


class _LatencyObserver:
    """Per call: when each stretch of caller audio arrived, so a final's
    end-of-speech-to-final delay is measured on the wall clock."""

    def __init__(self, metrics: "Metrics", info: CallInfo) -> None:
        self.m = metrics
        self.platform = info.platform
        self._arrived: dict[str, collections.deque[tuple[float, float]]] = {}

    def on_audio(self, track: str, samples: np.ndarray, t0: float) -> list[object]:
        end = t0 + len(samples) / SAMPLE_RATE
        self._arrived.setdefault(track, collections.deque(maxlen=3000)).append((end, time.monotonic()))
        self.m.audio_seconds.labels(self.platform).inc(len(samples) / SAMPLE_RATE)
        return []

    def on_event(self, event: object) -> list[object]:
        if isinstance(event, Final):
            arrived = self._arrived.get(event.track)
            if arrived:
                # the first stretch that reached the utterance's end (times are rounded to ms);
                # a final flushed at the end of the call ends with the last stretch
                wall = next((w for t, w in arrived if t >= event.end - 0.002), arrived[-1][1])
                self.m.final_latency.labels(self.platform).observe(max(0.0, time.monotonic() - wall))
        return []

    def on_close(self, summary: CallSummary) -> list[object]:
        return []


class Metrics:
    """The metrics of one App; ``install`` wires them in before ``app.start()``."""

    def __init__(self, app: "App") -> None:
        self.app = app
        self.registry = CollectorRegistry()
        r = self.registry
        self.audio_seconds = Counter("voicetriage_audio_seconds", "caller and agent audio received",
                                     ["platform"], registry=r)
        self.gaps = Counter("voicetriage_audio_gaps", "protocol gaps (audio that never arrived); kind filled: "
                            "silence, skipped: the call clock jumped", ["platform", "kind"], registry=r)
        self.gap_seconds = Counter("voicetriage_audio_gap_seconds", "seconds of protocol gaps, by kind",
                                   ["platform", "kind"], registry=r)
        self.finals = Counter("voicetriage_finals", "finals emitted", ["platform"], registry=r)
        self.final_latency = Histogram("voicetriage_final_latency_seconds",
                                       "end of speech (audio received) to the final, wall clock",
                                       ["platform"], buckets=LATENCY_BUCKETS, registry=r)
        self.hint_latency = Histogram("voicetriage_hint_latency_seconds",
                                      "evidence to hint, call time (since_evidence_s)", ["queue"],
                                      buckets=LATENCY_BUCKETS, registry=r)
        self.hints = Counter("voicetriage_hints", "routing hints emitted", ["queue", "rule"], registry=r)
        self.errors = Counter("voicetriage_errors", "failures by error code (the call or server went on)",
                              ["code"], registry=r)
        self.asr_wait = Histogram("voicetriage_asr_queue_wait_seconds", "time an utterance waited for the recogniser",
                                  ["kind"], buckets=LATENCY_BUCKETS, registry=r)
        self.asr_busy = Counter("voicetriage_asr_busy_seconds", "recogniser busy time", registry=r)
        self.loop_lag = Histogram("voicetriage_event_loop_lag_seconds",
                                  f"how late a {LAG_PROBE_S:g} s timer fires on the event loop",
                                  buckets=LAG_BUCKETS, registry=r)
        self.sources: dict[str, Callable[[], float]] = {}
        r.register(_Gauges(app, self.sources))
        self._platform: dict[str, str] = {}
        self._lag_task: asyncio.Task | None = None
        self.recent_lag_s = 0.0  # the loop's lag, smoothed over about a second (/health's degraded)

    def install(self) -> None:
        app = self.app
        app.hub.subscribe(self._on_event)
        app.observer_factories.append(lambda info: _LatencyObserver(self, info))
        app.engine.worker.on_batch = self._on_batch
        app.add_http_route("/metrics", lambda app, request: self.response(), scope="health")

    def add_source(self, name: str, read: Callable[[], float]) -> None:
        """A drop counter to report as ``voicetriage_sink_dropped{sink=name}``."""
        self.sources[name] = read

    def _on_event(self, event: object) -> None:
        if isinstance(event, Final):
            session = self.app.calls.get(event.call_id)
            self.finals.labels(session.info.platform if session else "unknown").inc()
        elif isinstance(event, Hint):
            for rule in event.rules or ("none",):
                self.hints.labels(event.queue, rule).inc()
            self.hint_latency.labels(event.queue).observe(max(0.0, event.since_evidence_s))
        elif isinstance(event, CallError):
            pass  # counted by App.count_error, like every other error

    def _on_batch(self, jobs: list[tuple[bool, float]], busy_s: float) -> None:
        for final, wait in jobs:
            self.asr_wait.labels("final" if final else "partial").observe(max(0.0, wait))
        self.asr_busy.inc(busy_s)

    def count_gap(self, platform: str, kind: str, seconds: float) -> None:
        self.gaps.labels(platform, kind).inc()
        self.gap_seconds.labels(platform, kind).inc(seconds)

    def count_error(self, code: str) -> None:
        self.errors.labels(code).inc()

    # -- the event loop's own lag ---------------------------------------------------
    def start(self) -> None:
        self._lag_task = asyncio.ensure_future(self._probe_lag())

    def stop(self) -> None:
        if self._lag_task is not None:
            self._lag_task.cancel()

    async def _probe_lag(self) -> None:
        while True:
            t = time.monotonic()
            await asyncio.sleep(LAG_PROBE_S)
            lag = max(0.0, time.monotonic() - t - LAG_PROBE_S)
            self.loop_lag.observe(lag)
            self.recent_lag_s += (lag - self.recent_lag_s) * 0.2

    def response(self) -> Response:
        data = generate_latest(self.registry)
        headers = Headers([("Content-Type", CONTENT_TYPE_LATEST), ("Content-Length", str(len(data))),
                           ("Connection", "close")])
        return Response(200, "OK", headers, data)


__all__ = ["Metrics"]
