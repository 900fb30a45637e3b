"""What installing asteroid-tdanet costs every Python process: ``python -c pass`` with and without.

The package installs a start-up hook (``asteroid_tdanet_hook.pth``, see ``asteroid_tdanet_hook``)
that every interpreter of the environment runs. This module measures its cost honestly: it
builds this project's wheel, makes two throw-away virtual environments that share this
interpreter's site-packages as a plain path entry (so torch, Asteroid... are not installed again,
and the ``.pth`` files there, an editable install of this project included, are *not* run), and
installs the wheel, hook included, into one of them only. Then it times ``python -c pass`` in
both, interleaved, and records which modules the hook imported at start-up.

The same two helpers (:func:`build_wheel`, :func:`overlay_venv`) let the tests check a real wheel
install in seconds instead of building a venv with torch per run.

Usage: ``make results-startup`` (``python -m asteroid_tdanet.bench.startup --out
results/startup.json``).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# What a wheel is built from (the rest of the checkout is not part of the package).
SOURCES = ("setup.py", "pyproject.toml", "README.md", "asteroid_tdanet_hook.py", "asteroid_tdanet")
BASE_PATH_FILE = "zz_base_site_packages.pth"


def build_wheel(out_dir: str | Path, repo: str | Path = REPO) -> Path:
    """Build this project's wheel from a copy of its sources, so the checkout stays clean.

    Args:
        out_dir: Where the copy and the wheel go.
        repo: The checkout.

    Returns:
        The ``.whl`` file.
    """
    out_dir, repo = Path(out_dir), Path(repo)
    src = out_dir / "src"
    for name in SOURCES:
        if (repo / name).is_dir():
            shutil.copytree(
                repo / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
            )
        else:
            src.mkdir(parents=True, exist_ok=True)
            shutil.copy2(repo / name, src / name)
    dist = out_dir / "dist"
    run = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet"]
        + ["--wheel-dir", str(dist), str(src)],
        capture_output=True,
        text=True,
    )
    if run.returncode != 0:
        raise RuntimeError(f"building the wheel failed:\n{run.stdout}\n{run.stderr}")
    (wheel,) = dist.glob("asteroid_tdanet-*.whl")
    return wheel


def overlay_venv(path: str | Path, wheel: str | Path | None = None) -> Path:
    """A venv that reuses this interpreter's packages, with ``wheel`` installed into its own.

    The base site-packages are appended to ``sys.path`` by a plain path line in a ``.pth`` file:
    Python does not run the ``.pth`` files of such a directory, so an editable install of this
    project there (its finder and its hook) is invisible in the overlay; only the wheel's own
    files and hook are. The wheel is installed without dependencies (they are the base's).

    Args:
        path: The venv to create.
        wheel: A wheel to install into it, or None for a plain overlay (the baseline).

    Returns:
        The venv's ``python``.
    """
    path = Path(path)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    python = path / "bin" / "python"
    base = sysconfig.get_paths()["purelib"]
    (site_packages(python) / BASE_PATH_FILE).write_text(base + "\n")
    if wheel is not None:
        subprocess.run(
            [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet"]
            + ["--no-deps", "--no-index", str(wheel)],
            check=True,
            capture_output=True,
        )
    return python


def site_packages(python: str | Path) -> Path:
    """The purelib folder of an interpreter's environment."""
    out = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(out.stdout.strip())


def start_up_modules(python: str | Path) -> set[str]:
    """The modules an interpreter has imported once it reaches ``-c`` code."""
    code = "import sys; print('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def hook_import_us(python: str | Path, repeats: int) -> float:
    """Median cumulative import time of the hook module at start-up (``-X importtime``), in us."""
    found = []
    for _ in range(repeats):
        run = subprocess.run(
            [str(python), "-X", "importtime", "-c", "pass"], capture_output=True, text=True
        )
        for line in run.stderr.splitlines():
            if line.split("|")[-1].strip() == "asteroid_tdanet_hook":
                found.append(int(line.split("|")[1]))
    if not found:
        raise RuntimeError(f"{python} did not import asteroid_tdanet_hook at start-up")
    return float(statistics.median(found))


def time_start_up(pythons: dict[str, Path], repeats: int) -> dict[str, list[float]]:
    """Wall time of ``python -c pass`` for each interpreter, interleaved, in seconds."""
    times: dict[str, list[float]] = {name: [] for name in pythons}
    for _ in range(repeats):
        for name, python in pythons.items():
            start = time.perf_counter()
            subprocess.run([str(python), "-c", "pass"], check=True)
            times[name].append(time.perf_counter() - start)
    return times


def measure(repeats: int = 40) -> dict:
    """Build the wheel and both overlays, then time and inspect their start-up."""
    with tempfile.TemporaryDirectory(prefix="tdanet-startup-") as tmp:
        tmp = Path(tmp)
        wheel = build_wheel(tmp / "wheel")
        pythons = {
            "without_plugin": overlay_venv(tmp / "without"),
            "with_plugin": overlay_venv(tmp / "with", wheel),
        }
        time_start_up(pythons, 3)  # warm the file cache
        times = time_start_up(pythons, repeats)
        extra = start_up_modules(pythons["with_plugin"]) - start_up_modules(
            pythons["without_plugin"]
        )
        hook_us = hook_import_us(pythons["with_plugin"], repeats)
    ms = {name: sorted(1000 * t for t in values) for name, values in times.items()}
    summary = {
        name: {
            "median_ms": round(statistics.median(values), 2),
            "q1_ms": round(values[len(values) // 4], 2),
            "q3_ms": round(values[(3 * len(values)) // 4], 2),
        }
        for name, values in ms.items()
    }
    return {
        "python_c_pass": summary,
        "overhead_ms": round(
            summary["with_plugin"]["median_ms"] - summary["without_plugin"]["median_ms"], 2
        ),
        "ratio_with_to_without": round(
            summary["with_plugin"]["median_ms"] / summary["without_plugin"]["median_ms"], 3
        ),
        "hook_import_us_median": hook_us,
        "repeats": repeats,
        "modules_imported_at_start_up_by_the_plugin": sorted(extra),
        "torch_imported_at_start_up": any(m == "torch" or m.startswith("torch.") for m in extra),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "results" / "startup.json")
    parser.add_argument("--repeats", type=int, default=40)
    args = parser.parse_args(argv)
    from asteroid_tdanet.provenance import provenance, write_result

    header = provenance("make results-startup")  # taken before measuring
    values = measure(args.repeats)
    write_result(args.out, values, header)
    print(
        f"python -c pass: {values['python_c_pass']['without_plugin']['median_ms']} ms without, "
        f"{values['python_c_pass']['with_plugin']['median_ms']} ms with the plugin "
        f"(x{values['ratio_with_to_without']}); the hook's import: "
        f"{values['hook_import_us_median']:.0f} us; start-up imports added: "
        f"{values['modules_imported_at_start_up_by_the_plugin']} -> {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
