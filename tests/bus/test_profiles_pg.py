"""The PostgreSQL profile store: import/show through the CLI, a server routing an elderly caller."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from voicetriage.client import StreamOptions, stream_file
from voicetriage.triage.profiles import ProfileError, connect_store

REPO = Path(__file__).resolve().parents[2]

CSV = (
    "number,birth_year,age_band,language,flags,customer_id\n"
    "138-0013-8000,1948,,cantonese,vulnerable,C-1\n"
    "13900139000,1990,,mandarin,,C-2\n"
    "not-a-number,1950,,,,C-3\n"
)
ELDER = "+86 138 0013 8000"


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", "import sys; from voicetriage.cli import main; sys.exit(main())", *args],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=120,
    )


def test_import_and_show_on_postgres(postgres, tmp_path):
    csv = tmp_path / "p.csv"
    csv.write_text(CSV, encoding="utf-8")
    r = cli("profiles", "import", str(csv), "--db", postgres.url)
    assert r.returncode == 1, r.stderr  # one bad row, reported with its line
    assert ":4:" in r.stderr and "imported 2 profile(s) (0 replaced)" in r.stdout and "2 in the store" in r.stdout
    r = cli("profiles", "import", str(csv), "--db", postgres.url)
    assert "(2 replaced)" in r.stdout
    r = cli("profiles", "show", ELDER, "--db", postgres.url)
    assert r.returncode == 0, r.stderr
    assert "C-1" in r.stdout and "cantonese" in r.stdout and "vulnerable" in r.stdout
    r = cli("profiles", "show", "13700137000", "--db", postgres.url)
    assert r.returncode == 1 and "no profile" in r.stderr
    # a database that exists but was never filled: a clear error, not a traceback
    bad = postgres.url.rsplit("/", 1)[0] + "/postgres"
    r = cli("profiles", "show", ELDER, "--db", bad)
    assert r.returncode == 2 and "no profile tables" in r.stderr and "Traceback" not in r.stderr


def test_store_down_fails_fast_then_reconnects(postgres, tmp_path):
    csv = tmp_path / "p.csv"
    csv.write_text(CSV, encoding="utf-8")
    with connect_store(postgres.url, create=True) as store:
        store.import_csv(csv)
        assert store.lookup(ELDER).customer_id == "C-1"
        postgres.stop()
        with pytest.raises(ProfileError, match="unreachable"):
            store.lookup(ELDER)
        assert not store.available
        with pytest.raises(ProfileError, match="reconnecting"):
            store.lookup(ELDER)  # no new connection attempt on the caller's thread
        postgres.start()
        end = time.monotonic() + 30
        while not store.available and time.monotonic() < end:
            time.sleep(0.1)
        assert store.lookup(ELDER).customer_id == "C-1"
        assert store.failed_lookups == 2


@pytest.mark.model
async def test_server_routes_elderly_caller_from_postgres(postgres, start_node, manifest, tmp_path):
    csv = tmp_path / "p.csv"
    csv.write_text(CSV, encoding="utf-8")
    assert cli("profiles", "import", str(csv), "--db", postgres.url).returncode == 1
    node = start_node("--profiles-db", postgres.url)
    clip = manifest["en_whisper_jfk"]["path"]
    got = await stream_file(node.url, clip, StreamOptions(speed=0, call_id="elder-pg", caller_id=ELDER))
    hints = [e for e in got if e["type"] == "hint"]
    assert hints and hints[0]["queue"] == "senior_human" and "profile_senior" in hints[0]["rules"]
    young = await stream_file(node.url, clip, StreamOptions(speed=0, call_id="young-pg", caller_id="13900139000"))
    assert not any(e["type"] == "hint" and e["queue"] == "senior_human" for e in young)
