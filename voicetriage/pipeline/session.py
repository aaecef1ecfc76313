"""One call's streaming pipeline: audio in, partials, finals and a summary out.

A :class:`CallSession` ties together, per audio track, the wire decoder, the
VAD and segmenter, local agreement for partials, and requests to the shared
:class:`~voicetriage.asr.worker.InferenceWorker`. Everything it produces goes to
the ``emit`` callable of whoever owns the call (a protocol adapter), in order.
The ``push_*`` methods are synchronous and cheap and must be called from the
event loop; inference happens on the worker thread. With a
:class:`~voicetriage.pipeline.dsp.DspPool` the VAD and the observers'
``prepare_audio`` (prosody) run on a DSP thread too: audio, boundaries and
digits then queue per call and are applied on the loop in arrival order.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import time
from collections import deque
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np

from voicetriage.asr.engine import AsrRequest, _round_prob
from voicetriage.asr.worker import InferenceWorker
from voicetriage.audio.codecs import TARGET_RATE, AudioSpec, StreamDecoder
from voicetriage.audio.segmenter import Segmenter, SpeechEnded
from voicetriage.audio.vad import VadModel
from voicetriage.core.config import AsrConfig, StreamConfig
from voicetriage.core.errors import AudioFormatError
from voicetriage.core.events import DTMF_DIGITS, CallError, CallInfo, CallSummary, Dtmf, Final, Partial
from voicetriage.pipeline.dsp import DspPool
from voicetriage.pipeline.requests import build_request
from voicetriage.pipeline.track import CallObserver, ObserverFactory, language_probability
from voicetriage.pipeline.track import Track as _Track

log = logging.getLogger(__name__)

Emit = Callable[[object], None]


class CallSession:
    """The streaming pipeline of one call. Create it with ``Engine.open_call``."""

    def __init__(
        self,
        info: CallInfo,
        spec: AudioSpec,
        *,
        worker: InferenceWorker,
        vad: VadModel,
        config: StreamConfig,
        emit: Emit,
        language: str | None = None,
        tracks: Sequence[str] = ("caller",),
        observers: Iterable[CallObserver] = (),
        track_languages: Mapping[str, str | None] | None = None,
        language_source: str = "client",
        asr_config: AsrConfig | None = None,
        dsp: DspPool | None = None,
    ) -> None:
        """``language`` (a Whisper code) is decoded on every track, reported with
        probability 1.0 and ``language_source`` ("client": the call's hint,
        "config": [asr] language). ``track_languages`` overrides it per track
        (a code, or None: detect on that track), as source "client".
        ``asr_config`` supplies the allowed languages, the prior and the
        dialect-probe options (default: :class:`AsrConfig` defaults). ``dsp``:
        run the VAD and ``prepare_audio`` hooks there (None: inline)."""
        if spec.channels == 2 and len(tracks) != 2:
            raise AudioFormatError("stereo audio needs two track labels (e.g. caller, agent)")
        if len(set(tracks)) != len(tracks) or not tracks:
            raise AudioFormatError(f"track labels must be distinct and not empty: {list(tracks)}")
        self.info = info
        self.spec = spec
        self.config = config
        self.language = language
        self.language_source = language_source
        self.asr_config = asr_config or AsrConfig()
        unknown = set(track_languages or {}) - set(tracks)
        if unknown:
            raise AudioFormatError(f"track_languages names unknown track(s) {sorted(unknown)}; this call has {list(tracks)}")
        self.track_languages = dict(track_languages or {})
        self._worker = worker
        self._emit_fn = emit
        self._observers = list(observers)
        self._stereo = StreamDecoder(spec) if spec.channels == 2 else None
        mono = AudioSpec(spec.encoding, spec.sample_rate, 1)
        self._tracks = {}
        for name in tracks:
            stream = vad.stream_for(config)
            self._tracks[name] = _Track(name, Segmenter(config, stream.feed),
                                        None if self._stereo else StreamDecoder(mono), vad=stream.feed,
                                        vad_reset=stream.reset)
        self._dsp = dsp if dsp is not None and dsp.enabled else None
        self._inbox: deque = deque()  # ops waiting for the DSP thread, in arrival order
        self._drainer: asyncio.Task | None = None
        self._preparers = [o.prepare_audio for o in self._observers if callable(getattr(o, "prepare_audio", None))]
        self._received = {t: 0.0 for t in tracks}  # call clock: audio plus gaps
        self._processed = {t: 0.0 for t in tracks}  # audio plus the gaps filled with silence
        self.gaps = 0  # gaps pushed (per call, all tracks of one push counted once)
        self.gap_s = 0.0  # their seconds
        self.gaps_skipped = 0  # gaps longer than [stream] gap_fill_max_s: the clock jumped
        self._finals: list[Final] = []
        self._pending: set[asyncio.Future] = set()
        self._finals_pending = 0
        self._finals_changed = asyncio.Event()  # set when a final completes or the call ends
        self._closed = False
        self._summary: CallSummary | None = None
        self._opened = time.monotonic()
        self.dropped_partials = 0

    # -- input -----------------------------------------------------------------
    @property
    def tracks(self) -> tuple[str, ...]:
        return tuple(self._tracks)

    @property
    def closed(self) -> bool:
        return self._closed

    def time(self, track: str | None = None) -> float:
        """Seconds of audio received on ``track`` (default: the first).

        Counted on the wire, not after resampling (the resampler holds back a
        few milliseconds until the call ends).
        """
        return self._received[track or self.tracks[0]]

    def processed_s(self, track: str | None = None) -> float:
        """Seconds of audio the pipeline processed on ``track``: what arrived plus
        the short gaps filled with silence, not the gaps the clock jumped over."""
        return self._processed[track or self.tracks[0]]

    def push_audio(self, data: bytes, track: str | None = None) -> None:
        """Wire audio in the call's :class:`AudioSpec`.

        Stereo audio is split to the two tracks; mono audio goes to ``track``
        (default: the first track). Raises :class:`AudioFormatError` for a
        chunk that is not a whole number of samples; the call goes on.
        """
        if self._closed:
            return
        if self._stereo is not None:
            if track is not None:
                raise AudioFormatError("stereo audio carries both tracks; do not name one")
            chans = self._stereo.decode(data)
            for name, samples in zip(self.tracks, chans):
                self._received[name] += self.spec.duration(len(data))
                self._processed[name] += self.spec.duration(len(data))
                self._feed(self._tracks[name], samples)
        else:
            t = self._track(track)
            chans = t.decoder.decode(data)  # type: ignore[union-attr]
            seconds = len(data) / (self.spec.bytes_per_sample * self.spec.sample_rate)
            self._received[t.name] += seconds
            self._processed[t.name] += seconds
            self._feed(t, chans[0])

    def push_gap(self, seconds: float, track: str | None = None, *, hold: bool = False) -> bool:
        """Audio that never arrived (lost packets, a discard): the clock runs on by ``seconds``.

        A gap up to ``[stream] gap_fill_max_s`` is filled with silence, so a word is not
        split; ``hold``: it is a hole in the audio (a short discard), not a pause, and
        does not end the utterance in progress. A longer gap is counted, not
        materialised: the utterance in progress ends where it began (reason "gap"), the
        VAD starts afresh and the track's clock jumps, whatever the gap's length.
        ``track`` None on a stereo call: both tracks. True when the clock jumped."""
        if self._closed:
            return False
        if not math.isfinite(seconds):
            raise AudioFormatError(f"a gap of {seconds!r} s", code="bad_gap")
        if seconds <= 0:
            return False
        if self._stereo is not None and track is not None:
            raise AudioFormatError("stereo audio carries both tracks; do not name one")
        names = list(self.tracks) if self._stereo is not None else [self._track(track).name]
        self.gaps += 1
        self.gap_s += seconds
        if seconds > self.config.gap_fill_max_s:
            self.gaps_skipped += 1
            tails = self._stereo.restart() if self._stereo is not None else None
            for i, name in enumerate(names):
                t = self._tracks[name]
                for samples in ([tails[i]] if tails is not None else t.decoder.restart()):  # type: ignore[union-attr]
                    self._feed(t, samples)
                self._received[name] += seconds
                # through the call's queue: after the audio before it, before the audio after
                target = int(round(self._received[name] * TARGET_RATE))
                self._queue(("jump", t, max(0, target - t.queued)))
                t.queued = max(t.queued, target)
            return True
        if self._stereo is not None:
            for name, samples in zip(names, self._stereo.silence(seconds)):
                self._received[name] += seconds
                self._processed[name] += seconds
                self._feed(self._tracks[name], samples, hold=hold)
        else:
            t = self._tracks[names[0]]
            self._received[t.name] += seconds
            self._processed[t.name] += seconds
            self._feed(t, t.decoder.silence(seconds)[0], hold=hold)  # type: ignore[union-attr]
        return False

    def end_utterance(self, track: str | None = None, reason: str = "split") -> None:
        """End the utterance in progress on ``track`` (default: every track) now:
        its final is requested as if it had ended in silence, with ``reason``.
        The platform marked a boundary (an AudioHook ``update`` or ``paused``)."""
        if self._closed:
            return
        self._queue(("split", [self._track(track)] if track is not None else list(self._tracks.values()), reason))

    def push_dtmf(self, digit: str, track: str | None = None, time: float | None = None) -> None:
        """A keypad digit; ``time`` defaults to the track's current audio time."""
        if self._closed:
            return
        if not isinstance(digit, str) or len(digit) != 1 or digit.upper() not in DTMF_DIGITS:
            raise AudioFormatError(f"not a DTMF digit: {digit!r}", code="bad_dtmf")
        name = self._track(track).name
        self._queue(("event", Dtmf(self.info.call_id, name, digit.upper(), self.time(name) if time is None else time)))

    async def close(self, reason: str = "stop") -> CallSummary:
        """End the call: finish speech in progress, wait for every final, emit
        the summary. Safe to call more than once."""
        if self._summary is not None:
            return self._summary
        if not self._closed:
            self._closed = True
            self._finals_changed.set()  # a reader held for this call's finals goes on
            if self._drainer is not None:  # what was queued before the close is applied first
                await asyncio.gather(self._drainer, return_exceptions=True)
            for t in self._tracks.values():
                for samples in t.decoder.flush() if t.decoder is not None else []:
                    self._segment(t, samples)
                for ev in t.segmenter.flush():
                    self._handle_segment(t, ev)
            if self._stereo is not None:
                for name, samples in zip(self.tracks, self._stereo.flush()):
                    self._segment(self._tracks[name], samples)
        # queued partials are stale now: drop them rather than decode them
        self._worker.forget(self.info.call_id)
        while self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)
        self._worker.forget(self.info.call_id)
        langs: dict[str, float] = {}
        for f in self._finals:
            langs[f.language] = langs.get(f.language, 0.0) + (f.end - f.start)
        summary = CallSummary(
            call_id=self.info.call_id,
            reason=reason,
            audio_s={n: round(v, 3) for n, v in self._received.items()},
            utterances=len(self._finals),
            finals=tuple(self._finals),
            languages={k: round(v, 3) for k, v in langs.items()},
            duration_s=round(time.monotonic() - self._opened, 3),
            gaps=self.gaps,
            gap_s=round(self.gap_s, 3),
        )
        self._summary = summary
        self._notify("on_close", summary)
        self._emit_fn(summary)
        return summary

    # -- internals ------------------------------------------------------------------
    def _track(self, track: str | None) -> _Track:
        if track is None:
            return next(iter(self._tracks.values()))
        try:
            return self._tracks[track]
        except KeyError:
            raise AudioFormatError(f"unknown track {track!r}; this call has {list(self._tracks)}") from None

    def _emit(self, event: object) -> None:
        """Emit an event, then whatever the observers derive from it."""
        self._emit_fn(event)
        self._notify("on_event", event)

    def _notify(self, method: str, *args: object) -> None:
        """Call one observer hook on every observer and emit what they return.

        A broken observer is logged and skipped: it must not end the call or
        lose its summary."""
        for obs in self._observers:
            try:
                extra = getattr(obs, method)(*args)
            except Exception:  # noqa: BLE001
                log.exception("call %s: observer %s failed", self.info.call_id, method)
                continue
            for ev in extra or ():
                self._emit_fn(ev)

    def _feed(self, t: _Track, samples: np.ndarray, hold: bool = False) -> None:
        if len(samples) == 0:
            return
        t0 = t.queued / TARGET_RATE
        t.queued += len(samples)
        self._queue(("audio", t, samples, hold, t0))

    # -- the per-call queue (DSP thread) -----------------------------------------------
    @property
    def queued(self) -> int:
        """Audio chunks, splits and digits waiting for the DSP thread."""
        return len(self._inbox)

    async def settled(self) -> None:
        """Until everything pushed so far has been applied (at once without a DSP pool)."""
        while self._drainer is not None:
            await asyncio.gather(self._drainer, return_exceptions=True)

    def _queue(self, op: tuple) -> None:
        """Apply ``op`` now, or (with a DSP pool) after everything queued before it."""
        if self._dsp is None:
            self._apply(op, None)
            return
        self._inbox.append(op)
        if self._drainer is None:
            self._drainer = asyncio.ensure_future(self._drain())
            self._pending.add(self._drainer)
            self._drainer.add_done_callback(self._pending.discard)

    async def _drain(self) -> None:
        try:
            while self._inbox:
                ops = []
                while self._inbox:  # up to a jump: it resets the VAD, so audio after it waits
                    ops.append(self._inbox.popleft())
                    if ops[-1][0] == "jump":
                        break
                audio = [op for op in ops if op[0] == "audio"]
                try:
                    probs = await self._dsp.run(self._prepare, audio) if audio else []  # type: ignore[union-attr]
                except Exception:  # noqa: BLE001 - the segmenter then runs the VAD itself
                    log.exception("call %s: DSP job failed", self.info.call_id)
                    probs = [None] * len(audio)
                it = iter(probs)
                for op in ops:
                    try:
                        self._apply(op, next(it) if op[0] == "audio" else None)
                    except Exception:  # noqa: BLE001 - one bad chunk must not stop the call's queue
                        log.exception("call %s: applying %s failed", self.info.call_id, op[0])
        finally:
            self._drainer = None

    def _prepare(self, ops: list[tuple]) -> list[np.ndarray]:
        """On a DSP thread: the observers' numeric work, then the VAD, per chunk in order."""
        out = []
        for _, t, samples, _hold, t0 in ops:
            for prepare in self._preparers:
                try:
                    prepare(t.name, samples, t0)
                except Exception:  # noqa: BLE001 - its on_audio on the loop still sees the audio
                    log.exception("call %s: observer prepare_audio failed", self.info.call_id)
            out.append(t.vad(samples))  # type: ignore[misc]
        return out

    def _apply(self, op: tuple, probs: np.ndarray | None) -> None:
        """On the loop: one queued op, as push_audio / end_utterance / push_dtmf did inline."""
        if op[0] == "audio":
            _, t, samples, hold, t0 = op
            self._notify("on_audio", t.name, samples, t0)
            for ev in t.segmenter.feed(samples, hold=hold, probs=probs):
                self._handle_segment(t, ev)
            self._maybe_partial(t)
        elif op[0] == "jump":
            _, t, n = op
            for ev in t.segmenter.jump(n, t.vad_reset):
                self._handle_segment(t, ev)
            t.pause_partial = False
        elif op[0] == "split":
            for t in op[1]:
                for ev in t.segmenter.flush(op[2]):
                    self._handle_segment(t, ev)
        else:
            self._emit(op[1])

    def _segment(self, t: _Track, samples: np.ndarray, hold: bool = False) -> None:
        for ev in t.segmenter.feed(samples, hold=hold):
            self._handle_segment(t, ev)

    def _handle_segment(self, t: _Track, ev) -> None:
        if isinstance(ev, SpeechEnded):
            self._request_final(t, ev, t.shown)
            t.shown = False
            t.agreement.reset()
            t.partial_at = 0.0
            t.language = None
            t.pause_partial = False

    def _forced(self, t: _Track) -> tuple[str | None, str]:
        """The language a track is decoded in whatever it sounds like, and who set it."""
        if t.name in self.track_languages:
            return self.track_languages[t.name], "client"
        return self.language, self.language_source

    def _request(self, t: _Track, audio: np.ndarray, final: bool) -> AsrRequest:
        forced, source = self._forced(t)
        return build_request(t, audio, final, self.asr_config, forced, source)

    def _maybe_partial(self, t: _Track) -> None:
        seg = t.segmenter
        if seg.trailing_silence_s == 0:
            t.pause_partial = False
        if seg.active is None or t.partial_busy or self._closed:
            return
        audio = seg.active_audio()
        length = len(audio) / TARGET_RATE
        if seg.active_speech_s < self.config.min_partial_audio_s:
            return
        # a trailing pause may be the end of a request ("我要转人工。"): show what
        # was said now rather than at the next interval or the final
        pause = seg.trailing_silence_s
        paused = (
            self.config.pause_partial_ms > 0 and not t.pause_partial
            and pause >= self.config.pause_partial_ms / 1000 and length > t.partial_at
        )
        if paused:
            t.pause_partial = True
        elif t.partial_at > 0 and (length - t.partial_at < self.partial_interval()
                                   # a pause began: keep the recogniser free for its partial
                                   or (pause > 0 and self.config.pause_partial_ms > 0 and not t.pause_partial)):
            return
        t.partial_at = length
        t.partial_busy = True
        utt, start = seg.active, seg.active_start
        request = self._request(t, audio.copy(), final=False)
        if paused:  # served before other calls' partials
            request = dataclasses.replace(request, urgent=True)
            if pause >= 0.2 and self.asr_config.reuse_cache > 0:
                # the audio this utterance's final gets if the pause ends it, kept by the
                # recogniser: that final then reuses the encoder pass and the decode
                cut = seg.ending_audio().copy()
                c = self.asr_config  # speculate: its final's fallback and probe done now
                request = dataclasses.replace(request, audio=cut, cache=True, speculate=c.speculate,
                                              dialect_probe=c.speculate and c.dialect_probe
                                              and t.probes < c.dialect_probe_finals)
                length = len(cut) / TARGET_RATE
        fut = self._worker.submit(self.info.call_id, t.name, request, final=False)
        task = asyncio.ensure_future(self._on_partial(t, utt, start, length, fut, pause if paused else 0.0))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    def partial_interval(self) -> float:
        """Seconds of new audio between partials now: longer while the recogniser is busy."""
        c = self.config
        if c.partial_backoff <= 0:
            return c.partial_interval_s
        load = getattr(self._worker, "load", None)
        busy = load() if callable(load) else 0.0
        return min(max(c.partial_interval_s, c.partial_interval_max_s),
                   c.partial_interval_s * (1.0 + c.partial_backoff * busy))

    async def _on_partial(self, t: _Track, utt: int, start: float, length: float, fut, pause: float = 0.0) -> None:
        try:
            result = await fut
        except Exception:  # noqa: BLE001
            log.exception("call %s: partial failed", self.info.call_id)
            result = None
        finally:
            t.partial_busy = False
        # a partial of an utterance that ended while it was decoded (the pause partial: all
        # of it) whose final is not out yet is still shown: a request at the end of an
        # utterance ("我要转人工。") is heard here, not after the final it was decoded ahead of
        late = result is not None and t.segmenter.active != utt and utt > t.finished
        if result is None or self._closed or (t.segmenter.active != utt and not late):
            self.dropped_partials += result is not None
            return
        if late:
            stable, unstable = "", result.text.strip()
            if unstable:
                t.late_shown.add(utt)
        else:
            if self._forced(t)[0] is None and t.language is None and result.language_probability >= 0.5:
                t.language = result.language
            stable, unstable = t.agreement.update(result.text)
        if stable or unstable:
            t.shown = t.shown or not late
            self._emit(
                Partial(
                    self.info.call_id, t.name, utt, round(start, 3), round(start + length, 3),
                    stable, unstable, result.language, language_probability(result),
                    avg_logprob=round(result.avg_logprob, 4), compression_ratio=round(result.compression_ratio, 3),
                    pause_s=round(pause, 3),
                )
            )
        # audio kept arriving while we decoded: ask again if it is time
        self._maybe_partial(t)

    def _request_final(self, t: _Track, ev: SpeechEnded, shown: bool) -> None:
        if len(ev.audio) == 0:
            return
        previous = t.last_final
        if previous is not None and not previous.done():
            # the track's earlier final is still being decoded: this one is decoded after
            # it, so its language prior, prompt and probe budget include that final
            # whatever the machine's speed (they used to depend on which finished first)
            task = asyncio.ensure_future(self._final_after(t, ev, previous, shown))
        else:
            fut = self._worker.submit(
                self.info.call_id, t.name, self._request(t, ev.audio, final=True), final=True
            )
            task = asyncio.ensure_future(self._on_final(t, ev, fut, previous, shown))
        t.last_final = task
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
        self._finals_pending += 1
        task.add_done_callback(self._final_done)

    def _final_done(self, _task: asyncio.Future) -> None:
        self._finals_pending -= 1
        self._finals_changed.set()

    async def finals_drained(self, limit: int) -> None:
        """Return once at most ``limit`` finals of this call are pending, or the call
        has ended; woken by each final that completes, never by polling."""
        while self._finals_pending > limit and not self._closed:
            self._finals_changed.clear()
            await self._finals_changed.wait()

    @property
    def finals_pending(self) -> int:
        """Finals of this call not yet decoded (all tracks)."""
        return self._finals_pending

    async def _final_after(self, t: _Track, ev: SpeechEnded, previous: asyncio.Task, shown: bool) -> None:
        await asyncio.gather(previous, return_exceptions=True)
        try:
            fut = self._worker.submit(
                self.info.call_id, t.name, self._request(t, ev.audio, final=True), final=True
            )
        except RuntimeError as e:  # the worker stopped (server shutting down)
            fut = asyncio.get_running_loop().create_future()
            fut.set_exception(e)
        await self._on_final(t, ev, fut, None, shown)

    async def _on_final(self, t: _Track, ev: SpeechEnded, fut, previous, shown: bool) -> None:
        try:
            result = await fut
        except Exception as e:  # noqa: BLE001
            log.exception("call %s: final failed", self.info.call_id)
            result = e
        if previous is not None:  # finals of a track go out in order
            await asyncio.gather(previous, return_exceptions=True)
        t.finished = max(t.finished, ev.utterance)
        shown = shown or ev.utterance in t.late_shown
        t.late_shown.discard(ev.utterance)
        if isinstance(result, BaseException):
            # the audio is gone for the recogniser: say so rather than drop it silently
            self._emit(CallError(self.info.call_id, "final_failed",
                                 f"recognition failed for utterance {ev.utterance}: {type(result).__name__}: {result}",
                                 track=t.name, utterance=ev.utterance, start=round(ev.start, 3),
                                 end=round(ev.end, 3)))
            return
        if result is None:
            return
        text = result.text
        # Whisper's "no speech" guess plus a poor score: a cough, not words. But once
        # partials showed text, the final is sent (its scores say how sure it is)
        # rather than letting that text vanish.
        if result.no_speech_prob > 0.6 and result.avg_logprob < -1.0 and not shown:
            text = ""
        if not text:
            return
        final = Final(
            call_id=self.info.call_id,
            track=t.name,
            utterance=ev.utterance,
            start=round(ev.start, 3),
            end=round(ev.end, 3),
            text=text,
            language=result.language,
            language_probability=language_probability(result),
            avg_logprob=round(result.avg_logprob, 4),
            no_speech_prob=round(result.no_speech_prob, 4),
            reason=ev.reason,
            speech_s=round(ev.speech_s, 3),
            language_candidates=tuple((c, _round_prob(p)) for c, p in result.language_candidates),
            language_source=result.language_source,
            compression_ratio=round(result.compression_ratio, 3),
            temperature=result.temperature, fallback_needed=result.fallback_needed,
            dialect_probe=result.dialect_probe,
            dialect_scores=result.dialect_scores,
        )
        if result.language_source == "detected":
            t.evidence[result.language] = t.evidence.get(result.language, 0.0) + result.language_probability
        t.previous = (text, result.language)
        t.probes += result.dialect_probe is not None
        self._finals.append(final)
        self._emit(final)


__all__ = ["CallObserver", "CallSession", "Emit", "ObserverFactory"]
