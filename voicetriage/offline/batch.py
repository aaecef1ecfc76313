"""Offline batch transcription: find audio files, plan the work, run it.

    discover(paths) -> plan(files, options) -> run_batch(items, options, load_model)

:func:`discover` walks directories for audio files; :func:`plan` gives each
file its output path and marks files whose output is already complete (resume);
:func:`run_batch` loads the model only if there is work, then decodes,
transcribes and writes one file at a time. A file that fails is reported in
its :class:`FileResult` and the batch goes on. Outputs are written to a
temporary file and renamed into place, so an existing output is complete.
"""

from __future__ import annotations

import itertools
import logging
import os
import secrets
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Protocol, Sequence

from voicetriage.asr.registry import ResolvedModel
from voicetriage.audio.files import BLOCK_S, iter_audio_blocks, read_audio
from voicetriage.offline.languages import language_runs
from voicetriage.core.errors import (
    ConfigError,
    OutputError,
    VoiceTriageError,
)
from voicetriage.core.events import SAMPLE_RATE
from voicetriage.offline.formats import (
    FORMATS,
    Segment,
    Track,
    Transcript,
    Word,
    is_complete,
    render,
)

log = logging.getLogger(__name__)

AUDIO_SUFFIXES = frozenset({".wav", ".flac", ".mp3", ".ogg", ".m4a", ".opus", ".webm"})
CHANNEL_MODES = ("mono", "split")
_LABEL_FORBIDDEN = set("[]<>&,\r\n\t")


def check_channel_labels(labels: Sequence[str]) -> tuple[str, str]:
    """Validate the two speaker labels of ``--channels split`` (channel 0, channel 1)."""
    labels = tuple(label.strip() for label in labels)
    if len(labels) != 2:
        raise ConfigError(f"channel labels: need exactly two (channel 0, channel 1), got {len(labels)}")
    for label in labels:
        if not label or _LABEL_FORBIDDEN & set(label):
            raise ConfigError(
                f"channel label {label!r}: must be non-empty and without []<>&, or line breaks"
            )
    if labels[0] == labels[1]:
        raise ConfigError(f"channel labels must differ, got {labels[0]!r} twice")
    return labels  # type: ignore[return-value]


@dataclass(frozen=True)
class BatchOptions:
    """How to transcribe and where to write.

    ``channels="split"`` transcribes each channel of a stereo recording on its
    own and labels its segments with ``channel_labels[channel]``.
    ``language=None`` detects the language of every VAD chunk (pauses of
    ``chunk_silence_ms``), with a prior from the file's earlier chunks as on a
    call, restricted to ``languages`` (empty: any); consecutive chunks of one
    language are transcribed together. ``per_chunk_language=False``: one
    detection per channel (Whisper's own, on its first 30 s).
    """

    out_dir: Path
    format: str = "jsonl"
    channels: str = "mono"
    channel_labels: tuple[str, str] = ("caller", "agent")
    language: str | None = None
    beam_size: int = 1
    word_timestamps: bool = False
    vad_filter: bool = True
    overwrite: bool = False
    languages: tuple[str, ...] = ()
    per_chunk_language: bool = True
    chunk_silence_ms: int = 500

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ConfigError(f"unknown format {self.format!r}; choose one of {', '.join(FORMATS)}")
        if self.channels not in CHANNEL_MODES:
            raise ConfigError(f"unknown channel mode {self.channels!r}; choose mono or split")
        check_channel_labels(self.channel_labels)
        if self.beam_size < 1:
            raise ConfigError(f"beam size must be at least 1, got {self.beam_size}")


@dataclass(frozen=True)
class InputFile:
    """An input file and the name its output takes (relative to the output folder)."""

    path: Path
    rel: Path


@dataclass(frozen=True)
class Discovery:
    files: tuple[InputFile, ...]
    empty_dirs: tuple[Path, ...] = ()  # directories given that hold no audio file


