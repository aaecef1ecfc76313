"""Customer profile store: caller number -> what the hotline already knows.

The embedded store is one SQLite file (``voicetriage profiles import`` fills it
from CSV). At call start the caller number is normalised and looked up; a match
becomes a ``profile`` :class:`~voicetriage.triage.signals.Signal`, so the policy can
route the call before the caller says a word (like hotlines that flag callers
aged 65+ from the caller ID).

Numbers are stored normalised, E.164-like: ``+`` and 8 to 15 digits, with
spaces, dashes, dots and brackets removed, ``00`` read as ``+``, and national
numbers (with or without the trunk ``0``) prefixed with a default country code
(86 unless configured).
"""

from __future__ import annotations

import csv
import datetime as _dt
import re
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

from voicetriage.core.errors import ConfigError, VoiceTriageError
from voicetriage.core.events import Signal

AGE_BANDS = ("<40", "40-64", "65+")
# the language signal's labels (voicetriage.triage.signals.language), so one rule can
# test the profile and the voice alike; ISO 639-3 codes and common names are accepted
LANGUAGES = ("mandarin", "cantonese", "wu", "hakka", "minnan", "english", "other")
KNOWN_FLAGS = ("vulnerable", "prefers_human")

_LANGUAGE_ALIASES = {
    **{name: name for name in LANGUAGES},
    "cmn": "mandarin", "zh": "mandarin", "zh-cn": "mandarin", "putonghua": "mandarin", "普通话": "mandarin",
    "普通話": "mandarin", "国语": "mandarin", "國語": "mandarin", "华语": "mandarin",
    "yue": "cantonese", "zh-hk": "cantonese", "粤语": "cantonese", "粵語": "cantonese", "广东话": "cantonese",
    "廣東話": "cantonese", "白话": "cantonese",
    "wuu": "wu", "shanghainese": "wu", "吴语": "wu", "吳語": "wu", "上海话": "wu", "上海話": "wu",
    "hak": "hakka", "客家话": "hakka", "客家話": "hakka",
    "nan": "minnan", "hokkien": "minnan", "taiwanese": "minnan", "闽南语": "minnan", "閩南語": "minnan",
    "en": "english", "eng": "english",
}
_BAND_ALIASES = {
    "<40": "<40", "under 40": "<40", "under40": "<40", "0-39": "<40", "18-39": "<40",
    "40-64": "40-64", "40 to 64": "40-64",
    "65+": "65+", "65 and over": "65+", ">=65": "65+", "65plus": "65+", "senior": "65+",
}
_PUNCT = re.compile(r"[\s\-.()/\u00a0\u3000]")
_ANONYMOUS = {"", "anonymous", "unknown", "restricted", "private", "unavailable", "withheld"}
_FLAG_RE = re.compile(r"^[a-z][a-z0-9_]*$")

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS profiles (
    number      TEXT PRIMARY KEY,  -- normalised, E.164-like
    customer_id TEXT,
    birth_year  INTEGER,
    age_band    TEXT,              -- <40 | 40-64 | 65+ (when no birth year is known)
    language    TEXT,              -- mandarin | cantonese | wu | hakka | minnan | english | other
    flags       TEXT NOT NULL DEFAULT '',  -- space-separated, sorted
    note        TEXT,
    updated_at  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class ProfileError(VoiceTriageError):
    """A profile store that cannot be opened or a profile value that is wrong."""

    code = "bad_profile"


def normalise_number(raw: str | None, country: str = "86") -> str | None:
    """The E.164-like form of a caller number, or None if it is not a number.

    >>> normalise_number("138-0013 8000")
    '+8613800138000'
    >>> normalise_number("00852 9123 4567")
    '+85291234567'
    >>> normalise_number("sip:+44 20 7946 0000@pbx.example")
    '+442079460000'
    """
    if raw is None:
        return None
    s = str(raw).strip()
    if s.lower() in _ANONYMOUS:
        return None
    low = s.lower()
    for scheme in ("tel:", "sip:", "sips:"):
        if low.startswith(scheme):
            s = s[len(scheme):]
            break
    s = s.split("@", 1)[0].split(";", 1)[0]
    s = _PUNCT.sub("", s)
    if s.startswith("+"):
        digits = s[1:]
    elif s.startswith("00"):
        digits = s[2:]
    elif s.startswith("0"):
        digits = country + s[1:]  # national number with its trunk prefix
    elif country and s.startswith(country) and len(s) > 11:
        digits = s  # international number written without the plus
    else:
        digits = country + s
    if not digits.isdigit() or not 8 <= len(digits) <= 15 or digits[0] == "0":
        return None
    return "+" + digits


def normalise_language(raw: str) -> str:
    key = raw.strip().lower().replace("_", "-")
    if key not in _LANGUAGE_ALIASES:
        raise ProfileError(f"unknown language {raw!r} (use one of {', '.join(LANGUAGES)})")
    return _LANGUAGE_ALIASES[key]


def normalise_age_band(raw: str) -> str:
    key = re.sub(r"\s+", " ", raw.strip().lower().replace("–", "-"))
    key = _BAND_ALIASES.get(key, _BAND_ALIASES.get(key.replace(" ", ""), ""))
    if not key:
        raise ProfileError(f"unknown age band {raw!r} (use one of {', '.join(AGE_BANDS)})")
    return key


def normalise_flags(raw: str | Iterable[str]) -> tuple[str, ...]:
    parts = re.split(r"[;,|\s]+", raw) if isinstance(raw, str) else list(raw)
    flags = set()
    for p in parts:
        p = p.strip().lower().replace("-", "_")
        if not p:
            continue
        if not _FLAG_RE.match(p):
            raise ProfileError(f"bad flag {p!r} (letters, digits and _ only)")
        flags.add(p)
    return tuple(sorted(flags))


def age_band_of(age: int) -> str:
    return "<40" if age < 40 else "40-64" if age < 65 else "65+"


@dataclass(frozen=True)
class Profile:
    """One customer, keyed by normalised number."""

    number: str
    customer_id: str | None = None
    birth_year: int | None = None
    age_band: str | None = None
    language: str | None = None
    flags: tuple[str, ...] = ()
    note: str | None = None
    updated_at: str | None = None

    def age(self, year: int) -> int | None:
        """Age in ``year`` (within one year: the birthday is not stored)."""
        return year - self.birth_year if self.birth_year is not None else None

    def summary(self, year: int) -> dict[str, Any]:
        """What the policy sees: the profile's value in the ``profile`` signal."""
        age = self.age(year)
        return {
            "number": self.number,
            "customer_id": self.customer_id,
            "age": age,
            "age_band": age_band_of(age) if age is not None else self.age_band,
            "language": self.language,
            "flags": list(self.flags),
            "vulnerable": "vulnerable" in self.flags,
            "prefers_human": "prefers_human" in self.flags,
        }


def profile_signal(call_id: str, profile: Profile, *, year: int, time: float = 0.0,
                   fields: frozenset[str] | None = None) -> Signal:
    """The ``profile`` signal for a matched caller (a record on file: confidence 1).

    ``fields``: the routing inputs (what the policy's rules read); the rest of the
    record (number, customer id, other flags, notes) stays on the server."""
    value = profile.summary(year)
    if fields is not None:
        value = {k: v for k, v in value.items() if k in fields}
    return Signal(
        call_id=call_id,
        name="profile",
        value=value,
        confidence=1.0,
        time=time,
        evidence_time=time,
        evidence={"source": "profile_store", "updated_at": profile.updated_at},
    )


@dataclass(frozen=True)
class RowProblem:
    line: int
    message: str


@dataclass
class ImportReport:
    path: str
    imported: int = 0
    replaced: int = 0  # numbers that were already in the store
    problems: list[RowProblem] = field(default_factory=list)
    duplicates: list[RowProblem] = field(default_factory=list)
    ignored_columns: tuple[str, ...] = ()


_COLUMNS = {
    "number": "number", "phone": "number", "caller_id": "number", "msisdn": "number", "phone_number": "number",
    "customer_id": "customer_id", "id": "customer_id",
    "birth_year": "birth_year", "year_of_birth": "birth_year",
    "age_band": "age_band",
    "language": "language", "dialect": "language", "preferred_language": "language",
    "flags": "flags",
    "note": "note", "notes": "note",
}


def parse_row(values: Mapping[str, str], *, country: str, this_year: int) -> Profile:
    """A validated :class:`Profile` from one CSV row (keys: canonical column names)."""
    raw_number = (values.get("number") or "").strip()
    if not raw_number:
        raise ProfileError("empty number")
    number = normalise_number(raw_number, country)
    if number is None:
        raise ProfileError(f"not a phone number: {raw_number!r}")
    birth_year = None
    by = (values.get("birth_year") or "").strip()
    if by:
        if not re.fullmatch(r"\d{4}", by):
            raise ProfileError(f"birth_year must be a 4-digit year, got {by!r}")
        birth_year = int(by)
        if not this_year - 120 <= birth_year <= this_year:
            raise ProfileError(f"birth_year {birth_year} is not plausible")
    band = (values.get("age_band") or "").strip()
    age_band = normalise_age_band(band) if band else None
    if birth_year is not None and age_band is not None and age_band_of(this_year - birth_year) != age_band:
        # a birth year and a band that disagree point to a data problem upstream
        raise ProfileError(f"birth_year {birth_year} does not match age_band {age_band!r}")
    lang = (values.get("language") or "").strip()
    return Profile(
        number=number,
        customer_id=(values.get("customer_id") or "").strip() or None,
        birth_year=birth_year,
        age_band=age_band,
        language=normalise_language(lang) if lang else None,
        flags=normalise_flags(values.get("flags") or ""),
        note=(values.get("note") or "").strip() or None,
    )


class ProfileStore:
    """The SQLite profile store. Lookups are primary-key reads (well under a ms)."""

    def __init__(self, path: str | Path, *, country: str = "86", create: bool = False) -> None:
        self.path = Path(path)
        self.country = country
        if not create and not self.path.exists():
            raise ProfileError(f"profile database {self.path} does not exist (fill it with `voicetriage profiles import`)")
        if create:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            # one connection used from the event loop thread only; autocommit off
            self._db = sqlite3.connect(str(self.path), check_same_thread=False)
            self._db.execute("PRAGMA busy_timeout = 2000")
            if create:
                self._db.executescript(_SCHEMA)
                self._db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
                self._db.commit()
            row = self._db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        except sqlite3.DatabaseError as e:
            raise ProfileError(f"profile database {self.path}: {e}") from None
        if row is None or row[0] != str(SCHEMA_VERSION):
            raise ProfileError(f"profile database {self.path}: unsupported schema version {row and row[0]!r}")

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "ProfileStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def lookup(self, raw_number: str | None) -> Profile | None:
        """The profile for a caller number as it arrived from the platform, if any."""
        number = normalise_number(raw_number, self.country)
        if number is None:
            return None
        try:
            row = self._db.execute(
                "SELECT number, customer_id, birth_year, age_band, language, flags, note, updated_at "
                "FROM profiles WHERE number = ?",
                (number,),
            ).fetchone()
        except sqlite3.DatabaseError as e:
            raise ProfileError(f"profile database {self.path}: {e}") from None
        return _profile(row) if row else None

    def __len__(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM profiles").fetchone()[0])

    def __iter__(self) -> Iterator[Profile]:
        for row in self._db.execute(
            "SELECT number, customer_id, birth_year, age_band, language, flags, note, updated_at "
            "FROM profiles ORDER BY number"
        ):
            yield _profile(row)

    def upsert(self, profiles: Iterable[Profile], *, replace_all: bool = False) -> tuple[int, int]:
        """Insert or replace profiles in one transaction; returns (written, replaced).

        ``replace_all`` empties the store first, in the same transaction.
        """
        now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        written = replaced = 0
        try:
            with self._db:
                if replace_all:
                    self._db.execute("DELETE FROM profiles")
                for p in profiles:
                    exists = self._db.execute("SELECT 1 FROM profiles WHERE number = ?", (p.number,)).fetchone()
                    self._db.execute(
                        "INSERT OR REPLACE INTO profiles VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        (p.number, p.customer_id, p.birth_year, p.age_band, p.language, " ".join(p.flags), p.note, now),
                    )
                    written += 1
                    replaced += exists is not None
        except sqlite3.DatabaseError as e:
            raise ProfileError(f"profile database {self.path}: {e}") from None
        return written, replaced

    def clear(self) -> None:
        with self._db:
            self._db.execute("DELETE FROM profiles")

    def import_csv(self, path: str | Path, *, replace_all: bool = False, strict: bool = False,
                   this_year: int | None = None) -> ImportReport:
        """Import a CSV (header row required; see docs/policy.md for the columns).

        Bad rows are reported with their line number and skipped; with
        ``strict`` nothing is written if any row is bad. ``replace_all`` empties
        the store first (in the same transaction as the import).
        """
        path = Path(path)
        year = this_year or _dt.date.today().year
        report = ImportReport(path=str(path))
        good: dict[str, tuple[int, Profile]] = {}
        try:
            f = path.open(newline="", encoding="utf-8-sig")
        except FileNotFoundError:
            raise ProfileError(f"{path}: no such file") from None
        except OSError as e:
            raise ProfileError(f"{path}: cannot read it ({e.strerror})") from None
        with f:
            try:
                # the delimiter is taken from the header row alone: a sniffer
                # fooled by "vulnerable;prefers_human" in a flags cell would split rows wrongly
                first = f.readline()
                f.seek(0)
                delimiter = max(",;\t", key=lambda d: (first.count(d), d == ","))
                reader = csv.reader(f, delimiter=delimiter)
                header = next(reader, None)
                if header is None:
                    raise ProfileError(f"{path}: the file is empty (a header row is required)")
                columns = [_COLUMNS.get(h.strip().lower().replace(" ", "_").replace("-", "_")) for h in header]
                if "number" not in columns:
                    raise ProfileError(
                        f"{path}: line 1: no number column in the header {header!r} "
                        "(expected: number, birth_year, age_band, language, flags, customer_id, note)"
                    )
                dup = {c for c in columns if c and columns.count(c) > 1}
                if dup:
                    raise ProfileError(f"{path}: line 1: column(s) given twice: {', '.join(sorted(dup))}")
                report.ignored_columns = tuple(h for h, c in zip(header, columns) if c is None)
                for row in reader:
                    line = reader.line_num
                    if not any(cell.strip() for cell in row):
                        continue
                    if len(row) > len(header):
                        report.problems.append(RowProblem(line, f"{len(row)} fields, the header has {len(header)}"))
                        continue
                    values = {c: v for c, v in zip(columns, row) if c}
                    try:
                        p = parse_row(values, country=self.country, this_year=year)
                    except ProfileError as e:
                        report.problems.append(RowProblem(line, str(e)))
                        continue
                    if p.number in good:
                        first = good[p.number][0]
                        report.duplicates.append(RowProblem(line, f"{p.number} also on line {first}; this line wins"))
                    good[p.number] = (line, p)
            except UnicodeDecodeError as e:
                raise ProfileError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start}); save the CSV as UTF-8") from None
            except csv.Error as e:
                raise ProfileError(f"{path}: line {reader.line_num}: {e}") from None
        if strict and report.problems:
            return report
        report.imported, report.replaced = self.upsert((p for _, p in good.values()), replace_all=replace_all)
        return report


