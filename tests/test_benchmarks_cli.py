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
