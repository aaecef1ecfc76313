"""Append-only JSONL event log: one line per hint and per final (configurable).

Each line is written with a single ``write(2)`` on an ``O_APPEND`` descriptor
before the hub callback returns, so a crash of the server process loses
nothing already emitted and concurrent writers never interleave lines. Each
line is then ``fsync``-ed by a background thread (right away; several lines
that arrive together share one fsync), which keeps the disk wait off the
event loop while a power loss costs at most the last few milliseconds.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Iterable

from voicetriage.core.errors import ConfigError
from voicetriage.core.serialize import dumps, to_message

log = logging.getLogger(__name__)


def event_line(event: object) -> bytes:
    """The log line of an event: its wire message plus ``logged_at`` (Unix time)."""
    msg = to_message(event)
    msg["logged_at"] = round(time.time(), 3)
    return (dumps(msg) + "\n").encode("utf-8")


class JsonlEventLog:
    """A hub subscriber that appends events of ``kinds`` to ``path``."""

    def __init__(self, path: str | Path, kinds: Iterable[str] = ("hint", "final"), *, fsync: bool = True) -> None:
        self.path = Path(path)
        self.kinds = frozenset(kinds)
        self.written = 0
        self.errors = 0
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        except OSError as e:
            raise ConfigError(f"event log {self.path}: cannot open it for appending ({e.strerror})") from None
        self._repair_tail()
        self._fsync = fsync
        self._dirty = threading.Event()
        self._stop = False
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        if fsync:
            self._thread = threading.Thread(target=self._sync_loop, name="voicetriage-eventlog-fsync", daemon=True)
            self._thread.start()

    def _repair_tail(self) -> None:
        """A line cut short by an earlier crash gets its newline, so the next record parses."""
        try:
            size = os.fstat(self._fd).st_size
            if size:
                with open(self.path, "rb") as f:
                    f.seek(size - 1)
                    if f.read(1) != b"\n":
                        os.write(self._fd, b"\n")
        except OSError:
            pass

    def __call__(self, event: object) -> None:
        if getattr(event, "kind", None) not in self.kinds:
            return
        self.write(event_line(event))

    def write(self, line: bytes) -> None:
        with self._lock:
            if self._fd < 0:
                log.warning("event log %s is closed; line not written: %s", self.path, line[:200])
                return
            try:
                n = os.write(self._fd, line)
                if n != len(line):  # a short write (disk full): finish the line
                    os.write(self._fd, line[n:])
                self.written += 1
            except OSError as e:
                self.errors += 1
                log.error("event log %s: write failed (%s); line lost: %s", self.path, e.strerror, line[:200])
                return
        if self._fsync:
            self._dirty.set()

    def _sync_loop(self) -> None:
        # fsync runs without the lock so writers never wait for the disk;
        # close() joins this thread before it closes the descriptor
        while True:
            self._dirty.wait()
            self._dirty.clear()
            try:
                os.fsync(self._fd)
            except OSError as e:
                log.error("event log %s: fsync failed (%s)", self.path, e.strerror)
            if self._stop:
                return

    def close(self) -> None:
        """Flush to disk and close; later events are logged as not written."""
        self._stop = True
        if self._thread is not None:
            self._dirty.set()
            self._thread.join(timeout=10)
        with self._lock:
            if self._fd >= 0:
                try:
                    os.fsync(self._fd)
                except OSError:
                    pass
                os.close(self._fd)
                self._fd = -1


__all__ = ["JsonlEventLog", "event_line"]
