"""The atheris harness (tests/fuzz/atheris_protocols.py) runs its seeds and some damaged ones cleanly."""

from __future__ import annotations

import atheris_protocols as harness


def test_every_seed_and_its_truncations_run(tmp_path):
    harness.make_corpus(str(tmp_path))
    seeds = sorted(tmp_path.iterdir())
    assert len(seeds) == len(harness.TARGETS)
    for path in seeds:
        data = path.read_bytes()
        for cut in range(0, len(data), max(1, len(data) // 25)):
            harness.one_input(data[:cut])
            harness.one_input(data[:cut] + b"\x1e\x1f\x00\xff" + data[cut:])
