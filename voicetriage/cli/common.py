"""Options shared by several subcommands, and building the Config from them."""

from __future__ import annotations

import argparse
import os

from voicetriage.core.config import Config, load_config

TOKEN_ENV = "VOICETRIAGE_API_TOKEN"
TWILIO_ENV = "TWILIO_AUTH_TOKEN"  # the name Twilio's own libraries use


def add_config_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE",
                   help="TOML config file ([asr], [stream], [server], [auth], [telephony], [triage], [bus], "
                        "[signals]; see the README)")


def add_auth_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group(
        "security (also the [auth] config section; see docs/security.md). Secrets are read from the "
        "environment or files, never from the command line")
    g.add_argument("--token-file", metavar="FILE",
                   help="API tokens, one 'NAME TOKEN [SCOPES]' per line (default: the one token in "
                        "VOICETRIAGE_API_TOKEN; with neither, serve generates one and prints it once)")
    g.add_argument("--insecure-no-auth", action="store_true", default=None,
                   help="accept every connection without a credential (said loudly at every start)")
    g.add_argument("--twilio-auth-token-file", metavar="FILE",
                   help="the Twilio account's auth token, to check X-Twilio-Signature (default: TWILIO_AUTH_TOKEN)")
    g.add_argument("--audiosocket-allow", metavar="LIST",
                   help="addresses or networks that may open AudioSocket calls (default 127.0.0.1/32,::1/128)")
    g.add_argument("--certfile", metavar="PEM", help="TLS certificate chain: serve wss:// (with --keyfile)")
    g.add_argument("--keyfile", metavar="PEM", help="the TLS private key")


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
        server={**server, "certfile": get("certfile"), "keyfile": get("keyfile")},
        auth={
            "token": os.environ.get(TOKEN_ENV) or None,
            "token_file": get("token_file"),
            "insecure_no_auth": get("insecure_no_auth"),
            "twilio_auth_token": os.environ.get(TWILIO_ENV) or None,
            "twilio_auth_token_file": get("twilio_auth_token_file"),
            "audiosocket_allow": _split(get("audiosocket_allow")),
        },
    )
