"""Peak memory of a child process, without the memory of the process that starts it."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from asteroid_tdanet.studies.measure import LoadMonitor, peak_rss_mb, run_measured

ALLOCATE = (
    "import numpy as np, time; a = np.ones({mb} * 2**20 // 8); time.sleep({sleep}); print(a[0])"
)


def test_a_child_is_measured_alone():
    # This pytest process holds torch (hundreds of MB): the child's figure must not include it.
    assert peak_rss_mb() > 300
    small = run_measured([sys.executable, "-c", ALLOCATE.format(mb=1, sleep=0)])
    big = run_measured([sys.executable, "-c", ALLOCATE.format(mb=300, sleep=0.3)])
    assert small.peak_rss_mb < 100
    assert 290 <= big.peak_rss_mb - small.peak_rss_mb < 320
    assert big.wall_s >= 0.3 and big.stdout.strip() == "1.0" and big.returncode == 0


def test_failures_are_reported():
    with pytest.raises(subprocess.CalledProcessError):
        run_measured([sys.executable, "-c", "raise SystemExit(3)"])
    assert run_measured([sys.executable, "-c", "raise SystemExit(3)"], check=False).returncode == 3


def test_peak_rss_of_this_process_grows_with_an_allocation():
    before = peak_rss_mb()
    block = np.ones(int((before + 200) * 2**20 // 8))  # more than the peak so far
    assert peak_rss_mb() >= before + 150
    del block
    assert peak_rss_mb() >= before + 150  # a peak, not the current size


BUSY = "import time\nend = time.perf_counter() + {s}\nwhile time.perf_counter() < end: pass"


def test_cpu_used_by_other_processes_is_recorded():
    # A busy sibling for the whole of a sleeping child's run: about one core used by others.
    sibling = subprocess.Popen([sys.executable, "-c", BUSY.format(s=2.5)])
    try:
        run = run_measured([sys.executable, "-c", "import time; time.sleep(1.5)"])
    finally:
        sibling.wait()
    assert run.load["other_cpu_cores"] >= 0.6
    assert run.load["load_average_1min"]["samples"] >= 2
    assert run.system_s >= 0


def test_the_measured_process_is_not_counted_as_load_by_others():
    monitor = LoadMonitor()
    monitor.samples = [1.0, 3.0, 2.0]
    monitor._busy0, monitor._busy1, monitor._t0, monitor._t1 = 100.0, 130.0, 0.0, 10.0
    # 30 busy CPU seconds in 10 s, 25 of them the measured process's: others used 0.5 cores.
    assert monitor.summary(own_cpu_s=25.0) == {
        "load_average_1min": {"start": 1.0, "mean": 2.0, "max": 3.0, "end": 2.0, "samples": 3},
        "other_cpu_cores": 0.5,
    }
    assert monitor.summary(own_cpu_s=40.0)["other_cpu_cores"] == 0.0
