"""The documentation's pictures: what the quality-vs-MACs plot places where, and that all draw."""

from __future__ import annotations

import pytest

from asteroid_tdanet.figures import main, quality_vs_macs_points

CPU_SPEED = {
    "models": {
        "tdanet": {"gmacs_per_s": 3.5},
        "tdanet_large": {"gmacs_per_s": 7.0},
        "convtasnet": {"gmacs_per_s": 5.0},
        "sepformer": {"gmacs_per_s": 70.0},
        "look2hear_reference": {"gmacs_per_s": 4.6},
    }
}


def test_points_put_the_papers_libri2mix_scores_at_measured_and_ratio_macs():
    points = {(p["model"], p["kind"]): p for p in quality_vs_macs_points(CPU_SPEED)}
    assert set(points) == {
        ("TDANet", "measured"),
        ("TDANet Large", "measured"),
        ("Conv-TasNet", "measured"),
        ("Sepformer", "measured"),
        ("TDANet", "paper ratio"),
        ("TDANet Large", "paper ratio"),
    }
    # Table 2, Libri2Mix SI-SNRi; the abstract: 5% and 10% of Sepformer's MACs.
    assert points["TDANet", "measured"]["si_snri"] == 16.9
    assert points["TDANet", "measured"]["gmacs_per_s"] == 3.5
    assert points["Sepformer", "measured"]["si_snri"] == 16.5
    assert points["Conv-TasNet", "measured"]["si_snri"] == 12.2
    assert points["TDANet", "paper ratio"]["gmacs_per_s"] == pytest.approx(0.05 * 70.0)
    assert points["TDANet Large", "paper ratio"]["gmacs_per_s"] == pytest.approx(0.10 * 70.0)
    assert points["TDANet Large", "paper ratio"]["si_snri"] == 17.4


def test_every_picture_is_drawn_from_the_committed_results(tmp_path):
    main(["--out", str(tmp_path)])
    names = {p.name for p in tmp_path.iterdir()}
    assert names == {"architecture.png", "ublock.png", "quality-vs-macs.png"}
    assert all((tmp_path / n).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for n in names)
