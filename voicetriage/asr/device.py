"""Where Whisper runs: the device and compute type, checked before the model loads.

CTranslate2 (under faster-whisper) runs Whisper on the CPU or on an NVIDIA GPU
(``device = "cuda"``). A wrong combination used to fail deep inside the model
load, or silently fall back to another type; :func:`resolve_device` checks it
at start-up with CTranslate2's own answers and says what to change:

* ``cuda`` needs a CUDA build of CTranslate2 that sees a device
  (``ctranslate2.get_cuda_device_count() > 0``);
* ``float16``, ``int8_float16``, ``bfloat16`` and ``int8_bfloat16`` are GPU
  types: on the CPU they are refused rather than quietly run as another type;
* any other named type must be in ``ctranslate2.get_supported_compute_types``
  for the device;
* ``auto`` picks ``cuda`` when a device is there, else ``cpu``.

It also sizes the batching across calls for the device when the config leaves
it to us: ``max_batch = 0`` is 4 on the CPU (a bigger batch pads every
utterance to the longest and only adds latency on two cores) and 16 on CUDA
(a GPU decodes a batch in about the time of one utterance); ``inference_workers
= 0`` is 2 on CUDA (one batch on the GPU while the next is prepared).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from voicetriage.core.config import AsrConfig
from voicetriage.core.errors import ConfigError

GPU_COMPUTE_TYPES = ("float16", "int8_float16", "bfloat16", "int8_bfloat16")
AUTO_BATCH = {"cpu": 4, "cuda": 16}
CUDA_WORKERS = 2


def default_max_batch(device: str) -> int:
    return AUTO_BATCH.get(device, AUTO_BATCH["cpu"])


def cuda_devices(ct2: Any = None) -> tuple[int, str]:
    """(CUDA devices CTranslate2 sees, why none) without raising."""
    if ct2 is None:
        import ctranslate2 as ct2
    try:
        n = int(ct2.get_cuda_device_count())
    except Exception as e:  # noqa: BLE001 - a CPU-only build or a driver problem
        return 0, f"{type(e).__name__}: {e}"
    return n, "" if n else "ctranslate2.get_cuda_device_count() is 0"


def resolve_device(config: AsrConfig, ct2: Any = None) -> AsrConfig:
    """``config`` with ``device`` resolved (never "auto") and batching sized for it.

    Raises :class:`ConfigError` naming the setting to change. ``ct2`` is the
    ctranslate2 module (tests pass a stand-in).
    """
    if ct2 is None:
        import ctranslate2 as ct2
    device, ct = config.device, config.compute_type
    n, why = cuda_devices(ct2)
    if device == "auto":
        device = "cuda" if n else "cpu"
    if device == "cuda" and n == 0:
        raise ConfigError(
            f"asr.device = \"cuda\", but CTranslate2 {getattr(ct2, '__version__', '')} sees no CUDA device ({why}). "
            "Install a CUDA build of ctranslate2 with the CUDA 12 cuBLAS and cuDNN 9 libraries on the library path "
            "(docs/gpu.md), check `nvidia-smi`, or run on the CPU: --device cpu --compute-type int8"
        )
    if device == "cpu" and ct in GPU_COMPUTE_TYPES:
        raise ConfigError(
            f"asr.compute_type = \"{ct}\" is a GPU type; on the CPU use int8 (default), int8_float32 or float32, "
            "or run on a GPU: --device cuda"
        )
    if ct not in ("default", "auto"):
        try:
            supported = set(ct2.get_supported_compute_types(device))
        except Exception as e:  # noqa: BLE001
            raise ConfigError(f"asr.device = \"{device}\": CTranslate2 cannot use it ({type(e).__name__}: {e})") from None
        if ct not in supported:
            raise ConfigError(
                f"asr.compute_type = \"{ct}\" is not supported on {device} by this CTranslate2 "
                f"(supported: {', '.join(sorted(supported))})"
            )
    changes: dict[str, Any] = {"device": device}
    if config.max_batch == 0:
        changes["max_batch"] = default_max_batch(device)
    if device == "cuda" and config.inference_workers == 0:
        changes["inference_workers"] = CUDA_WORKERS
    return dataclasses.replace(config, **changes)


__all__ = ["resolve_device", "cuda_devices", "default_max_batch", "GPU_COMPUTE_TYPES", "AUTO_BATCH"]
