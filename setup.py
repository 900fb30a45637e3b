"""Packaging for asteroid-tdanet: TDANet as an Asteroid plugin."""

from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py
from setuptools.command.editable_wheel import editable_wheel

here = Path(__file__).parent
# Installed into site-packages: makes `import asteroid.models` register our models in every process
# of the environment (see asteroid_tdanet_hook.py and the README, "Asteroid, ESPnet, the hub").
# Python 3.15+ runs the PEP 829 entry point of the .start file and then skips the import line of
# the .pth file of the same name; older Pythons only know the .pth line. The line swallows any
# error (a moved or deleted editable checkout): site.py would print a traceback at every start-up.
HOOK_PTH = "asteroid_tdanet_hook.pth"
HOOK_LINE = (
    'import sys; exec("try:\\n import asteroid_tdanet_hook\\n asteroid_tdanet_hook.install()'
    '\\nexcept Exception:\\n pass")\n'
)
HOOK_START = "asteroid_tdanet_hook.start"
HOOK_ENTRY = "asteroid_tdanet_hook:install\n"
HOOK_FILES = {HOOK_PTH: HOOK_LINE, HOOK_START: HOOK_ENTRY}


class BuildPyWithHook(build_py):
    """Wheels: put the hook's .pth and .start files at the top of build_lib (site-packages)."""

    def run(self) -> None:
        super().run()
        if not self.editable_mode:
            for name, text in HOOK_FILES.items():
                (Path(self.build_lib) / name).write_text(text, encoding="utf-8")

    def get_outputs(self, *args, **kwargs):
        outputs = list(super().get_outputs(*args, **kwargs))
        if self.editable_mode:
            return outputs
        return [*outputs, *(str(Path(self.build_lib) / name) for name in HOOK_FILES)]


class _StrategyWithHook:
    """Wraps setuptools' editable strategy (the .pth/finder it writes) and adds the hook."""

    def __init__(self, strategy) -> None:
        self.strategy = strategy

    def __enter__(self):
        self.strategy.__enter__()
        return self

    def __exit__(self, *exc):
        return self.strategy.__exit__(*exc)

    def __call__(self, wheel, files, mapping) -> None:
        self.strategy(wheel, files, mapping)
        for name, text in HOOK_FILES.items():
            wheel.writestr(name, text.encode())
        EditableWheelWithHook.hook_written = True


class EditableWheelWithHook(editable_wheel):
    """Editable installs (``pip install -e .``): the same hook .pth as the wheel."""

    hook_written = False

    def _select_strategy(self, *args, **kwargs):
        return _StrategyWithHook(super()._select_strategy(*args, **kwargs))

    def run(self) -> None:
        super().run()
        if not EditableWheelWithHook.hook_written:
            raise RuntimeError(
                "this setuptools' editable_wheel no longer calls _select_strategy: the "
                f"{HOOK_PTH} and {HOOK_START} hooks were not installed; use setuptools<81 (see "
                "pyproject.toml)"
            )


version = {}
exec((here / "asteroid_tdanet" / "version.py").read_text(), version)

extras = {
    # Efficiency benchmark and deployment.
    "bench": [
        "ptflops>=0.7.4",
        "matplotlib>=3.7",
        "onnx>=1.16",
        "onnxscript>=0.3",
        "onnxruntime>=1.18",
    ],
    # Sepformer baseline (SpeechBrain's Dual_Path_Model).
    "sepformer": ["speechbrain>=1.0,<2"],
    # Recipes: data mixing, evaluation, plots, logs.
    "recipes": [
        "pyloudnorm>=0.1.1",
        "matplotlib>=3.7",
        "pandas>=2",
        "tensorboard>=2.14",
    ],
    # Loading the authors' released checkpoints straight from the Hugging Face hub.
    "hub": ["huggingface_hub>=0.20"],
    # pytest-xdist: `make test` runs the suite on two workers (tests/ci_policy.py); playwright
    # drives Debian's chromium (`make browser`) in the evaluation report's test; hypothesis
    # draws the fast path's property tests.
    "test": [
        "pytest>=8",
        "pytest-xdist>=3.5",
        "ruff>=0.5",
        "playwright>=1.45",
        "hypothesis>=6.100",
    ],
}
extras["all"] = sorted({req for reqs in extras.values() for req in reqs})

setup(
    name="asteroid-tdanet",
    version=version["__version__"],
    description="TDANet (ICLR 2023) as an Asteroid plugin, with recipes and benchmarks",
    long_description=(here / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    # MIT for the project; asteroid_tdanet/bench/look2hear_reference.py is Apache-2.0 (NOTICE).
    license="MIT AND Apache-2.0",
    license_files=["LICENSE", "NOTICE", "LICENSES/Apache-2.0.txt"],
    python_requires=">=3.10",
    packages=find_packages(include=["asteroid_tdanet", "asteroid_tdanet.*"]),
    # The fused CPU kernels' source: compiled for the user's CPU at first use (native.py).
    package_data={"asteroid_tdanet": ["cpu_kernels.c"]},
    py_modules=["asteroid_tdanet_hook"],
    cmdclass={"build_py": BuildPyWithHook, "editable_wheel": EditableWheelWithHook},
    install_requires=[
        # The range the tests run on: torch 2.9.1 (.venv-espnet, `make test-espnet`) and 2.14.1
        # (.venv, `make test`). weights_only loading needs >= 2.6 anyway.
        "torch>=2.9,<2.15",
        "torchaudio>=2.9,<2.12",
        "asteroid>=0.7.0,<0.8",
        # asteroid 0.7 pins torchmetrics<=0.11.4, which imports pkg_resources (removed in 81).
        "setuptools<81",
        # asteroid imports both without declaring them.
        "requests>=2.28",
        "librosa>=0.10",
        "pytorch-lightning>=2.0,<3",
        "soundfile>=0.12",
        "numpy>=1.24",
        "scipy>=1.10",
        "pyyaml>=6",
        "tqdm>=4.60",
        # LibriMix-style loudness normalisation in the offline demo data builder.
        "pyloudnorm>=0.1.1",
    ],
    extras_require=extras,
    entry_points={
        "console_scripts": [
            "tdanet-convert=asteroid_tdanet.cli:convert_main",
            "tdanet-separate=asteroid_tdanet.cli:separate_entry",
            "tdanet-bench=asteroid_tdanet.bench.__main__:main",
            "tdanet-export=asteroid_tdanet.export:export_main",
        ]
    },
    classifiers=[
        "License :: OSI Approved :: MIT License",
        "License :: OSI Approved :: Apache Software License",
        "Programming Language :: Python :: 3",
        "Topic :: Multimedia :: Sound/Audio :: Speech",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
