"""EventHub: every call's events, for sinks that want all of them.

Protocol adapters publish each event they emit; sinks (event log, webhook,
``/events`` subscribers) subscribe. Callbacks run synchronously on the event
loop, so a sink that does I/O must queue the event and return at once.
"""

from __future__ import annotations

import logging
from typing import Callable

log = logging.getLogger(__name__)

Subscriber = Callable[[object], None]


class EventHub:
    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Add a subscriber; returns a function that removes it."""
        self._subscribers.append(callback)
        return lambda: self.unsubscribe(callback)

    def unsubscribe(self, callback: Subscriber) -> None:
        try:
            self._subscribers.remove(callback)
        except ValueError:
            pass

    def publish(self, event: object) -> None:
        for cb in list(self._subscribers):
            try:
                cb(event)
            except Exception:  # noqa: BLE001 - one bad sink must not stop the others
                log.exception("event subscriber %r failed", cb)

    def __len__(self) -> int:
        return len(self._subscribers)
