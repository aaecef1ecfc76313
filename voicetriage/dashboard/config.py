"""The ``[dashboard]`` section: the supervisor live view and its memory bounds."""

from __future__ import annotations

from dataclasses import dataclass

from voicetriage.core.config import Config, build_section, opt


@dataclass(frozen=True)
class DashboardConfig:
    """``enabled``: serve ``/dashboard`` (on by default). ``ended_calls``: how many
    ended calls stay listed. Per call at most ``transcript_lines`` finals,
    ``hints`` hints and ``timeline_points`` points per signal are kept (older ones
    are forgotten), so memory stays bounded however long a call runs.
    ``subscriber_queue``: deltas a slow browser may fall behind by before it is
    told to resync."""

    enabled: bool = True
    ended_calls: int = opt(50, min=0, max=10000)
    transcript_lines: int = opt(200, min=1, max=100000)
    hints: int = opt(50, min=1, max=10000)
    timeline_points: int = opt(300, min=2, max=100000)
    subscriber_queue: int = opt(2000, min=10, max=1000000)


def dashboard_config(config: Config) -> DashboardConfig:
    return build_section(DashboardConfig, dict(config.extra.get("dashboard", {}) or {}), "dashboard", config.source)


__all__ = ["DashboardConfig", "dashboard_config"]
