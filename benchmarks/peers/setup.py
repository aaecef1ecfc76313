"""Create one virtual environment per peer under ``benchmarks/.venvs/`` and install it.

Each peer lives in its own venv so that nothing of theirs (their faster-whisper
pin, torch, FastAPI, ...) leaks into ours. Installs are idempotent: a stamp file
records the exact install plan, and a venv whose stamp matches and whose import
check passes is left alone.

The peers are installed with ``--no-deps`` plus the run-time dependencies their
*servers* import, because their full dependency lists drag in things that
cannot or need not run here: WhisperLive wants PyAudio (PortAudio headers),
OpenVINO, openai-whisper and the CUDA cuBLAS/cuDNN wheels (about 2 GB) on every
Linux machine; both it and WhisperLiveKit want torchaudio, which has no build
for the only torch this machine has (2.13.0, CPU). ``torch==2.13.0`` is
installed first so that nothing pulls a CUDA build.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
import venv
from dataclasses import asdict, dataclass, field
from pathlib import Path

VENVS = Path(__file__).resolve().parent.parent / ".venvs"
TORCH = "torch==2.13.0"  # the local CPU build; anything else is a multi-GB CUDA download


@dataclass(frozen=True)
class PeerSpec:
    name: str
    package: str  # pip requirement of the peer itself (installed --no-deps)
    deps: tuple[str, ...]  # run-time dependencies of its server
    check: str  # python code that must run in the venv
    first: tuple[str, ...] = ()  # installed before everything else
    notes: str = ""


PEERS: dict[str, PeerSpec] = {
    "whisper-live": PeerSpec(
        name="whisper-live",
        package="whisper-live==0.10.0",
        first=(TORCH,),
        deps=(
            "faster-whisper==1.2.0",
            "websockets>=13",
            "numpy>=1.26.4,<2.5",
            "scipy",
            "av",
            "onnxruntime>=1.20,<2",
            "fastapi",
            "uvicorn",
            "python-multipart",
            "websocket-client",
            "soundfile",
            "tokenizers",
            "requests",  # faster-whisper imports it; huggingface-hub 1.x no longer pulls it
        ),
        check="import whisper_live.server, faster_whisper, ctranslate2; print(ctranslate2.__version__)",
        notes=(
            "installed --no-deps: its metadata requires PyAudio (needs PortAudio headers; the server "
            "never uses it), OpenVINO, openai-whisper, torchaudio and nvidia-cublas/cudnn (CUDA, ~2 GB)"
        ),
    ),
    "whisperlivekit": PeerSpec(
        name="whisperlivekit",
        package="whisperlivekit==0.2.26",
        first=(TORCH,),
        deps=(
            "fastapi>=0.141.1",
            "starlette>=1.3.1",
            "uvicorn",
            "websockets",
            "python-multipart>=0.0.31",
            "librosa",
            "soundfile",
            "huggingface-hub>=0.25.0",
            "faster-whisper>=1.2.0",
            "tqdm",
            "tiktoken",
            "onnxruntime",
            "requests",
        ),
        check="import whisperlivekit.core, whisperlivekit.audio_processor, faster_whisper, ctranslate2; print(ctranslate2.__version__)",
        notes="installed --no-deps: torchaudio (required by its metadata, never imported) has no build for torch 2.13.0",
    ),
    "whisper-streaming": PeerSpec(
        name="whisper-streaming",
        package="whisper-streaming==0.1.0",
        deps=(
            "faster-whisper==1.1.1",
            "librosa",
            "numpy",
            "opus-fast-mosestokenizer",
            "websockets",
            "requests",
        ),
        check="import whisper_streaming, whisper_streaming.backend, faster_whisper, ctranslate2; print(ctranslate2.__version__)",
        notes="installed --no-deps: pyalsaaudio (its ALSA microphone receiver) is not needed",
    ),
}


@dataclass
class PeerInstall:
    name: str
    ok: bool
    python: str
    detail: str
    seconds: float = 0.0
    versions: dict[str, str] = field(default_factory=dict)
    notes: str = ""


def venv_dir(name: str) -> Path:
    return VENVS / name


def venv_python(name: str) -> Path:
    return venv_dir(name) / "bin" / "python"


def _plan_hash(spec: PeerSpec) -> str:
    return hashlib.sha256(json.dumps(asdict(spec), sort_keys=True).encode()).hexdigest()[:16]


def _stamp(name: str) -> Path:
    return venv_dir(name) / "voicetriage-peer.json"


def _run(cmd: list[str], log) -> None:
    log.write(f"$ {' '.join(cmd)}\n")
    log.flush()
    proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        raise RuntimeError(f"command failed (exit {proc.returncode}): {' '.join(cmd)}")


def _versions(py: Path) -> dict[str, str]:
    code = (
        "import importlib.metadata as m, json\n"
        "out = {}\n"
        "for p in ('whisper-live','whisperlivekit','whisper-streaming','faster-whisper','ctranslate2',"
        "'torch','onnxruntime','websockets','numpy','fastapi','uvicorn'):\n"
        "    try: out[p] = m.version(p)\n"
        "    except m.PackageNotFoundError: pass\n"
        "print(json.dumps(out))\n"
    )
    try:
        out = subprocess.run([str(py), "-c", code], capture_output=True, text=True, timeout=60)
        return json.loads(out.stdout.strip().splitlines()[-1])
    except Exception:  # noqa: BLE001 - versions are informative only
        return {}


def install_record(name: str) -> dict:
    """What the last ``setup-peers`` recorded for a peer (ok, detail, versions), or {}."""
    try:
        return json.loads(_stamp(name).read_text())
    except (OSError, ValueError):
        return {}


def check_peer(name: str) -> tuple[bool, str]:
    """Whether the peer's venv exists, matches the plan and imports."""
    spec = PEERS[name]
    py = venv_python(name)
    if not py.exists():
        return False, "not installed (run: python -m benchmarks setup-peers)"
    try:
        stamp = json.loads(_stamp(name).read_text())
    except (OSError, ValueError):
        return False, "install incomplete"
    if not stamp.get("ok"):
        return False, stamp.get("detail", "install failed")
    if stamp.get("plan") != _plan_hash(spec):
        return False, "install plan changed (run: python -m benchmarks setup-peers)"
    return True, "installed"


