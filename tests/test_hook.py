"""The start-up hook: any process that imports asteroid.models finds our models, no glue.

Every check runs a fresh interpreter (the hook acts at start-up and on first import), from a
temporary working directory so that the checkout is never on ``sys.path`` by accident.
"""

from __future__ import annotations

import os
import pkgutil
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from conftest import REPO, TINY
from toolkit_helpers import asteroid_infer_estimates, run_asteroid_infer, write_mixture

from asteroid_tdanet import TDANet, native
from asteroid_tdanet.bench.startup import SOURCES, build_wheel, overlay_venv, site_packages

BIN = Path(sys.executable).parent
ASTEROID_INFER = BIN / "asteroid-infer"


def run_python(python: Path | str, code: str, cwd: Path, env_extra: dict | None = None):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(env_extra or {})
    script = cwd / "script.py"
    script.write_text(textwrap.dedent(code))
    return subprocess.run(
        [str(python), str(script)], capture_output=True, text=True, cwd=cwd, env=env, timeout=600
    )


def test_start_up_imports_only_the_tiny_hook(tmp_path):
    run = run_python(
        sys.executable,
        """
        import sys
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "asteroid",
                       "asteroid_tdanet", "numpy"))
        print(heavy)
        print("asteroid_tdanet_hook" in sys.modules)
        print([type(f).__name__ for f in sys.meta_path])
        """,
        tmp_path,
    )
    heavy, hook_loaded, finders = run.stdout.splitlines()
    assert heavy == "[]", run.stderr
    assert hook_loaded == "True" and "PostImportFinder" in finders


def test_models_registered_whatever_the_import_order(tmp_path):
    run = run_python(
        sys.executable,
        """
        import importlib, sys
        import asteroid.models as models          # Asteroid first, as its CLIs and ESPnet do
        assert "asteroid_tdanet" in sys.modules
        import asteroid_tdanet
        for name in ("TDANet", "TDANetLarge", "TDANetBest"):
            assert models.get(name) is getattr(asteroid_tdanet, name), name
            assert getattr(models, name) is getattr(asteroid_tdanet, name), name
        importlib.reload(models)                  # a reload keeps them
        assert models.get("TDANet") is asteroid_tdanet.TDANet
        del sys.modules["asteroid.models"]        # a new asteroid.models module gets them too
        fresh = importlib.import_module("asteroid.models")
        assert fresh is not models and fresh.get("TDANet") is asteroid_tdanet.TDANet
        print("ok")
        """,
        tmp_path,
    )
    assert run.stdout.strip() == "ok", run.stderr
    run = run_python(
        sys.executable,
        """
        import asteroid_tdanet                    # the plugin first
        from asteroid.models import get, TDANetLarge
        assert get("tdanet") is asteroid_tdanet.TDANet
        assert TDANetLarge is asteroid_tdanet.TDANetLarge
        print("ok")
        """,
        tmp_path,
    )
    assert run.stdout.strip() == "ok", run.stderr


def test_spawned_subprocesses_find_the_models(tmp_path):
    run = run_python(
        sys.executable,
        """
        import multiprocessing as mp

        def child(queue):
            try:
                from asteroid.models import get
                queue.put(get("TDANet").__module__)
            except Exception as err:  # the parent prints it instead of waiting
                queue.put(repr(err))

        if __name__ == "__main__":
            queue = mp.get_context("spawn").Queue()
            proc = mp.get_context("spawn").Process(target=child, args=(queue,))
            proc.start()
            print(queue.get(timeout=300))
            proc.join()
        """,
        tmp_path,
    )
    assert run.stdout.strip() == "asteroid_tdanet.models", run.stderr


def test_a_broken_plugin_warns_and_never_breaks_asteroid(tmp_path):
    broken = tmp_path / "shadow" / "asteroid_tdanet"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text("raise ImportError('broken on purpose')\n")
    run = run_python(
        sys.executable,
        """
        import warnings
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            from asteroid.models import ConvTasNet, get
        print([str(w.message) for w in caught if w.category is RuntimeWarning])
        try:
            get("TDANet")
        except ValueError:
            print("not registered")
        """,
        tmp_path,
        {"PYTHONPATH": str(broken.parent)},
    )
    assert "broken on purpose" in run.stdout and "could not register TDANet" in run.stdout
    assert run.stdout.strip().endswith("not registered"), run.stderr


def test_only_tdanet_models_are_registered_so_others_can_register_a_sepformer(tmp_path):
    run = run_python(
        sys.executable,
        """
        import asteroid.models as models
        from asteroid.models.base_models import BaseModel
        import asteroid_tdanet
        print(sorted(n for n in ("TDANet", "TDANetLarge", "TDANetBest", "Sepformer")
                     if n.lower() in {k.lower() for k in models.__dict__}))

        class Sepformer(BaseModel):  # someone else's, registered after ours were
            pass

        models.register_model(Sepformer)
        assert models.get("Sepformer") is Sepformer
        assert asteroid_tdanet.get_model("Sepformer") is asteroid_tdanet.Sepformer
        print("ok")
        """,
        tmp_path,
    )
    assert run.stdout.splitlines() == ["['TDANet', 'TDANetBest', 'TDANetLarge']", "ok"], run.stderr


def test_opt_out_variable_turns_the_hook_off(tmp_path):
    code = """
        import sys
        import asteroid.models as models
        print("asteroid_tdanet" in sys.modules, any("PostImportFinder" == type(f).__name__
                                                    for f in sys.meta_path))
        """
    on = run_python(sys.executable, code, tmp_path, {"ASTEROID_TDANET_NO_HOOK": "0"})
    off = run_python(sys.executable, code, tmp_path, {"ASTEROID_TDANET_NO_HOOK": "1"})
    assert on.stdout.split() == ["True", "True"], on.stderr
    assert off.stdout.split() == ["False", "False"], off.stderr


