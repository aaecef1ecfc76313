"""CPU time and resident memory of a server process and its children, from /proc.

No psutil needed: the smoke mode runs inside the test suite, which does not
install benchmark-only dependencies.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def _children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(x) for x in (task / "children").read_text().split()]
        except OSError:
            pass
    return out


def tree(pid: int) -> list[int]:
    """``pid`` and all its descendants that are alive."""
    seen, todo = [], [pid]
    while todo:
        p = todo.pop()
        if p in seen or not Path(f"/proc/{p}").exists():
            continue
        seen.append(p)
        todo += _children(p)
    return seen


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except (OSError, IndexError, ValueError):
            pass
    return total / _TICK


def thread_cpu_seconds(pid: int, tid: int | None = None) -> float | None:
    """CPU time of one thread (default: the main thread, where our server's event loop runs)."""
    try:
        fields = Path(f"/proc/{pid}/task/{tid or pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICK
    except (OSError, IndexError, ValueError):
        return None


def rss_bytes(pids: list[int]) -> int:
    total = 0
    for p in pids:
        try:
            total += int(Path(f"/proc/{p}/statm").read_text().split()[1]) * _PAGE
        except (OSError, IndexError, ValueError):
            pass
    return total


def system_cpu_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot."""
    parts = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = parts[3] + (parts[4] if len(parts) > 4 else 0)
    return (sum(parts) - idle) / _TICK, sum(parts) / _TICK


@dataclass
class Usage:
    wall_s: float
    cpu_s: float
    peak_rss: int
    mean_rss: float
    machine_busy: float  # fraction of all cores busy (everything on the machine)
    samples: list[tuple[float, float, int]] = field(default_factory=list, repr=False)

    @property
    def cpu_cores(self) -> float:
        """Average number of cores the server kept busy."""
        return self.cpu_s / self.wall_s if self.wall_s > 0 else 0.0


class Sampler:
    """Samples a process tree every ``interval`` seconds in a thread."""

    def __init__(self, pid: int, interval: float = 0.25) -> None:
        self.pid = pid
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._samples: list[tuple[float, float, int]] = []

    def __enter__(self) -> "Sampler":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        self._t0 = time.monotonic()
        pids = tree(self.pid)
        self._cpu0 = cpu_seconds(pids)
        self._sys0 = system_cpu_seconds()
        self._samples = [(0.0, 0.0, rss_bytes(pids))]
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="bench-sampler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def _sample(self) -> None:
        pids = tree(self.pid)
        self._samples.append((time.monotonic() - self._t0, cpu_seconds(pids) - self._cpu0, rss_bytes(pids)))

    def stop(self) -> Usage:
        self._stop.set()
        if self._thread:
            self._thread.join()
        self._sample()
        busy1, total1 = system_cpu_seconds()
        busy0, total0 = self._sys0
        rss = [s[2] for s in self._samples]
        wall, cpu = self._samples[-1][0], self._samples[-1][1]
        self.usage = Usage(
            wall_s=wall,
            cpu_s=cpu,
            peak_rss=max(rss),
            mean_rss=sum(rss) / len(rss),
            machine_busy=(busy1 - busy0) / (total1 - total0) if total1 > total0 else 0.0,
            samples=list(self._samples),
        )
        return self.usage


__all__ = ["Sampler", "Usage", "tree", "cpu_seconds", "rss_bytes", "thread_cpu_seconds"]
