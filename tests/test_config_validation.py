"""Config: every section typed and registered; mistakes refused at start, named."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from voicetriage.core.config import SECTIONS, load_config
from voicetriage.core.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent


def refused(tmp_path, body: str) -> str:
    path = tmp_path / "bad.toml"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(ConfigError) as e:
        load_config(path)
    msg = str(e.value)
    assert msg.startswith(f"{path}: "), msg  # the file is named
    return msg


@pytest.mark.parametrize("body, expected", [
    ("[strem]\nend_silence_ms = 300\n", r"unknown section \[strem\] \(did you mean 'stream'\?\)"),
    ("[stream]\nend_silence_ms = -5\n", r"\[stream\] end_silence_ms = -5: must be between 50 and 10000"),
    ("[stream]\nmax_utterance_s = 0\n", r"\[stream\] max_utterance_s = 0(\.0)?: must be between 1 and 30"),
    ("[stream]\nvad_threshold = 1.5\n", r"\[stream\] vad_threshold = 1.5: must be > 0 and <= 1"),
    ("[stream]\nend_silence = 300\n", r"\[stream\] unknown option 'end_silence' \(did you mean 'end_silence_ms'\?\)"),
    ("[asr]\nbeam_size = \"2\"\n", r"\[asr\] beam_size = '2': expected int"),
    ("[asr]\ndevice = \"tpu\"\n", r"\[asr\] device = 'tpu': must be one of cpu, cuda, auto"),
    ("[asr]\ntemperatures = [0.5, 0.2]\n", r"asr.temperatures: expected ascending"),
    ("[server]\nmax_calls = -1\n", r"\[server\] max_calls = -1: must be >= 0"),
    ("[server]\nmax_calls = \"lots\"\n", r"server.max_calls = 'lots': expected a number or \"auto\""),
    ("[server]\nport = 70000\n", r"\[server\] port = 70000: must be between 0 and 65535"),
    ("[server]\nmax_calls = true\n", r"\[server\] max_calls = True: expected int"),
    ("[server]\nidle_timeout_s = 0\n", r"\[server\] idle_timeout_s = 0(\.0)?: must be > 0"),
    ("[triage]\nwebook_url = \"http://x\"\n", r"\[triage\] unknown option 'webook_url' \(did you mean 'webhook_url'\?\)"),
    ("[triage]\nwebhook_retries = -1\n", r"\[triage\] webhook_retries = -1: must be between 0 and 100"),
    ("[telephony]\naudiosocket_port = 99999\n", r"\[telephony\] audiosocket_port = 99999: must be between"),
    ("[telephony]\ntwilio_path = \"twilio\"\n", r"telephony.twilio_path: 'twilio' must start with '/'"),
    ("[bus]\nevents = [\"nope\"]\n", r"bus.events: unknown"),
    ("[signals]\nenabled = [\"telepathy\"]\n", r"signals.enabled: unknown signal\(s\) telepathy"),
    ("stream = 3\n", r"\[stream\] must be a table"),
])
def test_mistakes_are_refused_with_file_section_key_and_range(tmp_path, body, expected):
    assert re.search(expected, refused(tmp_path, body))


def test_cli_flags_map_onto_the_same_objects_and_checks():
    cfg = load_config(None, stream={"end_silence_ms": 300}, server={"max_calls": 3})
    assert cfg.stream.end_silence_ms == 300 and cfg.server.max_calls == 3
    with pytest.raises(ConfigError, match=r"^command line: \[stream\] end_silence_ms = -5"):
        load_config(None, stream={"end_silence_ms": -5})


def test_a_good_file_with_every_section_loads(tmp_path):
    path = tmp_path / "ok.toml"
    path.write_text("""
[asr]
model = "tiny.en"
languages = ["zh", "en"]
[stream]
end_silence_ms = 400
[server]
port = 0
[telephony]
audiosocket_port = 0
[triage]
webhook_retries = 2
[bus]
stream = "vt:events"
[signals]
enabled = ["human_request", "language"]
""", encoding="utf-8")
    cfg = load_config(path)
    assert cfg.source == str(path) and cfg.asr.languages == ("zh", "en") and cfg.stream.end_silence_ms == 400
    assert set(cfg.extra) == {"telephony", "triage", "bus", "signals"}


def test_the_readme_lists_every_section():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    for name in SECTIONS:
        assert f"`[{name}]`" in readme, f"README does not describe [{name}]"


def test_serve_refuses_a_bad_config_before_loading_a_model(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[stream]\nend_silence_ms = -5\n", encoding="utf-8")
    r = subprocess.run([sys.executable, "-m", "voicetriage.cli", "serve", "--config", str(path)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert "end_silence_ms = -5: must be between 50 and 10000" in r.stderr
    assert "Traceback" not in r.stderr
