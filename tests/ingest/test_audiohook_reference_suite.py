"""Genesys' own AudioHook compliance suite (jest) against our server.

The suite is ``test/`` of github.com/purecloudlabs/audiohook-reference-implementation
(Node). Its code is not in this repository: point ``VOICETRIAGE_AUDIOHOOK_SUITE`` at a
checkout with ``npm install`` done at its root and in ``client/`` (docs/audiohook.md,
"Conformance: how to build and run the reference peers"). Without it this test is
skipped with the reason. It runs for about three minutes (the suite streams its test
file in real time, 20 tests with pauses of 10 s).

The suite reads ``testconfig.cfg`` from its working directory; the test writes ours
there (all features on: single channel, double channel, transcript connector) and puts
the checkout's own file back afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from tel_helpers import API_KEY, CLIENT_SECRET, start_telephony

SUITE_DIR = Path(os.environ.get("VOICETRIAGE_AUDIOHOOK_SUITE", ""))
TEST_FILE = "test/audiohook-api-messages.test.ts"


def _why_not() -> str | None:
    if not os.environ.get("VOICETRIAGE_AUDIOHOOK_SUITE"):
        return ("set VOICETRIAGE_AUDIOHOOK_SUITE to a built checkout of "
                "purecloudlabs/audiohook-reference-implementation to run its compliance suite")
    if shutil.which("npx") is None:
        return "node/npx is needed to run the AudioHook compliance suite"
    if not (SUITE_DIR / TEST_FILE).is_file():
        return f"{SUITE_DIR} has no {TEST_FILE}"
    for d in (SUITE_DIR, SUITE_DIR / "client"):
        if not (d / "node_modules").is_dir():
            return f"{d} has no node_modules (npm install --no-package-lock there)"
    return None


_SKIP = _why_not()
pytestmark = pytest.mark.skipif(_SKIP is not None, reason=_SKIP or "")

CONFIG = """[EndPoint]
url=ws://127.0.0.1:{port}/audiohook
[Authentication]
apiKey={key}
clientSecret={secret}
[OpenParameters]
customConfig={{}}
language=en-US
[Features]
singleChannel=true
doubleChannel=true
transcriptionConnector=true
"""


def test_genesys_compliance_suite_passes_20_of_20(tiny_engine, start_server, tmp_path):
    # the suite pauses a session for 10 s without pings: the idle limit must allow it
    srv = start_telephony(start_server, tiny_engine, "tiny.en", idle_timeout_s=30.0)
    cfg = SUITE_DIR / "testconfig.cfg"
    saved = cfg.read_bytes() if cfg.exists() else None
    cfg.write_text(CONFIG.format(port=srv.port, key=API_KEY, secret=CLIENT_SECRET))
    report = tmp_path / "jest.json"
    try:
        proc = subprocess.run(
            ["npx", "jest", "--json", f"--outputFile={report}", TEST_FILE],
            cwd=SUITE_DIR, capture_output=True, text=True, timeout=600)
    finally:
        if saved is None:
            cfg.unlink()
        else:
            cfg.write_bytes(saved)
    assert report.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(report.read_text())
    failed = [(t["title"], t["failureMessages"][:1]) for r in result["testResults"]
              for t in r["assertionResults"] if t["status"] != "passed"]
    # run with -s to see the count and where the platform split utterances (update/paused:
    # the client's own position, which lags its wall-clock delay when node is starved)
    splits = [(round(e.start, 2), round(e.end, 2)) for e in srv.recorder.events
              if getattr(e, "kind", None) == "final" and e.reason == "split"]
    print(f"\nAudioHook compliance suite: {result['numPassedTests']} of {result['numTotalTests']} passed; "
          f"split finals (start, end) s: {splits}; failed: {[f[0] for f in failed]}")
    assert result["numTotalTests"] == 20 and not failed, failed
    assert result["numPassedTests"] == 20
    # every transcript the suite got came from a real final that reached our hub
    finals = [e for e in srv.recorder.events if getattr(e, "kind", None) == "final"]
    assert {f.reason for f in finals} >= {"silence", "split"}
