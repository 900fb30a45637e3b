"""Shared test helpers: the reference fixtures of the authors' code, tiny model configs."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest
import torch
from toolkit_helpers import hub_cache  # noqa: F401  (fixture: an offline Hugging Face cache)

REPO = Path(__file__).resolve().parents[1]
# The small reference files ship with the repository (tests/fixtures, see its README.md), so the
# parity tests run in every clone. The full-size released-layout file (30 MB) lives beside the
# checkout (../shared) or where TDANET_FIXTURES points.
SHIPPED_FIXTURES = Path(__file__).resolve().parent / "fixtures"
FIXTURES = Path(
    os.environ.get("TDANET_FIXTURES", REPO.parent / "shared" / "fixtures" / "look2hear")
)
TINY = {"bn_chan": 16, "hid_chan": 32, "n_blocks": 2, "upsampling_depth": 3, "n_heads": 4}


def pytest_report_header(config) -> str:
    where = "here" if importlib.util.find_spec("espnet2") else "in .venv-espnet (make test-espnet)"
    return f"ESPnet tests (marker espnet) run {where}"


def pytest_collection_modifyitems(config, items) -> None:
    """ESPnet can't share .venv (setuptools pins): its tests run in .venv-espnet only."""
    if importlib.util.find_spec("espnet2") is not None:
        return
    espnet = [item for item in items if item.get_closest_marker("espnet")]
    if espnet:
        config.hook.pytest_deselected(items=espnet)
        items[:] = [item for item in items if not item.get_closest_marker("espnet")]


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
