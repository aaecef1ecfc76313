"""benchmarks.cli: the plan it builds (no model, no server)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `benchmarks` is a folder of the repo, not an installed package
    sys.path.insert(0, str(ROOT))


def test_experiment_levels_above_the_levels_get_their_own_calls():
    from benchmarks.cli import calls_needed

    # `--levels 1 --experiment-levels 1 2` used to build 1 call, so level 2 ran 1 call
    assert calls_needed([1], [1, 2]) == 2
    assert calls_needed([1, 4], [1, 8]) == 8
    assert calls_needed([1, 2, 4]) == 4
    assert calls_needed([6], [1, 2]) == 6


def test_work_delta_per_final():
    from benchmarks.driver import _work_delta, _work_line

    before = {"counts": {"finals": 2, "encode": 5, "fallback": 0}, "seconds": {"encode": 1.0}}
    after = {"counts": {"finals": 6, "encode": 13, "fallback": 2}, "seconds": {"encode": 3.0}}
    d = _work_delta(before, after)
    assert d["counts"] == {"finals": 4, "encode": 8, "fallback": 2}
    assert d["per_final"] == {"encode": 2.0, "fallback": 0.5}
    assert d["seconds_per_final"] == {"encode": 0.5}
    assert "encode 2" in _work_line(d) and _work_delta({}, {}) == {}


def test_another_checkout_is_served_from_its_own_folder(monkeypatch, tmp_path):
    """`python -m` puts the working directory first on sys.path: BENCH_SERVER_PYTHONPATH
    alone, run from this checkout, served this checkout's code."""
    from benchmarks.systems import VoiceTriage

    monkeypatch.delenv("BENCH_SERVER_PYTHONPATH", raising=False)
    assert VoiceTriage("x", tmp_path).cwd() is None
    monkeypatch.setenv("BENCH_SERVER_PYTHONPATH", "/tmp/old")
    v = VoiceTriage("x", tmp_path)
    assert v.env() == {"PYTHONPATH": "/tmp/old"} and str(v.cwd()) == "/tmp/old"


def test_flood_server_keys_reach_the_config_and_the_table_reads_every_row(tmp_path):
    from benchmarks.flood import table
    from benchmarks.systems import VoiceTriage

    cfg = VoiceTriage("x", tmp_path, server={"max_audio_speed": 0.0}).write_config().read_text()
    assert "max_audio_speed = 0.0" in cfg.split("[server]", 1)[1].split("[", 1)[0]
    f = {"p50": 0.5, "p95": 0.7, "missing": 0}
    report = {"results": [
        {"server": "pacing on", "floods": 0, "final_s": f, "utterances": 6, "flood_speed_x": [],
         "flood_taken_x": None, "load_average": [1.0]},
        {"server": "pacing off", "floods": 3, "final_s": f, "utterances": 6, "flood_speed_x": [9.1, 8.0, 7.5],
         "flood_taken_x": 6.2, "load_average": None}]}
    rows = table(report).splitlines()
    assert rows[2] == "| pacing on | 0 | 0.5 / 0.7 | 0 of 6 | - | - | 1.0 |"
    assert rows[3] == "| pacing off | 3 | 0.5 / 0.7 | 0 of 6 | 9.1, 8.0, 7.5 | 6.2 | ? |"
