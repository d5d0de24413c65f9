"""Run ``ai-spine serve`` as a real subprocess on a free port and stop it with a signal."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import List, Optional

_LISTENING = re.compile(r"listening on (http://[0-9.]+:\d+)")


class ServeProcess:
    """``ai-spine serve <args> --port 0``; ``url`` is read from its first stdout line.

    Args:
        args: Extra arguments for ``ai-spine serve``.
        env: Extra environment variables.
    """

    def __init__(self, args: List[str], env: Optional[dict[str, str]] = None) -> None:
        exe = shutil.which("ai-spine")
        command = [exe] if exe else [sys.executable, "-m", "ai_spine.cli"]
        self.proc = subprocess.Popen(
            command + ["serve", *args, "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=str(Path(__file__).resolve().parents[2]),
            env={**os.environ, **(env or {})},
        )
        assert self.proc.stdout is not None
        first = self.proc.stdout.readline()
        match = _LISTENING.search(first)
        if not match:
            self.proc.kill()
            _, err = self.proc.communicate(timeout=10)
            raise AssertionError(f"server did not start: {first!r} {err!r}")
        self.url = match.group(1)
        self.banner = first

    def stop(self, sig: int = signal.SIGTERM) -> "tuple[int, str, str]":
        """Send ``sig`` and return (exit status, rest of stdout, stderr)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            out, err = self.proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
        return self.proc.returncode, out, err
