"""The recogniser: one Whisper model (CTranslate2 via faster-whisper).

:func:`load_whisper` loads the model once. :class:`AsrEngine` transcribes
batches of short utterances (the streaming path) without padding every one to
Whisper's 30 s window: the audio is padded only up to a window of
``min_window_s`` rounded up to ``window_step_s``, which makes the encoder
several times cheaper on short utterances while keeping the text the same.
"""

from __future__ import annotations

import logging
import math
import os
import time
import dataclasses
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from voicetriage.asr.dialect import encoder_rows
from voicetriage.asr.safeguards import compression_ratio, cut_loops, is_loop, repeats
from voicetriage.asr.reuse import keep_speculated, take_speculated
from voicetriage.asr.registry import ResolvedModel, resolve_model
from voicetriage.core.config import AsrConfig
from voicetriage.core.errors import ModelError
from voicetriage.core.events import SAMPLE_RATE, AsrResult

log = logging.getLogger(__name__)

MAX_WINDOW_S = 30.0

# prompts for the dialect-probe experiment: the same audio decoded twice
PROBE_PROMPTS = {
    "cantonese": "嘅係唔咗佢冇喺哋乜嘢啲咁嚟",
    "mandarin": "以下是普通话的句子。",
}



def load_whisper(config: AsrConfig):
    """Resolve ``config.model`` through the registry and load it.

    Returns ``(WhisperModel, ResolvedModel)``. faster-whisper is imported
    here, not at module import, so ``import voicetriage`` stays light.
    """
    from faster_whisper import WhisperModel

    from voicetriage.asr.device import resolve_device

    config = resolve_device(config)  # a clear ConfigError for cuda without CUDA, GPU types on the CPU
    resolved = resolve_model(config.model, cache_dir=config.model_cache_dir)
    threads = config.cpu_threads or (os.cpu_count() or 1)
    try:
        model = WhisperModel(
            str(resolved.path),
            device=config.device,
            compute_type=config.compute_type,
            cpu_threads=threads,
            num_workers=inference_workers(config),
            local_files_only=True,
        )
    except (RuntimeError, ValueError, OSError) as e:
        raise ModelError(f"cannot load model {resolved.id!r} from {resolved.path}: {e}") from None
    log.info("loaded model %s from %s (%s, %s)", resolved.id, resolved.path, config.device, config.compute_type)
    return model, resolved


# Chinese varieties a caller may announce; Whisper (before large-v3) writes
# them all under "zh".
_LANGUAGE_ALIASES = {"cmn": "zh", "yue": "zh", "wuu": "zh", "hak": "zh", "nan": "zh", "zho": "zh", "eng": "en"}


def normalise_language(hint: str | None, multilingual: bool = True) -> str | None:
    """A client's language hint ("zh-CN", "yue-HK", "en") to a Whisper code.

    Returns ``None`` for no hint. Raises :class:`ValueError` for a language
    Whisper does not know.
    """
    from faster_whisper.tokenizer import _LANGUAGE_CODES

    if hint is None or hint == "" or hint == "auto":
        return None
    if not isinstance(hint, str):
        raise ValueError(f"language must be a string, got {hint!r}")
    primary = hint.strip().lower().replace("_", "-").split("-")[0]
    primary = _LANGUAGE_ALIASES.get(primary, primary)
    if primary not in _LANGUAGE_CODES:
        raise ValueError(f"unsupported language {hint!r}")
    if not multilingual and primary != "en":
        raise ValueError(f"language {hint!r} needs a multilingual model; this one is English-only")
    return primary


