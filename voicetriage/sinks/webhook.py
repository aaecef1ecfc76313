"""HTTP webhook sink: POST each event (hints by default) as JSON to a URL.

The hub callback only puts the event on a bounded queue and returns;
``senders`` background threads (4) post events in queue order with the standard library
(``urllib``), a timeout per attempt and retries with exponential backoff on
connection errors, timeouts, 408/425/429 and 5xx (``Retry-After`` is honoured,
capped). Other 4xx answers are not retried. When the queue is full the oldest
event is dropped (and counted): a slow or dead webhook never blocks a call,
and one slow delivery (timeouts, retries) never holds back the other events.
Receivers order a call's hints by ``seq``.

Every POST carries ``Idempotency-Key`` (stable across retries) so receivers
can drop the duplicates retries may cause.
"""

from __future__ import annotations

import collections
import logging
import random
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Iterable

from voicetriage import __version__
from voicetriage.core.errors import ConfigError
from voicetriage.core.serialize import dumps, to_message

log = logging.getLogger(__name__)

RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass
class WebhookStats:
    queued: int = 0
    sent: int = 0
    retries: int = 0
    failed: int = 0  # given up after the last retry or a non-retryable answer
    dropped: int = 0  # queue full: oldest event dropped
    unsent: int = 0  # still queued when the server stopped


class WebhookSink:
    """A hub subscriber that POSTs events of ``kinds`` to ``url``."""

    def __init__(
        self,
        url: str,
        *,
        kinds: Iterable[str] = ("hint",),
        timeout_s: float = 5.0,
        retries: int = 4,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        queue_size: int = 1000,
        token: str | None = None,
        senders: int = 4,
    ) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(f"webhook URL must be http:// or https://, got {url!r}")
        if timeout_s <= 0 or retries < 0 or backoff_s < 0 or queue_size < 1:
            raise ConfigError("webhook: timeout_s > 0, retries >= 0, backoff_s >= 0 and queue size >= 1 please")
        self.url = url
        self.kinds = frozenset(kinds)
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.token = token
        self.stats = WebhookStats()
        self._queue: collections.deque[tuple[str, str, bytes]] = collections.deque()
        self._size = queue_size
        self._cond = threading.Condition()
        self._stopping = False
        self._deadline = float("inf")
        self._threads = [threading.Thread(target=self._run, name=f"voicetriage-webhook-{i}", daemon=True)
                         for i in range(max(1, senders))]
        for t in self._threads:
            t.start()

    def __call__(self, event: object) -> None:
        kind = getattr(event, "kind", None)
        if kind not in self.kinds:
            return
        msg = to_message(event)
        key = _event_key(msg)
        body = dumps(msg).encode("utf-8")
        with self._cond:
            if self._stopping:
                log.warning("webhook closed; %s not sent: %s", kind, body[:200])
                return
            if len(self._queue) >= self._size:
                _, old_key, _ = self._queue.popleft()
                self.stats.dropped += 1  # under the lock: several threads count
                log.warning("webhook queue full (%d); dropped %s", self._size, old_key)
            self._queue.append((kind, key, body))
            self.stats.queued += 1
            self._cond.notify()

    def deliver(self, msg: dict) -> bool:
        """POST one message now, retrying as configured; blocks (``voicetriage relay``
        calls it from a thread and acknowledges the bus entry afterwards). True if delivered."""
        kind = str(msg.get("type", ""))
        body = dumps(msg).encode("utf-8")
        before = self.stats.sent
        self._deliver(kind, _event_key(msg), body)
        return self.stats.sent > before

    @property
    def pending(self) -> int:
        return len(self._queue)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stopping:
                    self._cond.wait()
                if not self._queue or (self._stopping and time.monotonic() >= self._deadline):
                    return
                kind, key, body = self._queue.popleft()
            self._deliver(kind, key, body)

    def _deliver(self, kind: str, key: str, body: bytes) -> None:
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": f"voicetriage/{__version__}",
            "X-Voicetriage-Event": kind,
            "Idempotency-Key": key,
        }
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        for attempt in range(self.retries + 1):
            if attempt:
                headers["X-Voicetriage-Attempt"] = str(attempt + 1)
            wait = None
            try:
                req = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
                with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                    resp.read()
                self._count("sent")
                return
            except urllib.error.HTTPError as e:
                problem = f"HTTP {e.code}"
                if e.code not in RETRY_STATUS:
                    self._count("failed")
                    log.error("webhook %s answered %s for %s %s; not retried", self.url, problem, kind, key)
                    return
                wait = _retry_after(e.headers.get("Retry-After"))
            except (urllib.error.URLError, OSError, TimeoutError) as e:
                problem = str(getattr(e, "reason", e))
            if attempt == self.retries:
                break
            if wait is None:
                wait = self.backoff_s * (2 ** attempt) * (1 + 0.1 * random.random())
            wait = min(wait, self.max_backoff_s)
            self._count("retries")
            log.warning("webhook %s: %s for %s %s; retry %d/%d in %.2f s",
                        self.url, problem, kind, key, attempt + 1, self.retries, wait)
            if not self._sleep(wait):
                break
        self._count("failed")
        log.error("webhook %s: gave up on %s %s: %s", self.url, kind, key, problem)

    def _count(self, what: str) -> None:
        with self._cond:
            setattr(self.stats, what, getattr(self.stats, what) + 1)

    def health(self) -> dict:
        with self._cond:
            s = self.stats
            return {"queued": s.queued, "sent": s.sent, "retries": s.retries, "failed": s.failed,
                    "dropped": s.dropped, "pending": len(self._queue), "unsent": s.unsent}

    def _sleep(self, seconds: float) -> bool:
        """Wait between retries; False when closing and past the drain deadline."""
        end = time.monotonic() + seconds
        with self._cond:
            while True:
                now = time.monotonic()
                if self._stopping and now >= self._deadline:
                    return False
                left = min(end, self._deadline) - now
                if left <= 0:
                    return True
                self._cond.wait(left)

    def close(self, timeout: float = 5.0) -> None:
        """Deliver what is queued for up to ``timeout`` seconds, then stop."""
        with self._cond:
            self._stopping = True
            self._deadline = time.monotonic() + timeout
            self._cond.notify_all()
        end = time.monotonic() + timeout + self.timeout_s + 1
        for t in self._threads:
            t.join(max(0.0, end - time.monotonic()))
        with self._cond:
            self.stats.unsent = len(self._queue)
        if self.stats.unsent:
            log.warning("webhook %s: %d event(s) not delivered at shutdown", self.url, self.stats.unsent)


def _event_key(msg: dict) -> str:
    kind = msg.get("type")
    call = msg.get("call_id", "")
    if kind == "hint":
        return f"{call}/hint/{msg.get('seq')}"
    if kind in ("final", "partial"):
        return f"{call}/{kind}/{msg.get('track')}/{msg.get('utterance')}/{msg.get('end')}"
    return f"{call}/{kind}/{msg.get('time', msg.get('end', ''))}"


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


__all__ = ["WebhookSink", "WebhookStats"]
