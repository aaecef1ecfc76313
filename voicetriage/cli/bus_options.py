"""Event-bus options of ``voicetriage serve`` and ``voicetriage relay`` (also ``[bus]``)."""

from __future__ import annotations

import argparse


def add_bus_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("event bus (scale-out; also the [bus] config section, see docs/deployment.md)")
    g.add_argument("--event-bus", metavar="URL",
                   help="publish events to a Redis Stream at redis://HOST:PORT/DB (needs pip install 'voicetriage[bus]')")
    g.add_argument("--bus-stream", metavar="KEY", help="stream key (default voicetriage:events)")
    g.add_argument("--node-id", metavar="ID", help="this server's id on the bus (default HOSTNAME:PORT)")


def bus_from_args(args: argparse.Namespace, config):
    from voicetriage.bus import bus_config

    return bus_config(
        config,
        url=getattr(args, "event_bus", None),
        stream=getattr(args, "bus_stream", None),
        node=getattr(args, "node_id", None),
    )
