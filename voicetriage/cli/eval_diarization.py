"""``voicetriage eval-diarization``: DER on two-speaker calls built from the evaluation kit.

Exit status: 0; 2 when the kit or the diarize extra is missing.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(subparsers) -> None:
    from voicetriage.cli.transcribe import _speakers

    p = subparsers.add_parser(
        "eval-diarization",
        help="diarization error rate on two-speaker calls built from the evaluation kit (16 kHz and 8 kHz µ-law)",
        description=(
            "Builds two-speaker conversations from different speakers of the kit (alternating turns, "
            "silences, some overlapping speech; see voicetriage/diarize/conversations.py), diarizes the "
            "16 kHz mix and its 8 kHz G.711 µ-law telephone copy, and scores them against the true turns "
            "with pyannote.metrics: DER without a collar and with the NIST ±0.25 s collar, missed speech, "
            "false alarm, speaker confusion, real-time factor. Conversations are built in memory; "
            "--write-audio DIR also writes them (WAV) with their RTTM."
        ),
    )
    p.add_argument("--kit", type=Path, default=Path("../shared/eval"), help="the evaluation kit (default ../shared/eval)")
    p.add_argument("--conversation", action="append", metavar="ID", help="only these conversations (repeatable)")
    p.add_argument("--split", choices=("tune", "test"), help="only the tuning or the test conversations")
    p.add_argument("--band", action="append", choices=("16k", "8k-ulaw"), help="only this band (repeatable)")
    p.add_argument("--speakers", type=_speakers, default=2, metavar="N|auto", help="speakers given to the pipeline (default 2)")
    p.add_argument("--threshold", type=float, help="clustering threshold (for --speakers auto)")
    p.add_argument("--segmentation-step", type=float, help="window step as a fraction of the 10 s window (default 0.1)")
    p.add_argument("--diarization-pipeline", type=Path, metavar="DIR", help="own pyannote pipeline folder")
    p.add_argument("--no-refine", action="store_true",
                   help="pyannote's output as it is, without re-clustering its turns by CAM++ embeddings")
    p.add_argument("--out", type=Path, metavar="FILE.json", help="write the rows as JSON (and FILE.md with the table)")
    p.add_argument("--write-audio", type=Path, metavar="DIR", help="write each conversation (16 kHz WAV, 8 kHz µ-law WAV, RTTM)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from voicetriage.diarize.conversations import build, by_id, write_wav
    from voicetriage.diarize.evaluate import as_json, evaluate, table
    from voicetriage.diarize.pipeline import DiarizationOptions, Diarizer

    specs = by_id(args.conversation, args.split)
    if args.write_audio:
        for spec in specs:
            conv = build(spec, args.kit)
            write_wav(args.write_audio / f"{spec.id}.wav", conv.samples)
            write_wav(args.write_audio / f"{spec.id}_tel8k.wav", conv.samples, mulaw_8k=True)
            (args.write_audio / f"{spec.id}.rttm").write_text(conv.rttm(), encoding="utf-8")
        print(f"wrote {len(specs)} conversation(s) to {args.write_audio}", file=sys.stderr)
    kw = {}
    if args.threshold is not None:
        kw["threshold"] = args.threshold
    if args.segmentation_step is not None:
        kw["segmentation_step"] = args.segmentation_step
    diarizer = Diarizer.load(DiarizationOptions(speakers=args.speakers, pipeline_dir=args.diarization_pipeline,
                                                refine=not args.no_refine, **kw))

    def progress(row) -> None:
        print(f"  {row.conversation} {row.band}: DER {100 * row.der:.1f}% (±0.25 s collar {100 * row.der_collar:.1f}%), "
              f"RTF {row.rtf:.2f}", file=sys.stderr, flush=True)

    rows = evaluate(specs, args.kit, diarizer, tuple(args.band or ("16k", "8k-ulaw")), progress=progress)
    text = table(rows)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        doc = {"command": " ".join(["voicetriage"] + sys.argv[1:]), "speakers": args.speakers,
               "options": {k: str(v) for k, v in vars(diarizer.options).items()}, "rows": as_json(rows)}
        args.out.write_text(json.dumps(doc, indent=1), encoding="utf-8")
        args.out.with_suffix(".md").write_text(text + "\n", encoding="utf-8")
    return 0
