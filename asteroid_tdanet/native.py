"""Fused CPU kernels for the fast path in inference, compiled for this CPU at first use.

``cpu_kernels.c`` holds the elementwise work of a U-block as few passes over memory as the
arithmetic allows, on time-major ``(batch, frames, channels)`` float32 activations:

* :func:`gln`: a gLN's statistics (one pass over memory, blocks of rows merged in double) and
  its application, with the local attention's gate and value (nearest-upsampled from a coarser
  scale), a sigmoid or a PReLU, and a kernel-1 depthwise convolution before it, in one call;
  a plain gLN also hands over its output's statistics, so the next gLN of it reads it once;
* :func:`depthwise`: a depthwise convolution, any kernel and stride, optionally with its
  output's gLN statistics (taken while the output is in cache, so the gLN after it makes one
  pass instead of two);
* :func:`pool_add`: adaptive average pooling of a finer scale, added to the coarsest.

Each checks its arguments and names what does not fit; ``trusted_depthwise``, ``trusted_gln``
and ``trusted_pool_add`` are the same calls without the checks, for the fast path, which checks
its parameters once per forward pass (:func:`~asteroid_tdanet.fast.kernels_fit`) and makes
hundreds of calls.

Each replaces several torch operations and their temporaries (at 8 kHz an activation is 2 MiB
per second of audio, and memory traffic, not arithmetic, is what this part of TDANet costs).
Large calls are split over torch's threads (OpenMP, sharing torch's thread pool).

They are built with the system's C compiler (``$CC``, else ``cc``), ``-O3`` and
``-march=native`` (``$TDANET_KERNEL_ARCH`` overrides the target, e.g. ``x86-64-v3``), the
first time a process needs them (about a second), into a per-user cache
(``$TDANET_KERNEL_CACHE``, else ``$XDG_CACHE_HOME/asteroid_tdanet``, else
``~/.cache/asteroid_tdanet``) under a name that hashes the source, the compiler, the flags and
the CPU's identity, so a home directory shared by different machines keeps one build per CPU
kind. A build is checked against torch on a small case before it is used.

Where there is no compiler, the build fails or the check disagrees, the fast path uses torch's
operations instead (one log line says why; :func:`describe` tells). The kernels serve float32
CPU tensors where no gradient is recorded (they have no backward). ``TDANET_NATIVE_KERNELS=0``,
``set_native_kernels(False)`` or the ``native_kernels(False)`` context manager switch them off.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from . import kernel_threads, programs
from .derived import Derived
from .switch import Switch

__all__ = [
    "GATE",
    "PRELU",
    "SIGMOID",
    "cache_dir",
    "depthwise",
    "describe",
    "gln",
    "library",
    "native_kernels",
    "native_kernels_enabled",
    "set_native_kernels",
    "trusted_depthwise",
    "trusted_gln",
    "trusted_pool_add",
    "usable",
]

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("cpu_kernels.c")
FLAGS = ("-O3", "-fPIC", "-shared", "-fno-math-errno")
# Linked against libgomp.so.1, which resolves to the copy torch has already loaded (the same
# soname), so the kernels share torch's OpenMP thread pool. Without OpenMP they run on one thread.
OPENMP = ("-fopenmp",)
_switch = Switch("TDANET_NATIVE_KERNELS")


def native_kernels_enabled() -> bool:
    """Whether the fused kernels may be used (switched on by default)."""
    return _switch.enabled


def set_native_kernels(enabled: bool) -> None:
    """Use the fused kernels where they apply (``True``, the default) or torch's operations."""
    _switch.set(enabled)


def native_kernels(enabled: bool) -> AbstractContextManager[None]:
    """Run the block with the fused kernels switched on or off, then restore the setting."""
    return _switch.scoped(enabled)


