"""``voicetriage serve``: the streaming websocket server."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal

from .common import add_config_options, add_model_options, add_stream_options, config_from_args
from .telephony_options import add_telephony_options, describe, telephony_from_args
from .triage_options import add_triage_options, triage_from_args

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="run the streaming server",
        description=(
            "Run the voicetriage websocket server. Native protocol on ws://HOST:PORT/ "
            "(see docs/protocol.md); GET /health answers load balancers."
        ),
    )
    p.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default 8765; 0 picks a free one)")
    p.add_argument("--max-calls", type=int, help="concurrent calls before new ones are refused (default 64)")
    p.add_argument("--idle-timeout", type=float, dest="idle_timeout_s", help="seconds without a message that end a call (default 30)")
    add_config_options(p)
    add_model_options(p)
    add_stream_options(p)
    add_triage_options(p)
    add_telephony_options(p)
    p.set_defaults(func=run)


def build_app(args: argparse.Namespace, config):
    """The App with every protocol and extension this installation has."""
    from ..engine import Engine
    from ..server import App
    from ..telephony import install as install_telephony
    from ..triage import install_triage

    triage = triage_from_args(args, config)  # a bad policy or profile store fails before the model loads
    telephony = telephony_from_args(args, config)
    engine = Engine.load(config)
    app = App(config, engine)
    install_triage(app, config, triage)  # signals + policy per call, hint sinks, /events
    install_telephony(app, telephony)  # /twilio, /audiohook, AudioSocket TCP port
    return app


async def serve(args: argparse.Namespace) -> int:
    config = config_from_args(
        args, host=args.host, port=args.port, max_calls=args.max_calls, idle_timeout_s=args.idle_timeout_s,
        event_log=args.event_log,
    )
    app = await asyncio.to_thread(build_app, args, config)
    await app.start()
    print(f"voicetriage serving model {app.engine.model_id} on ws://{config.server.host}:{app.port}/ "
          f"(health: http://{config.server.host}:{app.port}/health)", flush=True)
    for line in describe(telephony_from_args(args, config), config.server.host, app.port, app.tcp_ports):
        print(line, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    print("voicetriage: shutting down, flushing calls", flush=True)
    await app.stop()
    app.engine.close()
    return 0


def run(args: argparse.Namespace) -> int:
    return asyncio.run(serve(args))