def discover(paths: Sequence[str | Path]) -> Discovery:
    """Expand files and directories into input files, in a stable order.

    Directories are walked recursively for :data:`AUDIO_SUFFIXES` (hidden
    files and folders skipped); a file named explicitly is taken whatever its
    suffix, and a path that does not exist is kept so that it is reported.
    The same file reached twice is kept once.
    """
    files: list[InputFile] = []
    empty: list[Path] = []
    seen: set[str] = set()

    def add(path: Path, rel: Path) -> None:
        key = os.path.realpath(path)
        if key not in seen:
            seen.add(key)
            files.append(InputFile(path, rel))

    for raw in paths:
        root = Path(raw)
        if not root.is_dir():
            add(root, Path(root.name or str(root)))
            continue
        found = []
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            for name in filenames:
                if not name.startswith(".") and Path(name).suffix.lower() in AUDIO_SUFFIXES:
                    p = Path(dirpath) / name
                    found.append((p.relative_to(root), p))
        if not found:
            empty.append(root)
        for rel, p in sorted(found, key=lambda x: x[0].parts):
            add(p, rel)
    return Discovery(tuple(files), tuple(empty))


@dataclass(frozen=True)
class AudioInfo:
    duration: float | None  # seconds, None when the container does not say
    channels: int | None


def probe_audio(path: Path) -> AudioInfo:
    """Duration and channel count from the container header (cheap, no decoding)."""
    import av

    try:
        with av.open(str(path), mode="r", metadata_errors="ignore") as c:
            if not c.streams.audio:
                return AudioInfo(None, None)
            s = c.streams.audio[0]
            duration = None
            if s.duration is not None and s.time_base is not None:
                duration = float(s.duration * s.time_base)
            elif c.duration is not None:
                duration = c.duration / av.time_base
            layout = getattr(s.codec_context, "layout", None)
            channels = layout.nb_channels if layout is not None else None
            return AudioInfo(duration, channels or None)
    except Exception:  # decoding will report the problem
        return AudioInfo(None, None)


@dataclass(frozen=True)
class BatchItem:
    """One file of the batch, planned.

    ``done``: its output already exists and is complete (skipped).
    ``duration``/``channels`` come from the container header (None if unknown
    or not probed because the file is done).
    """

    source: Path
    output: Path
    done: bool = False
    duration: float | None = None
    channels: int | None = None


def _key(path: Path) -> str:
    return os.path.normcase(os.path.abspath(path))


def output_paths(files: Sequence[InputFile], out_dir: Path, fmt: str) -> list[Path]:
    """``OUT/<rel without audio suffix>.<fmt>``, unless two inputs would share it.

    Inputs whose names differ only in the audio suffix (call.wav, call.mp3)
    all keep it (call.wav.jsonl, call.mp3.jsonl), so an existing output can
    never be taken for another input's when files are added later. Inputs
    with the very same relative name from different folders get -2, -3, ...
    in input order.
    """
    ext = "." + fmt
    plain = [out_dir / f.rel.with_name(f.rel.stem + ext) if f.rel.suffix else None for f in files]
    counts: dict[str, int] = {}
    for p in plain:
        if p is not None:
            counts[_key(p)] = counts.get(_key(p), 0) + 1
    taken: set[str] = set()
    out = []
    for f, p in zip(files, plain):
        if p is None or counts[_key(p)] > 1:
            p = out_dir / f.rel.with_name(f.rel.name + ext)
        n = 2
        while _key(p) in taken:
            p = out_dir / f.rel.with_name(f"{f.rel.name}-{n}{ext}")
            n += 1
        taken.add(_key(p))
        out.append(p)
    return out


def output_complete(path: Path, fmt: str) -> bool:
    """Whether ``path`` holds a complete output (see :func:`formats.is_complete`)."""
    try:
        with open(path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(0, size - 4096))
            tail = f.read().decode("utf-8", "replace")
    except OSError:
        return False
    return is_complete(tail, fmt)


