"""Evaluation of the caller signals on a labelled manifest, through the streaming pipeline.

Each clip of a manifest (the format of ``../shared/eval/manifest.jsonl``: one
JSON object per line with ``file``, ``id``, ``language`` and optional labels
``speaker_age``, ``speech_rate_chars_per_s_est``, ``emotion``, ``synthetic``)
is streamed as one call through :class:`~voicetriage.pipeline.engine.Engine` /
:class:`~voicetriage.pipeline.session.CallSession` with the triage observer (signal
extractors + the default routing policy), faster than real time by
``speed``. Every signal the extractors produce is recorded (not only the
ones the observer shows), and the scores per signal are computed from the
last value of each signal in each call.

Modules: ``manifest`` (the kit and its halves), ``runner`` (paced streaming of each clip),
``scoring`` (one scorer per signal, routing, requests), ``report`` (JSON and tables),
``textnorm`` (text normalisation and error rates). Nothing here is on the serving path.
:func:`run_manifest` returns an :class:`EvalReport`; ``voicetriage eval`` prints its tables
and writes its JSON.
"""

from voicetriage.evaluation.manifest import Clip, ClipRun, load_manifest, split_halves
from voicetriage.evaluation.report import EvalReport, render, render_routing
from voicetriage.evaluation.runner import dialect_probe, run_clip, run_manifest

__all__ = ["Clip", "ClipRun", "load_manifest", "split_halves", "EvalReport", "render", "render_routing",
           "dialect_probe", "run_clip", "run_manifest"]