def setup_peer(name: str, force: bool = False) -> PeerInstall:
    """Create/refresh the venv of one peer. Never raises: failures are reported."""
    spec = PEERS[name]
    d = venv_dir(name)
    py = venv_python(name)
    ok, why = check_peer(name)
    if ok and not force:
        return PeerInstall(name, True, str(py), "already installed", 0.0, _versions(py), spec.notes)
    d.mkdir(parents=True, exist_ok=True)
    log_path = d / "install.log"
    t0 = time.monotonic()
    with open(log_path, "a", encoding="utf-8") as log:
        log.write(f"\n=== setup {name} at {time.strftime('%Y-%m-%d %H:%M:%S')} ===\n")
        try:
            if not py.exists():
                venv.EnvBuilder(with_pip=True, clear=False).create(d)
            pip = [str(py), "-m", "pip", "install", "--disable-pip-version-check"]
            if spec.first:
                _run(pip + list(spec.first), log)
            _run(pip + ["--no-deps", spec.package], log)
            _run(pip + list(spec.deps) + list(spec.first), log)
            proc = subprocess.run([str(py), "-c", spec.check], capture_output=True, text=True, timeout=300)
            log.write(proc.stdout + proc.stderr)
            if proc.returncode != 0:
                tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
                raise RuntimeError(f"import check failed: {tail}")
            result = PeerInstall(name, True, str(py), "installed", time.monotonic() - t0, _versions(py), spec.notes)
        except Exception as e:  # noqa: BLE001 - a peer that cannot install is a result, not a crash
            result = PeerInstall(
                name, False, str(py), f"{e} (log: {log_path})", time.monotonic() - t0, {}, spec.notes
            )
    _stamp(name).write_text(
        json.dumps({"plan": _plan_hash(spec), "ok": result.ok, "detail": result.detail, "versions": result.versions})
    )
    return result


def setup_peers(names: list[str] | None = None, force: bool = False) -> list[PeerInstall]:
    out = []
    for name in names or list(PEERS):
        print(f"[setup-peers] {name}: venv {venv_dir(name)} ...", file=sys.stderr, flush=True)
        r = setup_peer(name, force=force)
        state = "ok" if r.ok else "FAILED"
        print(f"[setup-peers] {name}: {state}: {r.detail} ({r.seconds:.0f} s) {r.versions}", file=sys.stderr, flush=True)
        out.append(r)
    return out


__all__ = ["PEERS", "PeerSpec", "PeerInstall", "setup_peers", "setup_peer", "check_peer", "install_record",
           "venv_python", "VENVS"]
