"""One caller in real time while other clients flood the server (issue 11 item 3).

``python -m benchmarks.flood`` starts a real voicetriage server (Whisper base
int8, the default config) on loopback and streams one English call of the
benchmark corpus at 1x, first alone, then beside 1 and 3 clients that send a
real call's audio as fast as the socket takes it, each sending its audio
again until the victim's call is over. The same is then done with the pacing off (`[server]
max_audio_speed = 0`, so only `max_pending_finals` holds a flooder). It prints
the victim's end-of-speech-to-final p50/p95 per condition and the speed each
flooder achieved (audio seconds sent per wall second), and writes JSON and a
table to ``--out``. A benchmark, not a test: latencies depend on the host.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

from . import machine
from .analysis import analyse, summarise
from .corpus import build_calls
from .systems import SystemError_, VoiceTriage

DRAIN_S = 6.0  # the victim's real-time silence after its audio, until its last final


async def _flood(port: int, pcm: bytes, stop: asyncio.Event, sent: list[float], k: int) -> None:
    import websockets

    frame = 640  # 20 ms of PCM16 16 kHz
    async with websockets.connect(f"ws://127.0.0.1:{port}/v1/stream", max_size=None) as ws:
        await ws.send(json.dumps({"type": "start", "call_id": f"flood-{k}", "encoding": "pcm16",
                                  "sample_rate": 16000, "channels": 1}))

        async def drain() -> None:
            async for _ in ws:
                pass

        reader = asyncio.ensure_future(drain())
        try:
            while not stop.is_set():
                for off in range(0, len(pcm), frame):
                    if stop.is_set():
                        break
                    await ws.send(pcm[off : off + frame])  # no pacing: as fast as the socket takes it
                    sent[k] += frame / 32000
        finally:
            reader.cancel()


async def _audio_received(system: VoiceTriage) -> float:
    """The server's voicetriage_audio_seconds_total (all calls, after pacing), from /metrics."""
    body = await system.get("/metrics")
    if body is None:
        raise SystemError_(f"{system.label}: /metrics did not answer")
    return sum(float(line.rsplit(" ", 1)[1]) for line in body.decode("utf-8", "replace").splitlines()
               if line.startswith("voicetriage_audio_seconds_total"))


async def condition(system: VoiceTriage, victim, flood_pcm: bytes, floods: int, log=print) -> dict:
    stop = asyncio.Event()
    sent = [0.0] * floods
    load = machine.load_average()
    received0 = await _audio_received(system)
    t0 = time.monotonic()
    tasks = [asyncio.ensure_future(_flood(system.port, flood_pcm, stop, sent, k)) for k in range(floods)]
    await asyncio.sleep(2.0 if floods else 0.0)  # the flood is under way before the call starts
    trace = await system.run_call(victim, chunk_samples=320, drain_s=DRAIN_S, timeout=120.0)
    stop.set()
    wall = time.monotonic() - t0
    for t in tasks:
        try:
            await asyncio.wait_for(t, 30)
        except Exception:  # a flooder the server closed is a result, not a harness failure
            pass
    health = await system.stats()
    # the victim's own audio: its call, then real-time silence until its last final (at most drain_s)
    victim_s = victim.duration_s + min(DRAIN_S, max(0.0, trace.closed_at - trace.audio_done_at))
    # what the server took in from the flooders until their connections closed (the rest of
    # what they sent waited in the kernel's socket buffers, tcp_rmem + tcp_wmem: tens of MB
    # on loopback; a closing flooder's buffered audio is still read, paced, before its close)
    taken = await _audio_received(system) - received0 - victim_s
    taken_wall = time.monotonic() - t0
    s = summarise(analyse(trace))
    row = {"floods": floods, "final_s": s["final_s"], "utterances": s["utterances"],
           "error": trace.error, "flood_speed_x": [round(x / wall, 1) for x in sent],
           "flood_taken_x": round(taken / taken_wall / floods, 1) if floods else None,
           "throttled_s": health.get("throttled_s"), "shed_partials": health.get("shed_partials"),
           "load_average": load}
    f = s["final_s"]
    log(f"  {system.label}: {floods} flooding client(s): victim final p50 {f['p50']} p95 {f['p95']} "
        f"(missing {f['missing']} of {s['utterances']}), flooders sent {row['flood_speed_x']} x real time, "
        f"server took {row['flood_taken_x']} x each, "
        f"load {load[0] if load else '?'}")
    return row


async def run(model: str, floods: list[int], out: Path, call_s: float) -> dict:
    victim, source = build_calls(2, languages=("en",), target_s=call_s)
    flood_pcm = source.pcm16()
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for label, server in (("pacing on (defaults)", {}), ("pacing off (max_audio_speed = 0)", {"max_audio_speed": 0.0})):
        system = VoiceTriage(f"{model} int8 {label.split(' (')[0]}", out, model=model, server=server)
        await system.start()
        try:
            await system.run_call(victim, chunk_samples=320, drain_s=2.0, timeout=120.0)  # warm-up
            for n in (floods if not server else [max(floods)]):
                row = await condition(system, victim, flood_pcm, n)
                row["server"] = label
                results.append(row)
        finally:
            await system.stop()
    return {"model": model, "victim": victim.id, "victim_s": round(victim.duration_s, 1),
            "machine": machine.describe(), "results": results}


def table(report: dict) -> str:
    lines = ["| server | flooding clients | victim final p50 / p95 s | missing | flooders sent (x real time) "
             "| server took per flooder (x real time) | load |",
             "|---|---:|---|---:|---|---:|---:|"]
    for r in report["results"]:
        f = r["final_s"]
        lines.append(f"| {r['server']} | {r['floods']} | {f['p50']} / {f['p95']} | {f['missing']} of {r['utterances']} | "
                     f"{', '.join(str(x) for x in r['flood_speed_x']) or '-'} | "
                     f"{r['flood_taken_x'] if r['flood_taken_x'] is not None else '-'} | "
                     f"{r['load_average'][0] if r['load_average'] else '?'} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.flood", description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="base")
    ap.add_argument("--floods", type=int, nargs="+", default=[0, 1, 3], help="flooding clients per condition")
    ap.add_argument("--call-s", type=float, default=45.0,
                    help="target length of the victim's call (the kit's English clips make at most 46 s)")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/flood"))
    args = ap.parse_args(argv)
    report = asyncio.run(run(args.model, args.floods, args.out, args.call_s))
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (args.out / f"{stamp}.json").write_text(json.dumps(report, indent=1))
    (args.out / f"{stamp}.md").write_text(table(report) + "\n")
    print(table(report))
    print(f"results: {args.out / (stamp + '.json')}")


if __name__ == "__main__":
    main()
