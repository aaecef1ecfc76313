"""The engine: what a server or a batch run loads once and shares by every call."""

from __future__ import annotations

import dataclasses
import logging
from typing import Iterable, Mapping, Sequence

from voicetriage.asr.engine import AsrEngine, inference_workers, normalise_language
from voicetriage.asr.worker import InferenceWorker
from voicetriage.audio.codecs import AudioSpec
from voicetriage.audio.vad import VadModel
from voicetriage.core.config import Config
from voicetriage.core.errors import ConfigError, ProtocolError
from voicetriage.core.events import CallInfo
from voicetriage.pipeline.dsp import DspPool
from voicetriage.pipeline.session import CallObserver, CallSession, Emit

log = logging.getLogger(__name__)


class Engine:
    """One Whisper model, one VAD model and one inference worker for all calls."""

    def __init__(self, config: Config, asr: AsrEngine, vad: VadModel) -> None:
        self.config = config
        self.asr = asr
        self.vad = vad
        threads = inference_workers(asr.config)  # the loaded model's (device resolved)
        # the same backlog at which /health says "degraded": a partial then waits
        # behind finals and would show stale text anyway
        self.worker = InferenceWorker(asr, max_batch=asr.config.max_batch, threads=threads,
                                      shed_backlog=2 * threads)
        self.worker.start()
        # VAD and prosody of every call, off the event loop (0 threads: inline)
        self.dsp = DspPool(config.stream.dsp_threads)
        self._forced_language = normalise_language(config.asr.language, asr.multilingual)
        try:
            allowed = tuple(dict.fromkeys(normalise_language(x, asr.multilingual) for x in config.asr.languages))
        except ValueError as e:
            raise ConfigError(f"asr.languages: {e}") from None
        self.asr_config = dataclasses.replace(config.asr, languages=allowed)

    @classmethod
    def load(cls, config: Config) -> "Engine":
        """Resolve and load the model named in ``config.asr`` (blocking)."""
        return cls(config, AsrEngine.load(config.asr), VadModel())

    @property
    def model_id(self) -> str:
        return self.asr.resolved.id

    def open_call(
        self,
        info: CallInfo,
        spec: AudioSpec,
        emit: Emit,
        *,
        tracks: Sequence[str] = ("caller",),
        observers: Iterable[CallObserver] = (),
        track_languages: Mapping[str, str | None] | None = None,
    ) -> CallSession:
        """Start the pipeline of one call. Raises ProtocolError for a language
        hint the model cannot use.

        ``[asr] language`` wins over everything (source "config"); else the
        call's ``language_hint`` (source "client") is decoded on every track
        except those named in ``track_languages`` (a hint, or None: detect).
        """
        language, source = self._forced_language, "config"
        per_track: dict[str, str | None] = {}
        try:
            if language is None:
                source = "client"
                if info.language_hint:
                    language = normalise_language(info.language_hint, self.asr.multilingual)
                per_track = {
                    k: normalise_language(v, self.asr.multilingual) for k, v in (track_languages or {}).items()
                }
        except ValueError as e:
            raise ProtocolError(str(e), code="unsupported_language") from None
        return CallSession(
            info,
            spec,
            worker=self.worker,
            vad=self.vad,
            config=self.config.stream,
            emit=emit,
            language=language,
            tracks=tracks,
            observers=observers,
            track_languages=per_track,
            language_source=source,
            asr_config=self.asr_config,
            dsp=self.dsp,
        )

    def close(self) -> None:
        self.worker.stop()
        self.dsp.close()
