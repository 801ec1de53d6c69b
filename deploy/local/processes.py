"""Background processes with pid and log files under one folder."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx

from disparo.errors import DisparoError


class ProcessTable:
    """Starts, finds and stops named background processes by their pid files."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        run_dir.mkdir(parents=True, exist_ok=True)

    def pid_file(self, name: str) -> Path:
        return self.run_dir / f"{name}.pid"

    def log_file(self, name: str) -> Path:
        return self.run_dir / f"{name}.log"

    def pid(self, name: str) -> int | None:
        """The pid of a running process of that name, or None."""
        try:
            pid = int(self.pid_file(name).read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        return pid if _alive(pid) else None

    def start(
        self, name: str, argv: Sequence[str], env: Mapping[str, str], cwd: Path | None = None
    ) -> int:
        """Start a process in its own session, logging to `<name>.log`; return its pid."""
        with self.log_file(name).open("ab") as log:
            log.write(f"==== {name} starting at {time.strftime('%Y-%m-%dT%H:%M:%S')}\n".encode())
            log.flush()
            proc = subprocess.Popen(
                list(argv),
                env=dict(env),
                cwd=cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.pid_file(name).write_text(str(proc.pid))
        return proc.pid

    def stop(self, name: str, grace_s: float = 15.0) -> bool:
        """Stop a process (SIGTERM, then SIGKILL after the grace period); True if it ran."""
        pid = self.pid(name)
        self.pid_file(name).unlink(missing_ok=True)
        if pid is None:
            return False
        terminate(pid, grace_s)
        return True

    def stop_all(self, names: Sequence[str], grace_s: float = 15.0) -> None:
        """Stop several processes at once: all signalled, then one grace period for all."""
        pids = [pid for pid in map(self.pid, names) if pid is not None]
        for name in names:
            self.pid_file(name).unlink(missing_ok=True)
        terminate_all(pids, grace_s)

    def wait_http(self, name: str, url: str, timeout_s: float = 60.0) -> None:
        """Wait until a GET on `url` answers 200; fail early, with its log, if `name` died."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.pid(name) is None:
                tail = self.log_file(name).read_text(errors="replace")[-3000:]
                raise DisparoError(f"{name} exited during start; its log ends:\n{tail}")
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise DisparoError(
            f"{name} not ready at {url} after {timeout_s:.0f}s; see {self.log_file(name)}"
        )

    def names(self) -> list[str]:
        """Names with a pid file, running or not."""
        return sorted(p.stem for p in self.run_dir.glob("*.pid"))


def terminate(pid: int, grace_s: float = 15.0) -> None:
    """SIGTERM a process group, SIGKILL it if it outlives the grace period."""
    terminate_all([pid], grace_s)


def terminate_all(pids: Sequence[int], grace_s: float = 15.0) -> None:
    """SIGTERM process groups, SIGKILL those that outlive the grace period."""
    for pid in pids:
        _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if not any(map(_alive, pids)):
            return
        time.sleep(0.1)
    for pid in filter(_alive, pids):
        _signal_group(pid, signal.SIGKILL)


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of ours counts as gone
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return True
