"""Peak memory of a child process, without the memory of the process that starts it."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from asteroid_tdanet.studies.measure import peak_rss_mb, run_measured

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
