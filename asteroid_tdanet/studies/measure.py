"""Peak resident memory and wall time of a child process (what ``/usr/bin/time -v`` reports)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
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
        system_s: CPU seconds in kernel mode.
        load: How busy the machine was meanwhile (:class:`LoadMonitor`), or empty.
    """

    returncode: int
    wall_s: float
    peak_rss_mb: float
    user_s: float
    stdout: str
    system_s: float = 0.0
    load: dict = field(default_factory=dict)


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
               "maxrss_kib": usage.ru_maxrss, "user_s": usage.ru_utime,
               "system_s": usage.ru_stime}, f)
"""


def busy_cpu_seconds() -> float | None:
    """CPU seconds the whole machine has spent busy since boot (``/proc/stat``), None off Linux."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()
    except OSError:
        return None
    # user nice system idle iowait irq softirq steal: everything but idle and iowait is busy.
    ticks = [int(v) for v in fields[1:9]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


class LoadMonitor:
    """Samples the 1-minute load average while a measurement runs, and the machine's busy CPU time.

    Other processes on a shared machine slow a timed run down; the result records how much:
    ``load_average_1min`` (start, mean, max, end of the samples; it counts the measured run's own
    threads too) and ``other_cpu_cores`` (the machine's busy CPU time meanwhile minus the measured
    process's, per second of wall time: how many cores others used on average).

    Args:
        interval_s: Seconds between load samples.
    """

    def __init__(self, interval_s: float = 5.0) -> None:
        self.interval_s = interval_s
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._busy0: float | None = None
        self._t0 = 0.0

    def _sample(self) -> None:
        while True:
            self.samples.append(os.getloadavg()[0])
            if self._stop.wait(self.interval_s):
                return

    def __enter__(self) -> LoadMonitor:
        self._busy0, self._t0 = busy_cpu_seconds(), time.perf_counter()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.samples.append(os.getloadavg()[0])
        self._busy1, self._t1 = busy_cpu_seconds(), time.perf_counter()

    def summary(self, own_cpu_s: float) -> dict:
        """The figures above; ``own_cpu_s``: CPU seconds of the measured process (user + system)."""
        out: dict = {}
        if self.samples:
            out["load_average_1min"] = {
                "start": round(self.samples[0], 2),
                "mean": round(sum(self.samples) / len(self.samples), 2),
                "max": round(max(self.samples), 2),
                "end": round(self.samples[-1], 2),
                "samples": len(self.samples),
            }
        wall = self._t1 - self._t0
        if self._busy0 is not None and self._busy1 is not None and wall > 0:
            others = max(0.0, self._busy1 - self._busy0 - own_cpu_s)
            out["other_cpu_cores"] = round(others / wall, 3)
        return out


def run_measured(
    command: Sequence[str], env: Mapping[str, str] | None = None, check: bool = True
) -> Measured:
    """Run ``command`` and report its peak memory and wall time.

    Raises:
        subprocess.CalledProcessError: it failed and ``check`` is set.
    """
    with tempfile.TemporaryDirectory(prefix="tdanet-measure-") as tmp, LoadMonitor() as load:
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
        system_s=usage["system_s"],
        load=load.summary(usage["user_s"] + usage["system_s"]),
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
