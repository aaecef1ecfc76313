"""Bounded loopback load test of the event bus (docs/deployment.md, README "Scale-out").

Starts a throwaway ``redis-server`` and NODES ``voicetriage serve`` processes
(tiny.en) on loopback, plays CALLS real recorded calls spread round-robin over
the nodes (``--speed`` 1 = real time), and reads the stream with a consumer
group while the calls run. Reports the events per second through the bus and
the bus latency of each event (consumer receive time minus the time the node
emitted it; same clock, one machine), hints separately. A second phase pushes
``--burst`` synthetic events through one publisher as fast as it goes, to show
the bus's own ceiling apart from the speech work. Everything is bounded (count
and a time limit) and stays on 127.0.0.1.

    python -m benchmarks.bus_load --nodes 2 --calls 6
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .systems import free_port

REPO = Path(__file__).resolve().parent.parent
CLIPS = ["en_espeak_urgent", "en_whisper_jfk", "en_asterisk8k_vm_instructions"]


def wait_port(port: int, proc: subprocess.Popen, limit: float = 120.0) -> None:
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise SystemExit(f"process exited ({proc.returncode}) before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nothing on port {port} after {limit} s")


def pct(xs: list[float], q: float) -> float | None:
    if not xs:
        return None
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, int(q * len(xs)))] * 1000, 1)


async def consume(url: str, group: str, stop: asyncio.Event, out: list) -> None:
    from voicetriage.bus.consumer import BusConsumer

    async with BusConsumer(url, group=group, consumer="bench", start="0", block_ms=100, shared_dedup=False) as c:
        while not stop.is_set():
            for ev in await c.read():
                out.append((time.time(), ev))
                await c.ack(ev)


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nodes", type=int, default=2)
    ap.add_argument("--calls", type=int, default=6)
    ap.add_argument("--speed", type=float, default=1.0, help="1 = real time (default)")
    ap.add_argument("--burst", type=int, default=20000, help="synthetic events in phase 2 (0: skip)")
    ap.add_argument("--limit-s", type=float, default=300.0, help="stop waiting after this long")
    ap.add_argument("--eval", default=str(REPO.parent / "shared" / "eval"))
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results"))
    a = ap.parse_args()
    if not 1 <= a.nodes <= 4 or not 1 <= a.calls <= 32 or not 0 <= a.burst <= 200_000:
        raise SystemExit("bounded: 1-4 nodes, 1-32 calls, burst <= 200000")
    if shutil.which("redis-server") is None:
        raise SystemExit("redis-server not installed (apt-get install redis-server)")
    manifest = {json.loads(l)["id"]: json.loads(l) for l in open(Path(a.eval) / "manifest.jsonl") if l.strip()}
    from voicetriage.client import StreamOptions, stream_file

    tmp = Path(tempfile.mkdtemp(prefix="voicetriage-busload-"))
    rport = free_port()
    url = f"redis://127.0.0.1:{rport}/0"
    procs = [subprocess.Popen(["redis-server", "--port", str(rport), "--bind", "127.0.0.1", "--dir", str(tmp),
                               "--appendonly", "yes", "--appendfsync", "everysec", "--save", ""],
                              stdout=subprocess.DEVNULL)]
    wait_port(rport, procs[0])
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    ports = []
    result: dict = {"nodes": a.nodes, "calls": a.calls, "speed": a.speed, "model": "tiny.en",
                    "command": " ".join(["python -m benchmarks.bus_load", *sys.argv[1:]]),
                    "cpus": os.cpu_count()}
    try:
        for i in range(a.nodes):
            port = free_port()
            procs.append(subprocess.Popen(
                [sys.executable, "-c", "import sys; from voicetriage.cli import main; sys.exit(main())", "serve",
                 "--port", str(port), "--model", "tiny.en", "--threads", "1", "--event-bus", url,
                 "--node-id", f"node-{i}", "--insecure-no-auth", "--max-calls", "256"], cwd=REPO, env=env, stdout=open(tmp / f"node{i}.log", "wb"),
                stderr=subprocess.STDOUT))
            ports.append(port)
        for p, port in zip(procs[1:], ports):
            wait_port(port, p)
        got: list = []
        stop = asyncio.Event()
        reader = asyncio.ensure_future(consume(url, "bench", stop, got))
        t0 = time.time()
        clients = await asyncio.wait_for(asyncio.gather(*(
            stream_file(f"ws://127.0.0.1:{ports[i % a.nodes]}/", str(Path(a.eval) / manifest[CLIPS[i % len(CLIPS)]]["file"]),
                        StreamOptions(speed=a.speed, call_id=f"load-{i}"))
            for i in range(a.calls))), a.limit_s)
        want = {f"load-{i}" for i in range(a.calls)}
        end = time.monotonic() + 30
        while time.monotonic() < end and want - {ev.call_id for _, ev in got if ev.type == "summary"}:
            await asyncio.sleep(0.05)
        t1 = time.time()
        stop.set()
        await reader
        lat = [rx - ev.ts for rx, ev in got]
        hint_lat = [rx - ev.ts for rx, ev in got if ev.type == "hint"]
        client_hints = sum(e["type"] == "hint" for evs in clients for e in evs)
        client_finals = sum(e["type"] == "final" for evs in clients for e in evs)
        result["phase1"] = {
            "events": len(got), "hints": len(hint_lat), "client_hints": client_hints,
            "finals": sum(ev.type == "final" for _, ev in got), "client_finals": client_finals,
            "wall_s": round(t1 - t0, 2), "events_per_s": round(len(got) / (t1 - t0), 1),
            "bus_latency_ms_p50": pct(lat, 0.5), "bus_latency_ms_p95": pct(lat, 0.95),
            "hint_bus_latency_ms_p50": pct(hint_lat, 0.5), "hint_bus_latency_ms_p95": pct(hint_lat, 0.95),
            "hint_bus_latency_ms_max": pct(hint_lat, 1.0),
        }
        if a.burst:
            from voicetriage.bus import BusConfig
            from voicetriage.bus.config import validate
            from voicetriage.bus.publisher import BusPublisher

            pub = BusPublisher(validate(BusConfig(url=url, stream="bench:burst", buffer=a.burst + 1)), "burst")
            pub.start()
            b0 = time.perf_counter()
            for i in range(a.burst):
                pub.publish_message({"type": "final", "call_id": f"b{i % 64}", "utterance": i, "text": "x" * 60})
            hub_s = time.perf_counter() - b0
            while pub.buffered:
                await asyncio.sleep(0.01)
            b1 = time.perf_counter()
            await pub.aclose()
            result["phase2"] = {"events": a.burst, "publish_per_s": round(a.burst / (b1 - b0)),
                                "hub_callback_us": round(hub_s / a.burst * 1e6, 1)}
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    out = Path(a.out) / f"bus_load-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
