"""How the fused kernels' grain is chosen, kept and used (kernel_threads, native.tune_grain)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from test_native import needs_kernels

from asteroid_tdanet import TDANet, kernel_threads, native
from asteroid_tdanet.kernel_threads import DEFAULT_GRAIN


def test_the_fastest_grain_is_chosen_only_when_it_beats_the_default_clearly():
    timings = {DEFAULT_GRAIN: 10.0, 32768: 9.8, 8192: 9.0, 2048: 9.5}
    assert kernel_threads.choose_grain(timings) == 8192
    # 2% faster is within the measurements' noise: the default stays.
    assert kernel_threads.choose_grain({DEFAULT_GRAIN: 10.0, 8192: 9.8}) == DEFAULT_GRAIN
    assert kernel_threads.choose_grain({DEFAULT_GRAIN: 10.0, 8192: 9.7}) == 8192
    assert kernel_threads.choose_grain({DEFAULT_GRAIN: 9.0, 8192: 10.0}) == DEFAULT_GRAIN
    with pytest.raises(ValueError, match="no timing of the default grain 131072"):
        kernel_threads.choose_grain({8192: 1.0})


def test_measure_interleaves_the_grains_and_takes_medians():
    calls = []
    script = {1: iter([9.0, 1.0, 2.0, 3.0]), 2: iter([9.0, 5.0, 4.0, 6.0])}

    def run(grain: int) -> float:
        calls.append(grain)
        return next(script[grain])

    assert kernel_threads.measure(run, grains=(1, 2), rounds=3) == {1: 2.0, 2: 5.0}
    assert calls == [1, 2, 1, 2, 1, 2, 1, 2]  # one warm-up each, then rounds of both


@pytest.mark.parametrize(("text", "value"), [("", None), ("1", 1), ("65536", 65536)])
def test_the_environment_sets_the_grain(monkeypatch, text, value):
    monkeypatch.setenv("TDANET_KERNEL_GRAIN", text)
    assert kernel_threads.forced_grain() == value


@pytest.mark.parametrize("text", ["0", "-3", "lots", "1.5"])
def test_a_bad_grain_in_the_environment_is_refused_by_name(monkeypatch, text):
    monkeypatch.setenv("TDANET_KERNEL_GRAIN", text)
    with pytest.raises(ValueError, match=f"TDANET_KERNEL_GRAIN must be .* not '{text}'"):
        kernel_threads.forced_grain()


def test_a_grain_is_kept_per_library_and_thread_count(tmp_path):
    library = tmp_path / "cpu_kernels-x86_64-0123.so"
    path = kernel_threads.grain_file(library, 4)
    assert path.parent == tmp_path and path != kernel_threads.grain_file(library, 2)
    assert kernel_threads.kept_grain(path) is None  # nothing kept yet
    timings = iter([3.0, 2.0, 1.0, 1.5] + [3.0, 2.0, 1.0, 1.5] * 9)
    grain, report = kernel_threads.measure_and_keep(path, lambda g: next(timings))
    assert grain == 8192 and report["grain_file"] == str(path)
    assert report["grain_ms"] == {"131072": 3000.0, "32768": 2000.0, "8192": 1000.0, "2048": 1500.0}
    assert kernel_threads.kept_grain(path) == 8192
    assert not list(tmp_path.glob("*.tmp"))  # written through a temporary file, renamed
    for unreadable in ("not json", json.dumps({"grain": 0}), json.dumps({"other": 1})):
        path.write_text(unreadable)
        assert kernel_threads.kept_grain(path) is None


def test_a_grain_that_cannot_be_kept_is_still_used(tmp_path, caplog):
    path = tmp_path / "missing" / "file.json"
    (tmp_path / "missing").write_text("a file where the folder would be")
    with caplog.at_level(logging.WARNING):
        grain, _ = kernel_threads.measure_and_keep(path, lambda g: 1.0)
    assert grain == DEFAULT_GRAIN  # all equal: the default
    assert "could not keep the kernels' grain" in caplog.text


TUNE = """
import json, torch
from asteroid_tdanet import TDANet, native
torch.set_num_threads({threads})
model = TDANet(n_src=2, sample_rate=8000, bn_chan=16, hid_chan=32, n_blocks=2).eval()
before = native.describe()["grain_from"]
with torch.inference_mode():
    model(torch.randn(1, 800))
info = native.describe()
print(json.dumps({{"before": before, **info}}))
"""


def tune(tmp_path, threads: int, **env: str) -> dict:
    """describe() before and after one forward pass, in a fresh process with its own cache."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(TUNE.format(threads=threads))],
        capture_output=True,
        text=True,
        env={**os.environ, "TDANET_KERNEL_CACHE": str(tmp_path), **env},
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@needs_kernels
@pytest.mark.skipif(kernel_threads.usable_cores() < 2, reason="needs two cores")
def test_the_first_forward_on_two_threads_measures_the_grain_then_it_is_kept(tmp_path, monkeypatch):
    monkeypatch.delenv("TDANET_KERNEL_GRAIN", raising=False)
    first = tune(tmp_path, 2)
    assert (first["before"], first["grain_from"]) == ("pending", "measured")
    assert set(first["grain_ms"]) == {str(g) for g in kernel_threads.CANDIDATES}
    assert first["grain"] in kernel_threads.CANDIDATES
    kept = json.loads(Path(first["grain_file"]).read_text())
    assert kept["grain"] == first["grain"]
    second = tune(tmp_path, 2)
    assert (second["grain_from"], second["grain"]) == ("kept", first["grain"])
    # One thread: nothing to split, nothing measured.
    assert tune(tmp_path, 1)["grain_from"] == "pending"


@needs_kernels
def test_a_kept_grain_is_what_the_kernels_use(tmp_path, monkeypatch):
    monkeypatch.delenv("TDANET_KERNEL_GRAIN", raising=False)
    library = tmp_path / Path(native.describe()["path"]).name
    kernel_threads.grain_file(library, 2).write_text(json.dumps({"grain": 777}))
    info = tune(tmp_path, 2)
    assert (info["grain_from"], info["grain"]) == ("kept", 777)


@needs_kernels
def test_the_environment_overrides_any_measurement(tmp_path):
    info = tune(tmp_path, 2, TDANET_KERNEL_GRAIN="4096")
    assert (info["before"], info["grain_from"], info["grain"]) == ("environment",) * 2 + (4096,)
    assert not list(tmp_path.glob("*grain*"))


@needs_kernels
def test_the_grain_changes_no_output_bit(monkeypatch):
    # Every call split (grain 1) against none split, on two threads: a small TDANet with odd
    # lengths and 70 channels (vector remainders), perturbed weights.
    lib = native.library()
    torch.manual_seed(0)
    model = TDANet(n_src=2, sample_rate=8000, bn_chan=24, hid_chan=70, n_blocks=2, n_heads=7).eval()
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.3 * torch.randn_like(param))
    wav = torch.randn(2, 1357)
    previous_threads, previous_grain = torch.get_num_threads(), native.describe()["grain"]
    outputs = []
    try:
        torch.set_num_threads(2)
        monkeypatch.setitem(native._STATE, "grain_from", "environment")  # no tuning here
        for grain in (1, 1 << 40):
            lib.tdanet_set_grain(grain)
            with torch.inference_mode():
                outputs.append(model(wav))
    finally:
        torch.set_num_threads(previous_threads)
        lib.tdanet_set_grain(previous_grain)
    assert torch.equal(outputs[0], outputs[1])
