"""A real ``wirewatch run`` process for the operations tests: its output, its HTTP side."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data" / "e2e"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Daemon:
    """``python -m monitor run`` with stdout and stderr captured to files."""

    def __init__(self, config: Path, *, env: dict[str, str], args: tuple[str, ...] = ()) -> None:
        self.stdout_path = config.parent / "daemon.out"
        self.stderr_path = config.parent / "daemon.err"
        self._out = self.stdout_path.open("a")
        self._err = self.stderr_path.open("a")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "monitor", "run", "--config", str(config), *args],
            cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO), **env},
            stdout=self._out, stderr=self._err, text=True)

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8")

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text(encoding="utf-8")

    def wait_for_log(self, text: str, *, count: int = 1, timeout: float = 15.0) -> float:
        """Wait until ``text`` appears ``count`` times in stderr; returns when (monotonic)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.stderr.count(text) >= count:
                return time.monotonic()
            if self.process.poll() is not None:
                raise AssertionError(f"daemon exited ({self.process.returncode}):\n{self.stderr}")
            time.sleep(0.05)
        raise TimeoutError(f"{text!r} x{count} not logged within {timeout}s:\n{self.stderr}")

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signum)
        try:
            return self.process.wait(timeout=timeout)
        finally:
            self.close()

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._out.close()
        self._err.close()


def http_get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def wait_for_http(url: str, timeout: float = 15.0) -> tuple[int, str]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return http_get(url)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def metric(text: str, name: str) -> float:
    """The value of one sample line (``name`` with its labels) in Prometheus text."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0
