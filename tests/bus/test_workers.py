"""``serve --workers 2``: two processes on one port (SO_REUSEPORT), stopped together."""

from __future__ import annotations

import time

import pytest

from voicetriage.client import StreamOptions, stream_file

pytestmark = pytest.mark.model


async def test_two_workers_share_the_port_and_stop_on_sigterm(start_node, manifest, redis_server):
    node = start_node("--workers", "2", "--event-bus", redis_server.url, "--node-id", "edge")
    seen = {}
    end = time.monotonic() + 120
    while len(seen) < 2 and time.monotonic() < end:
        h = node.health()  # a new connection each time: the kernel picks the worker
        if "worker" in h:
            seen[h["worker"]["index"]] = (h["worker"]["pid"], h["bus"]["node"])
        else:
            time.sleep(0.2)
    assert sorted(seen) == [0, 1], seen
    assert len({pid for pid, _ in seen.values()}) == 2
    assert sorted(n for _, n in seen.values()) == ["edge/0", "edge/1"]
    got = await stream_file(node.url, manifest["en_espeak_urgent"]["path"], StreamOptions(speed=0, call_id="w1"))
    assert any(e["type"] == "final" for e in got)
    assert node.stop() == 0
    for pid, _ in seen.values():
        try:
            import os

            os.kill(pid, 0)
            alive = True
        except ProcessLookupError:
            alive = False
        assert not alive, f"worker {pid} outlived the parent"


def test_workers_need_a_fixed_port(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    REPO = Path(__file__).resolve().parents[2]

    r = subprocess.run([sys.executable, "-c", "import sys; from voicetriage.cli import main; sys.exit(main())",
                        "serve", "--workers", "2", "--port", "0"], capture_output=True, text=True, timeout=60,
                       env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=REPO)
    assert r.returncode == 2 and "fixed --port" in r.stderr
