"""mmbench: a benchmark harness and fused kernels for balanced and missing-modality multimodal learning."""
import sys

from setuptools import find_packages, setup

install_requires = [
    "torch>=2.1",  # not pinned: users bring the build that fits their machine
    "numpy>=1.24",
    "pandas>=1.5",
    "tabulate>=0.9",
    "tqdm>=4.60",
    "pyyaml>=6.0",
    "scipy>=1.11",  # t and F quantiles, friedmanchisquare
    "baycomp>=1.0.3",  # Bayesian signed-rank test of each method against joint training (imported lazily)
    "ninja>=1.11",
    "matplotlib>=3.6",  # the leaderboard page's plots (python -m mmbench publish)
    "markdown>=3.4",  # the page's tables are LEADERBOARD.md's own, converted
    "scikit-learn>=1.2",  # K-means for the relearning baseline's purity diagnosis
]
if sys.platform.startswith("linux"):
    install_requires.append("triton>=2.3")

setup(
    name="mmbench-balance",  # "mmbench" on PyPI is an unrelated vision-language benchmark
    version="0.1.0",
    description="Benchmark harness and fused Triton kernels for modality imbalance and missing modalities",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["mmbench", "mmbench.*", "kernels", "kernels.*", "baselines", "baselines.*"]),
    package_data={
        "mmbench": ["data/files/*", "data/files/*/*", "suites/*.yaml"],
        "kernels": ["csrc/*", "dispatch_default.json"],
    },
    include_package_data=True,
    python_requires=">=3.9",
    install_requires=install_requires,
    extras_require={
        "test": ["pytest>=7", "pytest-benchmark>=4", "hypothesis>=6", "distributed>=2023.1", "selenium>=4.10",
                 "soundfile>=0.12", "scipy>=1.12", "soxr>=0.3", "av>=11", "Pillow>=9", "torchvision>=0.16",
                 "torchmetrics>=1.0", "h5py>=3"],  # torchmetrics: reference mIoU (no torch pin); h5py: NYUv2 .mat
        "dask": ["distributed>=2023.1"],
        # decoders for `python -m mmbench prepare` (the field's data sets from disk)
        "audio": ["soundfile>=0.12", "scipy>=1.12", "soxr>=0.3"],  # soxr: librosa's default resampler
        "audio-kaiser": ["resampy>=0.4"],  # resampler=kaiser_best (librosa < 0.10's default)
        "video": ["av>=11", "Pillow>=9"],
        # Paper scale: ResNet-18 encoders and the training augmentations (install the build matching your torch).
        "paper": ["torchvision>=0.16"],
        # Mutation scores per file (scripts/mutation_scores.py, docs/mutation-testing.md).
        "mutation": ["mutmut>=3.8"],
    },
    entry_points={"console_scripts": ["mmbench=mmbench.cli:main"]},
    license="MIT",
)
