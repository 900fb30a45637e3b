"""The reference fixtures shipped in tests/fixtures are the recorded files, byte for byte."""

from __future__ import annotations

import hashlib

from conftest import SHIPPED_FIXTURES, fixture_path


def test_shipped_fixtures_match_their_recorded_sha256():
    recorded = {}
    for line in (SHIPPED_FIXTURES / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split()
        recorded[name] = digest
    assert set(recorded) == {
        "tdanetbest_small.pt",
        *(f"tdanetbest_{k}_16k_keys.txt" for k in ("4ms", "2ms")),
    }
    for name, digest in recorded.items():
        path = SHIPPED_FIXTURES / name
        assert hashlib.sha256(path.read_bytes()).hexdigest() == digest, name
        assert fixture_path(name) == path  # the tests read the shipped copy
