"""What every private loopback server (Prosody, ejabberd, PostgreSQL) for tests, the demo and the
benchmarks shares: free ports, a child that dies with its parent, stopping by PID, and the
close / context-manager surface."""
from __future__ import annotations

import os
import ipaddress
import shutil
import signal
import socket
import subprocess
from pathlib import Path
from typing import Callable

LOOPBACK = "127.0.0.1"
_PR_SET_PDEATHSIG = 1


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port that was free on ``host`` a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def is_running(pid: int) -> bool:
    """Whether a process with this PID exists (used by tests to check nothing is left behind)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _load_prctl() -> Callable[..., int] | None:
    try:
        import ctypes
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError, ImportError):
        return None


# Looked up here, in the parent: a child already switched to another user (postgres) may not be
# able to read the Python installation (a pyenv under /root) to import ctypes there.
_PRCTL = _load_prctl()


def die_with_parent(sig: signal.Signals = signal.SIGTERM) -> Callable[[], None]:
    """A ``preexec_fn`` that has the child receive ``sig`` when the process that started it dies,
    so a killed test run or demo never leaves a server behind (Linux; elsewhere ``stop`` is the
    only way). subprocess runs it after ``user=``/``group=``, which would clear the setting."""
    def arrange() -> None:
        if _PRCTL is not None:
            _PRCTL(_PR_SET_PDEATHSIG, int(sig))
    return arrange


def stop_process(process: subprocess.Popen | None, sig: signal.Signals = signal.SIGTERM,
                 timeout: float = 10.0) -> None:
    """Send ``sig`` to a process we started and wait for it; SIGKILL if it does not go in time."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class LocalServer:
    """The shared surface of the private servers. Subclasses set ``directory``, ``_own_directory``
    and ``process``, and implement ``start()`` (returning self) and ``stop()``."""

    directory: Path
    _own_directory: bool
    process: subprocess.Popen | None

    def start(self):  # pragma: no cover - every subclass has its own
        raise NotImplementedError

    def stop(self) -> None:  # pragma: no cover - every subclass has its own
        raise NotImplementedError

    def close(self) -> None:
        """Stop the server and remove its directory if we created it."""
        self.stop()
        if self._own_directory:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            # __exit__ does not run when __enter__ raises: clean up here, or the directory stays.
            self.close()
            raise

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def pid(self) -> int | None:
        """The server's PID while it runs."""
        return self.process.pid if self.process else None


def listening(pids: list[int]) -> set[tuple[str, int]]:
    """(address, port) of every TCP socket in LISTEN state that one of ``pids`` holds."""
    inodes = set()
    for pid in pids:
        try:
            descriptors = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            continue
        for descriptor in descriptors:
            try:
                link = os.readlink(descriptor)
            except OSError:
                # Closed since it was listed: the VM opens and closes files (code loading) all the
                # time. Skipping the whole process instead made its listeners look absent.
                continue
            if link.startswith("socket:["):
                inodes.add(link[8:-1])
    found = set()
    for table, size in (("/proc/net/tcp", 4), ("/proc/net/tcp6", 16)):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:           # 0A: LISTEN
                address, port = fields[1].split(":")
                raw = bytes.fromhex(address)
                # The kernel prints each 32-bit word in host (little-endian) order.
                raw = b"".join(raw[i:i + 4][::-1] for i in range(0, size, 4))
                found.add((str(ipaddress.ip_address(raw)), int(port, 16)))
    return found
