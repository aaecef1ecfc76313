"""The customer profile store on PostgreSQL, so every server sees the same profiles.

Same interface as the SQLite :class:`~voicetriage.triage.profiles.ProfileStore`
(lookup, import, show); chosen with ``--profiles-db postgresql://...``. It
needs psycopg 3 (``pip install 'voicetriage[bus]'``).

Lookups run at call start on the server's event loop, so they are kept short:
a primary-key read on a live connection with a server-side statement timeout.
When the database is unreachable the store does not wait for it: the lookup
fails at once (the call goes on without a profile, logged and counted) and a
background thread reconnects every ``retry_s`` seconds.
"""

from __future__ import annotations

import datetime as _dt
import logging
import threading
from typing import Iterable, Iterator

from voicetriage.core.errors import ConfigError
from voicetriage.triage.profiles import (
    SCHEMA_VERSION,
    Profile,
    ProfileError,
    ProfileStore,
    _profile,
    normalise_number,
)

log = logging.getLogger(__name__)

SCHEMES = ("postgresql://", "postgres://")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS profiles (
    number      TEXT PRIMARY KEY,
    customer_id TEXT,
    birth_year  INTEGER,
    age_band    TEXT,
    language    TEXT,
    flags       TEXT NOT NULL DEFAULT '',
    note        TEXT,
    updated_at  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
_COLUMNS = "number, customer_id, birth_year, age_band, language, flags, note, updated_at"


def is_postgres(location: object) -> bool:
    return isinstance(location, str) and location.startswith(SCHEMES)


def _psycopg():
    try:
        import psycopg
    except ImportError:
        raise ConfigError("a PostgreSQL profile store needs psycopg: pip install 'voicetriage[bus]'") from None
    return psycopg


def _redacted(url: str) -> str:
    if "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    return f"{scheme}://{creds.split(':', 1)[0]}@{host}"


class PgProfileStore(ProfileStore):
    """The PostgreSQL profile store (one table, the same columns as the SQLite one)."""

    def __init__(self, url: str, *, country: str = "86", create: bool = False,
                 connect_timeout_s: int = 2, statement_timeout_ms: int = 500, retry_s: float = 2.0) -> None:
        self.url = url
        self.path = _redacted(url)  # what messages name
        self.country = country
        self.connect_timeout_s = connect_timeout_s
        self.statement_timeout_ms = statement_timeout_ms
        self.retry_s = retry_s
        self.failed_lookups = 0
        self._psycopg = _psycopg()
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._reconnecting = False
        self._db = None
        try:
            self._db = self._connect()
            with self._db.transaction():
                if create:
                    self._db.execute(_SCHEMA)
                    self._db.execute("INSERT INTO meta VALUES ('schema_version', %s) ON CONFLICT DO NOTHING",
                                     (str(SCHEMA_VERSION),))
                row = self._db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        except self._psycopg.errors.UndefinedTable:
            raise ProfileError(f"profile database {self.path} has no profile tables "
                               "(fill it with `voicetriage profiles import --db URL`)") from None
        except self._psycopg.Error as e:
            raise ProfileError(f"profile database {self.path}: {str(e).strip()}") from None
        if row is None or row[0] != str(SCHEMA_VERSION):
            raise ProfileError(f"profile database {self.path}: unsupported schema version {row and row[0]!r}")

    def _connect(self):
        return self._psycopg.connect(
            self.url, connect_timeout=self.connect_timeout_s, autocommit=True,
            options=f"-c statement_timeout={self.statement_timeout_ms}",
            keepalives=1, keepalives_idle=10, keepalives_interval=5, keepalives_count=3,
        )

    def close(self) -> None:
        self._closed.set()
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    @property
    def available(self) -> bool:
        return self._db is not None

    def _lost(self, e: Exception) -> ProfileError:
        """The connection failed: drop it and reconnect in the background."""
        with self._lock:
            if self._db is not None:
                try:
                    self._db.close()
                except Exception:  # noqa: BLE001
                    pass
                self._db = None
            start = not self._reconnecting and not self._closed.is_set()
            self._reconnecting = self._reconnecting or start
        if start:
            log.error("profile database %s unreachable (%s); calls go on without profiles, reconnecting",
                      self.path, str(e).strip())
            threading.Thread(target=self._reconnect, name="voicetriage-profiles-pg", daemon=True).start()
        return ProfileError(f"profile database {self.path} unreachable: {str(e).strip()}")

    def _reconnect(self) -> None:
        while not self._closed.wait(self.retry_s):
            try:
                db = self._connect()
            except self._psycopg.Error:
                continue
            with self._lock:
                self._db = db
                self._reconnecting = False
            log.warning("profile database %s reachable again", self.path)
            return

    def _execute(self, sql: str, params: tuple = ()):
        with self._lock:
            db = self._db
        if db is None:
            self.failed_lookups += 1
            raise ProfileError(f"profile database {self.path} unreachable (reconnecting)")
        try:
            return db.execute(sql, params)
        except self._psycopg.OperationalError as e:
            if db.closed or db.broken:
                self.failed_lookups += 1
                raise self._lost(e) from None
            raise ProfileError(f"profile database {self.path}: {str(e).strip()}") from None
        except self._psycopg.Error as e:
            raise ProfileError(f"profile database {self.path}: {str(e).strip()}") from None

    def lookup(self, raw_number: str | None) -> Profile | None:
        number = normalise_number(raw_number, self.country)
        if number is None:
            return None
        row = self._execute(f"SELECT {_COLUMNS} FROM profiles WHERE number = %s", (number,)).fetchone()
        return _profile(row) if row else None

    def __len__(self) -> int:
        return int(self._execute("SELECT count(*) FROM profiles").fetchone()[0])

    def __iter__(self) -> Iterator[Profile]:
        for row in self._execute(f"SELECT {_COLUMNS} FROM profiles ORDER BY number").fetchall():
            yield _profile(row)

    def upsert(self, profiles: Iterable[Profile], *, replace_all: bool = False) -> tuple[int, int]:
        now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        written = replaced = 0
        db = self._db
        if db is None:
            raise ProfileError(f"profile database {self.path} unreachable")
        try:
            with db.transaction():
                if replace_all:
                    db.execute("DELETE FROM profiles")
                for p in profiles:
                    # xmax <> 0 tells an update of an existing row from an insert
                    row = db.execute(
                        f"INSERT INTO profiles ({_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
                        "ON CONFLICT (number) DO UPDATE SET customer_id = EXCLUDED.customer_id, "
                        "birth_year = EXCLUDED.birth_year, age_band = EXCLUDED.age_band, "
                        "language = EXCLUDED.language, flags = EXCLUDED.flags, note = EXCLUDED.note, "
                        "updated_at = EXCLUDED.updated_at RETURNING (xmax <> 0)",
                        (p.number, p.customer_id, p.birth_year, p.age_band, p.language, " ".join(p.flags), p.note, now),
                    ).fetchone()
                    written += 1
                    replaced += bool(row[0])
        except self._psycopg.Error as e:
            raise ProfileError(f"profile database {self.path}: {str(e).strip()}") from None
        return written, replaced

    def clear(self) -> None:
        self._execute("DELETE FROM profiles")


__all__ = ["PgProfileStore", "is_postgres"]
