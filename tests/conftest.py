"""Shared test helpers: the reference fixtures of the authors' code, tiny model configs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from ci_policy import (  # noqa: F401  (hooks: no silent skips in CI, the ESPnet tests' venv)
    pytest_collection_modifyitems,
    pytest_configure,
    pytest_make_collect_report,
    pytest_report_header,
    pytest_runtest_logreport,
    pytest_runtest_makereport,
    pytest_sessionfinish,
)
from kernel_helpers import kernel_choice  # noqa: F401  (fixture: fix the product kernel)
from toolkit_helpers import hub_cache  # noqa: F401  (fixture: an offline Hugging Face cache)

from asteroid_tdanet import programs

REPO = Path(__file__).resolve().parents[1]
# The small reference files ship with the repository (tests/fixtures, see its README.md), so the
# parity tests run in every clone. The full-size released-layout file (30 MB) lives beside the
# checkout (../shared) or where TDANET_FIXTURES points.
SHIPPED_FIXTURES = Path(__file__).resolve().parent / "fixtures"
FIXTURES = Path(
    os.environ.get("TDANET_FIXTURES", REPO.parent / "shared" / "fixtures" / "look2hear")
)
# Torch operations on the fused kernels' recorded buffers raise while recording, in every test
# (off by default for speed: see asteroid_tdanet.programs).
programs.CHECKS.set(True)

TINY = {"bn_chan": 16, "hid_chan": 32, "n_blocks": 2, "upsampling_depth": 3, "n_heads": 4}


def fixture_path(name: str) -> Path:
    """Path of a reference fixture: shipped in tests/fixtures, else in FIXTURES.

    A fixture found in neither skips the test, or fails it when TDANET_REQUIRE_FIXTURES=1 (CI).
    """
    shipped = SHIPPED_FIXTURES / name
    if shipped.is_file():
        return shipped
    path = FIXTURES / name
    if not path.is_file():
        message = (
            f"reference fixture {path} not found: these tests need ../shared/fixtures/look2hear "
            "beside the checkout (or TDANET_FIXTURES pointing at it)"
        )
        if os.environ.get("TDANET_REQUIRE_FIXTURES") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return path


def load_fixture(name: str) -> dict:
    return torch.load(fixture_path(name), map_location="cpu", weights_only=True)


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    yield


def max_rel_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    """Max abs error relative to the reference's scale (max abs value)."""
    return ((out - ref).abs().max() / ref.abs().max()).item()