def plan(files: Sequence[InputFile], options: BatchOptions) -> list[BatchItem]:
    """Give each input its output path; mark complete outputs done unless overwriting."""
    items = []
    for f, out in zip(files, output_paths(files, options.out_dir, options.format)):
        done = not options.overwrite and output_complete(out, options.format)
        info = AudioInfo(None, None) if done or not f.path.is_file() else probe_audio(f.path)
        items.append(BatchItem(f.path, out, done, info.duration, info.channels))
    return items


@dataclass(frozen=True)
class FileResult:
    """What happened to one file: status "done", "skipped" or "failed"."""

    item: BatchItem
    status: str
    audio_s: float = 0.0
    processing_s: float = 0.0
    segments: int = 0
    error: str | None = None  # the problem, without the file name
    code: str | None = None  # stable error code (see voicetriage.core.errors)


@dataclass(frozen=True)
class BatchSummary:
    results: tuple[FileResult, ...]
    model: ResolvedModel | None = None  # None when nothing needed the model

    def with_status(self, status: str) -> list[FileResult]:
        return [r for r in self.results if r.status == status]

    @property
    def failed(self) -> list[FileResult]:
        return self.with_status("failed")

    @property
    def audio_s(self) -> float:
        return sum(r.audio_s for r in self.results if r.status == "done")

    @property
    def processing_s(self) -> float:
        return sum(r.processing_s for r in self.results if r.status == "done")

    @property
    def real_time_factor(self) -> float:
        return self.processing_s / self.audio_s if self.audio_s > 0 else 0.0


class Reporter(Protocol):
    """Progress callbacks, in this order per processed file."""

    def file_started(self, item: BatchItem, duration: float) -> None:
        """Decoding worked; ``duration`` is the real audio length in seconds."""

    def advance(self, seconds: float) -> None:
        """``seconds`` more of the current file's audio are done."""

    def file_finished(self, result: FileResult) -> None: ...


class NullReporter:
    def file_started(self, item: BatchItem, duration: float) -> None:
        pass

    def advance(self, seconds: float) -> None:
        pass

    def file_finished(self, result: FileResult) -> None:
        pass


