"""Background processes of a benchmark run: spawn in their own process group, stop them all, always.

Every process the harness starts (nginx, the mock, the systems under test, wrk) goes through one
:class:`ProcessRegistry`. Each child gets its own session (so Ctrl-C in the terminal reaches only the
harness, which then stops the children itself), optionally pinned to CPUs with ``taskset -c``, and
its output goes to a log file. ``stop_all`` runs from ``try/finally`` (SIGINT, SIGTERM and SIGHUP all
unwind as KeyboardInterrupt) and from ``atexit``, so nothing is left running.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType


@dataclass(slots=True)
class Managed:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path


class ProcessRegistry:
    """Owns every background process of one run."""

    def __init__(self, log_dir: Path) -> None:
        self._log_dir = log_dir
        self._children: list[Managed] = []
        self._handlers_installed = False

    def install_handlers(self) -> None:
        """Stop the children on interpreter exit; SIGINT, SIGTERM and SIGHUP raise KeyboardInterrupt.

        SIGINT is set explicitly because a shell starting the harness in the background leaves it ignored.
        The interrupt unwinds through the callers' ``finally`` blocks, which stop everything.
        """
        if self._handlers_installed:
            return
        atexit.register(self.stop_all)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for signum in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, _raise_interrupt)
        self._handlers_installed = True

    def spawn(
        self,
        name: str,
        argv: Sequence[str],
        *,
        cpus: str | None = None,
        env: Mapping[str, str] | None = None,
        unset: Sequence[str] = (),
        cwd: Path | None = None,
    ) -> Managed:
        """Start ``argv`` in a new session, output to ``<log_dir>/<name>.log``.

        ``env`` is added to the harness's environment, ``unset`` names are removed from it.
        """
        self._log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self._log_dir / f"{name}.log"
        full_argv = [*pinned(cpus), *argv]
        child_env = dict(os.environ)
        if env is not None:
            child_env.update(env)
        for name_ in unset:
            child_env.pop(name_, None)
        with log_path.open("ab") as log:
            popen = subprocess.Popen(
                full_argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=child_env,
                cwd=cwd,
            )
        managed = Managed(name=name, popen=popen, log_path=log_path)
        self._children.append(managed)
        return managed

    def run(
        self, name: str, argv: Sequence[str], *, cpus: str | None = None, timeout_s: float
    ) -> subprocess.CompletedProcess[str]:
        """Run a short-lived child to completion (in its own group, stopped on Ctrl-C) and capture output."""
        popen = subprocess.Popen(
            [*pinned(cpus), *argv],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        managed = Managed(name=name, popen=popen, log_path=self._log_dir / f"{name}.log")
        self._children.append(managed)
        try:
            out, err = popen.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.stop(managed)
            out, err = popen.communicate()
        finally:
            if popen.poll() is None:  # interrupted (Ctrl-C): do not leave it running
                self.stop(managed)
            self._forget(managed)
        text_out, text_err = out.decode(errors="replace"), err.decode(errors="replace")
        return subprocess.CompletedProcess(popen.args, popen.returncode, text_out, text_err)

    def stop(self, managed: Managed, timeout_s: float = 5.0) -> None:
        """SIGTERM the child's whole process group, SIGKILL it if it has not exited in ``timeout_s``."""
        popen = managed.popen
        if popen.poll() is None:
            _signal_group(popen.pid, signal.SIGTERM)
            try:
                popen.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                _signal_group(popen.pid, signal.SIGKILL)
                popen.wait()
        # Children of the leader that outlived it are still in the group.
        _signal_group(popen.pid, signal.SIGKILL)
        self._forget(managed)

    def stop_all(self) -> None:
        for managed in reversed(list(self._children)):
            self.stop(managed)

    def _forget(self, managed: Managed) -> None:
        if managed in self._children:
            self._children.remove(managed)


def pinned(cpus: str | None) -> list[str]:
    """The ``taskset`` prefix pinning a command to ``cpus`` (e.g. ``"0"``), or nothing."""
    return ["taskset", "-c", cpus] if cpus else []


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def wait_exit_or_timeout(managed: Managed, seconds: float) -> int | None:
    """Return the exit code if the process ends within ``seconds``, else None."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        code = managed.popen.poll()
        if code is not None:
            return code
        time.sleep(0.05)
    return managed.popen.poll()


def parse_stat_pgrp(stat_text: str) -> int:
    """Process group id from the text of ``/proc/<pid>/stat`` (the comm field may contain spaces)."""
    after_comm = stat_text[stat_text.rindex(")") + 2 :].split()
    # Fields after comm: state, ppid, pgrp, ...
    return int(after_comm[2])


def parse_statm_rss_kib(statm_text: str, page_kib: int) -> int:
    """Resident set size in KiB from the text of ``/proc/<pid>/statm`` (second field, in pages)."""
    return int(statm_text.split()[1]) * page_kib


def group_pids(pgid: int) -> list[int]:
    """The pids of every live process in process group ``pgid``."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if parse_stat_pgrp((entry / "stat").read_text()) == pgid:
                pids.append(int(entry.name))
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return pids


def group_rss_kib(pgid: int) -> int:
    """Summed RSS (KiB) of every process in process group ``pgid`` (server plus any children it forked)."""
    page_kib = os.sysconf("SC_PAGE_SIZE") // 1024
    total = 0
    for pid in group_pids(pgid):
        try:
            total += parse_statm_rss_kib(Path(f"/proc/{pid}/statm").read_text(), page_kib)
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return total


def tail(path: Path, lines: int = 15) -> str:
    """Last ``lines`` lines of a log file, for failure reports."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
