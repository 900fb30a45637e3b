"""The CI-time study reads pytest's summary lines (its only logic that runs outside CI itself)."""

from asteroid_tdanet.studies.ci_time import pytest_summaries

LOG = """\
tests/test_models.py ........                                             [ 90%]
===== 2 failed, 506 passed, 1 skipped, 19 deselected, 7 warnings in 478.10s (0:07:58) =====
make test-espnet
collected 120 items
120 passed in 61.5s
a line that says 3 passed in 2s without starting with a count is not a summary
"""


def test_every_pytest_run_is_found_with_its_counts_and_time():
    assert pytest_summaries(LOG) == [
        {
            "counts": {"failed": 2, "passed": 506, "skipped": 1, "deselected": 19, "warnings": 7},
            "seconds": 478.1,
        },
        {"counts": {"passed": 120}, "seconds": 61.5},
    ]
