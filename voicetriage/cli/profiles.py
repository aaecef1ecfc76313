"""``voicetriage profiles``: fill and inspect the customer profile store (SQLite)."""

from __future__ import annotations

import argparse
import json
import sys

from voicetriage.core.config import load_config
from voicetriage.core.errors import ConfigError

DEFAULT_DB = "voicetriage-profiles.sqlite3"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "profiles",
        help="import and show customer profiles (caller number -> age, language, flags)",
        description=(
            "The customer profile store is a SQLite file, or a PostgreSQL database shared by every "
            "server (--db postgresql://USER@HOST/DB; needs pip install 'voicetriage[bus]'). At call start the caller number is looked "
            "up in it; a match can route the call before any speech (e.g. callers aged 65+ to a "
            "senior agent). Start the server with --profiles-db PATH to use it."
        ),
    )
    psub = p.add_subparsers(dest="profiles_command", metavar="ACTION", required=True)

    imp = psub.add_parser(
        "import",
        help="import profiles from a CSV file",
        description=(
            "Import a CSV with a header row. Columns: number (required; also phone, caller_id), "
            "birth_year, age_band (<40, 40-64, 65+), language (mandarin, cantonese, wu, hakka, minnan, "
            "english, other; ISO codes such as yue and names such as 粤语 work too), flags (vulnerable, prefers_human, ... separated by ; or |), "
            "customer_id, note. Other columns are ignored. Rows with a number already in the store "
            "replace it. Bad rows are reported with their line number and skipped; the exit status "
            "is 1 when a row was skipped."
        ),
    )
    imp.add_argument("file", metavar="FILE.csv")
    _common(imp)
    imp.add_argument("--replace", action="store_true", help="empty the store first (same transaction)")
    imp.add_argument("--strict", action="store_true", help="write nothing if any row is bad")
    imp.set_defaults(func=run_import)

    show = psub.add_parser("show", help="show the profile of a caller number",
                           description="Look a number up the way the server does at call start.")
    show.add_argument("number")
    _common(show)
    show.add_argument("--json", action="store_true", help="print the profile signal the policy would see, as JSON")
    show.set_defaults(func=run_show)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", metavar="PATH|URL",
                   help=f"profile database: a SQLite file or postgresql://USER@HOST:PORT/DB (default: [triage] profiles_db of --config, else ./{DEFAULT_DB})")
    p.add_argument("--config", metavar="FILE", help="TOML config file (reads its [triage] section)")
    p.add_argument("--country", metavar="CODE",
                   help="country code for national numbers (default: [triage] country_code, else 86)")


def _settings(args: argparse.Namespace) -> tuple[str, str]:
    from voicetriage.triage.observer import triage_config

    tc = triage_config(load_config(args.config))
    db = args.db or tc.profiles_db or DEFAULT_DB
    country = args.country or tc.country_code
    if not country.isdigit() or not 1 <= len(country) <= 3:
        raise ConfigError(f"country code must be 1 to 3 digits, got {country!r}")
    return db, country


def run_import(args: argparse.Namespace) -> int:
    from voicetriage.triage.profiles import connect_store

    db, country = _settings(args)
    with connect_store(db, country=country, create=True) as store:
        report = store.import_csv(args.file, replace_all=args.replace, strict=args.strict)
        total = len(store)
    for prob in report.problems:
        print(f"{report.path}:{prob.line}: {prob.message}", file=sys.stderr)
    for dup in report.duplicates:
        print(f"{report.path}:{dup.line}: warning: {dup.message}", file=sys.stderr)
    if report.ignored_columns:
        print(f"{report.path}: ignored column(s): {', '.join(report.ignored_columns)}", file=sys.stderr)
    if args.strict and report.problems:
        print(f"{report.path}: {len(report.problems)} bad row(s); nothing imported (--strict)", file=sys.stderr)
        return 1
    print(f"imported {report.imported} profile(s) ({report.replaced} replaced) into {store.path}; "
          f"{len(report.problems)} row(s) skipped; {total} in the store")
    return 1 if report.problems else 0


def run_show(args: argparse.Namespace) -> int:
    import datetime as _dt

    from voicetriage.core.serialize import to_message
    from voicetriage.triage.profiles import (
        connect_store,
        normalise_number,
        profile_signal,
    )

    db, country = _settings(args)
    number = normalise_number(args.number, country)
    if number is None:
        print(f"voicetriage profiles: {args.number!r} is not a phone number", file=sys.stderr)
        return 2
    with connect_store(db, country=country) as store:
        profile = store.lookup(number)
    if profile is None:
        print(f"{number}: no profile in {store.path}", file=sys.stderr)
        return 1
    if args.json:
        sig = profile_signal("-", profile, year=_dt.date.today().year)
        print(json.dumps(to_message(sig), ensure_ascii=False, indent=2))
        return 0
    summary = profile.summary(_dt.date.today().year)
    rows = [
        ("number", profile.number),
        ("customer_id", profile.customer_id),
        ("birth_year", profile.birth_year),
        ("age", summary["age"]),
        ("age_band", summary["age_band"]),
        ("language", profile.language),
        ("flags", " ".join(profile.flags) or None),
        ("note", profile.note),
        ("updated_at", profile.updated_at),
    ]
    for k, v in rows:
        print(f"{k:12} {'-' if v is None else v}")
    return 0
