"""The shipped dialect classifier (models/dialect-base.npz): it loads, it is refused on
another model, and through the real model it tells a real Cantonese clip from real
Mandarin ones (margins: log-odds over Mandarin minus the cross-validated bound)."""

from __future__ import annotations

import json
import wave

import numpy as np
import pytest

from voicetriage.asr.dialect import DialectClassifier, default_path, load_for
from voicetriage.asr.engine import AsrRequest
from voicetriage.core.errors import ModelError


def _shipped() -> DialectClassifier:
    path = default_path("base")
    assert path is not None, "models/dialect-base.npz is missing"
    return DialectClassifier.load(path)


def test_shipped_classifier_loads_with_its_bound():
    clf = _shipped()
    assert clf.labels == ("mandarin", "cantonese", "wu")
    assert clf.model == "base" and clf.fingerprint.startswith("model.bin:")
    assert clf.weights.shape == (3, clf.mean.shape[0])
    # the bound came from cross-validation on the tuning half, above every held-out Mandarin call
    assert clf.threshold > clf.info["cv"]["max_mandarin"]
    assert "tuning half" in clf.info["trained_on"]


def test_refused_on_another_model(tmp_path):
    clf = _shipped()
    other = tmp_path / "other-model"
    other.mkdir()
    (other / "model.bin").write_bytes(b"not the base model")
    with pytest.raises(ModelError, match="trained for model"):
        clf.check_model("other", "model.bin:18")
    with pytest.raises(ModelError, match="trained for model"):
        load_for(str(default_path("base")), "other", other)
    assert load_for("auto", "base", other) is None  # auto: not used, with a warning
    assert load_for("", "base", other) is None


def test_not_a_classifier_file(tmp_path):
    bad = tmp_path / "x.npz"
    bad.write_bytes(b"nothing")
    with pytest.raises(ModelError):
        DialectClassifier.load(bad)
    with pytest.raises(ModelError, match="does not exist"):
        DialectClassifier.load(tmp_path / "missing.npz")


def test_margins_are_log_odds_over_mandarin_minus_the_bound():
    clf = DialectClassifier(
        labels=("mandarin", "cantonese", "wu"), mean=np.zeros(2, np.float32), scale=np.ones(2, np.float32),
        weights=np.array([[0, 0], [1, 0], [0, 1]], np.float32), bias=np.zeros(3, np.float32),
        model="base", fingerprint="model.bin:1", info={"threshold": 0.5},
    )
    m = clf.margins(np.array([2.0, -1.0], np.float32))
    assert set(m) == {"cantonese", "wu"}
    assert m["cantonese"] == pytest.approx(2.0 - 0.5, abs=1e-3)
    assert m["wu"] == pytest.approx(-1.0 - 0.5, abs=1e-3)


def _audio(manifest, cid):
    with wave.open(manifest[cid]["path"]) as w:
        return np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float32) / 32768


@pytest.mark.model
def test_real_cantonese_vs_real_mandarin(base_engine, manifest, monkeypatch):
    asr = base_engine.asr
    # off by default ([asr] dialect_classifier = ""); "auto" finds the shipped file for this
    # model (its fingerprint matches the installed weights) and the engine scores zh finals with it
    assert asr.config.dialect_classifier == "" and asr.dialect is None
    clf = load_for("auto", asr.resolved.id, asr.resolved.path)
    assert clf is not None
    monkeypatch.setattr(asr, "dialect", clf)
    ids = ["yue_wsyue_04", "cmn_aishell1_S0764W0121", "cmn_aishell1_S0764W0121_tel8k"]
    res = asr.transcribe_batch([AsrRequest(_audio(manifest, c), final=True) for c in ids])
    scores = {c: dict(r.dialect_scores) for c, r in zip(ids, res)}
    print(json.dumps(scores))
    assert all(r.language == "zh" for r in res)
    yue, *mandarin = scores.values()
    for m in mandarin:  # real Mandarin (test-half speaker, unseen in training), 16 kHz and 8 kHz
        assert m["cantonese"] < 0 and m["wu"] < 0
    # the Cantonese clip (tuning half): more Cantonese than Mandarin by the classifier
    # (log-odds = margin + bound > 0) and well above both Mandarin clips, yet under the
    # conservative bound (docs/signals.md: the bound sits above every held-out Mandarin call)
    assert yue["cantonese"] + clf.threshold > 0
    assert yue["cantonese"] > max(m["cantonese"] for m in mandarin) + 1.0
