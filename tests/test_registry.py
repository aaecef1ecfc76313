import hashlib
import textwrap

import pytest

from voicetriage.asr.registry import (
    default_model_id,
    load_registry,
    model_status,
    resolve_model,
)
from voicetriage.core.errors import ModelError


def write_pkg(root, name, files):
    pkg = root / name
    (pkg / "data").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    for fname, data in files.items():
        (pkg / "data" / fname).write_bytes(data)


def fake_registry(tmp_path, sha=None, packages=("vt-fake-a", "vt-fake-b")):
    part1, part2 = b"A" * 1000, b"B" * 500
    joined = part1 + part2
    digest = sha or hashlib.sha256(joined).hexdigest()
    cfg = b'{"lang_ids": [1, 2]}'
    reg = tmp_path / "registry.toml"
    reg.write_text(textwrap.dedent(f"""
        [models.fake]
        description = "fake"
        languages = "multilingual"
        licence = "MIT"
        default = true
        [[models.fake.sources]]
        name = "src"
        packages = {list(packages)!r}
        [models.fake.sources.files."model.bin"]
        parts = ["vt_fake_a/data/model.bin.part1", "vt_fake_b/data/model.bin.part2"]
        size = {len(joined)}
        sha256 = "{digest}"
        [models.fake.sources.files."config.json"]
        parts = ["vt_fake_b/data/config.json"]
        size = {len(cfg)}
        sha256 = "{hashlib.sha256(cfg).hexdigest()}"
    """).replace("'", '"'))
    site = tmp_path / "site"
    write_pkg(site, "vt_fake_a", {"model.bin.part1": part1})
    write_pkg(site, "vt_fake_b", {"model.bin.part2": part2, "config.json": cfg})
    return reg, site, joined


def test_joins_split_weights_and_verifies(tmp_path, monkeypatch):
    reg_path, site, joined = fake_registry(tmp_path)
    monkeypatch.syspath_prepend(str(site))
    reg = load_registry(reg_path)
    cache = tmp_path / "cache"
    m = resolve_model("fake", cache, reg)
    assert (m.path / "model.bin").read_bytes() == joined
    assert (m.path / "config.json").is_file() and m.source == "src"
    mtime = (m.path / "model.bin").stat().st_mtime_ns
    again = resolve_model("fake", cache, reg)  # stamp: no re-join
    assert again.path == m.path and (m.path / "model.bin").stat().st_mtime_ns == mtime
    assert default_model_id(reg) == "fake"


def test_bad_checksum_names_the_packages(tmp_path, monkeypatch):
    reg_path, site, _ = fake_registry(tmp_path, sha="0" * 64)
    monkeypatch.syspath_prepend(str(site))
    with pytest.raises(ModelError, match=r"checksum mismatch.*reinstall vt-fake-a vt-fake-b"):
        resolve_model("fake", tmp_path / "cache", load_registry(reg_path))


def test_truncated_part_is_reported(tmp_path, monkeypatch):
    reg_path, site, _ = fake_registry(tmp_path)
    (site / "vt_fake_b" / "data" / "model.bin.part2").write_bytes(b"B" * 10)
    monkeypatch.syspath_prepend(str(site))
    with pytest.raises(ModelError, match="is 1010 bytes, expected 1500"):
        resolve_model("fake", tmp_path / "cache", load_registry(reg_path))


def test_missing_package_says_what_to_install(tmp_path):
    reg_path, _, _ = fake_registry(tmp_path, packages=("vt-not-installed-a", "vt-not-installed-b"))
    reg = load_registry(reg_path)
    with pytest.raises(ModelError, match="pip install vt-not-installed-a vt-not-installed-b"):
        resolve_model("fake", tmp_path / "cache", reg)
    status = model_status(reg)
    assert not status[0].installed and "pip install" in status[0].detail


def test_unknown_model_and_bad_paths(tmp_path):
    with pytest.raises(ModelError, match="unknown model 'nope'.*known models"):
        resolve_model("nope")
    with pytest.raises(ModelError, match="is not a directory"):
        resolve_model(str(tmp_path / "missing-dir"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="missing model.bin, config.json"):
        resolve_model(str(tmp_path / "empty"))


def test_real_registry_entries():
    reg = load_registry()
    assert default_model_id(reg) == "base"
    base_bin = next(f for f in reg["base"].sources[0].files if f.name == "model.bin")
    assert base_bin.size == 145_217_607 and len(base_bin.parts) == 2
    assert "small" not in reg  # the PyPI small packages are incomplete


def test_tiny_resolves_in_place(tmp_path):
    m = resolve_model("tiny.en", tmp_path)
    assert (m.path / "model.bin").stat().st_size == 75_537_502
    assert not m.multilingual


def test_local_directory(tmp_path):
    tiny = resolve_model("tiny.en", tmp_path)
    local = resolve_model(str(tiny.path))
    assert local.source == "local" and local.path == tiny.path
    assert not local.multilingual  # English-only vocabulary (51864 tokens)
    base = resolve_model("base", tmp_path)
    assert resolve_model(str(base.path)).multilingual
