"""CI's rules for pytest (tests/ci_policy.py), run on small throwaway suites in a subprocess."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
CONFTEST = """\
from ci_policy import (  # noqa: F401
    pytest_collection_modifyitems,
    pytest_make_collect_report,
    pytest_report_header,
    pytest_runtest_logreport,
    pytest_runtest_makereport,
    pytest_sessionfinish,
)
"""
SKIPS = """\
import pytest

def test_skipped_in_the_test():
    pytest.skip("needs foo")

@pytest.mark.skipif(True, reason="bar is not installed")
def test_skipped_by_marker():
    pass

@pytest.mark.xfail(reason="a known bug")
def test_expected_failure():
    assert False

def test_passes():
    pass
"""
IMPORT_SKIP = """\
import pytest

pytest.importorskip("no_such_module_for_ci_policy")

def test_never_collected():
    pass
"""
ESPNET = """\
import pytest

@pytest.mark.espnet
def test_espnet():
    pass

def test_other():
    pass
"""


def run_suite(
    folder: Path, files: dict[str, str], *args: str, **env: str
) -> subprocess.CompletedProcess:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "conftest.py").write_text(CONFTEST)
    (folder / "pytest.ini").write_text("[pytest]\nmarkers =\n    espnet: needs ESPnet\n")
    for name, text in files.items():
        (folder / name).write_text(text)
    base = {k: v for k, v in os.environ.items() if not k.startswith("TDANET_")}
    paths = [str(TESTS), *([env.pop("EXTRA_PATH")] if "EXTRA_PATH" in env else [])]
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rA", *args],
        cwd=folder,
        capture_output=True,
        text=True,
        env={**base, **env, "PYTHONPATH": os.pathsep.join(paths)},
        timeout=120,
    )


def test_skips_are_skips_outside_ci(tmp_path):
    out = run_suite(tmp_path, {"test_skips.py": SKIPS})
    assert out.returncode == 0, out.stdout
    assert "1 passed, 2 skipped, 1 xfailed" in out.stdout
    assert "skips are allowed" in out.stdout  # the header says which rule is in force


def test_every_skip_fails_in_ci_with_its_reason(tmp_path):
    out = run_suite(tmp_path, {"test_skips.py": SKIPS}, TDANET_REQUIRE_FIXTURES="1")
    assert out.returncode == 1, out.stdout
    assert "skips fail" in out.stdout
    # pytest.skip() in the test, and a skipif marker (reported at set-up); xfail is not a skip.
    assert "FAILED test_skips.py::test_skipped_in_the_test" in out.stdout
    assert "ERROR test_skips.py::test_skipped_by_marker" in out.stdout
    assert "needs foo" in out.stdout and "bar is not installed" in out.stdout
    assert "1 xfailed" in out.stdout and "1 passed" in out.stdout


def test_a_module_skipped_for_a_missing_import_fails_in_ci(tmp_path):
    files = {"test_optional.py": IMPORT_SKIP}
    local = run_suite(tmp_path / "local", files)
    assert local.returncode == 5 and "1 skipped" in local.stdout  # 5: no test ran
    out = run_suite(tmp_path / "ci", files, TDANET_REQUIRE_FIXTURES="1")
    assert out.returncode != 0
    assert "no_such_module_for_ci_policy" in out.stdout and "skipped in CI" in out.stdout


def fake_espnet(root: Path) -> str:
    """A folder holding an importable (empty) ``espnet2`` package, for PYTHONPATH."""
    (root / "espnet2").mkdir(parents=True)
    (root / "espnet2" / "__init__.py").write_text("")
    return str(root)


def test_without_espnet_its_tests_are_deselected_but_not_in_its_own_venv(tmp_path):
    # Runs in .venv (no ESPnet); make test-espnet does not run this file.
    assert importlib.util.find_spec("espnet2") is None, "run this test in .venv"
    out = run_suite(tmp_path / "venv", {"test_e.py": ESPNET})
    assert out.returncode == 0 and "1 passed, 1 deselected" in out.stdout, out.stdout
    assert "run in .venv-espnet (make test-espnet); deselected here" in out.stdout
    out = run_suite(tmp_path / "espnet-venv", {"test_e.py": ESPNET}, TDANET_ESPNET_VENV="1")
    assert out.returncode == 4, out.stdout + out.stderr  # a usage error, before any test runs
    assert "espnet2 does not import" in out.stdout + out.stderr


# make test-espnet runs on two xdist workers: the controller must count every worker's passes.
@pytest.mark.parametrize("workers", [(), ("-n", "2")], ids=["one process", "two workers"])
def test_the_espnet_venv_run_fails_unless_an_espnet_test_passed(tmp_path, workers):
    others = "".join(f"def test_{i}():\n    pass\n" for i in range(6))
    files = {"test_e.py": ESPNET, "test_f.py": others}
    extra = fake_espnet(tmp_path / "pkg")
    ok = run_suite(tmp_path / "a", files, *workers, TDANET_ESPNET_VENV="1", EXTRA_PATH=extra)
    assert ok.returncode == 0 and "8 passed" in ok.stdout, ok.stdout
    not_espnet = ("-m", "not espnet")
    none = run_suite(
        tmp_path / "b", files, *workers, *not_espnet, TDANET_ESPNET_VENV="1", EXTRA_PATH=extra
    )
    assert none.returncode == 1, none.stdout
    assert "no ESPnet test (marker espnet) passed" in none.stdout


def test_the_longest_tests_exist_and_go_first():
    from ci_policy import LONGEST_FIRST, longest_first, worker_threads

    # Each is a test pytest collects (a renamed test or parameter would silently drop out).
    collected = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", *LONGEST_FIRST],
        cwd=TESTS.parent,
        capture_output=True,
        text=True,
    )
    assert collected.returncode == 0, collected.stdout + collected.stderr
    assert collected.stdout.count("::test_") == len(LONGEST_FIRST), collected.stdout

    class Item:
        def __init__(self, nodeid: str):
            self.nodeid = nodeid

    items = [Item("tests/a.py::test_a"), Item(LONGEST_FIRST[0]), Item("tests/b.py::test_b")]
    assert [i.nodeid for i in longest_first(items)] == [
        LONGEST_FIRST[0],
        "tests/a.py::test_a",
        "tests/b.py::test_b",
    ]
    assert [worker_threads(2, 2), worker_threads(16, 2), worker_threads(2, 4)] == [1, 8, 1]


def test_make_test_runs_the_demo_alone_after_the_rest():
    # The demo trains on two processes: beside an xdist worker it would fight for the cores.
    dry = subprocess.run(
        ["make", "-n", "test"], cwd=TESTS.parent, capture_output=True, text=True, check=True
    )
    runs = [
        line for line in dry.stdout.splitlines() if " -m pytest " in line and "espnet" not in line
    ]
    demo = "tests/local/test_recipe_demo.py::test_demo_recipe_default_meets_the_bar"
    assert len(runs) == 2, dry.stdout
    assert "-n 2" in runs[0] and f"--deselect {demo}" in runs[0]
    assert runs[1].split(" -m pytest ")[1].split()[0] == demo and " -n " not in runs[1]
    collected = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", demo],
        cwd=TESTS.parent,
        capture_output=True,
        text=True,
    )
    assert collected.returncode == 0 and demo in collected.stdout, collected.stdout
