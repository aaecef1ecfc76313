"""``voicetriage serve``: the streaming websocket server."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal

from voicetriage.cli.bus_options import add_bus_options, bus_from_args
from voicetriage.cli.common import (
    TOKEN_ENV,
    add_auth_options,
    add_config_options,
    add_model_options,
    add_stream_options,
    config_from_args,
)
from voicetriage.cli.telephony_options import (
    add_telephony_options,
    describe,
    telephony_from_args,
)
from voicetriage.cli.triage_options import add_triage_options, triage_from_args

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="run the streaming server",
        description=(
            "Run the voicetriage websocket server. Native protocol on ws://HOST:PORT/ "
            "(see docs/protocol.md); GET /health answers load balancers. With --event-bus every "
            "event goes to a Redis Stream and /events shows the calls of every node; SIGHUP reloads "
            "the policy file (a bad file keeps the current policy). See docs/deployment.md."
        ),
    )
    p.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default 8765; 0 picks a free one)")
    p.add_argument("--max-calls", type=_max_calls, metavar="N|auto",
                   help="concurrent calls before new ones are refused (default auto: what this machine "
                        "measurably holds with the model, measured at start; docs/deployment.md)")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="server processes sharing the ports with SO_REUSEPORT, each with its own model "
                        "(default 1; needs a fixed --port)")
    p.add_argument("--worker-index", type=int, help=argparse.SUPPRESS)  # set by the --workers parent
    p.add_argument("--idle-timeout", type=float, dest="idle_timeout_s", help="seconds without a message that end a call (default 30)")
    add_config_options(p)
    add_auth_options(p)
    add_model_options(p)
    add_stream_options(p)
    add_triage_options(p)
    add_telephony_options(p)
    add_bus_options(p)
    p.set_defaults(func=run)


def _max_calls(text: str) -> int:
    if text.strip().lower() == "auto":
        return 0
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'auto', got {text!r}") from None
    if n < 0:
        raise argparse.ArgumentTypeError("must be 0 (auto) or more")
    return n


def build_app(args: argparse.Namespace, config):
    """The App with every protocol and extension this installation has."""
    from voicetriage.pipeline.engine import Engine
    from voicetriage.server.app import App
    from voicetriage.server.setup import install

    triage = triage_from_args(args, config)  # a bad policy or profile store fails before the model loads
    telephony = telephony_from_args(args, config)
    engine = Engine.load(config)
    workers = getattr(args, "workers", 1) or 1
    if workers > 1 and config.server.max_calls == 0:  # the processes share the cores
        import dataclasses

        config = dataclasses.replace(config, server=dataclasses.replace(
            config.server, target_utilisation=config.server.target_utilisation / workers))
    app = App(config, engine)
    # signals + policy per call; event log, webhook, /events; /twilio, /audiohook, AudioSocket
    app.installed = install(app, config, triage, telephony)
    app.triage = app.installed.triage
    return app


async def serve(args: argparse.Namespace) -> int:
    config = config_from_args(
        args, host=args.host, port=args.port, max_calls=args.max_calls, idle_timeout_s=args.idle_timeout_s,
        event_log=args.event_log,
    )
    config = with_token(config)
    bus_cfg = bus_from_args(args, config)  # a bad bus URL fails before the model loads
    if bus_cfg.url:
        from voicetriage.bus import require_redis

        require_redis()
    app = await asyncio.to_thread(build_app, args, config)
    worker = getattr(args, "worker_index", None)
    if worker is not None:
        import dataclasses
        import os

        app.reuse_port = True
        app.health_sections["worker"] = lambda: {"index": worker, "pid": os.getpid()}
        if bus_cfg.url:
            bus_cfg = dataclasses.replace(bus_cfg, node=f"{bus_cfg.node_id(config.server.port)}/{worker}")
    try:
        await app.start()
    except BaseException:
        app.engine.close()
        raise
    bus = None
    if bus_cfg.url:
        from voicetriage.bus.runtime import start_bus

        bus = await start_bus(app, bus_cfg)
        print(f"voicetriage: publishing events to {bus.publisher.health()['url']} stream "
              f"{bus_cfg.stream} as node {bus.publisher.node}", flush=True)
    ws, http = ("wss", "https") if config.server.certfile else ("ws", "http")
    print(f"voicetriage serving model {app.engine.model_id} on {ws}://{config.server.host}:{app.port}/ "
          f"(health: {http}://{config.server.host}:{app.port}/health, liveness: /healthz)", flush=True)
    if "/dashboard" in app.http_paths:
        print(f"voicetriage: supervisor live view on {http}://{config.server.host}:{app.port}/dashboard", flush=True)
    print(f"voicetriage: {app.capacity.describe()}", flush=True)
    for line in describe_auth(app):
        print(line, flush=True)
    for line in describe(telephony_from_args(args, config), config.server.host, app.port, app.tcp_ports):
        print(line, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, _reload_policy, app)
    await stop.wait()
    print("voicetriage: shutting down, flushing calls", flush=True)
    watchdog = loop.call_later(SHUTDOWN_REPORT_S, _report_stuck_tasks)
    await app.stop()
    if bus is not None:
        await bus.aclose()  # publish what the last calls flushed
    watchdog.cancel()
    app.engine.close()
    return 0


SHUTDOWN_REPORT_S = 25.0


def with_token(config):
    """The config with an API token: a generated one, printed once, when none is configured."""
    import dataclasses
    import os

    a = config.auth
    if a.insecure_no_auth or a.token or a.token_file:
        return config
    from voicetriage.server.auth import new_token

    token = new_token()
    os.environ[TOKEN_ENV] = token  # --workers children inherit it
    print(f"voicetriage: no API token configured; this run's token (shown once):\n  {token}\n"
          f"  clients send 'Authorization: Bearer <token>'; `voicetriage stream` reads {TOKEN_ENV}. "
          "Set VOICETRIAGE_API_TOKEN or --token-file to choose your own.", flush=True)
    return dataclasses.replace(config, auth=dataclasses.replace(a, token=token))


def describe_auth(app) -> list[str]:
    auth = app.auth
    if not auth.enabled:
        return ["WARNING: authentication is OFF (--insecure-no-auth): anyone who can reach this port can "
                "stream calls and read every transcript and hint"]
    lines = [f"  authentication: {auth.token_count} API token(s); browsers log in at /login"]
    lines.append("  Twilio: " + ("X-Twilio-Signature checked" if auth.twilio_token
                                 else "no TWILIO_AUTH_TOKEN: Twilio's own requests are refused"))
    lines.append("  AudioSocket peers allowed: " + ", ".join(str(n) for n in auth.audiosocket_allow))
    return lines


def _report_stuck_tasks() -> None:
    """Shutdown is taking too long: log what it is waiting for (operators and
    developers need the stack, not a silent hang)."""
    import io

    for task in asyncio.all_tasks():
        out = io.StringIO()
        task.print_stack(file=out)
        log.warning("shutdown still waiting on %r:\n%s", task, out.getvalue())


def _reload_policy(app) -> None:
    from voicetriage.triage.observer import reload_policy

    if getattr(app, "triage", None) is not None:
        reload_policy(app.triage)


def run(args: argparse.Namespace) -> int:
    if args.workers < 1:
        from voicetriage.core.errors import ConfigError

        raise ConfigError(f"--workers must be 1 or more, got {args.workers}")
    if args.workers > 1 and args.worker_index is None:
        from voicetriage.cli.workers import supervise
        from voicetriage.core.errors import ConfigError

        config = with_token(config_from_args(args, host=args.host, port=args.port))
        if config.server.port == 0:
            raise ConfigError("--workers needs a fixed --port (port 0 would give each worker its own)")
        bus_from_args(args, config)  # a bad option fails here, not N times
        return supervise(args.workers)
    return asyncio.run(serve(args))
