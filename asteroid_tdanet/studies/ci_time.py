"""How long CI takes: ``.ci/run`` on a fresh clone of the committed tree, timed end to end.

CI runs the whole suite (slow end-to-end checks and the ESPnet venv included) on a 2-core machine
within a 45-minute budget, on the slowest host it meets (a 2-core AMD Zen 2, AVX2 only). This
study measures that on the machine it runs on: it clones the current commit (uncommitted changes
are not part of CI, so they are not measured), runs ``.ci/run`` there with the reference
fixtures, keeps the full log next to the clone, and writes to ``results/ci.json``: the wall time,
its parts (the suite, the ESPnet venv's tests, the rest: venvs and tools), each pytest summary
line, the slowest tests, the demo test's own minutes and score (the test writes them to
``$TDANET_TEST_RECORDS``), and a fixed reference training step timed before and after CI
(:mod:`asteroid_tdanet.studies.host_speed`: how fast the host ran that hour). Figures are kept
per host (``hosts``, keyed by the CPU's identity), so a run on a second machine adds to the file
instead of replacing the first machine's figures; the top-level figures are the latest run's. A
failing run writes no result (a README must not cite a red CI) and exits with CI's status.

Run it on a quiet machine: ``make results-ci``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from asteroid_tdanet.provenance import (
    git_commit,
    host_key,
    previous_hosts,
    provenance,
    write_result,
)

REPO = Path(__file__).resolve().parents[2]
BUDGET_MINUTES = 45
# pytest's last line, e.g. "== 512 passed, 1 skipped, 7 warnings in 478.10s (0:07:58) =="
# (with -q the "=" framing is absent)
SUMMARY = re.compile(
    r"^(?:=+ )?(?P<counts>\d+ (?:passed|failed|errors?)\b[^=]*?) in (?P<seconds>[\d.]+)s\b"
)
# One row of pytest's --durations table: "745.21s call     tests/local/x.py::test_y"
DURATION = re.compile(r"^(?P<seconds>[\d.]+)s (?P<when>setup|call|teardown)\s+(?P<test>\S+::\S+)")
SLOWEST = 15
# The header line of each pytest run in this repository (tests/ci_policy.py): where ESPnet's
# tests run tells the ESPnet venv ("here") from the main one.
VENV_HEADER = re.compile(r"^ESPnet tests \(marker espnet\) run (?P<where>here|in \S+)")


def pytest_summaries(log: str) -> list[dict[str, object]]:
    """Each pytest run's outcome counts, duration and venv, in the order they appear in ``log``.

    The venv comes from the header line the suite prints at the start of each run (see
    tests/ci_policy.py): "ESPnet tests (marker espnet) run here" in the ESPnet venv, "... run in
    .venv-espnet ...; deselected here" in the main one. A run without that line counts as main.

    Args:
        log: Everything a CI run printed.

    Returns:
        ``[{"counts": {"passed": 512, "skipped": 1, ...}, "seconds": 478.1, "venv": "main"},
        ...]``.
    """
    found = []
    venv = "main"
    for line in log.splitlines():
        header = VENV_HEADER.match(line.strip())
        if header is not None:
            venv = "espnet" if header.group("where") == "here" else "main"
            continue
        match = SUMMARY.match(line.strip())
        if match is None:
            continue
        counts = {
            word: int(number) for number, word in re.findall(r"(\d+) (\w+)", match.group("counts"))
        }
        found.append({"counts": counts, "seconds": float(match.group("seconds")), "venv": venv})
        venv = "main"
    return found


def slowest_tests(log: str, n: int = SLOWEST) -> list[dict[str, object]]:
    """The ``n`` longest test phases in the ``--durations`` tables of ``log``, longest first."""
    rows = []
    for line in log.splitlines():
        match = DURATION.match(line.strip())
        if match:
            rows.append(
                {
                    "test": match.group("test"),
                    "when": match.group("when"),
                    "seconds": float(match.group("seconds")),
                }
            )
    return sorted(rows, key=lambda row: -row["seconds"])[:n]


def minutes_parts(wall_minutes: float, runs: list[dict[str, Any]]) -> dict[str, float]:
    """CI's wall time split: the suite (the main venv's pytest runs, the demo's included), the
    ESPnet venv's tests, and the rest (venvs, system tools)."""
    suite = sum(run["seconds"] for run in runs if run.get("venv") != "espnet") / 60
    espnet = sum(run["seconds"] for run in runs if run.get("venv") == "espnet") / 60
    return {
        "total": round(wall_minutes, 1),
        "suite": round(suite, 1),
        "espnet_venv_tests": round(espnet, 1),
        "setup": round(wall_minutes - suite - espnet, 1),
    }


