"""How the suite runs in CI (pytest hooks for conftest.py): nothing skipped quietly, slowest first.

With ``TDANET_REQUIRE_FIXTURES=1`` (set by ``.ci/run``) every skip, at collection (a module's
``pytest.importorskip``) or in a test (``pytest.skip``, ``skipif``), is reported as a failure
with the skip's reason: a missing optional dependency (onnxruntime, onnxscript, speechbrain, a
TTS tool, ...) means CI did not check what it claims to check. Outside CI a skip stays a skip.

The ESPnet tests (marker ``espnet``) need ``.venv-espnet``; ``.venv`` deselects them and says so
in the header. ``make test-espnet`` sets ``TDANET_ESPNET_VENV=1``: there, a missing ``espnet2``
is an error, and the run fails unless at least one ESPnet test passed.

``make test`` runs the suite on two pytest-xdist workers (``-n 2 --dist worksteal``), each with
its share of the cores (``OMP_NUM_THREADS``, inherited by the recipes' subprocesses), the tests
listed in :data:`LONGEST_FIRST` first so that the short ones fill the gaps (work stealing). The
demo's full training then runs alone, in one pytest process: it trains on two processes, one per
core, and Lightning gives each its share of the cores.
"""

from __future__ import annotations

import importlib.util
import os

import pytest

REQUIRE = "TDANET_REQUIRE_FIXTURES"
ESPNET_VENV = "TDANET_ESPNET_VENV"


def requiring() -> bool:
    """True in CI: skips become failures."""
    return os.environ.get(REQUIRE) == "1"


def in_espnet_venv() -> bool:
    """True under ``make test-espnet``: the ESPnet tests must run here."""
    return os.environ.get(ESPNET_VENV) == "1"


def espnet_available() -> bool:
    return importlib.util.find_spec("espnet2") is not None


def skip_reason(report) -> str:
    """The text of a skip report's reason (``longrepr`` is ``(file, line, reason)``)."""
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2])
    return str(longrepr)


def as_failure(report, where: str) -> None:
    """Turn a skip report into a failure that names the reason and how to fix it."""
    reason = skip_reason(report)
    report.outcome = "failed"
    report.longrepr = (
        f"{where} skipped in CI ({REQUIRE}=1): {reason}\n"
        "CI must run every test: install what it needs through the project's files "
        "(Makefile, setup.py), or unset the variable to allow skips locally."
    )


# The longest tests of the xdist run (over a minute each): started first so that the rest of the
# suite runs beside them instead of after them.
LONGEST_FIRST = tuple(
    f"tests/local/test_recipe_e2e.py::test_every_recipe_and_model_stages_1_to_5[{recipe}]"
    for recipe in ("librimix", "wham", "lrs2_2mix")
)


def worker_threads(cores: int, workers: int) -> int:
    """Threads per test worker: the cores shared evenly, at least one."""
    return max(1, cores // max(1, workers))


def pytest_configure(config) -> None:
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if workers is None or "OMP_NUM_THREADS" in os.environ:
        return  # one process (or the caller chose): torch's default, every core
    threads = worker_threads(len(os.sched_getaffinity(0)), int(workers))
    os.environ["OMP_NUM_THREADS"] = str(threads)  # for the subprocesses the tests start
    import torch

    torch.set_num_threads(threads)


def longest_first(items: list) -> list:
    """``items`` with those named in :data:`LONGEST_FIRST` moved to the front, in that order."""
    rank = {nodeid: i for i, nodeid in enumerate(LONGEST_FIRST)}
    return sorted(items, key=lambda item: rank.get(item.nodeid, len(rank)))


def pytest_report_header(config) -> str:
    where = "here" if espnet_available() else "in .venv-espnet (make test-espnet); deselected here"
    policy = "fail" if requiring() else "are allowed"
    return f"ESPnet tests (marker espnet) run {where}; skips {policy} ({REQUIRE})"


def pytest_collection_modifyitems(config, items) -> None:
    """Longest tests first; ESPnet's tests run in .venv-espnet only (setuptools pins)."""
    items[:] = longest_first(items)
    if espnet_available():
        return
    if in_espnet_venv():
        raise pytest.UsageError(
            f"{ESPNET_VENV}=1 but espnet2 does not import: rebuild .venv-espnet "
            "(make clean-venv venv-espnet)"
        )
    espnet = [item for item in items if item.get_closest_marker("espnet")]
    if espnet:
        config.hook.pytest_deselected(items=espnet)
        items[:] = [item for item in items if not item.get_closest_marker("espnet")]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.skipped and requiring() and not hasattr(report, "wasxfail"):
        as_failure(report, item.nodeid)


def pytest_runtest_logreport(report) -> None:
    # Runs where results are gathered (the controller under pytest-xdist), so it sees them all.
    if report.when == "call" and report.passed and "espnet" in report.keywords:
        ESPNET_RUN["passed"] += 1


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    report = outcome.get_result()
    if report.skipped and requiring():
        as_failure(report, str(report.nodeid or collector.nodeid))


ESPNET_RUN = {"passed": 0}


def pytest_sessionfinish(session, exitstatus) -> None:
    if not in_espnet_venv() or exitstatus != 0:
        return
    if ESPNET_RUN["passed"] == 0:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(
                f"error: {ESPNET_VENV}=1 but no ESPnet test (marker espnet) passed", red=True
            )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
