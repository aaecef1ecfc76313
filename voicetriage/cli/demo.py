"""``voicetriage demo``: start a server, stream the bundled sample call through it."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
from importlib import resources

from voicetriage.cli.common import (
    add_config_options,
    add_model_options,
    config_from_args,
)
from voicetriage.cli.stream import (
    add_client_options,
    exit_code,
    make_printer,
    options_from_args,
)
from voicetriage.client import stream_file
from voicetriage.server.auth import new_token


def sample_call_path() -> str:
    return str(resources.files("voicetriage") / "data" / "sample_call.wav")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="start a server and stream the bundled sample call through it",
        description=(
            "Start a voicetriage server on a free loopback port, stream a call into it in real "
            "time (the bundled 23 s sample call, or FILE) and print the transcript and hints live."
        ),
    )
    p.add_argument("file", nargs="?", help="audio file to stream instead of the bundled sample call")
    add_client_options(p, language=False)
    add_config_options(p)
    add_model_options(p)
    p.set_defaults(func=run)


async def demo(args: argparse.Namespace) -> int:
    from voicetriage.cli.serve import build_app

    config = config_from_args(args, host="127.0.0.1", port=0)
    if not config.auth.token and not config.auth.token_file and not config.auth.insecure_no_auth:
        # the demo's server and client are one process: a token of its own, never printed
        config = dataclasses.replace(config, auth=dataclasses.replace(config.auth, token=new_token()))
    print("loading model ...", flush=True)
    app = await asyncio.to_thread(build_app, args, config)
    await app.start()
    url = f"ws://127.0.0.1:{app.port}/"
    print(f"server on {url} (model {app.engine.model_id}); streaming the call in real time", flush=True)
    opts = dataclasses.replace(options_from_args(args), token=config.auth.token)
    try:
        events = await stream_file(url, args.file or sample_call_path(), opts, make_printer(args.json))
    finally:
        await app.stop()
        app.engine.close()
    return exit_code(events)


def run(args: argparse.Namespace) -> int:
    return asyncio.run(demo(args))
