"""Process-wide on/off settings (asteroid_tdanet.switch)."""

from __future__ import annotations

import pytest

from asteroid_tdanet.switch import Switch


@pytest.mark.parametrize(
    ("value", "default", "expected"),
    [
        (None, True, True),
        (None, False, False),
        ("", False, False),
        ("1", True, True),
        ("yes", False, True),
        (" No ", True, False),
        ("FALSE", True, False),
        ("0", False, False),
    ],
)
def test_the_environment_variable_decides_at_construction(monkeypatch, value, default, expected):
    if value is None:
        monkeypatch.delenv("TDANET_TEST_SWITCH", raising=False)
    else:
        monkeypatch.setenv("TDANET_TEST_SWITCH", value)
    assert Switch("TDANET_TEST_SWITCH", default=default).enabled is expected


def test_scoped_restores_the_previous_setting_even_on_error(monkeypatch):
    monkeypatch.delenv("TDANET_TEST_SWITCH", raising=False)
    switch = Switch("TDANET_TEST_SWITCH")
    with pytest.raises(RuntimeError), switch.scoped(False):
        assert not switch.enabled
        raise RuntimeError
    assert switch.enabled
    switch.set(0)
    assert switch.enabled is False
