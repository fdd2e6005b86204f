"""mmbench: a benchmark harness and fused kernels for balanced and missing-modality multimodal learning."""
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
# Triton is not a requirement: its kernels run on CUDA GPUs only (the CUDA build of torch brings the
# matching triton itself), and a CPU machine would carry ~1 GB it cannot use. The ``triton`` extra
# installs it where the Triton interpreter is wanted (the kernel tests); without it those tests skip.
TRITON = 'triton>=2.3; platform_system == "Linux"'

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
        # No torchvision here: each torchvision release pins one torch, so it would replace the user's
        # (a CPU build by the CUDA one). Tests that need it skip, naming why, when it is absent or does
        # not match torch; install the ``paper`` extra with the build that matches your torch.
        "test": ["pytest>=7", "pytest-benchmark>=4", "hypothesis>=6", "distributed>=2023.1", "selenium>=4.10",
                 "soundfile>=0.12", "scipy>=1.12", "soxr>=0.3", "av>=11", "Pillow>=9",
                 "torchmetrics>=1.0", "h5py>=3"],  # torchmetrics: reference mIoU (no torch pin); h5py: NYUv2 .mat
        "triton": [TRITON],
        "dask": ["distributed>=2023.1"],
        # decoders for `python -m mmbench prepare` (the field's data sets from disk)
        "audio": ["soundfile>=0.12", "scipy>=1.12", "soxr>=0.3"],  # soxr: librosa's default resampler
        "audio-kaiser": ["resampy>=0.4"],  # resampler=kaiser_best (librosa < 0.10's default)
        "video": ["av>=11", "Pillow>=9"],
        "rgbd": ["h5py>=3", "scipy>=1.12", "Pillow>=9"],  # prepare nyuv2 / cityscapes (segmentation)
        # Paper scale: ResNet-18 encoders and the training augmentations (install the build matching your torch).
        "paper": ["torchvision>=0.16"],
        # Mutation scores per file (scripts/mutation_scores.py, docs/mutation-testing.md).
        "mutation": ["mutmut>=3.8"],
    },
    entry_points={"console_scripts": ["mmbench=mmbench.cli:main"]},
    license="MIT",
)
