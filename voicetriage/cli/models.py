"""``voicetriage models``: the model registry, what is installed, and checks.

Exit status: 0; 1 when ``--verify`` found an installed model that does not
verify; 2 when ``--model`` names an unknown id or an unusable directory.
"""

from __future__ import annotations

import argparse
import json
import sys


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "models",
        help="list the models voicetriage knows and whether they are installed",
        description=(
            "List the registry's models: id, languages, licence, size, whether the packages "
            "holding the weights are installed (and the pip command when not). Weights come "
            "only from installed packages or a local folder; nothing is downloaded."
        ),
    )
    p.add_argument(
        "--verify",
        action="store_true",
        help="resolve each installed model: join split weights into the cache, check sha256, print the path",
    )
    p.add_argument("--json", action="store_true", help="print one JSON document instead of text")
    p.add_argument(
        "--model",
        metavar="ID_OR_PATH",
        help="only this registry id, or check this local CTranslate2 Whisper folder",
    )
    p.add_argument(
        "--model-cache", metavar="DIR", help="where split weights are joined (default ~/.cache/voicetriage/models)"
    )
    p.add_argument("--config", metavar="FILE", help="TOML configuration file (asr.model_cache_dir)")
    p.set_defaults(func=run)


def _check_files(resolved, source) -> None:
    """Hash every file of the resolved folder against the registry.

    resolve_model skips hashing when a stamp says the files were checked
    before; --verify must not trust that, so it hashes again.
    """
    import hashlib

    from voicetriage.core.errors import ModelError

    for f in source.files:
        path = resolved.path / f.name
        h = hashlib.sha256()
        try:
            with open(path, "rb") as fh:
                while block := fh.read(1 << 22):
                    h.update(block)
        except OSError as e:
            raise ModelError(f"cannot read {path}: {e.strerror or e}") from None
        if h.hexdigest() != f.sha256:
            raise ModelError(
                f"checksum mismatch for {path} (sha256 {h.hexdigest()}, expected {f.sha256}); "
                f"reinstall {' '.join(source.packages)}"
            )


def _entries(args: argparse.Namespace) -> tuple[list[dict], bool]:
    from voicetriage.asr import registry
    from voicetriage.core.config import load_config
    from voicetriage.core.errors import ModelError

    config = load_config(args.config, asr={"model_cache_dir": args.model_cache})
    cache = config.asr.model_cache_dir
    models = registry.load_registry()
    if args.model and args.model not in models:
        # a local folder (or an unknown id): resolve_model says what is wrong with it
        resolved = registry.resolve_model(args.model, cache_dir=cache, registry=models)
        size = sum(f.stat().st_size for f in resolved.path.iterdir() if f.is_file())
        entry = {
            "id": resolved.id,
            "kind": "whisper",
            "default": False,
            "description": "local CTranslate2 Whisper folder",
            "languages": "multilingual" if resolved.multilingual else "en",
            "licence": None,
            "installed": True,
            "size_bytes": size,
            "size_mb": round(size / 1e6, 1),
            "source": "local",
            "packages": [],
            "install": None,
            "path": str(resolved.path),
            "verified": True,
        }
        return [entry], True
    ok = True
    entries = []
    for st in registry.model_status(models):
        spec = st.spec
        if args.model and spec.id != args.model:
            continue
        source = next((s for s in spec.sources if s.name == st.source), spec.sources[0])
        size = sum(f.size for f in source.files)
        entry = {
            "id": spec.id,
            "kind": spec.kind,
            "default": spec.default,
            "description": spec.description,
            "languages": spec.languages,
            "licence": spec.licence,
            "installed": st.installed,
            "size_bytes": size,
            "size_mb": round(size / 1e6, 1),
            "source": st.source,
            "packages": list(source.packages) if st.installed else [],
            "install": None if st.installed else st.detail,
        }
        if args.verify and st.installed:
            try:
                resolved = registry.resolve_model(spec.id, cache_dir=cache, registry=models, kind=None)
                _check_files(resolved, next(s for s in spec.sources if s.name == resolved.source))
                entry.update(path=str(resolved.path), verified=True, source=resolved.source)
            except ModelError as e:
                entry.update(path=None, verified=False, error=str(e))
                ok = False
        entries.append(entry)
    return entries, ok


def _print_text(entries: list[dict], verify: bool) -> None:
    for e in entries:
        name = e["id"] + (" (default)" if e["default"] else "")
        state = "installed" if e["installed"] else "not installed"
        licence = f"  {e['licence']}" if e["licence"] else ""
        kind = "" if e["kind"] == "whisper" else f"  [{e['kind']}, for --diarize]"
        print(f"{name}  {state}  {e['size_bytes'] / 1e6:.1f} MB  {e['languages']}{licence}{kind}")
        print(f"    {e['description']}")
        if e["installed"]:
            if e["source"] == "local":
                print("    source: local folder")
            else:
                pkgs = " + ".join(e["packages"])
                print(f"    source: {e['source']}" + (f" ({pkgs})" if pkgs != e["source"] else ""))
        else:
            print(f"    install: {e['install']}")
        if "verified" in e:
            if e["verified"]:
                print(f"    verified: {e['path']}")
            else:
                print(f"    NOT VERIFIED: {e['error']}")
        elif verify and e["installed"]:
            print("    not verified")
    if not verify:
        print("\n(--verify joins and checks the weights; --model PATH checks a local folder)")


def run(args: argparse.Namespace) -> int:
    entries, ok = _entries(args)
    if args.json:
        json.dump({"models": entries}, sys.stdout, indent=2, ensure_ascii=False)
        print()
    else:
        _print_text(entries, args.verify)
    if not ok:
        print("voicetriage models: error: some installed models did not verify (see above)", file=sys.stderr)
    return 0 if ok else 1
