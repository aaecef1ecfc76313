"""``voicetriage relay``: post the bus's hints to a webhook once, not once per node."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import socket
import sys

from voicetriage.cli.bus_options import add_bus_options, bus_from_args

log = logging.getLogger(__name__)

TOKEN_ENV = "VOICETRIAGE_WEBHOOK_TOKEN"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "relay",
        help="post hints from the event bus to a webhook (once per hint for all servers)",
        description=(
            "Read the event bus (a Redis Stream written by `voicetriage serve --event-bus`) with a "
            "consumer group and POST each event of --events kinds to --webhook, once: duplicates are "
            "dropped by (node, run, call id, seq) and an entry is acknowledged (XACK) only after its "
            "POST succeeded or was given up. Several relays with the same --group share the work "
            "(and take over each other's unacknowledged entries after --claim-idle seconds). Run the "
            "servers without --webhook when a relay posts for them. See docs/deployment.md."
        ),
    )
    p.add_argument("--config", metavar="FILE", help="TOML config file (reads [bus] and [triage] webhook_*)")
    add_bus_options(p)
    p.add_argument("--webhook", metavar="URL", required=True, help="POST each event as JSON to this URL")
    p.add_argument("--webhook-token-file", metavar="FILE",
                   help=f"send Authorization: Bearer with the token in FILE (or ${TOKEN_ENV}, or [triage] "
                        "webhook_token; never on the command line, where ps shows it)")
    p.add_argument("--events", metavar="KINDS", default="hint", help="comma-separated kinds to post (default hint)")
    p.add_argument("--group", default="voicetriage-webhook", help="consumer group (default voicetriage-webhook)")
    p.add_argument("--consumer", help="this relay's name in the group (default HOSTNAME-PID; keep it stable across restarts to resume its pending entries)")
    p.add_argument("--from-start", action="store_true",
                   help="a new group starts at the beginning of the stream (default: new events only)")
    p.add_argument("--claim-idle", type=float, default=60.0, metavar="S",
                   help="take over entries another relay left unacknowledged this long (default 60)")
    p.set_defaults(func=run)


def webhook_token(args: argparse.Namespace, configured: str | None) -> str | None:
    """The webhook's bearer token: --webhook-token-file, else $VOICETRIAGE_WEBHOOK_TOKEN,
    else the config's [triage] webhook_token."""
    import os

    from voicetriage.core.errors import ConfigError

    path = getattr(args, "webhook_token_file", None)
    if path:
        try:
            token = open(path, encoding="utf-8").read().strip()
        except OSError as e:
            raise ConfigError(f"--webhook-token-file {path}: {e.strerror or e}") from None
        if not token:
            raise ConfigError(f"--webhook-token-file {path} is empty")
        return token
    return os.environ.get(TOKEN_ENV) or configured


async def relay(args: argparse.Namespace) -> int:
    from voicetriage.bus import require_redis
    from voicetriage.bus.config import KINDS
    from voicetriage.bus.consumer import BusConsumer
    from voicetriage.core.config import load_config
    from voicetriage.core.errors import ConfigError
    from voicetriage.sinks.webhook import WebhookSink
    from voicetriage.triage.observer import triage_config

    config = load_config(args.config)
    bc = bus_from_args(args, config)
    if not bc.url:
        raise ConfigError("relay needs --event-bus redis://HOST:PORT/DB (or [bus] url)")
    kinds = {k.strip() for k in args.events.split(",") if k.strip()}
    if not kinds or kinds - set(KINDS):
        raise ConfigError(f"--events: unknown kind(s) {', '.join(sorted(kinds - set(KINDS))) or '(none)'} (use {', '.join(KINDS)})")
    require_redis()
    tc = triage_config(config)
    sink = WebhookSink(args.webhook, kinds=kinds, timeout_s=tc.webhook_timeout_s, retries=tc.webhook_retries,
                       backoff_s=tc.webhook_backoff_s, token=webhook_token(args, tc.webhook_token))
    consumer = BusConsumer(bc.url, group=args.group, consumer=args.consumer or f"{socket.gethostname()}-{__import__('os').getpid()}",
                           stream=bc.stream, start="0" if args.from_start else "$", kinds=kinds,
                           claim_idle_s=args.claim_idle)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    from redis.exceptions import RedisError

    posted = failed = 0
    backoff = 0.2
    opened = False
    print(f"voicetriage relay: {bc.stream} group {args.group} as {consumer.consumer} -> {args.webhook} "
          f"({', '.join(sorted(kinds))})", flush=True)
    try:
        while not stop.is_set():
            try:
                if not opened:
                    await consumer.open()
                    opened = True
                    print("voicetriage relay: connected to the bus", flush=True)
                events = await consumer.read()
                backoff = 0.2
            except (RedisError, OSError, asyncio.TimeoutError) as e:
                log.warning("relay: event bus unreachable (%s); retrying in %.1f s", e, backoff)
                opened = False  # re-create the group if Redis came back without it (NOGROUP)
                consumer._pending_done = False  # and re-read what this relay had not acknowledged
                try:
                    await asyncio.wait_for(stop.wait(), backoff)
                except asyncio.TimeoutError:
                    pass
                backoff = min(backoff * 2, 5.0)
                continue
            for ev in events:
                ok = await asyncio.to_thread(sink.deliver, ev.bus_message)
                posted += ok
                failed += not ok
                while True:  # the POST is done: the ack must reach Redis, or the entry comes back
                    try:
                        await consumer.ack(ev)
                        break
                    except (RedisError, OSError, asyncio.TimeoutError) as e:
                        log.warning("relay: ack of %s failed (%s); retrying", ev.id, e)
                        await asyncio.sleep(0.5)
    finally:
        await consumer.close()
        sink.close(timeout=1.0)
        print(f"voicetriage relay: stopped; {posted} posted, {failed} given up, "
              f"{consumer.duplicates} duplicate(s) dropped", file=sys.stderr, flush=True)
    return 0


def run(args: argparse.Namespace) -> int:
    return asyncio.run(relay(args))
