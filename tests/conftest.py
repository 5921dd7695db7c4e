"""Test configuration: fake several CPU devices so data-parallel code is exercised."""

import os

# Must happen before JAX initialises its backends. Four devices let tests compare
# 1-device and 4-device runs in one process; single-device code uses device 0.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
