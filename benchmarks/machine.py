"""What the numbers were measured on: CPU, cores, memory, load, library versions."""

from __future__ import annotations

import importlib.metadata as md
import os
import platform
import time
from pathlib import Path

LIBRARIES = (
    "voicetriage",
    "faster-whisper",
    "ctranslate2",
    "onnxruntime",
    "websockets",
    "numpy",
    "soxr",
    "opencc",
    "matplotlib",
)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def mem_total_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return 0.0


def load_average() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def versions(names=LIBRARIES) -> dict[str, str]:
    out = {}
    for n in names:
        try:
            out[n] = md.version(n)
        except md.PackageNotFoundError:
            pass
    return out


def describe() -> dict:
    return {
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": mem_total_gib(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_average_at_start": load_average(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "libraries": versions(),
    }


__all__ = ["describe", "load_average", "versions", "cpu_model"]
