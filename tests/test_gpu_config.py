"""The GPU path's start-up checks (issue 14), tested on a CPU machine.

``resolve_device`` is given stand-ins for the ctranslate2 module (a CPU-only
build, a CUDA build with a GPU); the last test asks the real one, which on a
machine without CUDA must refuse ``--device cuda`` with a clear message.
"""

from __future__ import annotations

import pytest

from voicetriage.asr.device import resolve_device
from voicetriage.core.config import AsrConfig, load_config
from voicetriage.core.errors import ConfigError


class CpuOnly:
    __version__ = "4.8.5"

    def get_cuda_device_count(self):
        return 0

    def get_supported_compute_types(self, device):
        if device == "cuda":
            raise RuntimeError("CUDA failed with error CUDA driver version is insufficient")
        return {"int8", "int8_float32", "float32"}


class OneGpu(CpuOnly):
    def get_cuda_device_count(self):
        return 1

    def get_supported_compute_types(self, device):
        if device == "cuda":
            return {"float16", "int8_float16", "int8", "int8_float32", "float32", "bfloat16", "int8_bfloat16"}
        return super().get_supported_compute_types(device)


def test_cuda_without_a_device_is_refused_with_the_fix():
    with pytest.raises(ConfigError) as e:
        resolve_device(AsrConfig(device="cuda", compute_type="float16"), CpuOnly())
    msg = str(e.value)
    assert "sees no CUDA device" in msg and "get_cuda_device_count() is 0" in msg and "--device cpu" in msg


def test_gpu_compute_types_are_refused_on_the_cpu():
    for ct in ("float16", "int8_float16"):
        with pytest.raises(ConfigError, match="is a GPU type"):
            resolve_device(AsrConfig(device="cpu", compute_type=ct), OneGpu())


def test_unsupported_type_names_the_supported_ones():
    with pytest.raises(ConfigError, match=r"not supported on cpu .*supported: float32, int8, int8_float32"):
        resolve_device(AsrConfig(device="cpu", compute_type="int16"), CpuOnly())


def test_cuda_sizes_batching_and_workers():
    c = resolve_device(AsrConfig(device="cuda", compute_type="int8_float16"), OneGpu())
    assert (c.device, c.compute_type, c.max_batch, c.inference_workers) == ("cuda", "int8_float16", 16, 2)
    c = resolve_device(AsrConfig(device="cuda", compute_type="float16", max_batch=32, inference_workers=1), OneGpu())
    assert (c.max_batch, c.inference_workers) == (32, 1)  # what the config says wins


def test_auto_and_cpu_defaults():
    assert resolve_device(AsrConfig(device="auto", compute_type="float16"), OneGpu()).device == "cuda"
    c = resolve_device(AsrConfig(device="auto"), CpuOnly())
    assert (c.device, c.max_batch, c.inference_workers) == ("cpu", 4, 0)


def test_config_file_accepts_the_gpu_settings():
    cfg = load_config(asr={"device": "cuda", "compute_type": "int8_float16", "max_batch": 24})
    assert (cfg.asr.device, cfg.asr.compute_type, cfg.asr.max_batch) == ("cuda", "int8_float16", 24)
    with pytest.raises(ConfigError):
        load_config(asr={"max_batch": -1})


def test_the_real_ctranslate2_here():
    import ctranslate2

    if ctranslate2.get_cuda_device_count() > 0:
        pytest.skip("this machine has a CUDA device")
    with pytest.raises(ConfigError, match="sees no CUDA device"):
        resolve_device(AsrConfig(device="cuda", compute_type="float16"))
    assert resolve_device(AsrConfig()).device == "cpu"
