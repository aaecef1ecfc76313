"""Real engines for the scale-out tests: redis-server, PostgreSQL, server processes.

Each fixture starts the real program on a free loopback port in a temporary
directory and stops it at the end; where the program is not installed the
test is skipped, naming the Debian package (``.ci/run`` installs them).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from health_reader import read_health

REPO = Path(__file__).resolve().parents[2]
PG_BIN = Path("/usr/lib/postgresql/15/bin")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 30.0, proc: subprocess.Popen | None = None) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listening on 127.0.0.1:{port} after {timeout} s")


class RedisServer:
    """``redis-server`` with an append-only file in ``dir`` (restarts keep the stream)."""

    def __init__(self, dir: Path) -> None:
        self.dir = dir
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
             "--appendonly", "yes", "--appendfsync", "always", "--save", "", "--protected-mode", "no"],
            stdout=open(self.dir / "redis.log", "ab"), stderr=subprocess.STDOUT,
        )
        wait_port(self.port, proc=self.proc)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None

    def client(self):
        import redis

        return redis.Redis.from_url(self.url)


@pytest.fixture
def redis_server(tmp_path):
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server not installed (apt-get install redis-server)")
    pytest.importorskip("redis", reason="the redis package is not installed (pip install -e '.[test]')")
    d = tmp_path / "redis"
    d.mkdir()
    r = RedisServer(d)
    yield r
    r.stop()


class Node:
    """``voicetriage serve`` in its own process (the real CLI), on a free port."""

    def __init__(self, args: list[str], log: Path) -> None:
        self.port = free_port()
        self.log = log
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "import sys; from voicetriage.cli import main; sys.exit(main())",
             "serve", "--host", "127.0.0.1", "--port", str(self.port), "--model", "tiny.en", "--threads", "1",
             "--insecure-no-auth", *args],
            cwd=REPO, env=env, stdout=open(log, "ab"), stderr=subprocess.STDOUT,
        )
        wait_port(self.port, timeout=120, proc=self.proc)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    def health(self) -> dict:
        return read_health(self.port, timeout=5)[1]

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


@pytest.fixture
def start_node(tmp_path):
    """``start_node(*args)``: a server process; all stopped (SIGTERM, flushed) at the end."""
    nodes: list[Node] = []

    def start(*args: str) -> Node:
        n = Node(list(args), tmp_path / f"node{len(nodes)}.log")
        nodes.append(n)
        return n

    yield start
    for n in nodes:
        n.stop()


class Postgres:
    """A throwaway PostgreSQL cluster (initdb + pg_ctl) owned by an unprivileged user."""

    def __init__(self, dir: Path) -> None:
        self.dir = dir
        self.port = free_port()
        self.data = dir / "data"
        self._as_user: list[str] = []
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            self._as_user = ["runuser", "-u", "postgres", "--"]
            shutil.chown(dir, "postgres")
        self._run(PG_BIN / "initdb", "-D", str(self.data), "-A", "trust", "-U", "vt", "--no-sync", "-E", "UTF8")
        self._run(PG_BIN / "pg_ctl", "-D", str(self.data), "-l", str(dir / "pg.log"), "-w", "-o",
                  f"-p {self.port} -k {dir} -c listen_addresses=127.0.0.1 -c fsync=off", "start")
        self._run(PG_BIN / "createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "vt", "profiles")

    @property
    def url(self) -> str:
        return f"postgresql://vt@127.0.0.1:{self.port}/profiles"

    def _run(self, *cmd) -> None:
        subprocess.run([*self._as_user, *map(str, cmd)], check=True, capture_output=True, timeout=120)

    def stop(self) -> None:
        subprocess.run([*self._as_user, str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"],
                       capture_output=True, timeout=60)

    def start(self) -> None:
        self._run(PG_BIN / "pg_ctl", "-D", str(self.data), "-l", str(self.dir / "pg.log"), "-w", "-o",
                  f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off", "start")


@pytest.fixture
def postgres():
    if not (PG_BIN / "initdb").exists():
        pytest.skip(f"PostgreSQL server binaries not found in {PG_BIN} (apt-get install postgresql)")
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        pytest.skip("running as root without runuser: cannot start PostgreSQL as an unprivileged user")
    pytest.importorskip("psycopg", reason="psycopg is not installed (pip install -e '.[test]')")
    # not under pytest's tmp dir: that is private to root, and the server runs as postgres
    d = Path(tempfile.mkdtemp(prefix="voicetriage-pg-"))
    try:
        pg = Postgres(d)
        yield pg
        pg.stop()
    finally:
        shutil.rmtree(d, ignore_errors=True)
