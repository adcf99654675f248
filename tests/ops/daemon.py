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

    def __init__(self, config: Path, *, env: dict[str, str], args: tuple[str, ...] = (),
                 argv: tuple[str, ...] | None = None) -> None:
        """``argv``, when given, is the whole command line instead (the installed script)."""
        self.stdout_path = config.parent / "daemon.out"
        self.stderr_path = config.parent / "daemon.err"
        self._out = self.stdout_path.open("a")
        self._err = self.stderr_path.open("a")
        command = argv or (sys.executable, "-m", "monitor", "run", "--config", str(config), *args)
        self.process = subprocess.Popen(
            list(command),
            cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO), **env},
            stdout=self._out, stderr=self._err, text=True)

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8")

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text(encoding="utf-8")

    def wait_for_log(self, text: str, *, count: int = 1, timeout: float = 60.0) -> float:
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


# A process is named by its pid and its start time (field 22 of /proc/PID/stat), so
# a pid the kernel hands to an unrelated process later is not mistaken for it.
ProcessId = tuple[int, int]


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/PID/stat after the command name (which may hold spaces); None if gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()


def parent_of(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return None if fields is None else int(fields[1])


def cpu_seconds(pid: int) -> float | None:
    """CPU time (user and system) ``pid`` has used so far; None if it is gone."""
    fields = _stat_fields(pid)
    if fields is None:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def descendants(pid: int) -> set[ProcessId]:
    """Every live process below ``pid``: children, their children, and so on."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        fields = _stat_fields(int(entry)) if entry.isdigit() else None
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(entry))
    found: set[ProcessId] = set()
    parents = [pid]
    while parents:
        for child in children.get(parents.pop(), []):
            fields = _stat_fields(child)
            if fields is not None and (child, int(fields[19])) not in found:
                found.add((child, int(fields[19])))
                parents.append(child)
    return found


def running(processes: set[ProcessId]) -> dict[int, str]:
    """Those of ``processes`` still running (zombies, awaiting their reaper, are not),
    by pid, with their command lines."""
    alive: dict[int, str] = {}
    for pid, started in processes:
        fields = _stat_fields(pid)
        if fields is None or int(fields[19]) != started or fields[0] == "Z":
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        alive[pid] = cmdline.replace(b"\0", b" ").decode(errors="replace")
    return alive


def survivors(processes: set[ProcessId], *, timeout: float = 60.0) -> dict[int, str]:
    """Those of ``processes`` still running once they have had ``timeout`` seconds to
    end: helpers notice their owner's exit a moment after it, not at the same instant."""
    deadline = time.monotonic() + timeout
    while (alive := running(processes)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return alive


def http_get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def wait_for_http(url: str, timeout: float = 60.0) -> tuple[int, str]:
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


#: The smallest config a daemon runs: one SQLite file (``{db}``), one console channel,
#: one feed nobody serves and one rule.
CONSOLE_CONFIG = """\
database: "sqlite:///{db}"
notifiers:
  out:
    type: console
feeds:
  - name: wire
    url: http://127.0.0.1:9/wire.rss
rules:
  - name: csto
    query: CSTO
"""
