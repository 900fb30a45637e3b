"""Where a measured number came from: the header every committed result file carries.

Every number a README quotes lives in a JSON file under ``results/``, written by
:func:`write_result`. Besides the measured values, such a file records how to regenerate it (the
command, normally a ``make results-<study>`` target), when, on which machine (CPU model, cores,
load), with which software, and at which commit. A study takes the header with
:func:`provenance` when it starts, before it measures anything, and hands it to
:func:`write_result` at the end: the commit and date are those of the code that ran, even if the
checkout moved on while a study of several hours was running. ``tests/test_results.py`` checks the
header and that each README number equals the value it cites.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

HEADER_KEYS = ("command", "date", "machine", "versions", "commit")


# The instruction-set extensions that decide which matrix and convolution kernels run, hence
# how fast: the same "AMD EPYC" name covers AVX2-only Zen 2 and AVX-512 Zen 4 machines.
SPEED_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16")


def _cpuinfo_first() -> dict[str, str]:
    """The fields of the first processor in ``/proc/cpuinfo`` (empty where there is none)."""
    fields: dict[str, str] = {}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return fields
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break
            continue
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip(), value.strip())
    return fields


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), or the platform's best guess elsewhere."""
    name = _cpuinfo_first().get("model name")
    return name or platform.processor() or platform.machine()


def cpu_identity() -> dict[str, Any]:
    """Which CPU this is, precisely enough to tell two hosts with the same model name apart.

    Returns:
        ``model`` (name), ``family`` and ``model_number`` (as ``/proc/cpuinfo`` gives them, e.g.
        25/17 for AMD Zen 4), and ``flags``: the subset of :data:`SPEED_FLAGS` this CPU has, so
        ``"avx512f" in flags`` says whether AVX-512 kernels can run. Fields that the platform
        does not expose are left out.
    """
    fields = _cpuinfo_first()
    identity: dict[str, Any] = {"model": cpu_model()}
    for key, name in (("cpu family", "family"), ("model", "model_number")):
        if fields.get(key, "").isdigit():
            identity[name] = int(fields[key])
    if "flags" in fields:
        present = set(fields["flags"].split())
        identity["flags"] = [flag for flag in SPEED_FLAGS if flag in present]
    return identity


def machine() -> dict[str, Any]:
    """CPU (model, family/model numbers, vector extensions), cores, memory, load when measured."""
    identity = cpu_identity()
    info: dict[str, Any] = {
        "cpu": identity["model"],
        "cpu_identity": identity,
        "cores": len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "platform": platform.platform(),
    }
    try:
        pages, page_size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        info["memory_gb"] = round(pages * page_size / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        pass
    if hasattr(os, "getloadavg"):
        # A loaded machine makes times unreliable: the result says how loaded it was.
        info["load_average_1min"] = round(os.getloadavg()[0], 2)
    try:
        import torch

        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return info


def host_key(machine: Mapping[str, Any], limited_to: str | None = None) -> str:
    """A name for the kind of host: CPU model, family/model numbers, AVX-512 or not, cores.

    Result files that keep figures per host (``hosts``) key them by this name, so a run on a
    second machine adds to the file instead of replacing the first machine's figures.

    Args:
        machine: What :func:`machine` returned on that host.
        limited_to: The instruction set the run was limited to (e.g. ``"AVX2"`` on an AVX-512
            CPU with its AVX-512 code paths disabled), or None for the CPU as it is.

    Returns:
        E.g. ``"AMD EPYC family 25 model 17, AVX-512, 2 cores"``, with
        ``", limited to AVX2"`` appended for a limited run.
    """
    cpu = machine.get("cpu_identity") or {"model": machine.get("cpu", "unknown CPU")}
    numbers = ""
    if "family" in cpu and "model_number" in cpu:
        numbers = f" family {cpu['family']} model {cpu['model_number']}"
    flags = cpu.get("flags")
    vectors = "" if flags is None else (", AVX-512" if "avx512f" in flags else ", no AVX-512")
    limit = f", limited to {limited_to}" if limited_to else ""
    return f"{cpu['model']}{numbers}{vectors}, {machine.get('cores', '?')} cores{limit}"


def read_result(path: str | Path) -> dict[str, Any]:
    """Result file ``path`` as a dict; empty if it is missing, unreadable or not a JSON object."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def hosts_of(result: dict[str, Any]) -> dict[str, Any]:
    """The per-host figures of a result (its ``hosts``), empty if it has none or they are not
    a JSON object."""
    hosts = result.get("hosts")
    return hosts if isinstance(hosts, dict) else {}


def previous_hosts(path: str | Path) -> dict[str, Any]:
    """The per-host figures already in result file ``path`` (none if missing or it has none)."""
    return hosts_of(read_result(path))


def versions() -> dict[str, str]:
    """Versions of Python and of the packages that decide the numbers."""
    from importlib import metadata

    found = {"python": platform.python_version()}
    for name in ("asteroid-tdanet", "torch", "torchaudio", "asteroid", "numpy", "onnxruntime"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def git_commit(repo: str | Path | None = None) -> str:
    """The checked-out commit, with ``+dirty`` when tracked files differ from it.

    Files under ``results/`` do not count: they are what studies write (a study that saves its
    file part by part would otherwise always find itself dirty), not the code that measured.
    """
    where = Path(repo) if repo is not None else Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!results"],
            cwd=where,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")


def provenance(command: str) -> dict[str, Any]:
    """The header of a result file: command, date (UTC), machine, versions, commit.

    Call it when the study starts, and pass what it returns to :func:`write_result`.

    Args:
        command: The command that regenerates the result, e.g. ``"make results-demo"``.
    """
    return {
        "command": command,
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": machine(),
        "versions": versions(),
        "commit": git_commit(),
    }


def write_result(path: str | Path, values: dict[str, Any], header: Mapping[str, Any]) -> Path:
    """Write ``values`` under the provenance header to ``path`` (JSON, atomically).

    Args:
        path: Result file, normally ``results/<study>.json``.
        values: The measured values (plain JSON types); must not reuse the header's keys.
        header: What :func:`provenance` returned when the study started.

    Returns:
        ``path``.

    Raises:
        TypeError: ``header`` is not a provenance header (e.g. a bare command string).
    """
    if not isinstance(header, Mapping) or set(header) != set(HEADER_KEYS):
        raise TypeError(
            "write_result needs the header provenance(command) returned when the study started "
            f"(keys {list(HEADER_KEYS)}), got {header!r:.80}"
        )
    clash = sorted(set(values) & set(HEADER_KEYS))
    if clash:
        raise ValueError(f"result values may not use the header keys {clash}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps({**header, **values}, indent=2) + "\n")
    tmp.replace(path)
    return path
