"""The benchmark's smoke mode: one short real call through a real `voicetriage serve`.

It keeps the benchmark suite from rotting. It checks that the outputs exist and
are sane (fields present, numbers finite and in range, text recognised), never
timing thresholds: machines are shared and noisy.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EVAL = ROOT.parent / "shared" / "eval"

if str(ROOT) not in sys.path:  # `benchmarks` is a folder of the repo, not an installed package
    sys.path.insert(0, str(ROOT))

pytestmark = [
    pytest.mark.model,
    pytest.mark.skipif(not (EVAL / "manifest.jsonl").is_file(), reason=f"evaluation kit {EVAL} is absent"),
]


@pytest.fixture(scope="module")
def smoke_results(tmp_path_factory):
    import asyncio

    from benchmarks.cli import smoke

    out = tmp_path_factory.mktemp("bench-smoke")
    return out, asyncio.run(smoke(out, model="tiny.en", eval_root=EVAL))


def test_smoke_writes_json_and_markdown(smoke_results):
    out, res = smoke_results
    data = json.loads((out / "smoke.json").read_text(encoding="utf-8"))
    md = (out / "smoke.md").read_text(encoding="utf-8")
    assert data["mode"] == "smoke"
    m = data["machine"]
    assert m["cores"] >= 1 and m["cpu_model"] and m["libraries"]["faster-whisper"]
    assert "voicetriage" in m["libraries"] and "ctranslate2" in m["libraries"]
    assert "| voicetriage tiny.en int8 | 1 |" in md
    assert "## Capacity and memory" in md


def test_smoke_measures_the_call(smoke_results):
    out, _ = smoke_results
    data = json.loads((out / "smoke.json").read_text(encoding="utf-8"))
    (system,) = data["systems"]
    assert system["system"] == "voicetriage" and system["status"] == "ok", system.get("status")
    (level,) = system["levels"]
    assert level["calls"] == 1 and not level["errors"], level["errors"]
    s = level["summary"]
    assert s["utterances"] == 2
    # every utterance got a final and a first text; latencies are finite numbers (no bound asserted)
    assert s["final_s"]["missing"] == 0
    assert s["first_partial_s"]["missing"] == 0
    for u in level["utterances"]:
        assert u["final_s"] is not None and math.isfinite(u["final_s"])
        assert u["first_partial_s"] is not None and math.isfinite(u["first_partial_s"])
        assert u["metric"] == "wer" and u["ref_units"] > 0
    # the recogniser really heard the clips ("one two three", "waiting to speak with a representative")
    assert s["errors"]["wer"]["value"] < 0.5, level["utterances"]
    hyp = " ".join(u["hypothesis"].lower() for u in level["utterances"])
    assert "speak" in hyp
    usage = level["usage"]
    assert usage["cpu_s"] > 0 and usage["peak_rss_mb"] > 50
    assert usage["peak_rss_mb"] >= usage["idle_rss_mb"] > 0
    assert 5.0 < usage["audio_s"] < 20.0
