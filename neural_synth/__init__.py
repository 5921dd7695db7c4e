"""neural_synth: neural image synthesis in JAX."""
