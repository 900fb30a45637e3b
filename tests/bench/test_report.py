"""Report writers on a hand-made results dict: ratios, tables, JSON, markdown, plot."""

from __future__ import annotations

import json

import pytest

from asteroid_tdanet.bench.report import format_tables, write_json, write_markdown, write_plot


def _cpu_row(model, backend, median, threads=1):
    return dict(
        model=model,
        backend=backend,
        threads=threads,
        seconds=1.0,
        n=3,
        median_s=median,
        q1_s=median,
        q3_s=median,
        min_s=median,
        max_s=median,
        rtf=median,
    )


@pytest.fixture
def results():
    return {
        "meta": dict(
            date="2026-01-01T00:00:00",
            machine="test CPU",
            cores=2,
            torch="2.x",
            sample_rate=8000,
            macs_seconds=1.0,
            repeats=3,
            warmup=1,
            device="cpu",
            tiny=False,
        ),
        "models": [
            dict(
                name="small",
                label="Small net",
                short_label="Small",
                description="d",
                params=1_000_000,
                gmacs_per_s=5.0,
                ptflops_gmacs_per_s=6.0,
            ),
            dict(
                name="big",
                label="Big net",
                short_label="Big",
                description="d",
                params=20_000_000,
                gmacs_per_s=50.0,
                ptflops_gmacs_per_s=None,
            ),
        ],
        "cpu": [
            _cpu_row("small", "torch", 0.2),
            _cpu_row("big", "torch", 0.8),
            _cpu_row("small", "onnxruntime", 0.1),
        ],
        "gpu": [],
        "baselines": {"macs": "big", "time": "big"},
        "notes": ["a note"],
    }


def test_tables_show_ratios_to_the_baseline(results):
    text = format_tables(results)
    small_line = next(line for line in text.splitlines() if line.startswith("Small net"))
    assert "5.000" in small_line and "10.0%" in small_line  # 5 / 50 GMAC/s
    lines = text.splitlines()
    torch_line = next(x for x in lines if x.startswith("Small net") and " torch " in x)
    onnx_line = next(x for x in lines if x.startswith("Small net") and "onnxruntime" in x)
    assert "25.0%" in torch_line  # 0.2 s / 0.8 s
    assert "12.5%" in onnx_line  # 0.1 s / 0.8 s, the baseline's torch time
    assert "a note" in text and "test CPU" in text


def test_missing_baseline_leaves_ratios_blank(results):
    results["baselines"] = {"macs": "absent", "time": "absent"}
    text = format_tables(results)
    assert "%" not in "".join(line for line in text.splitlines() if line.startswith("Small net"))


def test_markdown_and_json(results, tmp_path):
    write_markdown(results, tmp_path / "bench.md")
    md = (tmp_path / "bench.md").read_text()
    assert md.startswith("# TDANet efficiency benchmark")
    assert "| Small net |" in md and "|---|" in md
    write_json(results, tmp_path / "bench.json")
    assert json.loads((tmp_path / "bench.json").read_text()) == results


def test_plot_written_only_with_timings(results, tmp_path):
    assert write_plot(results, tmp_path / "bench.png")
    assert (tmp_path / "bench.png").read_bytes()[:4] == b"\x89PNG"
    results["cpu"] = []
    assert not write_plot(results, tmp_path / "none.png")
    assert not (tmp_path / "none.png").exists()


def test_gpu_rows_with_failures(results):
    results["cpu"] = []
    results["meta"]["gpu_name"] = "Fake GPU"
    results["gpu"] = [
        dict(
            model="big",
            task="inference",
            dtype="fp32",
            seconds=1.0,
            batch_size=1,
            n=3,
            median_s=0.004,
            q1_s=0.004,
            q3_s=0.004,
            min_s=0.004,
            max_s=0.004,
            rtf=0.004,
            peak_bytes=1.5e9,
        ),
        dict(
            model="small",
            task="inference",
            dtype="fp32",
            seconds=1.0,
            batch_size=1,
            n=3,
            median_s=0.002,
            q1_s=0.002,
            q3_s=0.002,
            min_s=0.002,
            max_s=0.002,
            rtf=0.002,
            peak_bytes=None,
        ),
        dict(
            model="small",
            task="train step",
            dtype="bf16",
            seconds=3.0,
            batch_size=4,
            error="OutOfMemoryError: out of memory",
        ),
    ]
    text = format_tables(results)
    assert "Fake GPU" in text and "1.50" in text and "50.0%" in text and "failed" in text
