"""The provenance header's commit stamp (asteroid_tdanet.provenance)."""

from __future__ import annotations

import ast
import json
import subprocess
from pathlib import Path

import pytest

from asteroid_tdanet import provenance
from asteroid_tdanet.provenance import git_commit


def git(repo: Path, *args: str) -> str:
    run = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True)
    return run.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    git(tmp_path, "init", "-q")
    (tmp_path / "code.py").write_text("x = 1\n")
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "r.json").write_text("{}\n")
    git(tmp_path, "add", ".")
    git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    return tmp_path


def test_a_changed_result_file_is_not_dirty_but_changed_code_is(repo: Path):
    head = git(repo, "rev-parse", "HEAD")
    assert git_commit(repo) == head
    (repo / "results" / "r.json").write_text('{"partial": true}\n')  # a study saving as it goes
    assert git_commit(repo) == head
    (repo / "code.py").write_text("x = 2\n")
    assert git_commit(repo) == head + "+dirty"


def test_cpu_identity_tells_avx2_from_avx512_hosts(monkeypatch, tmp_path: Path):
    from asteroid_tdanet import provenance

    def fake_cpuinfo(flags: str) -> str:
        one = (
            "processor\t: 0\nmodel name\t: AMD EPYC\ncpu family\t: 23\nmodel\t\t: 49\n"
            f"flags\t\t: {flags}\n"
        )
        return one + "\n" + one.replace("processor\t: 0", "processor\t: 1")

    real_path = provenance.Path

    def path_to(text: str):
        (tmp_path / "cpuinfo").write_text(text)
        return lambda p: real_path(tmp_path / "cpuinfo") if p == "/proc/cpuinfo" else real_path(p)

    monkeypatch.setattr(provenance, "Path", path_to(fake_cpuinfo("fpu sse avx avx2 fma")))
    zen2 = provenance.cpu_identity()
    assert zen2 == {"model": "AMD EPYC", "family": 23, "model_number": 49, "flags": ["avx2", "fma"]}
    monkeypatch.setattr(
        provenance, "Path", path_to(fake_cpuinfo("avx2 fma avx512f avx512_bf16 amx_tile"))
    )
    assert provenance.cpu_identity()["flags"] == [
        "avx2",
        "fma",
        "avx512f",
        "avx512_bf16",
        "amx_tile",
    ]
    assert provenance.machine()["cpu_identity"]["flags"][2] == "avx512f"


def test_the_header_is_the_one_taken_when_the_study_started(monkeypatch, repo: Path):
    from asteroid_tdanet import provenance as prov

    monkeypatch.setattr(prov, "git_commit", lambda where=None: git_commit(repo))
    started = git(repo, "rev-parse", "HEAD")
    header = prov.provenance("make results-x")
    (repo / "code.py").write_text("x = 3\n")  # the checkout moves on while the study runs
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "later")
    path = prov.write_result(repo / "results" / "x.json", {"v": 1}, header)
    data = __import__("json").loads(path.read_text())
    assert data["commit"] == started != git(repo, "rev-parse", "HEAD")
    assert data["date"] == header["date"] and data["command"] == "make results-x"
    with pytest.raises(TypeError, match="when the study started"):
        prov.write_result(repo / "results" / "y.json", {"v": 1}, "make results-x")


def provenance_calls(function: ast.AST) -> set[str]:
    """Names assigned from ``provenance(...)`` in ``function``."""
    return {
        target.id
        for node in ast.walk(function)
        if isinstance(node, ast.Assign)
        and isinstance(node.value, ast.Call)
        and getattr(node.value.func, "id", None) == "provenance"
        for target in node.targets
        if isinstance(target, ast.Name)
    }


def test_every_study_passes_the_header_it_took_before_measuring():
    """Each write_result call gets a variable set by provenance() in the function around it."""
    package = Path(__file__).resolve().parents[1] / "asteroid_tdanet"
    calls = 0
    for source in package.rglob("*.py"):
        if source.name == "provenance.py":
            continue
        tree = ast.parse(source.read_text())
        for outer in ast.walk(tree):
            if not isinstance(outer, ast.FunctionDef) or outer.name != "main":
                continue
            headers = provenance_calls(outer)
            for node in ast.walk(outer):
                if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "write_result":
                    calls += 1
                    header = node.args[2] if len(node.args) > 2 else None
                    assert isinstance(header, ast.Name) and header.id in headers, (
                        f"{source.name}:{node.lineno}: pass write_result the header that "
                        "provenance(command) returned when main() started"
                    )
    assert calls >= 8  # every study: startup, chunking, long audio, demo, ..., CI time


def test_host_key_tells_cpus_with_the_same_name_apart():
    zen2 = {"model": "AMD EPYC", "family": 23, "model_number": 49, "flags": ["avx2", "fma"]}
    zen4 = {"model": "AMD EPYC", "family": 25, "model_number": 17, "flags": ["avx2", "avx512f"]}
    keys = {provenance.host_key({"cpu_identity": cpu, "cores": 2}) for cpu in (zen2, zen4)}
    assert keys == {
        "AMD EPYC family 23 model 49, no AVX-512, 2 cores",
        "AMD EPYC family 25 model 17, AVX-512, 2 cores",
    }
    limited = provenance.host_key({"cpu_identity": zen4, "cores": 2}, "AVX2")
    assert limited == "AMD EPYC family 25 model 17, AVX-512, 2 cores, limited to AVX2"
    assert provenance.host_key({"cpu": "Old"}) == "Old, ? cores"  # a header without identity


def test_previous_hosts_reads_only_a_dict_of_hosts(tmp_path: Path):
    path = tmp_path / "r.json"
    assert provenance.previous_hosts(path) == {}  # missing
    path.write_text("{not json")
    assert provenance.previous_hosts(path) == {}
    path.write_text(json.dumps({"hosts": ["x"]}))
    assert provenance.previous_hosts(path) == {}
    path.write_text(json.dumps([{"hosts": {"A, 2 cores": {}}}]))  # a JSON array, not an object
    assert provenance.read_result(path) == {} and provenance.previous_hosts(path) == {}
    path.write_text(json.dumps({"hosts": {"A, 2 cores": {"commit": "c"}}}))
    assert provenance.previous_hosts(path) == {"A, 2 cores": {"commit": "c"}}
