"""``voicetriage eval``: manifest parsing, and a small real run through the pipeline."""

import asyncio
import json

import pytest

from voicetriage.cli import main
from voicetriage.core.errors import ConfigError
from voicetriage.evaluation import EvalReport, load_manifest, render, run_manifest


def test_manifest_errors_name_the_file_and_line(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_manifest(tmp_path / "nope.jsonl")
    bad = tmp_path / "m.jsonl"
    bad.write_text('{"file": "a.wav", "language": "yue"}\n{oops\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"line 2: not JSON"):
        load_manifest(bad)
    bad.write_text('{"id": "x"}\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="line 1: needs a"):
        load_manifest(bad)


def test_manifest_labels(tmp_path):
    m = tmp_path / "m.jsonl"
    m.write_text(json.dumps({"file": "a/b.wav", "id": "w1", "language": "wuu", "speaker_age": 67.1,
                             "labels_are_estimates": True, "speech_rate_chars_per_s_est": 13.6}) + "\n"
                 + json.dumps({"file": "c.wav", "language": "fr"}) + "\n", encoding="utf-8")
    a, b = load_manifest(m)
    assert a.language == "wu" and a.speaker_age == 67.1 and a.path == tmp_path / "a/b.wav"
    assert a.labels_are_estimates and a.rate_est == 13.6
    assert b.language == "other" and b.id == "c"


def test_cli_reports_missing_audio(tmp_path, capsys):
    m = tmp_path / "m.jsonl"
    m.write_text(json.dumps({"file": "missing.wav", "language": "en"}) + "\n", encoding="utf-8")
    assert main(["eval", str(m)]) == 2
    assert "missing" in capsys.readouterr().err


@pytest.mark.model
def test_small_real_run_scores_rate_and_language(tiny_engine, eval_dir):
    clips = [c for c in load_manifest(eval_dir / "manifest.jsonl") if c.id in ("en_espeak_slow", "en_espeak_fast")]
    runs = asyncio.run(run_manifest(tiny_engine, clips, speed=0))
    report = EvalReport("m", "tiny.en", 0, runs, 1.0).to_dict()
    assert report["language"]["accuracy"] == 1.0
    assert report["speaking_rate"]["slow_flagged"] == ["en_espeak_slow"]
    assert report["hints"]["calls_with_hint"] == 0
    text = render(report)
    assert "Language / dialect" in text and "Speaking rate" in text
    json.dumps(report, default=str)
