"""SIGHUP reloads the policy file of a running server; a bad file keeps the old policy."""

from __future__ import annotations

import signal
import time
from importlib import resources

import pytest

from voicetriage.client import StreamOptions, stream_file
from voicetriage.triage.profiles import ProfileStore

pytestmark = pytest.mark.model
ELDER = "13800138000"


def wait_log(path, text, limit_s=30.0):
    end = time.monotonic() + limit_s
    while time.monotonic() < end:
        if text in path.read_text(errors="replace"):
            return True
        time.sleep(0.1)
    return False


async def test_sighup_reloads_policy_and_keeps_it_on_a_bad_file(start_node, manifest, tmp_path):
    default = resources.files("voicetriage.triage.policies").joinpath("default.toml").read_text(encoding="utf-8")
    assert 'queue = "senior_human"' in default
    policy = tmp_path / "policy.toml"
    policy.write_text(default, encoding="utf-8")
    db = tmp_path / "p.sqlite3"
    csv = tmp_path / "p.csv"
    csv.write_text(f"number,birth_year\n{ELDER},1948\n")
    with ProfileStore(db, create=True) as s:
        s.import_csv(csv)
    node = start_node("--policy", str(policy), "--profiles-db", str(db))
    clip = manifest["en_whisper_jfk"]["path"]

    async def first_queue(call_id):
        got = await stream_file(node.url, clip, StreamOptions(speed=0, call_id=call_id, caller_id=ELDER))
        return next(e["queue"] for e in got if e["type"] == "hint")

    assert await first_queue("before") == "senior_human"
    policy.write_text(default + "\n[[rules]]\nname = 3\n", encoding="utf-8")
    node.signal(signal.SIGHUP)
    assert wait_log(node.log, "keeping the current policy"), node.log.read_text()
    assert node.proc.poll() is None
    assert await first_queue("after-bad") == "senior_human"
    policy.write_text(default.replace('queue = "senior_human"', 'queue = "senior_desk"'), encoding="utf-8")
    node.signal(signal.SIGHUP)
    assert wait_log(node.log, "policy reloaded from"), node.log.read_text()
    assert await first_queue("after-good") == "senior_desk"
