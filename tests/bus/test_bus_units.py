"""The bus pieces against a real redis-server: config, publisher buffering, consumer dedup, relay."""

from __future__ import annotations

import asyncio
import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from voicetriage.bus import BusConfig, Dedup, encode_entry, parse_entry
from voicetriage.bus.config import bus_config, validate
from voicetriage.core.config import load_config
from voicetriage.core.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("values, problem", [
    ({"url": "http://x:6379"}, "redis://"),
    ({"url": "redis://:6379/0"}, "no host"),
    ({"url": "redis://h:port/0"}, "bad port"),
    ({"url": "redis://h:6379/x"}, "database must be a number"),
    ({"events": ["final", "nope"]}, "unknown"),
    ({"buffer": 0}, "buffer"),
    ({"colour": "red"}, "unknown option"),
    ({"maxlen": "10"}, "expected int"),
])
def test_bad_bus_config_is_refused(tmp_path, values, problem):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[bus]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items()))
    with pytest.raises(ConfigError, match=problem):
        bus_config(load_config(cfg))


def test_bus_config_from_file_and_flags(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[bus]\nurl = "redis://bus:6379/2"\nstream = "hotline:events"\nmaxlen = 5000\n')
    bc = bus_config(load_config(cfg), node="edge-1")
    assert (bc.url, bc.stream, bc.maxlen, bc.node_id(1), bc.events) == (
        "redis://bus:6379/2", "hotline:events", 5000, "edge-1", ["final", "hint", "summary", "signal"])
    assert BusConfig().node_id(8765).endswith(":8765")


def test_entry_round_trip_and_dedup():
    msg = {"type": "hint", "call_id": "c1", "seq": 1, "queue": "senior_human", "text": "粤语"}
    f = encode_entry(msg, node="n1", run="r1", seq=3, ts=12.5)
    ev = parse_entry(b"1-0", {k.encode(): v.encode() for k, v in f.items()})
    assert (ev.type, ev.call_id, ev.node, ev.seq, ev.message) == ("hint", "c1", "n1", 3, msg)
    d = Dedup(max_calls=2)
    assert not d.seen(ev) and d.seen(ev)
    other_run = parse_entry("2-0", {**f, "run": "r2"})
    assert not d.seen(other_run)  # a restarted node's seq 3 is another event
    with pytest.raises(ValueError, match="missing field"):
        parse_entry("3-0", {"type": "hint"})


async def test_publisher_buffers_bounded_while_down_and_replays_in_order(redis_server):
    from voicetriage.bus.publisher import BusPublisher

    redis_server.stop()
    pub = BusPublisher(validate(BusConfig(url=redis_server.url, buffer=5, timeout_s=0.5)), "n1", run="r1")
    pub.start()
    for i in range(8):
        pub.publish_message({"type": "final", "call_id": "c1", "utterance": i})
    await asyncio.sleep(0)  # the hub side never waits for Redis
    assert pub.buffered == 5 and pub.stats.dropped == 3
    redis_server.start()
    end = time.monotonic() + 30
    while pub.buffered and time.monotonic() < end:
        await asyncio.sleep(0.05)
    await pub.aclose()
    entries = redis_server.client().xrange("voicetriage:events")
    got = [parse_entry(i, f) for i, f in entries]
    assert [e.message["utterance"] for e in got] == [3, 4, 5, 6, 7]  # the oldest were dropped
    assert [e.seq for e in got] == [4, 5, 6, 7, 8]  # consumers can see the gap
    assert pub.health()["connected"] and pub.stats.outages == 1


async def test_consumer_group_drops_duplicates_across_consumers(redis_server):
    from voicetriage.bus.consumer import BusConsumer

    r = redis_server.client()
    entries = [encode_entry({"type": "hint", "call_id": "c1", "seq": s}, node="n1", run="r1", seq=s, ts=1.0)
               for s in (1, 2, 3)]
    async with BusConsumer(redis_server.url, group="g", consumer="a", start="0", block_ms=100) as a, \
            BusConsumer(redis_server.url, group="g", consumer="b", start="0", block_ms=100) as b:
        for e in entries + entries[1:]:  # 2 and 3 written twice (a replay after a lost reply)
            r.xadd("voicetriage:events", e)
        handled = []
        for _ in range(6):
            for c in (a, b):
                for ev in await c.read():
                    handled.append(ev.seq)
                    await c.ack(ev)
        assert sorted(handled) == [1, 2, 3]
        assert a.duplicates + b.duplicates == 2
        assert r.xpending("voicetriage:events", "g")["pending"] == 0


class Hook(http.server.BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Hook.received.append((self.headers["Idempotency-Key"], json.loads(body)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *a):
        pass


def test_two_relays_post_each_hint_once(redis_server, tmp_path):
    Hook.received = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}/hints"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    relays = [subprocess.Popen(
        [sys.executable, "-c", "import sys; from voicetriage.cli import main; sys.exit(main())", "relay",
         "--event-bus", redis_server.url, "--webhook", url, "--consumer", f"relay-{i}"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=open(tmp_path / f"relay{i}.log", "wb"), text=True,
    ) for i in range(2)]
    try:
        for p in relays:
            assert "connected to the bus" in p.stdout.readline() + p.stdout.readline()
        r = redis_server.client()
        for node in ("n1", "n2"):
            for s in range(1, 6):
                kind = "hint" if s % 2 else "final"
                e = encode_entry({"type": kind, "call_id": f"{node}-call", "seq": s, "queue": "q"},
                                 node=node, run="r", seq=s, ts=1.0)
                r.xadd("voicetriage:events", e)
                if s == 3:
                    r.xadd("voicetriage:events", e)  # a duplicate entry
        end = time.monotonic() + 30
        while len(Hook.received) < 6 and time.monotonic() < end:
            time.sleep(0.1)
        time.sleep(0.5)  # a duplicate POST, if any, would arrive now
        keys = sorted(k for k, _ in Hook.received)
        assert keys == sorted(f"{n}-call/hint/{s}" for n in ("n1", "n2") for s in (1, 3, 5))
        assert {m["node"] for _, m in Hook.received} == {"n1", "n2"}
    finally:
        for p in relays:
            p.send_signal(signal.SIGTERM)
            p.wait(30)
        httpd.shutdown()


def test_relay_refuses_bad_arguments():
    r = subprocess.run([sys.executable, "-c", "import sys; from voicetriage.cli import main; sys.exit(main())",
                        "relay", "--webhook", "http://127.0.0.1:9/x"], cwd=REPO,
                       env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "needs --event-bus" in r.stderr
