"""How long CI takes: ``.ci/run`` on a fresh clone of the committed tree, timed end to end.

CI runs the whole suite (slow end-to-end checks and the ESPnet venv included) on a 2-core machine
within a 60-minute budget. This study measures that on the machine it runs on: it clones the
current commit (uncommitted changes are not part of CI, so they are not measured), runs
``.ci/run`` there with the reference fixtures, keeps the full log next to the clone, and writes
the wall time and each pytest summary line to ``results/ci.json``. A failing run writes no result
(a README must not cite a red CI) and exits with CI's status.

Run it on a quiet machine: ``make results-ci``.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from asteroid_tdanet.provenance import git_commit, write_result

REPO = Path(__file__).resolve().parents[2]
# pytest's last line, e.g. "== 512 passed, 1 skipped, 7 warnings in 478.10s (0:07:58) =="
# (with -q the "=" framing is absent)
SUMMARY = re.compile(
    r"^(?:=+ )?(?P<counts>\d+ (?:passed|failed|errors?)\b[^=]*?) in (?P<seconds>[\d.]+)s\b"
)


def pytest_summaries(log: str) -> list[dict[str, object]]:
    """Each pytest run's outcome counts and duration, in the order they appear in ``log``.

    Args:
        log: Everything a CI run printed.

    Returns:
        ``[{"counts": {"passed": 512, "skipped": 1, ...}, "seconds": 478.1}, ...]``.
    """
    found = []
    for line in log.splitlines():
        match = SUMMARY.match(line.strip())
        if match is None:
            continue
        counts = {
            word: int(number) for number, word in re.findall(r"(\d+) (\w+)", match.group("counts"))
        }
        found.append({"counts": counts, "seconds": float(match.group("seconds"))})
    return found


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
    args = parser.parse_args(argv)

    fixtures = Path(args.fixtures) if args.fixtures else default_fixtures()
    if fixtures is None or not fixtures.is_dir():
        print("error: reference fixtures not found; pass --fixtures DIR", file=sys.stderr)
        return 2
    commit = git_commit(REPO)
    if commit.endswith("+dirty"):
        print(f"note: uncommitted changes are not measured (CI sees {commit[:12]})", flush=True)
    work = Path(args.work or tempfile.mkdtemp(prefix="tdanet-ci-"))
    clone = work / "main"
    if clone.exists():
        print(f"error: {clone} exists; give an empty --work folder", file=sys.stderr)
        return 2
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True)
    log_path = work / "ci.log"
    env = {**os.environ, "TDANET_FIXTURES": str(fixtures.resolve())}
    env.pop("VIRTUAL_ENV", None)  # CI starts outside any venv
    print(f"running .ci/run in {clone} (log: {log_path})", flush=True)
    start = time.perf_counter()
    with log_path.open("w") as log:
        run = subprocess.Popen(
            [str(clone / ".ci" / "run")],
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
        print(f"error: .ci/run failed (exit {status}) after {minutes:.1f} min; see {log_path}")
        return status
    write_result(
        args.out,
        {
            "ci_commit": commit.removesuffix("+dirty"),
            "wall_minutes": round(minutes, 1),
            "budget_minutes": 60,
            "pytest_runs": pytest_summaries(log_path.read_text()),
            "log": str(log_path),
        },
        args.command,
    )
    print(f"CI passed in {minutes:.1f} min; wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