def write_atomic(path: Path, content: str) -> None:
    """Write ``content`` to ``path`` through a temporary file and a rename."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.part")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
                f.write(content)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    except OSError as e:
        raise OutputError(f"cannot write {path}: {e.strerror or e}") from None


@dataclass
class _Progress:
    reporter: Reporter
    done: float = 0.0

    def advance(self, seconds: float) -> None:
        if seconds > 0:
            self.done += seconds
            self.reporter.advance(seconds)

    def finish(self, total: float) -> None:
        self.advance(total - self.done)


class BatchRunner:
    """Transcribes batch items with one model, loaded when first needed.

    ``load_model`` returns ``(WhisperModel, ResolvedModel)``; it is called
    once, after the first file decodes, so a batch whose files are all done
    or unreadable never loads a model.
    """

    def __init__(
        self,
        options: BatchOptions,
        load_model: Callable[[], tuple[Any, ResolvedModel]],
        annotate: Callable[[Transcript, list[Any]], Transcript] | None = None,
    ) -> None:
        self.options = options
        self._load_model = load_model
        # e.g. speaker diarization (voicetriage.diarize): transcript, decoded audio -> transcript
        self.annotate = annotate
        self.model: Any = None  # faster_whisper.WhisperModel
        self.resolved: ResolvedModel | None = None
        self._asr: Any = None  # voicetriage.asr.engine.AsrEngine on the same model, for chunk detection
        split = options.channels == "split"
        self.labels: tuple[str | None, ...] = tuple(options.channel_labels) if split else (None,)

    def ensure_model(self) -> None:
        """Load the model; ModelError/ConfigError here end the batch."""
        if self.model is not None:
            return
        model, resolved = self._load_model()
        lang = self.options.language
        if lang is not None:
            # the loaded model knows best (a local folder's config.json can mislead)
            multilingual = getattr(getattr(model, "model", None), "is_multilingual", resolved.multilingual)
            if not multilingual and lang != "en":
                raise ConfigError(
                    f"model {resolved.id!r} is English-only; language {lang!r} needs a "
                    "multilingual model such as 'base'"
                )
            supported = getattr(model, "supported_languages", None)
            if supported and lang not in supported:
                raise ConfigError(f"model {resolved.id!r} does not know language {lang!r}")
        self.model, self.resolved = model, resolved

    def language_runs(self, samples: Any, offset_s: float = 0.0) -> list[tuple[int, int, str | None, float]]:
        """Runs of one language over a channel (see :func:`voicetriage.offline.languages.language_runs`)."""
        from voicetriage.asr.engine import AsrEngine
        from voicetriage.core.config import AsrConfig

        multilingual = getattr(getattr(self.model, "model", None), "is_multilingual", False)
        if self._asr is None and multilingual and self.options.language is None and self.options.per_chunk_language:
            self._asr = AsrEngine(self.model, self.resolved, AsrConfig())
        return language_runs(samples, self._asr, self.options, multilingual, offset_s)

    def transcribe_blocks(self, display: str, blocks: Iterable[tuple[int, list[Any]]],
                          progress: _Progress) -> Transcript:
        """Transcribe a recording block by block (``(first sample, channels)``, in order),
        so memory does not grow with its length; segments of all channels by time."""
        o = self.options
        keyed: list[tuple[float, int, int, Segment]] = []
        reached: dict[int, float] = {}
        spoken: dict[int, dict[str, float]] = {}
        probs: dict[int, dict[str, float]] = {}
        duration = 0.0
        for first, audio in blocks:
            share = 1.0 / len(audio)  # the bar counts recording time, not channel time
            base = first / SAMPLE_RATE
            block_end = base + len(audio[0]) / SAMPLE_RATE
            duration = block_end
            for ch, samples in enumerate(audio):
                label = self.labels[ch]
                reached.setdefault(ch, base)
                for a, b, run_lang, run_p in self.language_runs(samples, base):
                    offset, run_end = base + a / SAMPLE_RATE, base + b / SAMPLE_RATE
                    seg_iter, info = self.model.transcribe(
                        samples[a:b],
                        language=run_lang,
                        beam_size=o.beam_size,
                        vad_filter=o.vad_filter,
                        word_timestamps=o.word_timestamps,
                    )
                    lang = info.language
                    lang_p = float(info.language_probability) if run_lang is None or run_lang == o.language else run_p
                    talk = spoken.setdefault(ch, {})
                    talk[lang] = talk.get(lang, 0.0) + (run_end - offset)
                    probs.setdefault(ch, {}).setdefault(lang, lang_p)
                    # Whisper's timestamps can overshoot the end of the audio; clamp them
                    clamp = lambda t, o0=offset, e0=run_end: min(max(float(t) + o0, o0), e0)  # noqa: E731
                    for s in seg_iter:  # decoding happens while iterating
                        end = clamp(s.end)
                        progress.advance(max(0.0, end - reached[ch]) * share)
                        reached[ch] = max(reached[ch], end)
                        text = s.text.strip()
                        if not text:
                            continue
                        words = None
                        if o.word_timestamps:
                            words = tuple(
                                Word(clamp(w.start), clamp(w.end), w.word, w.probability) for w in (s.words or ())
                            )
                        seg = Segment(
                            start=clamp(s.start),
                            end=clamp(s.end),
                            text=text,
                            speaker=label,
                            language=lang,
                            language_probability=lang_p,
                            avg_logprob=float(s.avg_logprob),
                            no_speech_prob=float(s.no_speech_prob),
                            words=words,
                        )
                        keyed.append((seg.start, ch, len(keyed), seg))
                progress.advance(max(0.0, block_end - reached[ch]) * share)
                reached[ch] = block_end
        tracks = []
        for ch in sorted(spoken):
            label = self.labels[ch]
            main_lang = max(spoken[ch], key=spoken[ch].get)
            tracks.append(Track(label, ch if label else None, main_lang, probs[ch][main_lang]))
        keyed.sort(key=lambda k: k[:3])
        return Transcript(
            file=display,
            model=self.resolved.id,
            model_source=self.resolved.source,
            duration=duration,
            channels=o.channels,
            tracks=tuple(tracks),
            segments=tuple(k[3] for k in keyed),
        )

    def process(self, item: BatchItem, reporter: Reporter) -> FileResult:
        """Decode, transcribe and write one item; file errors become a failed result.

        Without an ``annotate`` step the file is decoded and transcribed a block at a
        time (memory bounded whatever its length); diarization needs it whole."""
        t0 = time.perf_counter()
        progress = _Progress(reporter)
        expected = item.duration or 0.0
        split = self.options.channels == "split"
        try:
            try:
                if self.annotate is not None:
                    audio = read_audio(item.source, SAMPLE_RATE, split, item.channels)
                    blocks: Iterator[tuple[int, list[Any]]] = iter([(0, audio)])
                    expected = len(audio[0]) / SAMPLE_RATE
                else:
                    blocks = iter_audio_blocks(item.source, SAMPLE_RATE, split, item.channels, block_s=BLOCK_S)
                    blocks = itertools.chain([next(blocks)], blocks)  # the file's first error, before the model
            except VoiceTriageError as e:
                return FileResult(item, "failed", error=str(e), code=e.code)
            if self.model is None:
                t_load = time.perf_counter()
                self.ensure_model()
                t0 += time.perf_counter() - t_load  # loading is not this file's processing time
            reporter.file_started(item, expected)
            try:
                transcript = self.transcribe_blocks(str(item.source), blocks, progress)
                if self.annotate is not None:
                    transcript = self.annotate(transcript, audio)
                transcript = replace(transcript, processing_s=time.perf_counter() - t0)
                write_atomic(item.output, render(self.options.format, transcript))
            except VoiceTriageError as e:
                return FileResult(item, "failed", error=str(e), code=e.code)
            except Exception as e:  # one bad file must not end the batch
                log.debug("transcribing %s failed", item.source, exc_info=True)
                return FileResult(item, "failed", error=f"{type(e).__name__}: {e}", code="internal_error")
            return FileResult(
                item, "done", transcript.duration, time.perf_counter() - t0, len(transcript.segments)
            )
        finally:
            progress.finish(max(expected, progress.done))


def run_batch(
    items: Sequence[BatchItem],
    options: BatchOptions,
    load_model: Callable[[], tuple[Any, ResolvedModel]],
    reporter: Reporter | None = None,
    annotate: Callable[[Transcript, list[Any]], Transcript] | None = None,
) -> BatchSummary:
    """Process ``items`` in order and return what happened to each.

    ``load_model`` (e.g. ``lambda: asr.load_whisper(config.asr)``) is called
    once, and only when a file needs it. A model that cannot be loaded,
    or a language it does not know, ends the batch with the error; a file
    that cannot be read or written is a failed result and the batch goes on.
    ``annotate`` (optional) post-processes each transcript before it is
    written, with the decoded audio (speaker diarization).
    """
    reporter = reporter or NullReporter()
    runner = BatchRunner(options, load_model, annotate)
    results = []
    for item in items:
        result = FileResult(item, "skipped") if item.done else runner.process(item, reporter)
        results.append(result)
        reporter.file_finished(result)
    return BatchSummary(tuple(results), runner.resolved)


__all__ = [
    "AUDIO_SUFFIXES",
    "BatchOptions",
    "InputFile",
    "Discovery",
    "AudioInfo",
    "BatchItem",
    "FileResult",
    "BatchSummary",
    "Reporter",
    "NullReporter",
    "BatchRunner",
    "check_channel_labels",
    "discover",
    "plan",
    "probe_audio",
    "output_complete",
    "output_paths",
    "write_atomic",
    "run_batch",
]
