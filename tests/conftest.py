"""Test configuration: fake several CPU devices so data-parallel code is exercised."""

import os

# Must happen before JAX initialises its backends. Four devices let tests compare
# 1-device and 4-device runs in one process; single-device code uses device 0.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# Compiled programs are cached on disk across tests, xdist workers and the
# command-line tools the tests start (they read NEURAL_SYNTH_CACHE_DIR).
_CACHE = os.path.join(os.environ.get("TMPDIR", "/tmp"), "neural_synth_test_xla_cache")
os.environ.setdefault("NEURAL_SYNTH_CACHE_DIR", _CACHE)

import jax  # noqa: E402  (after XLA_FLAGS)

jax.config.update("jax_compilation_cache_dir", os.environ["NEURAL_SYNTH_CACHE_DIR"])
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
