"""The side-by-side CPU speed study: its ratios and a tiny end-to-end run."""

from __future__ import annotations

import json

import pytest
import torch

from asteroid_tdanet import fast, kernels, native, provenance
from asteroid_tdanet.bench import cpu_speed
from asteroid_tdanet.studies.stale import REPO, make_targets


def test_ratios_and_targets():
    rows = {
        name: {"median_ms": ms}
        for name, ms in [
            ("tdanet", 100.0),
            ("convtasnet", 120.0),
            ("look2hear_reference", 300.0),
            ("sepformer", 900.0),
            ("tdanet_large", 140.0),
        ]
    }
    got = cpu_speed.ratios({"t1_1s": rows})["t1_1s"]
    assert got["tdanet_vs_convtasnet"] == 100 / 120 and got["tdanet_vs_convtasnet_met"]  # <= 0.9
    assert got["tdanet_vs_look2hear_reference"] == 1 / 3
    assert not got["tdanet_vs_look2hear_reference_met"]
    assert not got["tdanet_vs_sepformer_met"]  # 11% > 8%
    assert not got["tdanet_large_vs_look2hear_reference_met"]  # 140 / 300 > 0.4
    assert "tdanet_vs_tdanet_plain" not in got  # no plain row: no ratio, no error


def test_paired_ratios_are_taken_round_by_round():
    # Round 3 was slow for both models: its paired ratio is 0.8 like the others, while the
    # ratio of medians (100 / 110) is not.
    tdanet = [80.0, 90.0, 400.0, 100.0, 88.0]
    convtasnet = [100.0, 110.0, 500.0, 125.0, 110.0]
    got = cpu_speed.paired_ratios(tdanet, convtasnet)
    assert got == pytest.approx({"q1": 0.8, "median": 0.8, "q3": 0.8})
    got = cpu_speed.paired_ratios([1.0, 2.0, 3.0, 4.0, 5.0], [1.0] * 5)
    assert got == pytest.approx({"q1": 2.0, "median": 3.0, "q3": 4.0})
    assert cpu_speed.paired_ratios([3.0], [2.0]) == {"q1": 1.5, "median": 1.5, "q3": 1.5}
    with pytest.raises(ValueError, match="same rounds of both models, got 2 and 3"):
        cpu_speed.paired_ratios([1.0, 2.0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="got 0 and 0"):
        cpu_speed.paired_ratios([], [])


@pytest.mark.parametrize(
    ("q1", "q3", "expected"),
    [
        (0.80, 0.90, "met"),  # the limit itself counts as met, as in *_met
        (0.85, 0.91, "within noise"),
        (0.90, 0.95, "within noise"),
        (0.91, 0.95, "not met"),
    ],
)
def test_verdict_is_met_only_beyond_the_spread_of_rounds(q1, q3, expected):
    assert cpu_speed.verdict({"q1": q1, "median": (q1 + q3) / 2, "q3": q3}, 0.9) == expected


def test_ratios_carry_the_paired_spread_and_verdict_when_rounds_are_kept():
    # Round ratios 0.8, 0.8, 90 / 95, 1.0 and 1.0 (ratio of medians 90 / 100).
    rounds = {
        "tdanet": [80.0, 90.0, 100.0, 80.0, 100.0],
        "convtasnet": [100.0, 95.0, 100.0, 100.0, 100.0],
    }
    rows = {
        name: {"median_ms": sorted(values)[2], "rounds_ms": values}
        for name, values in rounds.items()
    }
    rows["sepformer"] = {"median_ms": 1000.0}  # no rounds: no paired spread
    got = cpu_speed.ratios({"t1_1s": rows})["t1_1s"]
    assert got["tdanet_vs_convtasnet"] == 90 / 100
    paired = got["tdanet_vs_convtasnet_paired"]
    assert paired == pytest.approx({"q1": 0.8, "median": 90 / 95, "q3": 1.0})
    assert got["tdanet_vs_convtasnet_met"]
    assert got["tdanet_vs_convtasnet_verdict"] == "within noise"
    assert got["tdanet_vs_sepformer"] == 0.09
    assert "tdanet_vs_sepformer_paired" not in got and "tdanet_vs_sepformer_verdict" not in got
    # Quartiles of fewer rounds than VERDICT_ROUNDS get no verdict.
    short = {name: {**rows[name], "rounds_ms": values[:4]} for name, values in rounds.items()}
    got = cpu_speed.ratios({"t1_1s": short})["t1_1s"]
    assert "tdanet_vs_convtasnet_paired" in got and "tdanet_vs_convtasnet_verdict" not in got


def test_short_inputs_get_their_own_number_of_rounds(monkeypatch):
    asked = []
    monkeypatch.setattr(
        cpu_speed,
        "time_interleaved",
        lambda runners, repeats, warmup: (
            asked.append(repeats) or {name: [0.001] * repeats for name in runners}
        ),
    )
    monkeypatch.setattr(cpu_speed, "build_model", lambda *args, **kwargs: torch.nn.Identity())
    got = cpu_speed.time_models(["tdanet"], 8000, [0.5, 1.0, 4.0], [1], 3, 0, short_repeats=7)
    assert asked == [7, 7, 3]
    assert got["t1_1s"]["tdanet"]["rounds_ms"] == [1.0] * 7
    assert got["t1_4s"]["tdanet"]["n"] == 3
    asked.clear()
    cpu_speed.time_models(["tdanet"], 8000, [1.0], [1], 3, 0)
    assert asked == [3]


def test_thread_scaling_ratio():
    timings = {
        "t1_1s": {"tdanet": {"median_ms": 100.0}},
        "t2_1s": {"tdanet": {"median_ms": 60.0}},
        "t2_4s": {"tdanet": {"median_ms": 60.0}},  # no 1-thread row for 4 s: no ratio
    }
    got = cpu_speed.ratios(timings)
    assert got["t2_1s"]["tdanet_vs_tdanet_1_thread"] == 0.6
    assert got["t2_1s"]["tdanet_vs_tdanet_1_thread_met"]  # <= 0.65
    assert "tdanet_vs_tdanet_1_thread" not in got["t2_4s"]
    assert "tdanet_vs_tdanet_1_thread" not in got["t1_1s"]


def test_scaling_summary_takes_the_ratio_per_block():
    blocks = [
        {"tdanet_t1_ms": 200.0, "tdanet_t2_ms": 150.0, "gemm_t1_ms": 20.0, "gemm_t2_ms": 10.0},
        {"tdanet_t1_ms": 200.0, "tdanet_t2_ms": 300.0, "gemm_t1_ms": 20.0, "gemm_t2_ms": 11.0},
        {"tdanet_t1_ms": 100.0, "tdanet_t2_ms": 80.0, "gemm_t1_ms": 22.0, "gemm_t2_ms": 11.0},
    ]
    got = cpu_speed.scaling_summary(blocks)
    assert got["blocks"] == 3
    # Ratios per block (0.75, 1.5, 0.8), not the ratio of the blocks' totals or medians.
    assert got["tdanet_t2_over_t1"] == {"min": 0.75, "median": 0.8, "max": 1.5}
    assert got["gemm_t2_over_t1"] == {"min": 0.5, "median": 0.5, "max": 0.55}
    with pytest.raises(ValueError, match="no thread-scaling blocks"):
        cpu_speed.scaling_summary([])


def test_thread_scaling_runs_alone_in_a_fresh_process():
    got = cpu_speed.measure_thread_scaling(8000, 0.25, blocks=2, calls=1, tiny=True)
    assert (got["seconds"], got["calls_per_block"], got["gemm_size"]) == (0.25, 1, 128)
    assert len(got["blocks"]) == 2
    keys = {"tdanet_t1_ms", "tdanet_t2_ms", "gemm_t1_ms", "gemm_t2_ms"}
    assert all(row.keys() == keys and min(row.values()) > 0 for row in got["blocks"])
    assert got["summary"] == cpu_speed.scaling_summary(got["blocks"])


def test_a_failed_fresh_process_is_named_with_its_error():
    assert cpu_speed._run_fresh("print('x'); print('[1, 2]')", "probe") == [1, 2]
    with pytest.raises(RuntimeError, match="thread-scaling run failed:\n.*boom"):
        cpu_speed._run_fresh("raise SystemExit('boom')", "thread-scaling run")


TINY = ["--tiny", "--repeats", "1", "--short-repeats", "1", "--warmup", "0"]
TINY += ["--seconds", "0.25", "--threads", "1"]
TINY += ["--first-call-seconds", "0.25", "--first-call-repeats", "1"]


def test_tiny_run_writes_a_result_per_host_and_keeps_other_hosts(tmp_path):
    out = tmp_path / "cpu-speed.json"
    zen2 = {"model": "AMD EPYC", "family": 23, "model_number": 49, "flags": ["avx2", "fma"]}
    other = {"Xeon family 6 model 143, AVX-512, 2 cores": {"commit": "b" * 40, "ratios": {}}}
    # A file from before figures were kept per CPU: its entries take the header's provenance.
    legacy = {"native": {"host": {"cpu": zen2, "isa_limits": {}}, "ratios": {"t1_1s": {}}}}
    before = {"date": "2026-01-01T00:00:00Z", "commit": "a" * 40, "machine": {"cores": 2}}
    out.write_text(json.dumps({**before, "hosts": {**legacy, **other}}))
    assert cpu_speed.main(["--out", str(out), *TINY]) == 0
    data = json.loads(out.read_text())
    assert data["command"] == "make results-cpu-speed"
    assert "before" in data["load_average_1min"]
    here = provenance.host_key(data["machine"])
    expected_now = [here] + (
        [f"{here}, limited to AVX2"] if cpu_speed.host_kinds() != ["native"] else []
    )
    assert data["measured_now"] == expected_now
    old_key = "AMD EPYC family 23 model 49, no AVX-512, 2 cores"
    assert data["hosts"].keys() == {*expected_now, old_key, *other}
    assert data["hosts"][old_key]["commit"] == "a" * 40
    assert data["hosts"][old_key]["date"] == "2026-01-01T00:00:00Z"
    assert data["hosts"][old_key]["machine"]["cpu_identity"] == zen2
    assert data["hosts"]["Xeon family 6 model 143, AVX-512, 2 cores"] == other[next(iter(other))]
    host = data["hosts"][here]
    assert (host["commit"], host["date"]) == (data["commit"], data["date"])
    assert host["machine"]["cpu_identity"] == provenance.cpu_identity()
    assert host["host"]["isa_limits"] == {}
    assert "flags" in host["host"]["cpu"]
    rows = host["cpu"]["t1_0.25s"]
    expected = {"tdanet", "tdanet_plain", "tdanet_mkl", "tdanet_torchops", "tdanet_calls"}
    expected.add("convtasnet")
    assert expected | {"look2hear_reference"} <= rows.keys()
    assert host["config"]["native_kernels"]["available"] == (native.library() is not None)
    ratio = host["ratios"]["t1_0.25s"]["tdanet_vs_tdanet_plain"]
    assert ratio == rows["tdanet"]["median_ms"] / rows["tdanet_plain"]["median_ms"]
    assert host["first_call"]["0.25s"]["first_s"] > 0
    assert host["first_call_default_allocator"]["0.25s"]["first_s"] > 0
    assert host["thread_scaling"] is None  # --threads 1: nothing to compare
    assert host["gemm"].keys() == set(cpu_speed.GEMM_SHAPES)
    for rates in host["gemm"].values():
        assert rates["mkl_gmacs"] > 0
        kinds = ["mkl_transposed"] + (["onednn"] if kernels.onednn_linear_available() else [])
        for kind in kinds:
            assert rates[f"{kind}_vs_mkl"] == rates[f"{kind}_gmacs"] / rates["mkl_gmacs"]


def test_entries_from_before_per_cpu_keys_take_the_header_and_the_cpu_they_recorded():
    zen4 = {"model": "AMD EPYC", "family": 25, "model_number": 17, "flags": ["avx2", "avx512f"]}
    header = {"date": "d", "commit": "c" * 40, "machine": {"cpu": "AMD EPYC", "cores": 2}}
    kept = {"date": "e", "commit": "f" * 40, "machine": {}, "ratios": {}}
    hosts = {
        "native": {"host": {"cpu": zen4, "isa_limits": {}}, "ratios": {"r": 1}},
        "avx2_limited": {"host": {"cpu": zen4, "isa_limits": {"x": "y"}}, "ratios": {"r": 2}},
        "native ": kept,  # already keyed (any name): kept as it is
    }
    got = cpu_speed.keyed_by_host(hosts, header)
    name = "AMD EPYC family 25 model 17, AVX-512, 2 cores"
    assert got.keys() == {name, f"{name}, limited to AVX2", "native "}
    assert got[name]["ratios"] == {"r": 1} and got[f"{name}, limited to AVX2"]["ratios"] == {"r": 2}
    assert (got[name]["date"], got[name]["commit"]) == ("d", "c" * 40)
    assert got[name]["machine"] == {"cpu": "AMD EPYC", "cores": 2, "cpu_identity": zen4}
    assert got["native "] is kept


def test_the_avx2_limits_reach_torch_in_a_fresh_process():
    limited = cpu_speed._run_host("avx2_limited", TINY)["host"]
    # ATen's dispatch level says so (on an AVX2-only CPU it is AVX2 anyway).
    assert limited["aten_cpu_capability"] == "AVX2"
    assert limited["isa_limits"]["ONEDNN_MAX_CPU_ISA"] == "AVX2"
    assert "Zen 2" in limited["measured_as"]


def test_host_kinds_follow_the_cpu_flags(monkeypatch, capsys, tmp_path):
    assert cpu_speed.host_kinds(["avx2", "fma"]) == ["native"]
    assert cpu_speed.host_kinds(["avx2", "avx512f"]) == ["native", "avx2_limited"]
    monkeypatch.setattr(cpu_speed, "host_kinds", lambda: ["native"])
    with pytest.raises(SystemExit):
        cpu_speed.main(["--out", str(tmp_path / "x.json"), "--hosts", "avx2_limited"])
    assert "avx2_limited: this CPU has no AVX-512 code paths to disable" in capsys.readouterr().err


def test_variants_switch_the_fast_path_and_the_kernels():
    seen = []

    class Probe(torch.nn.Module):
        def forward(self, wav):
            seen.append(
                (
                    fast.fast_path_enabled(),
                    kernels.onednn_linear_enabled(),
                    native.native_kernels_enabled(),
                    fast._programs.enabled,
                )
            )
            return wav

    for variant in ("", cpu_speed.PLAIN, cpu_speed.MKL, cpu_speed.TORCHOPS, cpu_speed.CALLS):
        cpu_speed._runner(Probe(), torch.zeros(1), variant)()
    assert seen == [
        (True, True, True, True),
        (False, False, False, True),
        (True, False, True, True),
        (True, True, False, True),
        (True, True, True, False),
    ]
    assert cpu_speed._base("tdanet_large_plain") == "tdanet_large"
    assert cpu_speed._base("tdanet_torchops") == "tdanet"
    assert cpu_speed._base("tdanet_calls") == "tdanet"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--first-call-repeats", "0"], "--first-call-repeats: '0' is not a positive integer"),
        (["--repeats", "0"], "--repeats: '0' is not a positive integer"),
        (["--warmup", "-1"], "--warmup: '-1' is not an integer >= 0"),
        (["--threads", "1,0"], "--threads: '0' is not a positive integer"),
        (["--seconds", "0"], "--seconds: '0' is not a positive number of seconds"),
        (["--seconds", "nan"], "--seconds: 'nan' is not a positive number of seconds"),
        (["--seconds", "x"], "--seconds: 'x' is not a positive number of seconds"),
        (["--seconds", ","], "--seconds: give at least one input duration"),
        (["--seconds", "1e-5"], "--seconds: 1e-05 s at 8000 Hz is less than one sample"),
        (["--first-call-seconds", "1e-5"], "--first-call-seconds: 1e-05 s at 8000 Hz is less"),
        (["--sample-rate", "0"], "--sample-rate: '0' is not a positive integer"),
        (["--hosts", "avx3"], "--hosts: 'avx3': host kinds are native, avx2_limited"),
        (["--scaling-blocks", "-1"], "--scaling-blocks: '-1' is not an integer >= 0"),
    ],
)
def test_bad_arguments_are_named(args, message, capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        cpu_speed.main(["--out", str(tmp_path / "x.json"), *args])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_missing_output_folder_is_named(capsys, tmp_path):
    with pytest.raises(SystemExit):
        cpu_speed.main(["--out", str(tmp_path / "nowhere" / "x.json")])
    assert f"--out: folder {tmp_path / 'nowhere'} does not exist" in capsys.readouterr().err


def test_a_run_at_another_sample_rate_gets_entries_of_its_own():
    machine = {"cpu_identity": {"model": "C", "family": 25, "model_number": 1, "flags": []}}
    machine["cores"] = 2
    plain = "C family 25 model 1, no AVX-512, 2 cores"
    assert cpu_speed.entry_key(machine, "native", 8000) == plain  # the goals' rate: no suffix
    assert cpu_speed.entry_key(machine, "native", 16000) == f"{plain}, 16 kHz"
    limited = cpu_speed.entry_key(machine, "avx2_limited", 16000)
    assert limited == f"{plain}, limited to AVX2, 16 kHz"
    assert cpu_speed.entry_key(machine, "native", 22050) == f"{plain}, 22.05 kHz"


def test_make_measures_8_and_16_khz_into_one_file():
    recipe = make_targets((REPO / "Makefile").read_text())["results-cpu-speed"]
    passes = [line for line in recipe.splitlines() if "asteroid_tdanet.bench.cpu_speed" in line]
    assert len(passes) == 2 and all("--out results/cpu-speed.json" in line for line in passes)
    assert "--sample-rate" not in passes[0] and "--sample-rate 16000" in passes[1]


@pytest.mark.parametrize("kernel", ["mkl", "mkl_transposed", "onednn"])
def test_the_gemm_rates_time_each_kernel_on_the_same_product(kernel):
    if kernel == "onednn" and not kernels.onednn_linear_available():
        pytest.skip("this torch build has no oneDNN matmul")
    generator = torch.Generator().manual_seed(0)
    x, w, b = (torch.randn(*shape, generator=generator) for shape in ((9, 16), (8, 16), (8,)))
    with torch.inference_mode():
        torch.testing.assert_close(cpu_speed._product(x, w, b, kernel)(), x @ w.T + b)
