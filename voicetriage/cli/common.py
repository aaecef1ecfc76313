"""Options shared by several subcommands, and building the Config from them."""

from __future__ import annotations

import argparse

from voicetriage.core.config import Config, load_config


def add_config_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE", help="TOML config file ([asr], [stream], [server] sections)")


def add_model_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--model", help="registry model id (see `voicetriage models`; default: base) or a CTranslate2 Whisper directory")
    g.add_argument("--compute-type", help="CTranslate2 compute type (default int8)")
    g.add_argument("--device", help="cpu (default) or cuda")
    g.add_argument("--threads", type=int, help="CPU threads for inference (default 1; 0: one per core)")
    g.add_argument("--language", help="force one language for every call (e.g. zh, en); default: detect")
    g.add_argument("--languages", metavar="LIST", help="languages callers may speak, comma-separated (e.g. zh,en): detection is restricted to them ([asr] languages; default: any)")
    g.add_argument("--model-cache", metavar="DIR", help="where split weights are joined (default ~/.cache/voicetriage/models)")


def add_stream_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("segmentation")
    g.add_argument("--end-silence-ms", type=int, help="trailing silence that ends an utterance (default 500)")
    g.add_argument("--max-utterance-s", type=float, help="longest utterance before it is cut (default 15)")
    g.add_argument("--partial-interval-s", type=float, help="seconds of new audio between partials (default 1.0)")


def _split(value: str | None) -> list[str] | None:
    if value is None:
        return None
    return [x.strip() for x in value.split(",") if x.strip()]


def config_from_args(args: argparse.Namespace, **server: object) -> Config:
    get = lambda name: getattr(args, name, None)  # noqa: E731
    return load_config(
        get("config"),
        asr={
            "model": get("model"),
            "compute_type": get("compute_type"),
            "device": get("device"),
            "cpu_threads": get("threads"),
            "language": get("language"),
            "languages": _split(get("languages")),
            "model_cache_dir": get("model_cache"),
        },
        stream={
            "end_silence_ms": get("end_silence_ms"),
            "max_utterance_s": get("max_utterance_s"),
            "partial_interval_s": get("partial_interval_s"),
        },
        server=server,
    )
