"""The CI-time study: pytest's summary lines, and a run of a stand-in for CI in a small repo."""

import json
import subprocess
from pathlib import Path

import pytest

from asteroid_tdanet import provenance
from asteroid_tdanet.studies import ci_time, host_speed
from asteroid_tdanet.studies.ci_time import pytest_summaries

MAIN_HEADER = (
    "ESPnet tests (marker espnet) run in .venv-espnet (make test-espnet); deselected here; "
    "skips fail (TDANET_REQUIRE_FIXTURES)"
)
ESPNET_HEADER = "ESPnet tests (marker espnet) run here; skips fail (TDANET_REQUIRE_FIXTURES)"
LOG = f"""\
{MAIN_HEADER}
tests/test_models.py ........                                             [ 90%]
===== 2 failed, 506 passed, 1 skipped, 19 deselected, 7 warnings in 478.10s (0:07:58) =====
make test-espnet
{ESPNET_HEADER}
collected 120 items
120 passed in 61.5s
a line that says 3 passed in 2s without starting with a count is not a summary
"""


def test_every_pytest_run_is_found_with_its_counts_time_and_venv():
    assert pytest_summaries(LOG) == [
        {
            "counts": {"failed": 2, "passed": 506, "skipped": 1, "deselected": 19, "warnings": 7},
            "seconds": 478.1,
            "venv": "main",
        },
        {"counts": {"passed": 120}, "seconds": 61.5, "venv": "espnet"},
    ]


def test_the_suite_is_every_main_venv_run_and_the_espnet_venv_is_apart():
    # make test: the demo alone, the rest of the suite, then the ESPnet venv's two runs.
    log = "\n".join(
        [
            MAIN_HEADER,
            "1 passed in 900.00s (0:15:00)",
            MAIN_HEADER,
            "800 passed, 1 deselected in 600.00s (0:10:00)",
            ESPNET_HEADER,
            "300 passed in 120.00s (0:02:00)",
            ESPNET_HEADER,
            "1 passed in 60.00s (0:01:00)",
        ]
    )
    parts = ci_time.minutes_parts(30.0, pytest_summaries(log))
    assert parts == {"total": 30.0, "suite": 25.0, "espnet_venv_tests": 3.0, "setup": 2.0}


FAKE_CI = """\
#!/usr/bin/env bash
# Stands in for .ci/run: prints what pytest prints, records the demo's minutes, and moves the
# original checkout on by one commit while "CI" runs.
set -e
echo "12.50s call     tests/local/test_recipe_demo.py::test_demo_recipe_default_meets_the_bar"
echo "0.40s setup    tests/test_models.py::test_a"
echo "ESPnet tests (marker espnet) run in .venv-espnet (make test-espnet); deselected here"
echo "== 10 passed, 2 deselected in 60.00s (0:01:00) =="
echo "ESPnet tests (marker espnet) run here; skips fail (TDANET_REQUIRE_FIXTURES)"
echo "3 passed in 30.00s"
mkdir -p "$TDANET_TEST_RECORDS"
echo '{"minutes": 12.5, "si_sdr_imp": 6.8}' > "$TDANET_TEST_RECORDS/demo.json"
git -C "$ORIGINAL" commit --quiet --allow-empty -m "a later commit"
"""


def git(repo: Path, *args: str) -> str:
    out = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


@pytest.fixture
def fake_repo(tmp_path, monkeypatch) -> Path:
    repo = tmp_path / "repo"
    (repo / ".ci").mkdir(parents=True)
    (repo / ".ci" / "fake").write_text(FAKE_CI)
    (repo / ".ci" / "fake").chmod(0o755)
    git(repo, "init", "--quiet")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "add", ".")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "--quiet", "-m", "first")
    monkeypatch.setattr(ci_time, "REPO", repo)
    monkeypatch.setenv("ORIGINAL", str(repo))
    monkeypatch.setenv("GIT_AUTHOR_NAME", "t")
    monkeypatch.setenv("GIT_AUTHOR_EMAIL", "t@t")
    monkeypatch.setenv("GIT_COMMITTER_NAME", "t")
    monkeypatch.setenv("GIT_COMMITTER_EMAIL", "t@t")
    return repo


def test_the_result_names_the_commit_ci_started_from_and_the_demo_minutes(fake_repo, tmp_path):
    started_at = git(fake_repo, "rev-parse", "HEAD")
    out = tmp_path / "results" / "ci.json"
    out.parent.mkdir()
    other = {"AMD EPYC family 23 model 49, no AVX-512, 2 cores": {"wall_minutes": 40.0}}
    out.write_text(json.dumps({"hosts": other}))
    argv = ["--out", str(out), "--work", str(tmp_path / "w"), "--fixtures", str(tmp_path)]
    assert ci_time.main([*argv, "--ci", ".ci/fake"]) == 0
    assert git(fake_repo, "rev-parse", "HEAD") != started_at  # the checkout moved on meanwhile
    data = json.loads(out.read_text())
    assert data["commit"] == data["ci_commit"] == started_at
    assert data["machine"]["cpu_identity"] == provenance.cpu_identity()
    assert data["budget_minutes"] == 45
    assert data["demo"] == {"minutes": 12.5, "si_sdr_imp": 6.8}
    assert data["minutes"]["suite"] == 1.0 and data["minutes"]["espnet_venv_tests"] == 0.5
    assert data["slowest_tests"][0] == {
        "test": "tests/local/test_recipe_demo.py::test_demo_recipe_default_meets_the_bar",
        "when": "call",
        "seconds": 12.5,
    }
    # This host's figures join those of the hosts measured before.
    here = provenance.host_key(data["machine"])
    assert data["host"] == here and set(data["hosts"]) == {here, *other}
    assert data["hosts"][here]["demo"]["minutes"] == 12.5
    assert data["hosts"][here]["commit"] == started_at
    # How fast the host ran, before and after CI, with what was timed.
    speed = data["hosts"][here]["reference_step_ms"]
    assert speed == data["reference_step_ms"]
    assert speed["before"] > 0 and speed["after"] > 0
    assert speed["workload"] == host_speed.WORKLOAD


def test_a_failing_ci_writes_nothing(fake_repo, tmp_path):
    (fake_repo / ".ci" / "fake").write_text("#!/usr/bin/env bash\nexit 3\n")
    git(fake_repo, "commit", "--quiet", "-am", "failing CI")
    out = tmp_path / "ci.json"
    argv = ["--out", str(out), "--work", str(tmp_path / "w"), "--fixtures", str(tmp_path)]
    assert ci_time.main([*argv, "--ci", ".ci/fake"]) == 3
    assert not out.exists()


def test_a_failed_reference_step_is_recorded_as_missing(monkeypatch):
    monkeypatch.setattr(ci_time.sys, "executable", "false")
    assert ci_time.host_speed() is None
