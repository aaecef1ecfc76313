"""A throwaway real Asterisk for the live tests: its own config dir, started in the
foreground, driven through its CLI (``asterisk -rx``). Nothing of Asterisk is in this
repository: VOICETRIAGE_ASTERISK names an install prefix built as docs/peers.md says."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

MODULES = (
    "res_timing_timerfd", "pbx_config", "codec_ulaw", "codec_resample", "format_sln", "format_wav",
    "func_uuid", "func_channel", "res_audiosocket", "app_audiosocket", "chan_audiosocket", "app_dial",
    "app_playback", "app_senddtmf", "app_chanspy", "app_verbose", "bridge_simple",
    "bridge_builtin_features", "res_clioriginate",
)


def prefix() -> Path | None:
    """The install prefix from VOICETRIAGE_ASTERISK, if it holds a built Asterisk."""
    value = os.environ.get("VOICETRIAGE_ASTERISK")
    if not value:
        return None
    p = Path(value)
    return p if (p / "sbin" / "asterisk").is_file() else None


class Asterisk:
    """One Asterisk process with ``dialplan`` (extensions.conf text) loaded."""

    def __init__(self, install: Path, dialplan: str) -> None:
        self.install = install
        self.root = Path(tempfile.mkdtemp(prefix="vt-ast-"))  # short: the control socket path is limited
        etc = self.root / "etc"
        for d in ("etc", "lib", "spool", "run", "log", "sounds"):
            (self.root / d).mkdir()
        mods = install / "lib" / "asterisk" / "modules"
        (self.root / "asterisk.conf").write_text(
            "[directories]\n"
            f"astetcdir => {etc}\nastmoddir => {mods}\nastvarlibdir => {self.root / 'lib'}\n"
            f"astdbdir => {self.root / 'lib'}\nastkeydir => {self.root / 'lib'}\n"
            f"astdatadir => {self.root / 'lib'}\nastagidir => {self.root / 'lib'}\n"
            f"astspooldir => {self.root / 'spool'}\nastrundir => {self.root / 'run'}\n"
            f"astlogdir => {self.root / 'log'}\nastsbindir => {install / 'sbin'}\n"
            "[options]\nverbose = 3\nnocolor = yes\n", encoding="utf-8")
        (etc / "modules.conf").write_text(
            "[modules]\nautoload = no\n" + "".join(f"load = {m}.so\n" for m in MODULES), encoding="utf-8")
        (etc / "logger.conf").write_text(
            "[general]\n[logfiles]\nfull.log => notice,warning,error,verbose,dtmf\n", encoding="utf-8")
        (etc / "extensions.conf").write_text(dialplan, encoding="utf-8")
        self.proc = subprocess.Popen(
            [str(install / "sbin" / "asterisk"), "-C", str(self.root / "asterisk.conf"), "-f", "-n", "-q"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"asterisk exited with {self.proc.returncode}: {self.log()[-2000:]}")
            if (self.root / "run" / "asterisk.ctl").exists() and "fully booted" in self.cli("core waitfullybooted").lower():
                return
            time.sleep(0.2)
        self.close()
        raise RuntimeError("asterisk did not boot in 30 s")

    def cli(self, command: str) -> str:
        r = subprocess.run([str(self.install / "sbin" / "asterisk"), "-C", str(self.root / "asterisk.conf"),
                            "-rx", command], capture_output=True, text=True, timeout=20)
        return r.stdout + r.stderr

    def sound(self, name: str, pcm8k: np.ndarray, pcm16k: np.ndarray) -> str:
        """A clip as name.sln (8 kHz) and name.sln16 (16 kHz); returns the path Playback() takes."""
        base = self.root / "sounds" / name
        base.with_suffix(".sln").write_bytes(pcm8k.astype("<i2").tobytes())
        base.with_suffix(".sln16").write_bytes(pcm16k.astype("<i2").tobytes())
        return str(base)

    def log(self) -> str:
        p = self.root / "log" / "full.log"
        return p.read_text(encoding="utf-8", errors="replace") if p.exists() else ""

    def close(self) -> None:
        if self.proc.poll() is None:
            self.cli("core stop now")
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        shutil.rmtree(self.root, ignore_errors=True)
