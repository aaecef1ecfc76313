"""Two server processes, one Redis Stream: every final and hint once, one /events view."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from voicetriage.client import StreamOptions, stream_file

pytestmark = pytest.mark.model

CLIP_A = "en_espeak_urgent"  # a distress hint (priority_human)
CLIP_B = "en_whisper_jfk"


async def read_group(redis_url, group, *, until, limit_s=60.0):
    """Every event a fresh consumer group gets, duplicates dropped, until ``until(events)``."""
    from voicetriage.bus.consumer import BusConsumer

    got = []
    async with BusConsumer(redis_url, group=group, consumer="test", start="0", block_ms=200) as c:
        end = time.monotonic() + limit_s
        while time.monotonic() < end and not until(got):
            for ev in await c.read():
                got.append(ev)
                await c.ack(ev)
        dups = c.duplicates
    return got, dups


def client_view(events):
    """(kind, identity) of the finals and hints a call's own client received."""
    out = []
    for e in events:
        if e["type"] == "final":
            out.append(("final", e["utterance"], e["text"]))
        elif e["type"] == "hint":
            out.append(("hint", e["seq"], e["queue"]))
    return out


def bus_view(evs, call_id):
    out = []
    for ev in evs:
        m = ev.message
        if ev.call_id != call_id:
            continue
        if ev.type == "final":
            out.append(("final", m["utterance"], m["text"]))
        elif ev.type == "hint":
            out.append(("hint", m["seq"], m["queue"]))
    return out


async def collect_events(url, into, ready):
    from websockets.asyncio.client import connect

    async with connect(url) as ws:
        into.append(json.loads(await ws.recv()))
        ready.set()
        async for msg in ws:
            into.append(json.loads(msg))


async def test_two_nodes_one_stream_and_one_view(redis_server, start_node, manifest):
    a = start_node("--event-bus", redis_server.url, "--node-id", "node-a")
    b = start_node("--event-bus", redis_server.url, "--node-id", "node-b")
    seen_on_a: list[dict] = []
    ready = asyncio.Event()
    watcher = asyncio.ensure_future(collect_events(f"ws://127.0.0.1:{a.port}/events", seen_on_a, ready))
    await asyncio.wait_for(ready.wait(), 30)
    calls = {"call-a1": (a, CLIP_A), "call-b1": (b, CLIP_B), "call-b2": (b, CLIP_A)}
    results = await asyncio.gather(*(
        stream_file(node.url, manifest[clip]["path"], StreamOptions(speed=2.0, call_id=cid, tail_silence_s=1.0))
        for cid, (node, clip) in calls.items()
    ))
    client = {cid: client_view(evs) for cid, evs in zip(calls, results)}
    assert all(any(k == "final" for k, *_ in v) for v in client.values()), client
    assert any(k == "hint" for k, *_ in client["call-a1"]), "the distress clip should raise a hint"

    summaries = lambda evs: {e.call_id for e in evs if e.type == "summary"}  # noqa: E731
    got, _ = await read_group(redis_server.url, "routing", until=lambda evs: summaries(evs) >= set(calls))
    assert summaries(got) >= set(calls), "every call's summary reaches the bus"
    for cid, (node, _clip) in calls.items():
        # exactly once each, in the order the client got them
        assert bus_view(got, cid) == client[cid], cid
        nodes = {ev.node for ev in got if ev.call_id == cid}
        assert nodes == {"node-a" if node is a else "node-b"}
        seqs = [ev.seq for ev in got if ev.call_id == cid]
        assert seqs == list(range(1, len(seqs) + 1))

    # a second group gets the same events again, independently of the first
    again, _ = await read_group(redis_server.url, "dashboard", until=lambda evs: len(evs) >= len(got))
    assert sorted(ev.key for ev in again) == sorted(ev.key for ev in got)

    # /events on node A shows node B's calls (tagged with the node), and A's own call once
    end = time.monotonic() + 30
    while time.monotonic() < end and {"call-b1", "call-b2"} - {m.get("call_id") for m in seen_on_a if m["type"] == "summary"}:
        await asyncio.sleep(0.2)
    watcher.cancel()
    by_call = {}
    for m in seen_on_a[1:]:
        by_call.setdefault(m["call_id"], []).append(m)
    assert {"call-a1", "call-b1", "call-b2"} <= set(by_call)
    assert {m["node"] for m in by_call["call-b1"]} == {"node-b"}
    assert {m["node"] for m in by_call["call-a1"]} == {"node-a"}
    for cid in calls:
        finals = [(m["utterance"], m["text"]) for m in by_call[cid] if m["type"] == "final"]
        assert finals == [(u, t) for k, u, t in client[cid] if k == "final"], cid  # none twice
        assert sum(m["type"] == "summary" for m in by_call[cid]) == 1
    health = a.health()
    assert health["bus"]["connected"] and health["bus"]["node"] == "node-a"
    assert health["bus"]["view"]["received"] > 0


async def test_redis_restart_mid_run_loses_nothing(redis_server, start_node, manifest):
    node = start_node("--event-bus", redis_server.url, "--node-id", "solo")
    before = await stream_file(node.url, manifest[CLIP_A]["path"], StreamOptions(speed=0, call_id="before"))
    redis_server.stop()
    during = await stream_file(node.url, manifest[CLIP_A]["path"], StreamOptions(speed=0, call_id="during"))
    assert any(e["type"] == "final" for e in during), "calls go on while the bus is down"
    h = node.health()
    assert h["status"] == "ok"
    assert h["bus"]["connected"] is False and h["bus"]["buffered"] > 0 and h["bus"]["dropped"] == 0
    redis_server.start()
    end = time.monotonic() + 30
    while time.monotonic() < end and node.health()["bus"]["buffered"]:
        await asyncio.sleep(0.2)
    h = node.health()["bus"]
    assert h["buffered"] == 0 and h["connected"] and h["outages"] >= 1
    got, _ = await read_group(redis_server.url, "after-restart",
                              until=lambda evs: {"before", "during"} <= {e.call_id for e in evs if e.type == "summary"})
    assert bus_view(got, "before") == client_view(before)
    assert bus_view(got, "during") == client_view(during)
    seqs = [ev.seq for ev in got if ev.call_id == "during"]
    assert seqs == list(range(1, len(seqs) + 1)), "replayed in order, none lost"