def inference_workers(config: AsrConfig) -> int:
    """How many decodes may run at once (``config.inference_workers``, 0: auto)."""
    if config.inference_workers > 0:
        return config.inference_workers
    cores = os.cpu_count() or 1
    return max(1, cores // max(1, config.cpu_threads or cores))


@dataclass(frozen=True)
class AsrRequest:
    """One stretch of 16 kHz float32 audio to transcribe.

    ``language`` set: decode in it (``language_source`` says who chose it:
    "client", "config" report probability 1.0; anything else, e.g. a
    partial's "provisional" language, reports the detector's own figure).
    ``language`` None: detect, restricted to ``languages`` (empty: all) and
    weighted by ``prior`` (per-language multiplicative factors built from the
    call's earlier finals). ``prompt`` is used only when the decided language
    is ``prompt_language`` (or that is None). ``final`` turns on the decoding
    safeguards (temperature fallback); ``dialect_probe`` runs the
    Cantonese/Mandarin two-prompt probe when the language is zh. ``urgent``: a
    partial asked on a pause (the utterance may be over: a request at its end is
    heard from it), served before other calls' partials. ``cache`` (partials):
    keep this decode for a final of exactly the same audio.
    """

    audio: np.ndarray
    language: str | None = None  # None: detect
    prompt: str | None = None  # previous text, to condition the decoder
    language_source: str | None = None
    languages: tuple[str, ...] = ()
    prior: tuple[tuple[str, float], ...] = ()
    prompt_language: str | None = None
    final: bool = False
    dialect_probe: bool = False
    urgent: bool = False
    # a partial whose audio is what the utterance's final will be if the pause it
    # stopped at ends it: its encoder row and greedy decode are kept for that final
    cache: bool = False
    # (a cached partial) also run the final's fallback and the probe (``dialect_probe``)
    # now and keep them with the row, so that final costs nothing new (asr.speculate)
    speculate: bool = False


def _round_prob(p: float) -> float:
    """A candidate's probability for events: four significant digits, so the small
    candidates the language signal reads (Vietnamese/Thai share beside zh 0.9999)
    survive, and never a rounded-up 1.0 for a detected language."""
    return min(float(f"{p:.4g}"), 0.9999) if p < 0.9999 else round(min(p, 0.999999), 6)


def decide_language(
    detected: list[tuple[str, float]],
    allowed: tuple[str, ...] = (),
    prior: tuple[tuple[str, float], ...] = (),
) -> tuple[str, tuple[tuple[str, float], ...]]:
    """The utterance's language from the detector's distribution.

    ``detected`` is ``(code, probability)`` for every language; it is
    renormalised over ``allowed`` (empty: all). The choice maximises
    probability x prior factor (a factor of 9 means the detector must be 9
    times surer of another language to switch). Returns the choice and the
    renormalised distribution, most likely first.
    """
    if allowed:
        keep = [(c, p) for c, p in detected if c in allowed]
        if not keep:  # detector knows none of them (cannot happen with Whisper codes)
            keep = [(c, 1.0) for c in allowed]
        total = sum(p for _, p in keep) or 1.0
        dist = [(c, p / total) for c, p in keep]
    else:
        dist = list(detected)
    dist.sort(key=lambda cp: -cp[1])
    factors = dict(prior)
    best = max(dist, key=lambda cp: cp[1] * factors.get(cp[0], 1.0))[0]
    return best, tuple(dist)


@dataclass
class _Decode:
    text: str
    ids: list[int]
    avg_logprob: float
    no_speech_prob: float
    temperature: float
    compression_ratio: float


class AsrEngine:
    """Batched transcription of short utterances with one loaded model."""

    def __init__(self, model, resolved: ResolvedModel, config: AsrConfig) -> None:
        from faster_whisper.tokenizer import Tokenizer

        from voicetriage.asr.device import default_max_batch

        self.model = model
        self.resolved = resolved
        if config.max_batch == 0:  # sized for the device (asr.device.resolve_device)
            config = dataclasses.replace(config, max_batch=default_max_batch(config.device))
        self.config = config
        self._tokenizer_cls = Tokenizer
        self._tokenizers: dict[str | None, object] = {}
        self.multilingual = bool(model.model.is_multilingual)
        from voicetriage.asr.dialect import load_for

        # the dialect classifier, loaded once with the model (refused for another model)
        self.dialect = load_for(config.dialect_classifier, resolved.id, resolved.path) if self.multilingual else None
        from voicetriage.asr.reuse import ReuseCache, WorkCounters

        self.counters = WorkCounters()
        # partials' encoder rows and greedy decodes, for the final of the same audio (CPU
        # only: the rows are read back to host memory)
        on_cpu = str(getattr(model.model, "device", "cpu")) == "cpu"
        self._cache = ReuseCache(config.reuse_cache) if config.reuse_cache > 0 and on_cpu else None
        # a final's probe decodes run beside its fallback on another of the model's workers
        # (independent work; serial, the two add up on the final's path): asr.split_final_work
        n = inference_workers(config)
        self._side = ThreadPoolExecutor(max(1, n - 1), "voicetriage-side") if config.split_final_work and n > 1 else None
        # set by the inference worker: is another of its threads idle now? The probe goes beside
        # the fallback only then, so it never takes a turn another call's request was waiting for
        self.side_allowed: Callable[[], bool] | None = None

    @classmethod
    def load(cls, config: AsrConfig) -> "AsrEngine":
        from voicetriage.asr.device import resolve_device

        config = resolve_device(config)
        model, resolved = load_whisper(config)
        return cls(model, resolved, config)

    def window_seconds(self, duration: float) -> float:
        """The padded window for ``duration`` seconds of audio."""
        c = self.config
        step = max(c.window_step_s, 0.5)
        w = max(c.min_window_s, math.ceil(duration / step) * step)
        return min(w, MAX_WINDOW_S)

    def _tokenizer(self, language: str | None):
        tok = self._tokenizers.get(language)
        if tok is None:
            tok = self._tokenizer_cls(
                self.model.hf_tokenizer, self.multilingual, task="transcribe",
                language=language if self.multilingual else None,
            )
            self._tokenizers[language] = tok
        return tok

    def _prompt(self, lang: str, text: str | None, hotwords: bool = True) -> list[int]:
        tok = self._tokenizer(lang if self.multilingual else None)
        prompt: list[int] = []
        half = self.model.max_length // 2 - 1
        # [asr] hotwords on zh decodes, as faster-whisper places them: before the previous text
        hot = self.config.hotwords.strip() if hotwords and lang == "zh" and self.multilingual else ""
        if text or hot:
            prompt = [tok.sot_prev]
            if hot:
                prompt += tok.encode(" " + hot)[:half]
            if text:
                prompt += tok.encode(" " + text.strip())[-half:]
        return prompt + tok.sot_sequence + [tok.no_timestamps]

    def _generate(self, encoded, rows: list[int] | None, prompts, langs, max_len: int, temperature: float = 0.0):
        """Decode ``prompts`` on the encoder output (``rows`` of it; None: all).

        Returns, per prompt, the best :class:`_Decode` (at temperature > 0 the
        best of ``best_of`` samples by average log-probability). CTranslate2
        needs the start token at one position in a batch, so prompts of
        different lengths (previous text) are decoded in separate batches."""
        import ctranslate2

        if len({len(p) for p in prompts}) > 1:
            rows = rows if rows is not None else list(range(len(prompts)))
            out: list[_Decode | None] = [None] * len(prompts)
            for size in sorted({len(p) for p in prompts}):
                idx = [k for k, p in enumerate(prompts) if len(p) == size]
                part = self._generate(encoded, [rows[k] for k in idx], [prompts[k] for k in idx],
                                      [langs[k] for k in idx], max_len, temperature)
                for k, d in zip(idx, part):
                    out[k] = d
            return out
        if rows is not None:
            encoded = ctranslate2.StorageView.from_array(np.ascontiguousarray(np.asarray(encoded)[rows]))
        c = self.config
        if temperature > 0:
            kwargs = dict(beam_size=1, num_hypotheses=max(1, c.best_of), sampling_topk=0,
                          sampling_temperature=temperature)
        else:
            kwargs = dict(beam_size=c.beam_size)
        out = self.model.model.generate(
            encoded, prompts, max_length=max_len, return_scores=True, return_no_speech_prob=True,
            suppress_blank=True, suppress_tokens=[-1], no_repeat_ngram_size=c.no_repeat_ngram_size, **kwargs,
        )
        decodes = []
        for res, lang in zip(out, langs):
            tok = self._tokenizer(lang if self.multilingual else None)
            cands = []
            for k, seq in enumerate(res.sequences_ids):
                ids = [t for t in seq if t < tok.eot]
                text = tok.decode(ids).strip()
                score = float(res.scores[k]) if res.scores else 0.0
                cands.append(_Decode(text, ids, score, float(res.no_speech_prob), temperature,
                                     compression_ratio(text)))
            fine = [d for d in cands if d.compression_ratio <= c.compression_ratio_threshold]
            decodes.append(max(fine or cands, key=lambda d: d.avg_logprob))
        return decodes

    def _loops(self, d: _Decode) -> bool:
        return d.compression_ratio > self.config.compression_ratio_threshold or repeats(d.text)

    def _needs_fallback(self, d: _Decode) -> bool:
        c = self.config
        if self._loops(d):
            return True
        if d.avg_logprob < c.log_prob_threshold:
            # Whisper's own "silence" case: no point sampling noise
            return not d.no_speech_prob > c.no_speech_threshold
        return False

    def _encode(self, audios: list[np.ndarray], window: float | None = None):
        import ctranslate2

        fe = self.model.feature_extractor
        longest = max(len(a) for a in audios) / SAMPLE_RATE
        window = window or self.window_seconds(min(longest, MAX_WINDOW_S))
        n = int(window * SAMPLE_RATE)
        feats = []
        for a in audios:
            a = np.asarray(a, dtype=np.float32)[:n]
            f = fe(np.pad(a, (0, n - len(a))), padding=0)
            feats.append(f[:, : int(window * 100)])
        frames = min(f.shape[1] for f in feats)
        batch = np.ascontiguousarray(np.stack([f[:, :frames] for f in feats]).astype(np.float32))
        return self.model.model.encode(ctranslate2.StorageView.from_array(batch), to_cpu=False), longest

    def detect_languages(self, audios: list[np.ndarray]) -> list[list[tuple[str, float]]]:
        """The detector's full distribution for each stretch of audio (at most
        30 s is heard), on short padded windows like the streaming path."""
        if not self.multilingual:
            return [[("en", 1.0)] for _ in audios]
        out = []
        for k in range(0, len(audios), max(1, self.config.max_batch)):
            encoded, _ = self._encode(audios[k : k + max(1, self.config.max_batch)])
            for row in self.model.model.detect_language(encoded):
                out.append([(t[2:-2], float(p)) for t, p in row])
        return out

    def transcribe_batch(self, requests: list[AsrRequest]) -> list[AsrResult]:
        """Transcribe several utterances in one encoder/decoder batch.

        All items are padded to the largest window in the batch and encoded
        once; language detection, decoding, the fallback and the dialect probe
        all reuse that encoder output. Blocking: call it from the inference
        thread, never from the event loop.
        """
        if not requests:
            return []
        c = self.config
        if self._cache is None and any(r.speculate for r in requests):  # nowhere to keep it
            requests = [dataclasses.replace(r, speculate=False, dialect_probe=r.dialect_probe and r.final)
                        for r in requests]
        kind = "finals" if requests[0].final else "partials"  # the worker never mixes them
        self.counters.add(kind, len(requests))
        encoded, longest, detections, entries, keys, window = self._encode_reusing(requests)
        decided: list[tuple[str, float, tuple[tuple[str, float], ...], str]] = []
        for i, r in enumerate(requests):
            if not self.multilingual:
                decided.append(("en", 1.0, (("en", 1.0),), "model"))
                continue
            lang, dist = decide_language(detections[i], tuple(r.languages), tuple(r.prior))
            if r.language:
                source = r.language_source or "client"
                _, dist = decide_language(detections[i], tuple(r.languages) and tuple(set(r.languages) | {r.language}))
                p = 1.0 if source in ("client", "config") else dict(dist).get(r.language, 0.0)
                decided.append((r.language, p, dist[:5], source))
            else:
                decided.append((lang, dict(dist)[lang], dist[:5], "detected"))

        langs = [d[0] for d in decided]
        prompts = [
            self._prompt(lang, r.prompt if r.prompt_language in (None, lang) else None)
            for r, lang in zip(requests, langs)
        ]
        # Whisper emits roughly 3-4 tokens per second of speech; capping the output
        # length stops a loop from running to 224 tokens.
        max_len = min(int(24 + 12 * longest), self.model.max_length // 2)
        best = self._greedy(encoded, requests, prompts, langs, max_len, entries, keys, detections, window)
        due = {i for i, r in enumerate(requests) if r.final and self._needs_fallback(best[i])}
        # a final whose pause partial already ran its fallback and probe takes them
        settled, probes = take_speculated(requests, entries, prompts, max_len, best)
        self.counters.add("speculation_used", sum(  # extra work of a partial, taken
            1 for i, r in enumerate(requests) if r.final and (i in settled and best[i].temperature > 0 or i in probes)))
        spec = 0.0

        # faster-whisper's generate_with_fallback, batched: the finals that fail the
        # compression-ratio / log-probability checks are sampled again, together,
        # at the next temperature, until they pass or the temperatures run out.
        failing = [i for i, r in enumerate(requests)
                   if (r.final or r.speculate) and i not in settled and self._needs_fallback(best[i])]
        tried: dict[int, list[_Decode]] = {i: [best[i]] for i in failing}
        # a loop gets the first fallback_loop_temperatures (2); a decode that is
        # only unsure (low log-probability: dialect speech the model cannot follow, where more
        # sampling rarely helps) the first fallback_logprob_temperatures (benchmarks/decode_cost.py)
        loops = {i for i in failing if self._loops(best[i])}
        budget = {i: c.fallback_loop_temperatures if i in loops else c.fallback_logprob_temperatures
                  for i in failing}
        self.counters.add("loop_finals", sum(1 for i in loops if requests[i].final))
        exhausted: list[int] = []
        beside = self._side is not None and failing and (self.side_allowed is None or self.side_allowed())
        side = self._side.submit(self._timed_probe, encoded, requests, langs, max_len, probes) if beside else None
        if beside:
            self.counters.add("probe_beside")
        for t in c.temperatures:
            if t <= 0:
                continue
            exhausted += [i for i in failing if len(tried[i]) > budget[i]]
            failing = [i for i in failing if len(tried[i]) <= budget[i]]
            if not failing:
                break
            # a prompt that may have led the decoder astray goes (prompt_reset_on_temperature)
            sub_prompts = [self._prompt(langs[i], None) if t >= 0.5 else prompts[i] for i in failing]
            t0 = time.perf_counter()
            again = self._generate(encoded, failing, sub_prompts, [langs[i] for i in failing], max_len, t)
            took = time.perf_counter() - t0
            self.counters.add("fallback", len(failing), took)
            n_loop = sum(1 for i in failing if i in loops)
            if n_loop:  # the part of the fallback spent on loops (a row costs what the batch costs)
                self.counters.add("fallback_loop", n_loop, took * n_loop / len(failing))
            spec += 0.0 if requests[0].final else took
            still = []
            for i, d in zip(failing, again):
                tried[i].append(d)
                if self._needs_fallback(d):
                    still.append(i)
                else:
                    best[i] = d
            failing = still
        for i in failing + exhausted:  # all failed: the best-scored decode that is not a loop
            fine = [d for d in tried[i] if not is_loop(d.text, c.compression_ratio_threshold)]
            chosen = max(fine or tried[i], key=lambda d: d.avg_logprob)
            best[i] = _Decode(chosen.text, chosen.ids, chosen.avg_logprob, chosen.no_speech_prob,
                              tried[i][-1].temperature, chosen.compression_ratio)

        fresh, took = side.result() if side is not None else self._timed_probe(encoded, requests, langs, max_len, probes)
        self.counters.add("probe", 2 * len(fresh), took)
        spec += 0.0 if requests[0].final else took
        if self._cache is not None and not requests[0].final:
            n_spec = keep_speculated(self._cache, requests, keys, window, prompts, max_len, best, fresh)
            self.counters.add("speculated", n_spec, spec)
        probes = {**probes, **{i: v[0] for i, v in fresh.items()}}
        t0 = time.perf_counter()
        dialects = self._dialect_scores(encoded, requests, langs)
        self.counters.add("dialect", len(dialects), time.perf_counter() - t0)

        results = []
        for i, (r, d) in enumerate(zip(requests, best)):
            lang, lp, dist, source = decided[i]
            text = d.text
            if r.final and is_loop(text, c.compression_ratio_threshold):
                text = cut_loops(text)  # the loop guard: one copy of the repeated run
                self.counters.add("loop_guard")
            results.append(
                AsrResult(
                    text=text,
                    language=lang,
                    language_probability=lp,
                    avg_logprob=d.avg_logprob,
                    no_speech_prob=d.no_speech_prob,
                    tokens=len(d.ids),
                    compression_ratio=d.compression_ratio,
                    language_candidates=tuple((code, _round_prob(p)) for code, p in dist),
                    language_source=source,
                    temperature=d.temperature,
                    fallback_needed=i in due,
                    dialect_probe=probes.get(i),
                    dialect_scores=dialects.get(i, ()),
                )
            )
        return results

    def _encode_reusing(self, requests: list[AsrRequest]):
        """Encoder output and detections for a batch; a final whose exact audio a
        partial encoded just before takes that partial's row and detection from
        the cache. Returns (encoded, longest s, detections, cache entries, keys, window)."""
        import ctranslate2

        from voicetriage.asr.reuse import audio_key

        n = len(requests)
        longest = max(len(r.audio) for r in requests) / SAMPLE_RATE
        window = self.window_seconds(min(longest, MAX_WINDOW_S))
        keys = [audio_key(r.audio) for r in requests] if self._cache is not None else [None] * n
        entries = [self._cache.get(k, window) if self._cache is not None and r.final else None
                   for k, r in zip(keys, requests)]
        miss = [i for i, e in enumerate(entries) if e is None]
        t0 = time.perf_counter()
        fresh = self._encode([requests[i].audio for i in miss], window)[0] if miss else None
        self.counters.add("encode", len(miss), time.perf_counter() - t0)
        self.counters.add("encode_reused", n - len(miss))
        if len(miss) == n:
            encoded = fresh
        else:  # some rows from the cache: one batch of host arrays
            rows = encoder_rows(fresh) if fresh is not None else None
            got = dict(zip(miss, rows)) if rows is not None else {}
            encoded = ctranslate2.StorageView.from_array(np.ascontiguousarray(
                np.stack([got[i] if entries[i] is None else entries[i].row for i in range(n)])))
        # The detector runs on every item: it is one decoder step, and a forced
        # language still gets the detector's opinion in its candidates.
        detections: list = [e.detection if e is not None else None for e in entries]
        if self.multilingual:
            todo = [i for i in range(n) if detections[i] is None]
            if todo:
                t0 = time.perf_counter()
                found = self.model.model.detect_language(fresh if len(todo) == len(miss) and fresh is not None
                                                         else encoded)
                if len(found) != len(todo):  # the whole batch was detected
                    found = [found[i] for i in todo]
                for i, row in zip(todo, found):
                    detections[i] = [(t[2:-2], float(p)) for t, p in row]
                self.counters.add("detect", len(todo), time.perf_counter() - t0)
        return encoded, longest, detections, entries, keys, window

    def _greedy(self, encoded, requests, prompts, langs, max_len, entries, keys, detections, window):
        """The greedy decode of every item; a final takes its partial's cached decode
        (same audio, language, prompt and length cap), and partials are cached."""
        from voicetriage.asr.reuse import Entry

        n = len(requests)
        best: list = [None] * n
        for i, e in enumerate(entries):
            got = e.decodes.get(tuple(prompts[i])) if e is not None else None
            # the same cap, or the decode ended (end of text) before either cap: greedy
            # decoding is deterministic, so a fresh decode would be the same
            if got is not None and (got[0] == max_len or len(got[1].ids) + len(prompts[i]) + 1 < min(got[0], max_len)):
                best[i] = got[1]
        todo = [i for i in range(n) if best[i] is None]
        if todo:
            t0 = time.perf_counter()
            got = self._generate(encoded, None if len(todo) == n else todo, [prompts[i] for i in todo],
                                 [langs[i] for i in todo], max_len)
            kind = "greedy_final" if requests[0].final else "greedy_partial"
            self.counters.add(kind, len(todo), time.perf_counter() - t0)
            for i, d in zip(todo, got):
                best[i] = d
        self.counters.add("greedy_reused", n - len(todo))
        keep = [i for i, r in enumerate(requests) if r.cache and not r.final]
        if self._cache is not None and keep:
            rows = encoder_rows(encoded)
            if rows is not None:
                for i in keep:
                    self._cache.put(keys[i], Entry(window, np.array(rows[i]), detections[i] if self.multilingual
                                                   else None, {tuple(prompts[i]): (max_len, best[i])}))
        return best

    def _dialect_scores(self, encoded, requests, langs) -> dict[int, tuple[tuple[str, float], ...]]:
        """The dialect classifier's margins on each zh final (pooled encoder output): per
        dialect, log-odds over Mandarin minus the classifier's cross-validated threshold."""
        if self.dialect is None:
            return {}
        rows = [i for i, r in enumerate(requests) if r.final and langs[i] == "zh"]
        if not rows:
            return {}
        from voicetriage.asr.dialect import encoder_rows, pool

        enc = encoder_rows(encoded)
        if enc is None:
            return {}
        out = {}
        for i in rows:
            f = pool(enc[i], len(requests[i].audio))
            if f is not None:
                out[i] = tuple(self.dialect.margins(f).items())
        return out

    def _timed_probe(self, *args) -> tuple[dict, float]:
        t0 = time.perf_counter()
        return self._dialect_probe(*args), time.perf_counter() - t0

    def _dialect_probe(self, encoded, requests, langs, max_len, skip=()) -> dict[int, tuple[float, int]]:
        """avg log-prob under the Cantonese prompt minus under the Mandarin prompt
        (:data:`PROBE_PROMPTS`), greedy, on the shared encoder output (not for the
        items in ``skip``), with the longer decode's length (prompt included)."""
        rows = [i for i, r in enumerate(requests) if r.dialect_probe and langs[i] == "zh" and i not in skip]
        if not rows or not self.multilingual:
            return {}
        texts = [PROBE_PROMPTS["cantonese"], PROBE_PROMPTS["mandarin"]]
        sel = [i for i in rows for _ in texts]
        prompts = [self._prompt("zh", t, hotwords=False) for _ in rows for t in texts]
        decodes = self._generate(encoded, sel, prompts, ["zh"] * len(sel), max_len)
        used = [len(d.ids) + len(p) for d, p in zip(decodes, prompts)]
        return {
            i: (round(decodes[2 * k].avg_logprob - decodes[2 * k + 1].avg_logprob, 4), max(used[2 * k : 2 * k + 2]))
            for k, i in enumerate(rows)
        }


__all__ = ["PROBE_PROMPTS", "AsrEngine", "AsrRequest", "decide_language", "is_loop", "cut_loops", "load_whisper", "inference_workers", "normalise_language", "SAMPLE_RATE"]
