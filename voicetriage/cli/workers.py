"""``voicetriage serve --workers N``: one server process per core on shared ports.

The parent starts N copies of the same command line (each a full server with
its own model and inference threads) that bind the same websocket and
AudioSocket ports with ``SO_REUSEPORT``, so the kernel spreads new connections
across them; a call stays in the process that accepted it. The parent forwards
SIGTERM/SIGINT (each worker flushes its calls, then exits) and SIGHUP (policy
reload), and restarts a worker that dies unexpectedly (at most once per 5 s).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

RESTART_GAP_S = 5.0


def worker_command(index: int) -> list[str]:
    return [sys.executable, "-c", "import sys; from voicetriage.cli import main; sys.exit(main())",
            *sys.argv[1:], "--worker-index", str(index)]


def supervise(n: int) -> int:
    procs: dict[int, subprocess.Popen] = {}
    started: dict[int, float] = {}
    stopping = False

    def spawn(i: int) -> None:
        procs[i] = subprocess.Popen(worker_command(i))
        started[i] = time.monotonic()

    def forward(sig: int, _frame) -> None:
        nonlocal stopping
        if sig in (signal.SIGTERM, signal.SIGINT):
            stopping = True
        for p in procs.values():
            if p.poll() is None:
                p.send_signal(sig)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, forward)
    for i in range(n):
        spawn(i)
    print(f"voicetriage: supervising {n} worker processes (pids {', '.join(str(p.pid) for p in procs.values())})",
          flush=True)
    codes: dict[int, int] = {}
    while True:
        running = False
        for i, p in list(procs.items()):
            code = p.poll()
            if code is None:
                running = True
                continue
            if stopping or code == 0:
                codes[i] = code
                continue
            if time.monotonic() - started[i] < RESTART_GAP_S:
                # dying at start-up (bad flag, port taken): restarting would only loop
                print(f"voicetriage: worker {i} exited with {code} at start-up; stopping the others",
                      file=sys.stderr, flush=True)
                stopping = True
                codes[i] = code
                forward(signal.SIGTERM, None)
                continue
            print(f"voicetriage: worker {i} (pid {p.pid}) exited with {code}; restarting it", file=sys.stderr,
                  flush=True)
            spawn(i)
            running = True
        if not running and (stopping or len(codes) == n):
            break
        time.sleep(0.2)
    return max((c for c in codes.values()), default=0) if any(codes.values()) else 0