def test_start_up_imports_nothing_of_ours_but_the_hook(tmp_path):
    run = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "pass"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    imported = [line.split("|")[-1].strip() for line in run.stderr.splitlines() if "|" in line]
    ours = {m for m in imported if "asteroid" in m or "tdanet" in m}
    # setuptools' own finder of the editable install (named after the distribution) maps the
    # checkout's modules; it imports none of them.
    editable_finders = {m for m in ours if m.startswith("__editable___asteroid_tdanet")}
    assert ours - editable_finders == {"asteroid_tdanet_hook"}, sorted(ours)


def test_installed_start_files_name_the_hook():
    site = site_packages(sys.executable)
    entry = (site / "asteroid_tdanet_hook.start").read_text().strip()
    import asteroid_tdanet_hook

    assert pkgutil.resolve_name(entry) is asteroid_tdanet_hook.install  # PEP 829's resolution
    assert "asteroid_tdanet_hook.install()" in (site / "asteroid_tdanet_hook.pth").read_text()


@pytest.mark.slow
def test_moved_or_deleted_editable_checkout_starts_python_silently(tmp_path):
    """An editable install of a copy of the checkout, then the copy moved away, then deleted."""
    checkout = tmp_path / "checkout"
    for name in SOURCES:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, checkout / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            checkout.mkdir(exist_ok=True)
            shutil.copy2(source, checkout / name)
    python = overlay_venv(tmp_path / "venv")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps"]
        + ["--no-build-isolation", "--no-index", "-e", str(checkout)],
        check=True,
        capture_output=True,
    )
    code = "import asteroid.models as m; print(m.get('TDANet').__module__)"
    work = tmp_path / "work"
    work.mkdir()

    def start(*argv: str) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        return subprocess.run(
            [str(python), *argv], capture_output=True, text=True, cwd=work, env=env, timeout=300
        )

    installed = start("-c", code)
    assert installed.stdout.strip() == "asteroid_tdanet.models", installed.stderr
    checkout.rename(tmp_path / "moved")
    for state in ("moved", "deleted"):
        if state == "deleted":
            shutil.rmtree(tmp_path / "moved")
        started = start("-c", "pass")
        assert (started.returncode, started.stderr) == (0, ""), state
        asteroid = start("-c", "import asteroid.models")
        assert (asteroid.returncode, asteroid.stderr) == (0, ""), state


@pytest.fixture
def tiny_model_file(tmp_path) -> tuple[TDANet, Path]:
    model = TDANet(n_src=2, sample_rate=8000, **TINY).eval()
    path = tmp_path / "tdanet.pth"
    torch.save(model.serialize(), path)
    return model, path


def check_estimates(written, model, mixture) -> None:
    expected = asteroid_infer_estimates(model, mixture)
    assert len(written) == model.n_src
    for k, audio in enumerate(written):
        # 16-bit wav files: quantisation steps of 3e-5.
        torch.testing.assert_close(torch.from_numpy(audio), expected[k], atol=1e-4, rtol=0)


def test_asteroid_infer_editable_install(tmp_path, tiny_model_file):
    """The install `make` creates: the real console script of this environment."""
    model, path = tiny_model_file
    mixture = write_mixture(tmp_path / "mix.wav")
    written, _ = run_asteroid_infer(
        [str(ASTEROID_INFER)], str(path), tmp_path / "mix.wav", tmp_path / "out"
    )
    check_estimates(written, model, mixture)


@pytest.mark.slow
def test_asteroid_infer_wheel_install(tmp_path, tiny_model_file):
    """A wheel installed into a fresh venv (dependencies shared with this one, see
    asteroid_tdanet.bench.startup.overlay_venv): its own files and hook do the work."""
    model, path = tiny_model_file
    wheel = build_wheel(tmp_path / "build")
    python = overlay_venv(tmp_path / "venv", wheel)
    site = site_packages(python)
    assert (site / "asteroid_tdanet_hook.pth").is_file()
    assert (site / "asteroid_tdanet_hook.start").read_text() == "asteroid_tdanet_hook:install\n"
    assert (site / "asteroid_tdanet" / "models.py").is_file()
    assert (python.parent / "tdanet-separate").is_file()  # console scripts installed
    # The fused kernels' source ships in the wheel and builds from there.
    assert (site / "asteroid_tdanet" / "cpu_kernels.c").is_file()
    probe = "from asteroid_tdanet import native; print(native.describe()['available'])"
    env = {**os.environ, "TDANET_KERNEL_CACHE": str(tmp_path / "kernels")}
    done = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, env=env)
    assert done.stdout.strip() == str(native.library() is not None), done.stderr

    mixture = write_mixture(tmp_path / "mix.wav")
    # Asteroid's console script file, run by the wheel venv's interpreter; `-v` logs where
    # every module comes from.
    written, log = run_asteroid_infer(
        [str(python), "-v", str(ASTEROID_INFER)], str(path), tmp_path / "mix.wav", tmp_path / "out"
    )
    check_estimates(written, model, mixture)
    loaded_from = [line for line in log.splitlines() if "asteroid_tdanet" in line]
    assert any(f"{site}/asteroid_tdanet/models.py" in line for line in loaded_from), loaded_from
    assert any(f"{site}/asteroid_tdanet_hook.py" in line for line in loaded_from)
    assert not any(str(REPO / "asteroid_tdanet") in line for line in loaded_from)
