"""Triage options of ``voicetriage serve`` (policy, profiles, sinks)."""

from __future__ import annotations

import argparse


def add_triage_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("triage (routing hints; also the [triage] config section, see docs/policy.md)")
    g.add_argument("--policy", metavar="FILE", help="routing policy TOML (default: the policy shipped with voicetriage)")
    g.add_argument("--profiles-db", metavar="PATH|URL",
                   help="customer profile store: a SQLite file or postgresql://USER@HOST:PORT/DB shared by all servers "
                        "(see `voicetriage profiles import`)")
    g.add_argument("--event-log", metavar="PATH", help="append-only JSONL log of every hint and final")
    g.add_argument("--webhook", metavar="URL", help="POST every hint as JSON to this URL (retries, bounded queue)")
    g.add_argument("--no-triage", action="store_true", help="transcribe only: no signals and no hints")


def triage_from_args(args: argparse.Namespace, config):
    """The [triage] section of ``config`` with the command line on top."""
    from voicetriage.triage.observer import triage_config
    from voicetriage.triage.policy import load_policy
    from voicetriage.triage.profiles import open_store

    tc = triage_config(
        config,
        policy=getattr(args, "policy", None),
        profiles_db=getattr(args, "profiles_db", None),
        webhook_url=getattr(args, "webhook", None),
        enabled=False if getattr(args, "no_triage", False) else None,
    )
    if tc.enabled:  # fail fast, before a model is loaded
        load_policy(tc.policy)
        store = open_store(tc.profiles_db, country=tc.country_code)
        if store is not None:
            store.close()
    return tc
