"""Which result files measured code that has changed since: ``make results-stale``.

Each study (a ``make results-<study>`` target) declares in :data:`MEASURED_CODE` the files and
folders whose code decides its numbers. A result file records the commit it was measured at; when
``git diff`` finds a change to one of its study's paths between that commit and ``HEAD``, the file
is listed with the changed paths, and ``make results-<study>`` re-measures it. Changes that cannot
move a number are not counted: Markdown files, comments and docstrings of Python files, comments
and layout of YAML files (their parsed values are compared). This is a report, not a check: code
moves on all the time, and re-running a study of hours is a decision.

Usage: ``python -m asteroid_tdanet.studies.stale [--results results] [--strict]``.
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from asteroid_tdanet.provenance import hosts_of

REPO = Path(__file__).resolve().parents[2]

# The network and the CPU code paths it runs through.
MODEL = [
    "asteroid_tdanet/models.py",
    "asteroid_tdanet/masker.py",
    "asteroid_tdanet/layers.py",
    "asteroid_tdanet/fast.py",
    "asteroid_tdanet/kernels.py",
    "asteroid_tdanet/native.py",
    "asteroid_tdanet/cpu_kernels.c",
    "asteroid_tdanet/programs.py",
    "asteroid_tdanet/derived.py",
    "asteroid_tdanet/depthwise.py",
    "asteroid_tdanet/kernel_threads.py",
    "asteroid_tdanet/runtime.py",
    "asteroid_tdanet/switch.py",
]
# Separating a file: the model plus reading, resampling, chunking and writing.
INFERENCE = [
    *MODEL,
    "asteroid_tdanet/inference.py",
    "asteroid_tdanet/cli.py",
    "asteroid_tdanet/io.py",
    "asteroid_tdanet/resample.py",
]
LONG_RECORDING = ["asteroid_tdanet/studies/long_recording.py", "asteroid_tdanet/studies/measure.py"]

MEASURED_CODE: dict[str, list[str]] = {
    "results-startup": [
        "asteroid_tdanet_hook.py",
        "asteroid_tdanet/__init__.py",
        "setup.py",
        "asteroid_tdanet/bench/startup.py",
    ],
    "results-chunking": [*INFERENCE, *LONG_RECORDING, "asteroid_tdanet/studies/chunking.py"],
    "results-long-audio": [*INFERENCE, *LONG_RECORDING, "asteroid_tdanet/studies/long_audio.py"],
    "results-dynamic-mixing": ["asteroid_tdanet/data/"],
    "results-demo": [
        *MODEL,
        "asteroid_tdanet/data/",
        "asteroid_tdanet/recipes/",
        "local/",
        "egs/mini2mix/",
    ],
    "results-cpu-speed": [
        *MODEL,
        "asteroid_tdanet/bench/",
        "asteroid_tdanet/look2hear.py",
        "asteroid_tdanet/sepformer.py",
    ],
    "results-ci": [
        "asteroid_tdanet/",
        "asteroid_tdanet_hook.py",
        "tests/",
        "local/",
        "egs/",
        "Makefile",
        "setup.py",
        "pyproject.toml",
        ".ci/",
    ],
    "gpu-check": [
        *MODEL,
        "asteroid_tdanet/bench/gpu_check.py",
        "asteroid_tdanet/bench/gpu.py",
        "asteroid_tdanet/bench/zoo.py",
    ],
}


def make_targets(makefile: str) -> dict[str, str]:
    """Each rule's target and its recipe (continuation lines joined), from a Makefile's text."""
    targets: dict[str, str] = {}
    current: list[str] | None = None
    lines = makefile.replace("\\\n", " ").splitlines()
    for line in lines:
        if line.startswith("\t") and current is not None:
            for name in current:
                targets[name] += line.strip() + "\n"
            continue
        match = re.match(r"^([A-Za-z0-9_.$()/ -]+?)\s*:(?!=)", line)
        if match and not line.startswith((" ", "#")):
            current = match.group(1).split()
            for name in current:
                targets.setdefault(name, "")
        elif line.strip() and not line.startswith("#"):
            current = None
    return targets


def study_target(result: dict) -> str | None:
    """The make target named by a result file's ``command`` (``make results-x ...``)."""
    match = re.match(r"make (\S+)", str(result.get("command", "")))
    return match.group(1) if match else None


