"""Packaging for asteroid-tdanet: TDANet as an Asteroid plugin."""

from pathlib import Path

from setuptools import find_packages, setup

here = Path(__file__).parent
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
    "test": ["pytest>=8", "ruff>=0.5"],
}
extras["all"] = sorted({req for reqs in extras.values() for req in reqs})

setup(
    name="asteroid-tdanet",
    version=version["__version__"],
    description="TDANet (ICLR 2023) as an Asteroid plugin, with recipes and benchmarks",
    long_description=(here / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.10",
    packages=find_packages(include=["asteroid_tdanet", "asteroid_tdanet.*"]),
    install_requires=[
        # weights_only loading of our files relies on torch>=2.6 semantics.
        "torch>=2.6",
        "torchaudio>=2.6",
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
        "Programming Language :: Python :: 3",
        "Topic :: Multimedia :: Sound/Audio :: Speech",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