def host_speed() -> dict[str, Any] | None:
    """The reference step's timing in a fresh process (None, with a note, if it failed)."""
    run = subprocess.run(
        [sys.executable, "-m", "asteroid_tdanet.studies.host_speed"],
        capture_output=True,
        text=True,
    )
    if run.returncode != 0:
        print(f"note: the reference step failed: {run.stderr.strip()[-500:]}", flush=True)
        return None
    return json.loads(run.stdout.splitlines()[-1])


def fresh_clone(repo: Path, clone: Path) -> str:
    """Clone ``repo`` and check out its current commit (also a detached or worktree HEAD)."""
    subprocess.run(["git", "clone", "--quiet", "--no-checkout", str(repo), str(clone)], check=True)
    subprocess.run(["git", "-C", str(clone), "fetch", "--quiet", str(repo), "HEAD"], check=True)
    subprocess.run(
        ["git", "-C", str(clone), "checkout", "--quiet", "--detach", "FETCH_HEAD"], check=True
    )
    return subprocess.run(
        ["git", "-C", str(clone), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()


def default_fixtures() -> Path | None:
    """The reference fixtures beside the checkout (``../shared/fixtures/look2hear``), if any."""
    candidate = REPO.parent / "shared" / "fixtures" / "look2hear"
    return candidate if candidate.is_dir() else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="results/ci.json", help="result file")
    parser.add_argument(
        "--work",
        default=None,
        help="folder for the clone and its log (default: a new temporary folder)",
    )
    parser.add_argument(
        "--fixtures",
        default=None,
        help="the reference fixtures folder (default: ../shared/fixtures/look2hear)",
    )
    parser.add_argument("--command", default="make results-ci", help="recorded command")
    parser.add_argument(
        "--ci", default=".ci/run", help="CI's script, relative to the clone (tests only)"
    )
    args = parser.parse_args(argv)

    fixtures = Path(args.fixtures) if args.fixtures else default_fixtures()
    if fixtures is None or not fixtures.is_dir():
        print("error: reference fixtures not found; pass --fixtures DIR", file=sys.stderr)
        return 2
    header = provenance(args.command)  # the machine and versions as the run starts
    if git_commit(REPO).endswith("+dirty"):
        print("note: uncommitted changes are not measured (CI runs the commit)", flush=True)
    work = Path(args.work or tempfile.mkdtemp(prefix="tdanet-ci-"))
    clone = work / "main"
    if clone.exists():
        print(f"error: {clone} exists; give an empty --work folder", file=sys.stderr)
        return 2
    # What CI measures is the clone: a committed tree, so the header names its commit.
    header["commit"] = fresh_clone(REPO, clone)
    log_path, records = work / "ci.log", work / "records"
    env = {
        **os.environ,
        "TDANET_FIXTURES": str(fixtures.resolve()),
        "TDANET_TEST_RECORDS": str(records),  # the demo test writes its minutes there
        "PYTEST_ADDOPTS": f"--durations={SLOWEST}",
    }
    env.pop("VIRTUAL_ENV", None)  # CI starts outside any venv
    speed_before = host_speed()
    print(f"running {args.ci} in {clone} (log: {log_path})", flush=True)
    start = time.perf_counter()
    with log_path.open("w") as log:
        run = subprocess.Popen(
            [str(clone / args.ci)],
            cwd=clone,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert run.stdout is not None
        for line in run.stdout:  # tee: a person watching sees progress
            sys.stdout.write(line)
            log.write(line)
        status = run.wait()
    minutes = (time.perf_counter() - start) / 60
    if status != 0:
        print(f"error: {args.ci} failed (exit {status}) after {minutes:.1f} min; see {log_path}")
        return status
    speed_after = host_speed()
    text = log_path.read_text()
    runs = pytest_summaries(text)
    demo_file = records / "demo.json"
    demo = json.loads(demo_file.read_text()) if demo_file.is_file() else None
    this_host = {
        "date": header["date"],
        "commit": header["commit"],
        "machine": header["machine"],
        "wall_minutes": round(minutes, 1),
        "minutes": minutes_parts(minutes, runs),
        "demo": demo,
        "reference_step_ms": {
            "before": speed_before and speed_before["median_ms"],
            "after": speed_after and speed_after["median_ms"],
            "workload": (speed_before or speed_after or {}).get("workload"),
        },
    }
    key = host_key(header["machine"])
    write_result(
        args.out,
        {
            "ci_commit": header["commit"],
            "host": key,
            "wall_minutes": round(minutes, 1),
            "budget_minutes": BUDGET_MINUTES,
            "minutes": this_host["minutes"],
            "demo": demo,
            "reference_step_ms": this_host["reference_step_ms"],
            "pytest_runs": runs,
            "slowest_tests": slowest_tests(text),
            "hosts": {**previous_hosts(Path(args.out)), key: this_host},
            "log": str(log_path),
        },
        header,
    )
    demo_note = f"; demo test {demo['minutes']:.1f} min" if demo else ""
    print(f"CI passed in {minutes:.1f} min{demo_note}; wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
