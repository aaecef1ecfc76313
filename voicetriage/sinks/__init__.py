"""Hint sinks: where hints (and finals) go besides the call's own connection.

Each sink subscribes to the server's :class:`~voicetriage.core.hub.EventHub`:

* :class:`~voicetriage.sinks.jsonl.JsonlEventLog`: append-only JSONL file;
* :class:`~voicetriage.sinks.webhook.WebhookSink`: HTTP POST with retries;
* :mod:`voicetriage.sinks.events_ws`: the ``/events`` websocket route.

:func:`install_sinks` wires the configured ones into an App.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from voicetriage.sinks.jsonl import JsonlEventLog
from voicetriage.sinks.webhook import WebhookSink

if TYPE_CHECKING:
    from voicetriage.server.app import App
    from voicetriage.triage.observer import TriageConfig


class Sinks:
    """The sinks installed on one App; ``close()`` flushes and detaches them."""

    def __init__(self) -> None:
        self.event_log: JsonlEventLog | None = None
        self.webhook: WebhookSink | None = None
        self._unsubscribe: list[Callable[[], None]] = []

    def close(self) -> None:
        for u in self._unsubscribe:
            u()
        self._unsubscribe.clear()
        if self.webhook is not None:
            self.webhook.close()
        if self.event_log is not None:
            self.event_log.close()


def install_sinks(app: "App", triage: "TriageConfig", *, event_log: str | None = None,
                  events_route: bool = True) -> Sinks:
    """Subscribe the configured sinks to ``app.hub`` and add the ``/events`` route."""
    from voicetriage.sinks import events_ws

    sinks = Sinks()
    try:
        if event_log:
            sinks.event_log = JsonlEventLog(event_log, triage.event_log_events)
            sinks._unsubscribe.append(app.hub.subscribe(sinks.event_log))
        if triage.webhook_url:
            sinks.webhook = WebhookSink(
                triage.webhook_url,
                kinds=triage.webhook_events,
                timeout_s=triage.webhook_timeout_s,
                retries=triage.webhook_retries,
                backoff_s=triage.webhook_backoff_s,
                queue_size=triage.webhook_queue,
                token=triage.webhook_token,
            )
            sinks._unsubscribe.append(app.hub.subscribe(sinks.webhook))
            webhook = sinks.webhook
            app.metrics.add_source("webhook", lambda: webhook.stats.dropped)
            app.health_sections["webhook"] = webhook.health
    except Exception:
        sinks.close()
        raise
    if events_route:
        events_ws.install(app, token=triage.events_token)
    return sinks


__all__ = ["JsonlEventLog", "WebhookSink", "Sinks", "install_sinks"]
