"""The benchmark runs end to end on CPU in quick mode (tiny models), and refuses bad cases."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from asteroid_tdanet.bench import __main__ as bench
from asteroid_tdanet.bench.zoo import MODEL_NAMES, build_model


def test_quick_tiny_run_writes_all_outputs(tmp_path, capsys):
    out = tmp_path / "run"
    status = bench.main(
        ["--quick", "--tiny", "--repeats", "1", "--warmup", "0", "--no-onnx", "--out", str(out)]
    )
    assert status == 0
    results = json.loads((out / "bench.json").read_text())
    built = [m["name"] for m in results["models"]]
    skipped = [n for n in MODEL_NAMES if n not in built]
    assert all(any(n in note for note in results["notes"]) for n in skipped)
    for model in results["models"]:
        assert model["macs"] > 0 and model["params"] > 0
        assert model["ptflops_macs"] is None or model["ptflops_macs"] > 0
    assert {(r["model"], r["threads"], r["seconds"]) for r in results["cpu"]} == {
        (n, 1, 1.0) for n in built
    }
    assert (out / "bench.md").read_text().startswith("# TDANet efficiency benchmark")
    assert (out / "bench.png").stat().st_size > 0
    printed = capsys.readouterr().out
    assert "GMAC/s FlopCounterMode" in printed and "TINY" in printed


def test_refuses_to_overwrite(tmp_path):
    (tmp_path / "bench.json").write_text("{}")
    with pytest.raises(SystemExit, match="overwrite"):
        bench.main(["--quick", "--tiny", "--out", str(tmp_path)])


def test_uncounted_op_aborts_the_run(tmp_path, monkeypatch):
    class Dot(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.scale = nn.Parameter(torch.ones(1))

        def forward(self, wav):
            return torch.dot(wav[0], wav[0]) * self.scale

    monkeypatch.setattr(bench, "build_model", lambda *a, **k: Dot())
    status = bench.main(["--quick", "--models", "convtasnet", "--out", str(tmp_path / "x")])
    assert status == 2
    assert not (tmp_path / "x").exists()


def test_parser_rejects_unknown_models_and_bad_numbers():
    parser = bench.build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["--models", "tdanet,nope"])
    with pytest.raises(SystemExit):
        parser.parse_args(["--seconds", "0"])
    with pytest.raises(SystemExit):
        parser.parse_args(["--threads", "0"])
    args = parser.parse_args(["--seconds", "1,4", "--threads", "1,all"])
    assert args.seconds == [1.0, 4.0] and args.threads == ["1", "all"]


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_tiny_model_maps_waveform_to_sources(name):
    model = build_model(name, 8000, tiny=True)
    with torch.inference_mode():
        assert model(torch.randn(1, 1601)).shape == (1, 2, 1601)


@pytest.mark.slow
def test_quick_run_with_full_size_models(tmp_path):
    status = bench.main(["--quick", "--no-onnx", "--out", str(tmp_path / "full")])
    assert status == 0
    results = json.loads((tmp_path / "full" / "bench.json").read_text())
    by_name = {m["name"]: m for m in results["models"]}
    # Published sizes (parameter counts are exact; they do not depend on the input).
    assert by_name["convtasnet"]["params"] == 5_050_545
    assert by_name["look2hear_reference"]["params"] == 2_339_431  # 4 ms at 8 kHz
    if "sepformer" in by_name:
        assert by_name["sepformer"]["params"] == 25_679_361


def test_macs_are_counted_on_the_plain_modules():
    # ptflops hooks modules; the fast path calls functionals, so with it the count would shrink.
    # The counters switch the fast path off themselves (asteroid_tdanet.bench.macs).
    import argparse

    from asteroid_tdanet.bench.__main__ import _count
    from asteroid_tdanet.bench.macs import count_macs_ptflops
    from asteroid_tdanet.bench.zoo import build_model
    from asteroid_tdanet.fast import fast_path, fast_path_enabled

    assert fast_path_enabled()
    model = build_model("tdanet", 8000, tiny=True)
    args = argparse.Namespace(macs_seconds=0.5, sample_rate=8000, no_ptflops=False)
    entry = _count(args, "tdanet", model, [])
    with fast_path(False):
        assert entry["ptflops_macs"] == count_macs_ptflops(model, 4000)