def _profile(row: tuple) -> Profile:
    number, customer_id, birth_year, age_band, language, flags, note, updated_at = row
    return Profile(
        number=number,
        customer_id=customer_id,
        birth_year=birth_year,
        age_band=age_band,
        language=language,
        flags=tuple(flags.split()) if flags else (),
        note=note,
        updated_at=updated_at,
    )


def connect_store(location: str | Path, *, country: str = "86", create: bool = False) -> ProfileStore:
    """A SQLite store for a path, a PostgreSQL one for ``postgresql://...`` (ProfileError)."""
    from voicetriage.triage.profiles_pg import PgProfileStore, is_postgres

    if is_postgres(str(location)):
        return PgProfileStore(str(location), country=country, create=create)
    return ProfileStore(location, country=country, create=create)


def open_store(path: str | Path | None, *, country: str = "86") -> ProfileStore | None:
    """The configured store (a SQLite path or a postgresql:// URL), or None when none is configured."""
    if path is None:
        return None
    try:
        return connect_store(path, country=country)
    except ProfileError as e:
        raise ConfigError(str(e)) from None


__all__ = [
    "AGE_BANDS",
    "LANGUAGES",
    "Profile",
    "ProfileError",
    "ProfileStore",
    "ImportReport",
    "RowProblem",
    "normalise_number",
    "normalise_language",
    "normalise_age_band",
    "normalise_flags",
    "profile_signal",
    "open_store",
    "connect_store",
]