def cache_dir() -> Path:
    """Where compiled kernels are kept."""
    if os.environ.get("TDANET_KERNEL_CACHE"):
        return Path(os.environ["TDANET_KERNEL_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "asteroid_tdanet"


def _cpu_identity() -> str:
    """The CPU's model line and feature flags (what ``-march=native`` compiles for)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    wanted = ("model name", "flags", "Features", "cpu family", "model\t")
    lines = [line for line in text.splitlines() if line.startswith(wanted)]
    return "\n".join(dict.fromkeys(lines))  # first processor's lines; all cores are alike


def _compiler() -> tuple[str, str] | None:
    """The C compiler's path and its version line, or ``None`` if there is none."""
    path = shutil.which(os.environ.get("CC", "cc"))
    if path is None:
        return None
    try:
        done = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return path, done.stdout.splitlines()[0] if done.stdout else ""


def _compiler_flags() -> tuple[str, ...]:
    """Compiler flags: :data:`FLAGS` and ``-march`` from ``$TDANET_KERNEL_ARCH`` (``native``)."""
    return (*FLAGS, f"-march={os.environ.get('TDANET_KERNEL_ARCH') or 'native'}")


def _build(compiler: str, target: Path) -> bool:
    """Compile the source into ``target`` atomically (concurrent processes may race here).

    With OpenMP if the compiler has it, else without (the kernels then use one thread).

    Returns:
        Whether the build has OpenMP.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        built = Path(tmp) / target.name
        errors = []
        for extra in (OPENMP, ()):
            command = [compiler, *_compiler_flags(), *extra, str(SOURCE), "-o", str(built)]
            done = subprocess.run(command, capture_output=True, text=True, timeout=120)
            if done.returncode == 0:
                os.replace(built, target)
                return bool(extra)
            errors.append(done.stderr.strip())
        raise RuntimeError(f"{compiler} failed on {SOURCE.name}: {errors[-1]}")


def _declare(lib: ctypes.CDLL) -> None:
    i64, i32, p = ctypes.c_int64, ctypes.c_int32, ctypes.c_void_p
    f32, f64, threads = ctypes.c_float, ctypes.c_double, ctypes.c_int
    signatures = {
        "tdanet_depthwise": [p, i64, i64, i64, p, p, i64, i64, i64, i64, p, p, threads],
        "tdanet_pool_add": [p, i64, i64, i64, i64, p, threads],
        "tdanet_gln": [p, i64, i64, i64, p, p, p, p, f64, p, p, i64, p, i32, f32, p, p, p, threads],
    }
    for name, argtypes in signatures.items():
        function = getattr(lib, name)
        function.argtypes, function.restype = argtypes, None
    lib.tdanet_gln.restype = lib.tdanet_depthwise.restype = ctypes.c_int
    lib.tdanet_run.argtypes = [p, i64, p, threads, ctypes.POINTER(i32)]
    lib.tdanet_run.restype = i64
    lib.tdanet_openmp.argtypes, lib.tdanet_openmp.restype = [], ctypes.c_int
    lib.tdanet_set_grain.argtypes, lib.tdanet_set_grain.restype = [i64], None
    lib.tdanet_grain.argtypes, lib.tdanet_grain.restype = [], i64


# What library() found, for describe(): set at its first call.
_STATE: dict[str, Any] = {}
# The library once library() has loaded and checked it (the trusted_* calls use it).
_LIB: ctypes.CDLL | None = None


@lru_cache(maxsize=1)
def library() -> ctypes.CDLL | None:
    """The compiled kernels (built at the first call of a process if not cached), or ``None``."""
    global _LIB
    _LIB = None  # until this call has loaded and checked a build
    compiler = _compiler()
    if compiler is None:
        return _off("no C compiler (set CC)", logging.INFO)
    key = "\n".join([SOURCE.read_text(), *compiler, " ".join(_compiler_flags()), _cpu_identity()])
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    target = cache_dir() / f"cpu_kernels-{platform.machine()}-{digest}.so"
    _STATE.update(compiler=compiler[1], path=str(target), flags=" ".join(_compiler_flags()))
    try:
        if not target.exists():
            log.info("compiling the fused CPU kernels into %s", target)
            started = time.perf_counter()
            _build(compiler[0], target)
            _STATE["build_s"] = time.perf_counter() - started
        lib = ctypes.CDLL(str(target))
        _declare(lib)
    except (OSError, RuntimeError, subprocess.SubprocessError) as error:
        return _off(str(error), logging.WARNING)
    if not _agrees_with_torch(lib):
        return _off("they disagree with torch on this machine", logging.WARNING)
    openmp = bool(lib.tdanet_openmp())
    forced = kernel_threads.forced_grain()
    grain = kernel_threads.DEFAULT_GRAIN if forced is None else forced
    lib.tdanet_set_grain(grain)
    origin = "environment" if forced is not None else "pending" if openmp else "default"
    _STATE.update(available=True, openmp=openmp, grain_from=origin)
    _LIB = lib
    return lib


def tune_grain() -> None:
    """Set the grain for this process's thread count, measured once per machine if need be.

    The fast path calls it before each forward pass: it does something only the first time
    the kernels run on two or more threads without ``TDANET_KERNEL_GRAIN`` (see
    :mod:`asteroid_tdanet.kernel_threads`); the grain then holds for the whole process.
    """
    if _STATE.get("grain_from") != "pending" or torch.get_num_threads() < 2:
        return
    lib = library()
    _STATE["grain_from"] = "measuring"  # the measurement runs the fast path, which calls here
    path = kernel_threads.grain_file(Path(_STATE["path"]), torch.get_num_threads())
    grain, report = kernel_threads.kept_grain(path), {"grain_file": str(path)}
    if grain is None:
        grain, report = kernel_threads.measure_and_keep(path, _ublock_runner(lib))
        _STATE["grain_from"] = "measured"
    else:
        _STATE["grain_from"] = "kept"
    lib.tdanet_set_grain(grain)
    _STATE.update(report)


def _ublock_runner(lib: ctypes.CDLL) -> Callable[[int], float]:
    """Seconds of one U-block of TDANet (1 s at 8 kHz, random weights) through the fast path
    with a given grain: what the grain is measured with."""
    from .fast import ublock_forward
    from .masker import UBlock

    with torch.random.fork_rng(devices=[]):  # leaves the caller's random numbers alone
        torch.manual_seed(0)
        block = UBlock().eval()
        x = torch.randn(1, 1010, 128)

    def run(grain: int) -> float:
        lib.tdanet_set_grain(grain)
        with torch.inference_mode():
            started = time.perf_counter()
            ublock_forward(block, x)
            return time.perf_counter() - started

    return run


def _off(reason: str, level: int) -> None:
    log.log(level, "fused CPU kernels off: %s; torch's operations are used", reason)
    _STATE.update(available=False, reason=reason)
    return None


def describe() -> dict[str, Any]:
    """What the fused kernels are in this process: for result files and bug reports.

    Returns:
        ``enabled`` (the switch), ``available``; where a build was attempted ``compiler``,
        ``flags`` and ``path``; ``openmp`` (whether they can use several threads); ``grain``
        (the fewest elements per thread of a split call) and ``grain_from``: ``environment``,
        ``default`` (no OpenMP), ``pending`` (until the first forward pass on two or more
        threads), ``measured`` (then, with ``grain_ms``) or ``kept`` (read from
        ``grain_file``), see :mod:`~asteroid_tdanet.kernel_threads`; ``build_s`` if this
        process compiled them; ``reason`` when unavailable.
    """
    lib = library()
    grain = {} if lib is None else {"grain": lib.tdanet_grain()}  # as the kernels have it
    return {"enabled": _switch.enabled, **_STATE, **grain}


def usable(*tensors: torch.Tensor) -> bool:
    """Whether the fused kernels apply to these tensors now.

    They do for float32 CPU tensors where no gradient is recorded (they have no backward),
    when switched on and the library is available.
    """
    # (Called several hundred times per forward pass: plain loops, no generator.)
    if not _switch.enabled or torch.is_grad_enabled():
        return False
    for t in tensors:
        if t.dtype != torch.float32 or not t.is_cpu:
            return False
    return (_LIB or library()) is not None


def _time_major(x: torch.Tensor, name: str) -> torch.Tensor:
    if x.dim() != 3:
        raise ValueError(f"{name}: expected (batch, frames, channels), got shape {tuple(x.shape)}")
    return _float32(x, name)


def _check_float32(t: torch.Tensor, name: str) -> None:
    # (is_cpu, not device.type: this runs several times per call, and a device object costs.)
    if t.dtype != torch.float32 or not t.is_cpu:
        raise ValueError(
            f"{name}: the fused kernels take float32 CPU tensors, not {t.dtype} on {t.device}"
        )


def _float32(t: torch.Tensor, name: str) -> torch.Tensor:
    """``t`` contiguous, after checking that the kernels can read it (float32, on the CPU)."""
    _check_float32(t, name)
    return t if t.is_contiguous() else t.contiguous()


def _output(out: torch.Tensor | None, like: torch.Tensor, name: str) -> torch.Tensor:
    if out is None:
        return torch.empty_like(like)
    if not out.is_contiguous() or out.shape != like.shape or out.dtype != like.dtype:
        raise ValueError(
            f"{name}: out must be a contiguous {like.dtype} tensor {tuple(like.shape)}"
        )
    return out


def _rows(
    table: torch.Tensor, source: torch.Tensor | None, x: torch.Tensor, name: str
) -> torch.Tensor:
    """Check a per-frame table ``(B, S, C)`` and its frame index ``(T,)`` against ``x``."""
    batch, frames, channels = x.shape
    if table.dim() != 3 or table.shape[0] != batch or table.shape[2] != channels:
        raise ValueError(f"{name}: shape {tuple(table.shape)} does not fit x {tuple(x.shape)}")
    if source is None or source.shape != (frames,) or source.dtype != torch.int64:
        raise ValueError(f"{name}: needs an int64 frame index of shape ({frames},)")
    return _float32(table, name)


# trusted_gln()'s flags: what follows the normalisation (cpu_kernels.c's TDANET_* flags).
GATE, SIGMOID, PRELU = 1, 2, 4


def _kernel_flags(gate: torch.Tensor | None, sigmoid: bool, slope: float | None) -> int:
    return (
        (GATE if gate is not None else 0)
        | (SIGMOID if sigmoid else 0)
        | (PRELU if slope is not None else 0)
    )


# A depthwise weight (C, 1, K) as (K, C) rows, kept within a forward pass of the fast path.
_TAPS = Derived(lambda weight: weight.reshape(weight.shape[0], -1).t().contiguous())


def depthwise(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    stride: int,
    padding: int,
    lib: ctypes.CDLL | None = None,
    moments: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """A depthwise ``nn.Conv1d`` (zero padding) on time-major ``x``.

    Args:
        x: ``(B, T, C)``.
        weight: The convolution's weight ``(C, 1, K)``.
        bias: ``(C,)`` or ``None``.
        stride: Stride along time.
        padding: Zeros on each side.
        moments: Also return the output's per-channel means and population variances over
            time, taken while it is computed (for a :func:`gln` of the output).

    Returns:
        ``(B, T_out, C)`` with ``T_out = (T + 2 padding - K) // stride + 1``, as ``nn.Conv1d``;
        with ``moments``, also a float64 ``(2, B, C)``: the means, then the variances.
    """
    lib = lib or library()
    x = _time_major(x, "depthwise")
    batch, frames, channels = x.shape
    kernel = weight.shape[-1]
    out_frames = (frames + 2 * padding - kernel) // stride + 1
    if weight.shape != (channels, 1, kernel) or out_frames < 1:
        raise ValueError(
            f"depthwise: weight {tuple(weight.shape)} with padding {padding} does not fit "
            f"an input of {channels} channels and {frames} frames"
        )
    _check_float32(weight, "depthwise: weight")
    b = None if bias is None else _float32(bias, "depthwise: bias")
    return trusted_depthwise(x, weight, b, stride, padding, moments, lib)


def trusted_depthwise(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    stride: int,
    padding: int,
    moments: bool = False,
    lib: ctypes.CDLL | None = None,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """:func:`depthwise` without its checks, for callers whose tensors are known to fit
    (float32, on the CPU, contiguous, shapes as :func:`depthwise` requires): the fast path
    makes about 300 such calls per forward pass, and the checks cost as much as a small call."""
    batch, frames, channels = x.shape
    kernel = weight.shape[-1]
    out_frames = (frames + 2 * padding - kernel) // stride + 1
    out = torch.empty(batch, out_frames, channels, dtype=x.dtype)
    stats = torch.empty(2, batch, channels, dtype=torch.float64) if moments else None
    taps = _TAPS.get(weight)  # bound to a name: alive until the call returns
    args = (
        x.data_ptr(),
        batch,
        frames,
        channels,
        taps.data_ptr(),
        None if bias is None else bias.data_ptr(),
        kernel,
        stride,
        padding,
        out_frames,
        out.data_ptr(),
        None if stats is None else stats.data_ptr(),
    )
    recorder = programs.active()
    if recorder is not None:
        recorder.add(programs.DEPTHWISE, args, (x, taps, bias, out, stats))
    else:
        status = (lib or _LIB).tdanet_depthwise(*args, torch.get_num_threads())
        if status != 0:
            raise step_failed("depthwise", status, tuple(out.shape))
    return (out, stats) if moments else out


def pool_add(x: torch.Tensor, out: torch.Tensor, lib: ctypes.CDLL | None = None) -> torch.Tensor:
    """``out += adaptive_avg_pool(x)`` along time, torch's pooling windows, in one pass.

    Args:
        x: ``(B, T, C)``.
        out: ``(B, J, C)``, contiguous, ``J <= T``; updated in place.

    Returns:
        ``out``.
    """
    lib = lib or library()
    x = _time_major(x, "pool_add")
    batch, frames, channels = x.shape
    _check_float32(out, "pool_add: out")
    if (
        out.dim() != 3
        or (out.shape[0], out.shape[2]) != (batch, channels)
        or not 1 <= out.shape[1] <= frames
        or not out.is_contiguous()
    ):
        raise ValueError(f"pool_add: out {tuple(out.shape)} does not fit x {tuple(x.shape)}")
    return trusted_pool_add(x, out, lib)


def trusted_pool_add(
    x: torch.Tensor, out: torch.Tensor, lib: ctypes.CDLL | None = None
) -> torch.Tensor:
    """:func:`pool_add` without its checks (see :func:`trusted_depthwise`)."""
    batch, frames, channels = x.shape
    args = (x.data_ptr(), batch, frames, channels, out.shape[1], out.data_ptr())
    recorder = programs.active()
    if recorder is not None:
        recorder.add(programs.POOL_ADD, args, (x, out))
    else:
        (lib or _LIB).tdanet_pool_add(*args, torch.get_num_threads())
    return out


def trusted_copy(x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """``out.copy_(x)`` for contiguous float32 tensors of one shape; a step of its own while
    recording (:mod:`~asteroid_tdanet.programs`), where torch may not read ``x``."""
    recorder = programs.active()
    if recorder is None:
        return out.copy_(x)
    args = (x.data_ptr(), out.data_ptr(), x.numel() * x.element_size())
    recorder.add(programs.COPY, args, (x, out))
    return out


def gln(
    y: torch.Tensor,
    gamma: torch.Tensor,
    beta: torch.Tensor,
    eps: float,
    gate: torch.Tensor | None = None,
    value: torch.Tensor | None = None,
    source: torch.Tensor | None = None,
    sigmoid: bool = False,
    slope: float | None = None,
    pre_scale: torch.Tensor | None = None,
    pre_bias: torch.Tensor | None = None,
    out: torch.Tensor | None = None,
    lib: ctypes.CDLL | None = None,
    moments: torch.Tensor | None = None,
) -> torch.Tensor:
    """gLN of time-major ``y``, optionally gated and activated, in one call.

    ``f(gLN(z) * gate[:, source] + value[:, source])`` with ``z = pre_scale * y + pre_bias``
    (per channel, a kernel-1 depthwise convolution; never materialised): gLN normalises each
    item over channels and time (statistics accumulated in double, two passes), then applies
    ``gamma`` and ``beta`` per channel; ``f`` is the sigmoid, a single-slope PReLU, or the
    identity.

    Args:
        y: ``(B, T, C)``.
        gamma: ``(C,)`` gain.
        beta: ``(C,)`` bias.
        eps: Added to the variance.
        gate: ``(B, S, C)`` multiplier (``S`` frames, e.g. a coarser scale), or ``None``.
        value: ``(B, S, C)`` addend (with ``gate``).
        source: ``(T,)`` int64 frame of ``gate``/``value`` for each frame of ``y``.
        sigmoid: Apply the logistic sigmoid last.
        slope: Apply a single-slope PReLU with this slope last.
        pre_scale: ``(C,)`` or ``None`` (1).
        pre_bias: ``(C,)`` or ``None`` (0).
        out: Where to write (``y`` itself is allowed); a new tensor if ``None``.
        moments: ``y``'s per-channel means and variances as :func:`depthwise` returns them
            (``(2, B, C)`` float64), or ``None``: computed here.

    Returns:
        ``(B, T, C)``.
    """
    lib = lib or library()
    y = _time_major(y, "gln")
    batch, frames, channels = y.shape
    # Every array the kernel reads is bound to a name here, so none is freed before the call.
    per_channel = {"gain": gamma, "bias": beta, "pre_scale": pre_scale, "pre_bias": pre_bias}
    for name, t in per_channel.items():
        if t is not None and t.shape != (channels,):
            raise ValueError(f"gln: {name} of shape {tuple(t.shape)} for {channels} channels")
    gamma, beta = _float32(gamma, "gln: gain"), _float32(beta, "gln: bias")
    pre_scale = None if pre_scale is None else _float32(pre_scale, "gln: pre_scale")
    pre_bias = None if pre_bias is None else _float32(pre_bias, "gln: pre_bias")
    if gate is not None:
        if value is None or value.shape != gate.shape:
            raise ValueError("gln: gate and value must have the same shape")
        gate, value = _rows(gate, source, y, "gln: gate"), _float32(value, "gln: value")
        source = source.contiguous()
    if moments is not None and (
        moments.shape != (2, batch, channels)
        or moments.dtype != torch.float64
        or not moments.is_contiguous()
    ):
        raise ValueError(
            f"gln: moments must be a contiguous float64 tensor (2, {batch}, {channels}), "
            f"not {moments.dtype} {tuple(moments.shape)}"
        )
    out = _output(out, y, "gln")
    flags = _kernel_flags(gate, sigmoid, slope)
    return trusted_gln(
        y,
        gamma,
        beta,
        eps,
        out,
        flags,
        slope or 0.0,
        pre_scale,
        pre_bias,
        gate,
        value,
        source,
        moments,
        lib,
    )


def trusted_gln(
    y: torch.Tensor,
    gamma: torch.Tensor,
    beta: torch.Tensor,
    eps: float,
    out: torch.Tensor,
    flags: int = 0,
    slope: float = 0.0,
    pre_scale: torch.Tensor | None = None,
    pre_bias: torch.Tensor | None = None,
    gate: torch.Tensor | None = None,
    value: torch.Tensor | None = None,
    source: torch.Tensor | None = None,
    moments: torch.Tensor | None = None,
    lib: ctypes.CDLL | None = None,
    out_moments: torch.Tensor | None = None,
) -> torch.Tensor:
    """:func:`gln` without its checks, writing into ``out``, for callers whose tensors are known
    to fit (see :func:`trusted_depthwise`). ``flags``: :data:`GATE`, :data:`SIGMOID` and
    :data:`PRELU` (with ``slope``) or'ed; with :data:`GATE`, ``gate``, ``value`` and
    ``source`` must be given. ``out_moments`` (flags 0 only): a contiguous float64
    ``(2, B, C)`` that receives the result's per-channel means and variances, as
    :func:`depthwise` gives them (the result is a per-channel affine map of ``y``: they follow
    from ``y``'s without a pass over it)."""
    batch, frames, channels = y.shape
    args = (
        y.data_ptr(),
        batch,
        frames,
        channels,
        None if pre_scale is None else pre_scale.data_ptr(),
        None if pre_bias is None else pre_bias.data_ptr(),
        gamma.data_ptr(),
        beta.data_ptr(),
        eps,
        None if gate is None else gate.data_ptr(),
        None if value is None else value.data_ptr(),
        0 if gate is None else gate.shape[1],
        None if source is None else source.data_ptr(),
        flags,
        slope,
        None if moments is None else moments.data_ptr(),
        None if out_moments is None else out_moments.data_ptr(),
        out.data_ptr(),
    )
    recorder = programs.active()
    if recorder is not None:
        tensors = (y, pre_scale, pre_bias, gamma, beta, gate, value, source, moments)
        recorder.add(programs.GLN, args, (*tensors, out_moments, out))
        return out
    status = (lib or _LIB).tdanet_gln(*args, torch.get_num_threads())
    if status != 0:
        raise step_failed("gln", status, tuple(y.shape), 0 if gate is None else gate.shape[1])
    return out


def step_failed(
    kernel: str, status: int, shape: tuple[int, ...] = (), sources: int | None = None
) -> Exception:
    """The error for a kernel's failure ``status`` (its C return value), to raise.

    Args:
        kernel: ``"depthwise"`` or ``"gln"`` (the kernel that failed).
        status: What it returned.
        shape: Its output's shape, for the message.
        sources: The gate's frames (gln), for the message.
    """
    if (kernel, status) in (("depthwise", -1), ("gln", -2)):
        return MemoryError(f"{kernel}: no memory for the statistics of {shape}")
    if (kernel, status) == ("gln", -3):
        return ValueError("gln: out_moments is for a plain gLN (no gate or activation)")
    if (kernel, status) == ("gln", -1):
        return ValueError(f"gln: source frames outside [0, {sources}) (the gate's frames)")
    return RuntimeError(f"{kernel}: failed with status {status}")


def _agrees_with_torch(lib: ctypes.CDLL) -> bool:
    """A small check of the kernels against torch before the library is trusted.

    70 channels: full vector blocks of every kernel and a scalar remainder.
    """
    generator = torch.Generator().manual_seed(0)
    close, channels = torch.allclose, 70
    with torch.inference_mode(False), torch.no_grad():
        x = torch.randn(2, 7, channels, generator=generator) + 3.0
        conv = torch.nn.Conv1d(channels, channels, 3, stride=2, padding=1, groups=channels)
        want = conv(x.mT).mT
        got, stats = depthwise(x, conv.weight, conv.bias, 2, 1, lib, moments=True)
        var, mean = torch.var_mean(want, 1, correction=0)
        ok = close(got, want, atol=1e-5) and close(
            stats.float(), torch.stack([mean, var]), atol=1e-5
        )
        pooled = pool_add(x, torch.zeros(2, 3, channels), lib)
        ok = ok and close(pooled, F.adaptive_avg_pool1d(x.mT, 3).mT, atol=1e-5)
        norm = torch.nn.GroupNorm(1, channels)
        torch.nn.init.normal_(norm.weight, generator=generator)
        torch.nn.init.normal_(norm.bias, generator=generator)
        gate = torch.randn(2, 4, channels, generator=generator)
        value = torch.randn(2, 4, channels, generator=generator)
        source = torch.tensor([0, 0, 1, 1, 2, 3, 3])
        w = torch.randn(channels, generator=generator)
        p = torch.randn(channels, generator=generator)
        want = torch.sigmoid(norm((x * w + p).mT).mT * gate[:, source] + value[:, source])
        args = (norm.weight, norm.bias, norm.eps, gate, value, source)
        got = gln(x, *args, sigmoid=True, pre_scale=w, pre_bias=p, lib=lib)
        ok = ok and close(got, want, atol=1e-5)
        want = F.leaky_relu(norm(x.mT).mT, 0.1)
        return bool(ok and close(gln(x, *args[:3], slope=0.1, lib=lib), want, atol=1e-5))
