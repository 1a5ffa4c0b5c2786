"""Starting, watching and stopping the control-plane processes, by pid, with their logs on disk."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


class StartError(RuntimeError):
    """A component did not come up; the message names it and carries its log tail."""


def free_port() -> int:
    """A port nobody listens on now, so two devclusters can run side by side."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Component:
    name: str
    pid: int
    binary: str
    log: str
    started: int = 0  # /proc start time in clock ticks: with the pid, identifies the process


def _proc_stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (state is [0], start time is [19])."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()
    except OSError:
        return None


def start(name: str, argv: list[str], log_dir: Path) -> Component:
    log_path = log_dir / f"{name}.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
    stat = _proc_stat(process.pid)
    started = int(stat[19]) if stat else 0
    return Component(name=name, pid=process.pid, binary=argv[0], log=str(log_path), started=started)


def is_alive(component: Component) -> bool:
    """True if the pid runs and is still the process we started (a reused pid is not ours)."""
    stat = _proc_stat(component.pid)
    if not stat:
        return False
    if stat[0] in ("Z", "X"):
        _reap(component.pid)
        return False
    return int(stat[19]) == component.started

def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def rss_mib(component: Component) -> float:
    """Resident memory of a running component, in MiB (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{component.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def log_tail(component: Component, lines: int = 25) -> str:
    try:
        text = Path(component.log).read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.rstrip().splitlines()[-lines:])


def stop(component: Component, timeout_s: float = 15.0) -> None:
    """SIGTERM, then SIGKILL after `timeout_s`; waits until the process is gone."""
    if not is_alive(component):
        return
    os.kill(component.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        _reap(component.pid)
        if not is_alive(component):
            return
        time.sleep(0.1)
    os.kill(component.pid, signal.SIGKILL)
    while is_alive(component):
        _reap(component.pid)
        time.sleep(0.05)


def wait_until(check, component: Component, what: str, timeout_s: float) -> None:
    """Poll `check()` until true; fail fast with the log tail if the process died meanwhile."""
    deadline = time.monotonic() + timeout_s
    delay = 0.05
    while time.monotonic() < deadline:
        if not is_alive(component):
            raise StartError(f"{component.name} exited while waiting for {what}; last log lines:\n{log_tail(component)}")
        try:
            if check():
                return
        except Exception:  # noqa: BLE001 - not up yet: connection refused, TLS handshake, 5xx
            pass
        time.sleep(delay)
        delay = min(delay * 1.5, 1.0)
    raise StartError(f"{component.name}: {what} not reached within {timeout_s:.0f}s; last log lines:\n{log_tail(component)}")
