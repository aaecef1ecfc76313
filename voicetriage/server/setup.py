"""Assembling a server: triage, the hint sinks and the telephony endpoints on one App."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from voicetriage.core.config import Config

if TYPE_CHECKING:
    from voicetriage.dashboard.routes import Dashboard
    from voicetriage.server.app import App
    from voicetriage.server.telephony import TelephonyConfig
    from voicetriage.sinks import Sinks
    from voicetriage.triage.observer import TriageConfig, TriageRuntime


@dataclass
class Installed:
    """What :func:`install` added to an App (closed by ``app.stop()``)."""

    triage: "TriageRuntime"
    sinks: "Sinks"
    dashboard: "Dashboard | None" = None


def install(app: "App", config: Config, triage: "TriageConfig | None" = None,
            telephony: "TelephonyConfig | None" = None, **triage_kwargs: Any) -> Installed:
    """Per-call triage, then the sinks on the hub (event log, webhook, ``/events``), the
    supervisor view (``/dashboard``, unless ``[dashboard] enabled = false``), then
    ``/twilio``, ``/audiohook`` and AudioSocket when ``telephony`` is given."""
    from voicetriage.dashboard.config import dashboard_config
    from voicetriage.dashboard.routes import install as install_dashboard
    from voicetriage.server.telephony import install as install_telephony
    from voicetriage.sinks import install_sinks
    from voicetriage.triage.observer import install_triage, triage_config

    tc = triage or triage_config(config)
    runtime = install_triage(app, config, tc, **triage_kwargs)
    try:
        sinks = install_sinks(app, tc, event_log=config.server.event_log)
    except Exception:
        runtime.close()
        raise
    app.on_stop(sinks.close)  # after the calls' last finals and hints are published
    dashboard = install_dashboard(app, dashboard_config(config))
    if dashboard is not None:
        app.on_stop(dashboard.close)
    if telephony is not None:
        install_telephony(app, telephony)
    return Installed(runtime, sinks, dashboard)


__all__ = ["Installed", "install"]
