"""Peak resident memory and wall time of a child process (what ``/usr/bin/time -v`` reports)."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Measured:
    """A finished child process.

    Attributes:
        returncode: Its exit status.
        wall_s: Wall-clock seconds from start to exit.
        peak_rss_mb: Its peak resident set size (``ru_maxrss``), in MiB.
        user_s: CPU seconds in user mode.
        stdout: What it printed (stderr goes to ours, so progress bars stay visible).
    """

    returncode: int
    wall_s: float
    peak_rss_mb: float
    user_s: float
    stdout: str


# Linux keeps a process's peak RSS across exec, and a child spawned from this (large) process
# starts with this process's memory counted. So the command is started by a small launcher
# process, whose own child is measured: as /usr/bin/time does.
_LAUNCHER = """
import json, os, subprocess, sys, time
start = time.perf_counter()
child = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(child.pid, 0)
with open(sys.argv[1], "w") as f:
    json.dump({"status": os.waitstatus_to_exitcode(status), "wall_s": time.perf_counter() - start,
               "maxrss_kib": usage.ru_maxrss, "user_s": usage.ru_utime}, f)
"""


def run_measured(
    command: Sequence[str], env: Mapping[str, str] | None = None, check: bool = True
) -> Measured:
    """Run ``command`` and report its peak memory and wall time.

    Raises:
        subprocess.CalledProcessError: it failed and ``check`` is set.
    """
    with tempfile.TemporaryDirectory(prefix="tdanet-measure-") as tmp:
        report = Path(tmp) / "usage.json"
        run = subprocess.run(
            [sys.executable, "-c", _LAUNCHER, str(report), *command],
            stdout=subprocess.PIPE,
            stderr=sys.stderr,
            text=True,
            env=env,
        )
        usage = json.loads(report.read_text()) if report.is_file() else None
    if usage is None:
        raise RuntimeError(f"the measuring launcher failed (status {run.returncode})")
    result = Measured(
        returncode=usage["status"],
        wall_s=usage["wall_s"],
        peak_rss_mb=usage["maxrss_kib"] / 1024,
        user_s=usage["user_s"],
        stdout=run.stdout,
    )
    if check and result.returncode != 0:
        raise subprocess.CalledProcessError(result.returncode, list(command), output=run.stdout)
    return result


def peak_rss_mb() -> float:
    """This process's peak resident memory since it started (``VmHWM``), in MiB.

    Unlike ``ru_maxrss``, it does not count memory of the parent this process was spawned from.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise OSError("no VmHWM in /proc/self/status (Linux only)")


def python_module(module: str, *args: str) -> list[str]:
    """The command running ``python -m module args`` with this interpreter."""
    return [sys.executable, "-m", module, *args]


def environment(**overrides: str) -> dict[str, str]:
    """This process's environment with ``overrides``."""
    import os

    return {**os.environ, **overrides}
