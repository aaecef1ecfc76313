"""A peer's streamed transcript of one call against its own offline transcript of the same audio.

:func:`offline_check` writes the call to a WAV file, runs ``offline_transcribe.py`` in
the peer's venv (faster-whisper on the whole file, same weights and language) and
scores both with :mod:`benchmarks.callcheck`. The benchmark runs it after a peer's
levels, with its server stopped, on the first call of the one-call level.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

from ..callcheck import check, verdict
from ..corpus import Call, write_wav
from .setup import venv_python

HERE = Path(__file__).resolve().parent




async def offline_transcript(peer: str, model_dir: Path, wav: Path, language: str | None,
                             timeout: float = 600.0) -> dict:
    """faster-whisper's transcript of ``wav`` in the peer's venv (``language`` None: detected)."""
    proc = await asyncio.create_subprocess_exec(
        str(venv_python(peer)), str(HERE / "offline_transcribe.py"), str(model_dir), str(wav), language or "auto",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "2"},
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    if proc.returncode != 0:
        tail = err.decode(errors="replace").strip().splitlines()[-1:] or ["?"]
        raise RuntimeError(f"offline transcript failed (exit {proc.returncode}): {tail[0]}")
    return json.loads(out.decode().strip().splitlines()[-1])


async def offline_check(peer: str, model_dir: Path, language: str | None, call: Call, streamed: dict,
                        work_dir: Path, log=print) -> dict:
    """The check record of one peer on one call (never raises: a failure is recorded)."""
    try:
        wav = write_wav(work_dir / f"{peer}-{call.id}.wav", call.pcm16())
        off = await offline_transcript(peer, model_dir, wav, language)
    except (OSError, RuntimeError, ValueError, asyncio.TimeoutError) as e:
        log(f"  {peer} offline check failed: {e}")
        return {"call": call.id, "passed": False, "error": str(e)}
    res = check(streamed, off["text"], call)
    res["offline_language"] = off.get("language")
    res["offline_options"] = off.get("options")
    res["offline_seconds"] = off.get("seconds")
    log(f"  {peer} on {call.id}: {res['metric'].upper()} streamed {res['streamed']['value']} offline "
        f"{res['offline']['value']} (streamed vs offline {res['streamed_vs_offline']['value']}, vs its first "
        f"{res['streamed_vs_offline_prefix']['units']} units {res['streamed_vs_offline_prefix']['value']}, "
        f"{res['streamed_vs_offline_prefix']['undelivered_units']} never delivered): "
        f"{verdict(res)}")
    return res


__all__ = ["offline_check", "offline_transcript"]