@dataclass
class Staleness:
    """A result file, its study, and what changed in the study's code since its commit."""

    path: Path
    target: str | None
    commit: str
    changed: list[str]
    problem: str | None = None
    # Figures kept per host (``hosts``) measured at another commit than the header's, on
    # machines that may not be at hand: {host: measured files changed since its commit}.
    hosts: dict[str, list[str]] = field(default_factory=dict)


def _at(repo: Path, revision: str, path: str) -> str | None:
    """``path``'s text at ``revision``, or None where it does not exist there."""
    out = subprocess.run(
        ["git", "show", f"{revision}:{path}"], cwd=repo, capture_output=True, text=True
    )
    return out.stdout if out.returncode == 0 else None


def _python_code(text: str) -> str | None:
    """A dump of the module's syntax tree without docstrings (comments are not in the tree)."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return None
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(body, list)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree)


def _yaml_values(text: str) -> object:
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def measured_change(repo: Path, commit: str, path: str) -> bool:
    """Whether ``path``'s change between ``commit`` and ``HEAD`` can move a measured number.

    Markdown never does; a Python file does when its syntax tree changed beyond docstrings; a
    YAML file when its parsed values changed; any other file, or one added or removed, always.
    """
    if path.endswith(".md"):
        return False
    before, after = _at(repo, commit, path), _at(repo, "HEAD", path)
    if before is None or after is None:
        return True
    if path.endswith(".py"):
        old, new = _python_code(before), _python_code(after)
        return old is None or new is None or old != new
    if path.endswith((".yml", ".yaml")):
        return _yaml_values(before) != _yaml_values(after)
    return True


def changed_paths(repo: Path, commit: str, paths: list[str]) -> list[str]:
    """Files under ``paths`` whose change between ``commit`` and ``HEAD`` can move a number."""
    out = subprocess.run(
        ["git", "diff", "--name-only", commit, "HEAD", "--", *paths],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    )
    return [path for path in out.stdout.split() if measured_change(repo, commit, path)]


def staleness(path: Path, repo: Path = REPO) -> Staleness:
    """What changed in the measured code of result file ``path`` since it was measured."""
    data = json.loads(path.read_text())
    target = study_target(data)
    commit = str(data.get("commit", "")).removesuffix("+dirty")
    if target not in MEASURED_CODE:
        return Staleness(path, target, commit, [], f"no measured code declared for {target}")
    try:
        changed = changed_paths(repo, commit, MEASURED_CODE[target])
    except subprocess.CalledProcessError:
        return Staleness(path, target, commit, [], f"commit {commit[:12]} is not in this clone")
    older = {}
    for key, entry in hosts_of(data).items():
        at = str(entry.get("commit", commit) if isinstance(entry, dict) else commit)
        at = at.removesuffix("+dirty")
        if at != commit:
            try:
                older[key] = changed_paths(repo, at, MEASURED_CODE[target])
            except subprocess.CalledProcessError:
                older[key] = [f"(commit {at[:12]} is not in this clone)"]
    return Staleness(path, target, commit, changed, hosts={k: v for k, v in older.items() if v})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, default=REPO / "results")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a result file is stale")
    args = parser.parse_args(argv)
    stale = 0
    for path in sorted(args.results.glob("*.json")):
        found = staleness(path)
        name = path.name
        if found.problem:
            stale += 1
            print(f"{name}: {found.problem}")
        elif found.changed:
            stale += 1
            shown = ", ".join(found.changed[:8]) + (" ..." if len(found.changed) > 8 else "")
            print(
                f"{name}: stale ({len(found.changed)} measured files changed since "
                f"{found.commit[:12]}; `make {found.target}` re-measures): {shown}"
            )
        else:
            print(f"{name}: current (measured code unchanged since {found.commit[:12]})")
        for host, changed in found.hosts.items():
            stale += 1
            shown = ", ".join(changed[:8]) + (" ..." if len(changed) > 8 else "")
            print(
                f"{name}: entry of host {host!r} is stale ({len(changed)} measured files "
                f"changed since it was measured; `make {found.target}` on that host re-measures "
                f"it): {shown}"
            )
    print(f"{stale} stale (result files and per-host entries)", file=sys.stderr)
    return 1 if stale and args.strict else 0


if __name__ == "__main__":
    raise SystemExit(main())
